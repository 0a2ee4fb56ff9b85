"""Operators' commands that run against the directory's database directly (the service relays the events):

python -m services.directory.cli bootstrap --it-office-code CODE --operator ID --operator-name NAME
    the IT office and its first operator, on a new installation (the password is printed once)
python -m services.directory.cli demo
    development only: the demo directory of Ji'an; credentials go to .var/demo-credentials.tsv, the market
    regulator's adapter signing key (registered by its data administrator) to .var/adapter-keys/<client id>.pem
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from datashare_adapter.signing import generate_key, private_pem, public_pem
from pymongo.errors import PyMongoError

from common.auth import EventSigner, load_signing_key
from common.logs import configure_logging
from common.policy import MachineKind, Principal, Role
from common.runtime import Runtime
from common.settings import load_settings
from services.directory import demo_data, handlers
from services.directory.adapters import mongo
from services.directory.adapters.secrets import Argon2Hasher
from services.directory.domain.model import Conflict, DepartmentLevel
from services.directory.main import signing_key
from services.directory.settings import DirectorySettings

SYSTEM = Principal("system:bootstrap", "-", frozenset({Role.IT_OFFICE_OPERATOR}))
CREDENTIALS = Path(__file__).resolve().parents[2] / ".var" / "demo-credentials.tsv"


def unit_of_work(runtime: Runtime, settings: DirectorySettings) -> mongo.MongoUnitOfWork:
    """The directory's events written here are signed with the service's key, as the service signs its own."""
    return mongo.MongoUnitOfWork(runtime, EventSigner(load_signing_key(signing_key(settings))))


async def bootstrap(
    runtime: Runtime,
    uow: mongo.MongoUnitOfWork,
    it_office_code: str,
    operator: str,
    operator_name: str,
    hasher: Argon2Hasher,
) -> str:
    await mongo.ensure_indexes(runtime.db)
    if await uow.department(it_office_code) is None:
        await handlers.register_department(
            it_office_code, "吉安市信息化工作办公室", DepartmentLevel.IT_OFFICE, None, SYSTEM, uow
        )
    issued = await handlers.register_person(
        operator, operator_name, it_office_code, frozenset({Role.IT_OFFICE_OPERATOR}), SYSTEM, uow, hasher
    )
    return issued.secret


def adapter_key_file(keys: Path, client_id: str) -> Path:
    return keys / f"{client_id}.pem"


async def register_demo_key(uow: mongo.MongoUnitOfWork, client_id: str, administrator: Principal, keys: Path) -> None:
    """The adapter's signing key: the pair made here as `datashare-adapter keygen` makes it, its public half
    registered by the department's data administrator."""
    key = generate_key()
    path = adapter_key_file(keys, client_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(private_pem(key))
    await handlers.register_adapter_key(
        client_id, public_pem(key.public_key()), None, administrator, uow, datetime.now(UTC)
    )


async def demo(
    runtime: Runtime, uow: mongo.MongoUnitOfWork, keys: Path, hasher: Argon2Hasher
) -> list[tuple[str, str, str]]:
    """Load the demo directory; return (login, secret, what) rows. Adapters' signing keys go to `keys`."""
    await mongo.ensure_indexes(runtime.db)
    rows: list[tuple[str, str, str]] = []
    serial = iter(range(1, 10_000))
    city = demo_data.credit_code(demo_data.CITY_REGION, next(serial))

    new: set[str] = set()

    async def department(code: str, name: str, level: DepartmentLevel, parent: str | None) -> str:
        try:
            await handlers.register_department(code, name, level, parent, SYSTEM, uow)
            new.add(code)
        except Conflict:
            pass  # loaded by an earlier run
        return code

    async def person(login: str, department_code: str, roles: set[Role], what: str) -> None:
        try:
            issued = await handlers.register_person(
                login, demo_data.person_name(len(rows)), department_code, frozenset(roles), SYSTEM, uow, hasher
            )
        except Conflict:
            return
        rows.append((login, issued.secret, what))

    await department(city, "吉安市人民政府", DepartmentLevel.CITY, None)
    it_office = await department(
        demo_data.credit_code(demo_data.CITY_REGION, next(serial)),
        "吉安市信息化工作办公室",
        DepartmentLevel.IT_OFFICE,
        city,
    )
    leadership = await department(
        demo_data.credit_code(demo_data.CITY_REGION, next(serial)),
        "吉安市政务数据共享工作领导小组",
        DepartmentLevel.LEADERSHIP_GROUP,
        None,
    )
    await person("xxb-operator", it_office, {Role.IT_OFFICE_OPERATOR}, f"IT office operator ({it_office})")
    await person("xxb-auditor", it_office, {Role.AUDITOR}, f"auditor ({it_office})")
    await person("ldxz-member", leadership, {Role.LEADERSHIP_MEMBER}, f"leadership group member ({leadership})")

    units = [(n, s, demo_data.CITY_REGION, DepartmentLevel.CITY) for n, s in demo_data.CITY_BUREAUS]
    units += [(n, s, r, DepartmentLevel.COUNTY) for n, s, r in demo_data.COUNTIES]
    units += [(n, s, demo_data.CITY_REGION, DepartmentLevel.ZONE) for n, s in demo_data.ZONES]
    for name, slug, region, level in units:
        code = await department(demo_data.credit_code(region, next(serial)), name, level, city)
        await person(f"{slug}-compiler", code, {Role.CATALOG_COMPILER}, f"catalog compiler, {name} ({code})")
        await person(f"{slug}-reviewer", code, {Role.CATALOG_REVIEWER}, f"catalog reviewer, {name} ({code})")
        await person(f"{slug}-admin", code, set(), f"data administrator, {name} ({code})")
        if code not in new:
            continue
        await handlers.appoint_data_administrator(code, f"{slug}-admin", SYSTEM, uow)
        if slug in ("scjgj", "xzspj"):
            kind = MachineKind.ADAPTER if slug == "scjgj" else MachineKind.CONSUMER_SYSTEM
            issued = await handlers.issue_machine_identity(code, kind, SYSTEM, uow, hasher)
            rows.append((issued.login, issued.secret, f"{kind.value} of {name} ({code})"))
            if kind is MachineKind.ADAPTER:
                administrator = Principal(f"{slug}-admin", code, frozenset({Role.DATA_ADMINISTRATOR}))
                await register_demo_key(uow, issued.login, administrator, keys)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="services.directory.cli", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    boot = commands.add_parser("bootstrap")
    boot.add_argument("--it-office-code", required=True)
    boot.add_argument("--operator", required=True)
    boot.add_argument("--operator-name", required=True)
    demo_command = commands.add_parser("demo")
    demo_command.add_argument("--credentials", type=Path, default=CREDENTIALS, help="where the logins go")
    args = parser.parse_args()
    settings = load_settings(DirectorySettings)
    configure_logging("directory-cli", "WARNING")
    runtime = Runtime.build("directory", settings)

    async def run() -> int:
        try:
            await runtime.client.admin.command("ping")
        except PyMongoError as exc:
            print(f"cannot reach the database ({exc}); start the platform first: make up", file=sys.stderr)
            return 1
        hasher = Argon2Hasher(settings.password_hash_cost)
        try:
            if args.command == "bootstrap":
                uow = unit_of_work(runtime, settings)
                secret = await bootstrap(runtime, uow, args.it_office_code, args.operator, args.operator_name, hasher)
                print(f"{args.operator}\t{secret}\t(shown once)")
                return 0
            if settings.environment != "development":
                print("the demo directory is for development only", file=sys.stderr)
                return 2
            keys = args.credentials.parent / "adapter-keys"
            rows = await demo(runtime, unit_of_work(runtime, settings), keys, hasher)
            args.credentials.parent.mkdir(parents=True, exist_ok=True)
            with args.credentials.open("a", encoding="utf-8") as out:
                out.writelines(f"{login}\t{secret}\t{what}\n" for login, secret, what in rows)
            args.credentials.chmod(0o600)
            print(f"loaded the demo directory: {len(rows)} new logins written to {args.credentials}")
            return 0
        finally:
            await runtime.client.close()

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
