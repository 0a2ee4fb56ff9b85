"""`make bench`: starts its own broker and database on free ports, runs every benchmark, writes
bench/results/<name>.json. `--events N` changes the bus benchmark's size (default 200000); `--only NAME`
runs one benchmark (bus, search)."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench import bus, search
from devstack.processes import start_infra, stop


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--entries", type=int, default=100_000, help="catalog entries for the search benchmark")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--only", choices=["bus", "search"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datashare-bench-") as folder:
        infra = start_infra(Path(folder))
        try:
            if args.only in (None, "bus"):
                asyncio.run(bus.run(infra.bootstrap, infra.mongo_uri, args.events))
            if args.only in (None, "search"):
                asyncio.run(search.run(infra.mongo_uri, args.entries, args.queries))
        finally:
            stop(infra.procs)


if __name__ == "__main__":
    main()
