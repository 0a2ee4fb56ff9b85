"""`make demo`, second half: the market regulator (市场监督管理局) publishes its enterprise register in the
catalog and its adapter syncs the register's SQLite table into the center; the administrative approval
bureau (行政审批局) is granted part of it and its consumer system queries it (examples.market_register.sharing).
Run again, it simulates a business day at the register and sends only what changed.

Needs the platform running (`make up`) and the demo directory loaded (`python -m services.directory.cli
demo`, which writes the logins to .var/demo-credentials.tsv and the adapter's signing key, registered with the
directory, to .var/adapter-keys/)."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import sys
import time
from pathlib import Path

import httpx
from datashare_adapter import Adapter, PlatformConfig, Snapshot, sync
from datashare_adapter.sources import read_sql

from examples.market_register import register, sharing

# Where the demo keeps its register, the adapter's snapshot and reads the logins (tests give their own).
VAR = Path(os.environ.get("DEMO_STATE_DIR") or Path(__file__).resolve().parents[2] / ".var")
ENTRY_NAME = "企业登记基本信息"
# Each item is the source of its element in the data-element dictionary (data/dictionary/jian-demo.csv).
ITEMS = [
    {"name": "统一社会信用代码", "type": "string", "length": 18, "description": "GB 32100", "source_of": "DE0201"},
    {"name": "企业名称", "type": "string", "length": 200, "source_of": "DE0202"},
    {"name": "法定代表人", "type": "string", "length": 50, "sensitive": True, "source_of": "DE0203"},
    {"name": "注册资本", "type": "decimal", "description": "元", "source_of": "DE0204"},
    {"name": "成立日期", "type": "date", "source_of": "DE0205"},
    {"name": "住所", "type": "string", "length": 200, "source_of": "DE0206"},
    {"name": "经营范围", "type": "string", "length": 2000, "source_of": "DE0207"},
    {"name": "登记状态", "type": "string", "length": 10, "source_of": "DE0208"},
]
DICTIONARY = Path(__file__).resolve().parents[2] / "data" / "dictionary" / "jian-demo.csv"


def url(service: str, port: int) -> str:
    return os.environ.get(f"{service.upper()}_URL", f"http://127.0.0.1:{port}")


def logins(path: Path) -> dict[str, tuple[str, str]]:
    """login → (secret, what) from the demo directory's credentials file."""
    if not path.exists():
        sys.exit(f"{path} is missing: load the demo directory first (python -m services.directory.cli demo)")
    with path.open(encoding="utf-8") as rows:
        return {login: (secret, what) for login, secret, what in csv.reader(rows, delimiter="\t")}


async def sign_in(client: httpx.AsyncClient, login: str, secret: str) -> dict[str, str]:
    response = await client.post(
        f"{url('directory', 8005)}/token", data={"grant_type": "password", "username": login, "password": secret}
    )
    response.raise_for_status()
    return {"authorization": f"Bearer {response.json()['access_token']}"}


async def seed_dictionary(client: httpx.AsyncClient, people: dict) -> int:
    """The IT office loads the demo's data-element dictionary, each element's source department named by its
    code as the directory knows it. Loading it again changes nothing."""
    operator = await sign_in(client, "xxb-operator", people["xxb-operator"][0])
    known = await client.get(f"{url('directory', 8005)}/departments", headers=operator)
    known.raise_for_status()
    codes = {d["name"]: d["code"] for d in known.json()}
    rows = list(csv.reader(DICTIONARY.read_text(encoding="utf-8-sig").splitlines()))
    out = io.StringIO()
    csv.writer(out).writerows([rows[0], *([*r[:5], codes.get(r[6], ""), r[6]] for r in rows[1:])])
    for _ in range(150):  # the catalog refuses a source department it has not yet heard of from the directory
        loaded = await client.post(
            f"{url('catalog', 8001)}/elements/import",
            files={"file": ("dictionary.csv", out.getvalue().encode("utf-8"))},
            headers=operator,
        )
        if loaded.status_code != 422 or "not a department the catalog knows" not in loaded.text:
            break
        await asyncio.sleep(0.2)
    loaded.raise_for_status()
    return len(loaded.json())


async def published_entry(client: httpx.AsyncClient, people: dict, department: str) -> str:
    """The register's catalog entry: found if published before, else compiled, submitted and approved."""
    compiler = await sign_in(client, "scjgj-compiler", people["scjgj-compiler"][0])
    catalog = url("catalog", 8001)
    found = await client.get(
        f"{catalog}/search", params={"q": ENTRY_NAME, "provider_code": department}, headers=compiler
    )
    found.raise_for_status()
    for hit in found.json()["hits"]:
        if hit["name"] == ENTRY_NAME and hit["status"] == "PUBLISHED":
            return hit["resource_code"]
    content = {
        "classification": "101001",
        "provider_code": department,
        "name": ENTRY_NAME,
        "abstract": "全市企业的登记基本信息：统一社会信用代码、名称、法定代表人、注册资本、成立日期、住所、"
        "经营范围和登记状态",
        "category": "BASE",
        "format": "数据库",
        "data_items": ITEMS,
        "share_type": "CONDITIONAL",
        "share_conditions": "用于行政审批、市场监管和信用评价",
        "share_methods": ["API", "FILE_DOWNLOAD"],
        "update_cycle": "DAILY",
        "confidentiality_review": {"reviewed_by": "scjgj-admin", "reviewed_on": "2026-11-01", "conclusion": "不涉密"},
    }
    drafted = await client.post(f"{catalog}/entries", json=content, headers=compiler)
    drafted.raise_for_status()
    code, revision = drafted.json()["resource_code"], drafted.json()["revision"]
    submitted = await client.post(f"{catalog}/entries/{code}/submit", json={"revision": revision}, headers=compiler)
    submitted.raise_for_status()
    reviewer = await sign_in(client, "scjgj-reviewer", people["scjgj-reviewer"][0])
    approved = await client.post(
        f"{catalog}/entries/{code}/approve", json={"revision": submitted.json()["revision"]}, headers=reviewer
    )
    approved.raise_for_status()
    return code


async def main() -> int:
    people = logins(VAR / "demo-credentials.tsv")
    adapter_login = next((login for login, (_, what) in people.items() if what.startswith("adapter of")), None)
    if adapter_login is None:
        sys.exit("no adapter identity in the demo credentials")
    secret, what = people[adapter_login]
    department = re.search(r"\((\w{18})\)", what)
    if department is None:
        sys.exit(f"cannot read the department from {what!r}")
    async with httpx.AsyncClient(timeout=30) as client:
        print(f"data-element dictionary: {await seed_dictionary(client, people)} elements defined or changed")
        code = await published_entry(client, people, department.group(1))
        print(f"catalog entry {code} ({ENTRY_NAME}) is published")
        config = PlatformConfig(
            url("directory", 8005),
            url("exchange", 8002),
            os.environ.get("DATASHARE_KAFKA", "127.0.0.1:9092"),
            adapter_login,
            secret,
            department.group(1),
            signing_key_file=str(VAR / "adapter-keys" / f"{adapter_login}.pem"),
        )
        token = await client.post(
            f"{config.directory_url}/token",
            data={"grant_type": "client_credentials", "client_id": adapter_login, "client_secret": secret},
        )
        token.raise_for_status()
        headers = {"authorization": f"Bearer {token.json()['access_token']}"}
        for _ in range(150):  # the exchange learns the entry from the catalog's events
            if (await client.get(f"{config.exchange_url}/resources/{code}", headers=headers)).status_code == 200:
                break
            await asyncio.sleep(0.2)
    source = VAR / "market-register.sqlite"
    if source.exists():
        print(f"a business day at the register: {register.business_day(source, int(time.time()))} enterprises changed")
    else:
        size = int(os.environ.get("DEMO_REGISTER_SIZE", "5000"))
        register.create(source, size)
        print(f"created the register {source} with {size:,} enterprises")
    snapshot = Snapshot(VAR / "market-adapter-state.sqlite")
    try:
        async with Adapter(config) as adapter:
            summary = await sync(adapter, snapshot, code, lambda: read_sql(source, "enterprise"))
    finally:
        snapshot.close()
    if summary.ignored_columns:
        print(f"not sent (no data item of the entry): {', '.join(summary.ignored_columns)}")
    print(summary.line())
    urls = {"directory": config.directory_url, "exchange": config.exchange_url}
    async with httpx.AsyncClient(timeout=30) as client:
        await sharing.share(client, urls, people, sign_in, code, source, VAR / "demo-credentials.tsv")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
