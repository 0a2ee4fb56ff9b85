"""What the idle platform costs: every process `make up` starts (broker, database, five services, the
auditor's stream worker), started as `make up` starts them and then left alone; CPU time per process over a
minute, as a share of one core. The baseline, measured in the same run, is the broker and database alone
before the services start. Budget: the whole idle platform at most 5% of one core."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from bench.report import write_result
from devstack.processes import SERVICES, Infra, free_port, service_procs, start, stop, wait_http_ready

BUDGET = 0.05  # of one core, all processes summed
TICKS = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (the broker's and the database's wrappers spawn the servers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        found.append(current := todo.pop())
        todo += children.get(current, [])
    return found


def _cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return total


def measure(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Each process's CPU time over `seconds`, as a share of one core."""
    before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: round((_cpu_seconds(pid) - before[name]) / seconds, 4) for name, pid in pids.items()}


async def run(infra: Infra) -> None:
    await asyncio.to_thread(measure_platform, infra)


def measure_platform(infra: Infra, seconds: float = 60.0, settle: float = 20.0) -> None:
    infra_pids = {p.name: p.pid for p in infra.procs if p.pid}
    time.sleep(settle)
    baseline = measure(infra_pids, seconds)
    procs = service_procs(ports={name: free_port() for name in SERVICES}, infra=infra)
    try:
        for proc in procs:
            start(proc, infra.folder / "log", detach=False)
        for proc in procs:
            wait_http_ready(proc, timeout=120)
        time.sleep(settle)  # start-up work (topics, indexes, catching up) is done
        idle = measure(infra_pids | {p.name: p.pid for p in procs if p.pid}, seconds)
    finally:
        stop(procs)
    total, base = sum(idle.values()), sum(baseline.values())
    write_result(
        "platform-idle",
        metric="CPU of the whole idle platform (all processes summed), share of one core",
        unit="cores",
        value=round(total, 4),
        baseline_name="the broker and database alone, before the services start",
        baseline_value=round(base, 4),
        goal=f"<= {BUDGET} cores",
        met=total <= BUDGET,
        details={"seconds": seconds, "per_process": idle, "baseline_per_process": baseline},
    )
    print(f"idle platform: {total:.1%} of one core (budget {BUDGET:.0%}); per process: {idle}")
