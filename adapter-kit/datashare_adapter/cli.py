"""`datashare-adapter`: sync a CSV/XLSX file or a SQL table into a resource, check a resource against the
center's copy, read the department's notifications; `keygen` makes the key pair changes are signed with (the
data administrator registers its public half with the directory); `package` makes, opens and verifies offline
exchange packages (datashare_adapter.package_cli). Configuration comes from DATASHARE_*
variables; --key overrides DATASHARE_SIGNING_KEY_FILE."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from datashare_adapter import package_cli
from datashare_adapter.client import Adapter, PlatformConfig, PlatformError, notifications
from datashare_adapter.signing import generate_key, key_id, private_pem, public_pem
from datashare_adapter.snapshot import Snapshot
from datashare_adapter.sources import SourceError, read_file, read_sql
from datashare_adapter.sync import check, sync


def _source(args: argparse.Namespace) -> Callable[[], Iterable[dict[str, Any]]] | None:
    if args.file:
        return lambda: read_file(Path(args.file))
    if args.sqlite:
        if not args.table:
            raise SystemExit("--sqlite needs --table")
        return lambda: read_sql(Path(args.sqlite), args.table)
    return None


def _config(args: argparse.Namespace) -> PlatformConfig:
    config = PlatformConfig.from_env()
    return dataclasses.replace(config, signing_key_file=args.key) if args.key else config


def keygen(path: Path) -> int:
    """Write a new Ed25519 private key to `path` (readable by its owner only); print the public key to
    register with the directory."""
    if path.exists():
        raise SystemExit(f"{path} exists: a new key goes to a new file (rotate: register the new key with replaces)")
    key = generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(private_pem(key))
    print(f"# private key written to {path}; key id {key_id(key.public_key())}", file=sys.stderr)
    print('# register this public key: POST /machines/<client_id>/keys {"public_key": ...}', file=sys.stderr)
    print(public_pem(key.public_key()), end="")
    return 0


async def _sync(args: argparse.Namespace) -> int:
    rows = _source(args)
    if rows is None:
        raise SystemExit("say where the records are: --file PATH or --sqlite DB --table NAME")
    snapshot = Snapshot(Path(args.state))
    try:
        async with Adapter(_config(args)) as adapter:
            summary = await sync(adapter, snapshot, args.resource, rows, progress=not args.quiet)
    finally:
        snapshot.close()
    for problem in summary.skipped_rows[:20]:
        print(f"skipped {problem}", file=sys.stderr)
    if summary.ignored_columns:
        print(f"columns that are no data item, not sent: {', '.join(summary.ignored_columns)}", file=sys.stderr)
    print(summary.line())
    return 0


async def _check(args: argparse.Namespace) -> int:
    snapshot = Snapshot(Path(args.state))
    try:
        async with Adapter(_config(args)) as adapter:
            summary = await check(adapter, snapshot, args.resource, _source(args) if args.repair else None)
    finally:
        snapshot.close()
    print(summary.line())
    return 0 if summary.differing_buckets == 0 or args.repair else 3


async def _notifications(args: argparse.Namespace) -> int:
    async for notice in notifications(PlatformConfig.from_env(), args.group):
        print(json.dumps(notice, ensure_ascii=False, default=str), flush=True)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="datashare-adapter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("sync", "send what changed since the last run"), ("check", "compare with the center")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("resource", help="resource code, e.g. 101001/000001")
        command.add_argument("--file", help="a .csv or .xlsx file with a header row of data item names")
        command.add_argument("--sqlite", help="a SQLite database file")
        command.add_argument("--table", help="the table in --sqlite")
        command.add_argument("--state", default="adapter-state.sqlite", help="what earlier runs sent")
        command.add_argument("--quiet", action="store_true", help="no progress bar")
        command.add_argument("--key", help="the signing key's file (default: DATASHARE_SIGNING_KEY_FILE)")
    commands.choices["check"].add_argument("--repair", action="store_true", help="resend the differing ranges")
    listen = commands.add_parser("notifications", help="print the department's notifications as JSON lines")
    listen.add_argument("--group", help="consumer group (default adapter-<department>)")
    generate = commands.add_parser("keygen", help="make a signing key pair; prints the public key to register")
    generate.add_argument("path", help="where the private key goes, e.g. adapter-key.pem")
    package_cli.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "keygen":
        sys.exit(keygen(Path(args.path)))
    if args.command == "package":
        sys.exit(package_cli.run(args))
    run = {"sync": _sync, "check": _check, "notifications": _notifications}[args.command]
    try:
        sys.exit(asyncio.run(run(args)))
    except (PlatformError, SourceError) as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
