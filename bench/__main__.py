"""`make bench`: starts its own broker and database on free ports, runs every benchmark, writes
bench/results/<name>.json. `--events N` changes the bus benchmark's size (default 200000)."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench import bus
from devstack.processes import start_infra, stop


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datashare-bench-") as folder:
        infra = start_infra(Path(folder))
        try:
            asyncio.run(bus.run(infra.bootstrap, infra.mongo_uri, args.events))
        finally:
            stop(infra.procs)


if __name__ == "__main__":
    main()
