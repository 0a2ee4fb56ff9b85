"""`make bench`: starts a fresh broker and database on free ports for each benchmark, runs it, writes
bench/results/<name>.json. `--events N` changes the bus benchmark's size (default 200000); `--only NAME`
runs one benchmark (bus, search, ingest, consistency, idle, upload, api, trail-append, trail-verify,
webhooks, inbox);
`--million` ingests 1M changes; `--upload-mb` sets the upload benchmark's file size (default 50);
`--trail-events` and `--trail-entries` size the trail's append and verify benchmarks. The api benchmark needs wrk
(Debian: `apt-get install -y wrk`)."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench import api, bus, idle, inbox, ingest, search, trail, upload, webhooks
from devstack.processes import start_infra, stop


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--entries", type=int, default=100_000, help="catalog entries for the search benchmark")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--changes", type=int, default=200_000, help="data changes for the ingestion benchmark")
    parser.add_argument("--million", action="store_true", help="ingest 1,000,000 changes instead")
    parser.add_argument("--records", type=int, default=1_000_000, help="records for the consistency benchmark")
    parser.add_argument("--upload-mb", type=int, default=50, help="size of the uploaded CSV file")
    parser.add_argument("--trail-events", type=int, default=200_000, help="data accesses for the trail's append rate")
    parser.add_argument("--trail-entries", type=int, default=1_000_000, help="trail entries for the verify benchmark")
    parser.add_argument(
        "--only",
        choices=[
            "bus",
            "search",
            "ingest",
            "consistency",
            "idle",
            "upload",
            "api",
            "trail-append",
            "trail-verify",
            "webhooks",
            "inbox",
        ],
    )
    args = parser.parse_args()
    runs = {
        "bus": lambda infra: bus.run(infra.bootstrap, infra.mongo_uri, args.events),
        "search": lambda infra: search.run(infra, args.entries, args.queries),
        "ingest": lambda infra: ingest.run_ingest(infra, 1_000_000 if args.million else args.changes),
        "consistency": lambda infra: ingest.run_consistency(infra.bootstrap, infra.mongo_uri, args.records),
        "idle": idle.run,
        "upload": lambda infra: upload.run(infra, args.upload_mb),
        "api": api.run,
        "trail-append": lambda infra: trail.run_append(infra, args.trail_events),
        "trail-verify": lambda infra: trail.run_verify(infra, args.trail_entries),
        "webhooks": webhooks.run,
        "inbox": inbox.run,
    }
    for name, run in runs.items():
        if args.only not in (None, name):
            continue
        # A fresh broker and database each: the local broker rewrites all it holds about once a second
        # while written to, so one benchmark's leftovers would slow the next.
        with tempfile.TemporaryDirectory(prefix=f"datashare-bench-{name}-") as folder:
            infra = start_infra(Path(folder))
            try:
                asyncio.run(run(infra))
            finally:
                stop(infra.procs)


if __name__ == "__main__":
    main()
