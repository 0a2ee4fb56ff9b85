"""`datashare-adapter`: sync a CSV/XLSX file or a SQL table into a resource, check a resource against the
center's copy, read the department's notifications. Configuration comes from DATASHARE_* variables."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from datashare_adapter.client import Adapter, PlatformConfig, PlatformError, notifications
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


async def _sync(args: argparse.Namespace) -> int:
    rows = _source(args)
    if rows is None:
        raise SystemExit("say where the records are: --file PATH or --sqlite DB --table NAME")
    snapshot = Snapshot(Path(args.state))
    try:
        async with Adapter(PlatformConfig.from_env()) as adapter:
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
        async with Adapter(PlatformConfig.from_env()) as adapter:
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
    commands.choices["check"].add_argument("--repair", action="store_true", help="resend the differing ranges")
    listen = commands.add_parser("notifications", help="print the department's notifications as JSON lines")
    listen.add_argument("--group", help="consumer group (default adapter-<department>)")
    args = parser.parse_args(argv)
    run = {"sync": _sync, "check": _check, "notifications": _notifications}[args.command]
    try:
        sys.exit(asyncio.run(run(args)))
    except (PlatformError, SourceError) as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
