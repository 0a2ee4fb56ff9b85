"""Runs the platform on one machine: the local Kafka-protocol broker, the MongoDB-wire server and the
four services. Development and CI only; production runs deploy/k8s against real clusters.

    python -m devstack run     foreground; Ctrl-C stops everything (the broker by SIGTERM, so it flushes)
    python -m devstack up      the same, detached; returns once every service is ready
    python -m devstack down    stops what `up` started
    python -m devstack infra   only the broker and the database, in the foreground
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from devstack.processes import (
    ROOT,
    Proc,
    infra_procs,
    service_procs,
    start,
    stop,
    wait_http_ready,
    wait_port,
)

VAR = ROOT / ".var"
PIDS = VAR / "run" / "pids.json"
# The layout of .var/data: 2 since each service keeps its data in a database of its own.
LAYOUT = 2


def _set_aside_old_data() -> None:
    """Data written when all services shared one database cannot be used as it is: the services would start
    on empty databases while the broker remembers what they had consumed. Move it aside, whole, and say so."""
    data, marker = VAR / "data", VAR / "data" / "layout"
    if marker.exists() or not data.exists() or not any(data.iterdir()):
        data.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{LAYOUT}\n")
        return
    aside = VAR / f"data-shared-database-{time.strftime('%Y%m%d-%H%M%S')}"
    data.rename(aside)
    credentials = VAR / "demo-credentials.tsv"  # the demo's sign-ins belong to the old directory
    if credentials.exists():
        credentials.rename(aside / credentials.name)
    print(
        "The data in .var/data was written when all services shared one database; each service now has its\n"
        f"own. It was moved, untouched, to {aside} and the platform starts empty (`make demo` loads the\n"
        "demo again). To look at the old data, run its broker and database with --data-dir/--storage-path\n"
        "pointing there; delete the folder when it is no longer needed.",
        file=sys.stderr,
        flush=True,
    )
    data.mkdir(parents=True)
    marker.write_text(f"{LAYOUT}\n")


def _start_all(detach: bool, only_infra: bool = False) -> list[Proc]:
    started: list[Proc] = []
    _set_aside_old_data()
    try:
        for proc in infra_procs(VAR / "data"):
            print(f"starting {proc.name} on {proc.url}", flush=True)
            started.append(start(proc, VAR / "log", detach))
            wait_port(proc)
        if not only_infra:
            procs = service_procs()
            print(f"starting {', '.join(p.name for p in procs)}; waiting until each is ready", flush=True)
            for proc in procs:
                started.append(start(proc, VAR / "log", detach, inherit_output=not detach))
            for proc in started:
                wait_http_ready(proc)
    except BaseException:
        stop(started)
        raise
    return started


def _banner(procs: list[Proc]) -> None:
    print("\nThe data-sharing platform is up:", flush=True)
    for proc in procs:
        print(f"  {proc.name:<15} {proc.url}", flush=True)
    print(f"  {'logs':<15} {VAR / 'log'}\n", flush=True)


def run(only_infra: bool) -> int:
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    procs = _start_all(detach=False, only_infra=only_infra)
    _banner(procs)
    print("Ctrl-C stops everything.", flush=True)
    try:
        while not stopping:
            dead = [p for p in procs if p.popen and p.popen.poll() is not None]
            if dead:
                print(f"{dead[0].name} exited with {dead[0].popen.returncode}; stopping", file=sys.stderr)
                return 1
            time.sleep(0.3)
    finally:
        print("\nstopping...", flush=True)
        stop(procs)
    return 0


def up() -> int:
    if PIDS.exists():
        print(f"already up ({PIDS}); run `make down` first", file=sys.stderr)
        return 1
    procs = _start_all(detach=True)
    PIDS.parent.mkdir(parents=True, exist_ok=True)
    PIDS.write_text(json.dumps([p.record() for p in procs]))
    _banner(procs)
    return 0


def down() -> int:
    if not PIDS.exists():
        print("nothing to stop")
        return 0
    stop([Proc.from_record(r) for r in json.loads(PIDS.read_text())])
    PIDS.unlink()
    print("stopped")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="devstack", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=["run", "up", "down", "infra"])
    args = parser.parse_args()
    os.chdir(ROOT)
    match args.command:
        case "run":
            return run(only_infra=False)
        case "infra":
            return run(only_infra=True)
        case "up":
            return up()
        case "down":
            return down()
    return 2


if __name__ == "__main__":
    sys.exit(main())
