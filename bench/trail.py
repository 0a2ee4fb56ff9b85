"""The auditor's access trail. `append`: data access events are put on exchange.data-accesses, then the auditor
service (its own process, as in production) appends them to the hash-chained trail, a consumed batch per
transaction with signed checkpoints; the rate is entries per second from the first entry to the last (a
backlog drained: the rate the trail sustains). Goal: at least 5,000 entries/s. `verify`: a trail of N entries
(default 1,000,000, with a signed checkpoint every 10,000) is verified from the start, as GET /trail/verify
does it (a cursor read in slices, hashes recomputed off the event loop); goal 1M entries in at most 60 s with
memory bounded (the growth of the process's peak RSS is reported). `BENCH_PROFILE=FILE` runs the append
benchmark's auditor under cProfile (CPU time of its event loop's thread): `python -m pstats FILE`.
The auditor runs as deployed, a `trail` and an `oversight` process (AUDITOR_ROLE); `BENCH_AUDITOR_ROLES=all`
runs both consumers in one process, `BENCH_TRAIL_ALONE=1` the trail's alone (its own cost, for comparison).
`BENCH_KEEP_LOG=FILE` keeps the auditor processes' logs there."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from bench.ingest import cpu_seconds, rss_mb
from bench.report import write_result
from common.auth import generate_signing_key, jwks, load_signing_key
from common.codec import EventCodec
from common.events import Event
from common.kafka import KafkaPublisher
from common.mongo import PROCESSED
from common.settings import ServiceSettings
from common.topics import load_topics
from devstack.processes import ROOT, Infra, free_port
from services.auditor import handlers
from services.auditor.adapters.checkpoints import CheckpointSigner
from services.auditor.adapters.trail_mongo import (
    BLOCKS,
    CHECKPOINTS,
    HEAD,
    MongoTrail,
    block_document,
    blocks_of,
    checkpoint_document,
    ensure_indexes,
)
from services.auditor.domain.trail import Head, describe, link
from services.auditor.oversight.adapters.mongo import GROUP as OVERSIGHT_GROUP
from services.auditor.oversight.adapters.mongo import POSITIONS

GOAL_RATE = 5_000
OVERSIGHT_WAIT_SECONDS = 300
GOAL_VERIFY_SECONDS = 60.0
SEND_CHUNK = 5_000
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LOADED = (
    "shared 2-core machine, loaded: other sessions' tests and benchmarks ran at the same time (their load is in "
    "the load average; 2.0 would be both cores busy)"
)


def access(i: int) -> Event:
    """A data access as the exchange's API channel writes it (a batch read of a few subjects)."""
    payload: dict[str, Any] = {
        "access_id": "",
        "resource_code": f"101001/{i % 500:06d}",
        "provider_code": "91360800MA35F0XX1A",
        "consumer_code": f"11360800{i % 40:08d}X"[:18],
        "grant_id": f"grant-{i % 300}",
        "channel": "API",
        "purpose": "企业开办审批核验",
        "record_count": 3,
        "accessed_by": f"system-{i % 40}",
        "accessed_at": T0 + timedelta(milliseconds=i),
        "accessor_kind": "machine",
        "operation": "batch",
        "items": ["统一社会信用代码", "企业名称", "法定代表人"],
        "subjects_requested": 3,
        "subject_hashes": [uuid.uuid4().hex + uuid.uuid4().hex for _ in range(3)],
        "result": "SERVED",
        "reason": None,
    }
    event = Event("DataAccessed", payload["resource_code"], payload, "exchange", occurred_at=payload["accessed_at"])
    payload["access_id"] = event.event_id
    return event


async def send(bootstrap: str, n: int) -> float:
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap)
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    started = time.perf_counter()
    try:
        for first in range(0, n, SEND_CHUNK):
            await publisher.publish_many(
                "exchange.data-accesses", [access(i) for i in range(first, min(n, first + SEND_CHUNK))]
            )
    finally:
        await publisher.stop()
    return time.perf_counter() - started


def spawn_auditor(infra: Infra, database: str, logs: Path, role: str) -> tuple[subprocess.Popen, int]:
    """One auditor process of `role` (AUDITOR_ROLE: `trail`, `oversight` or `all`)."""
    port = free_port()
    key = load_signing_key(generate_signing_key())
    env = {
        **os.environ,
        "AUDITOR_HTTP_PORT": str(port),
        "AUDITOR_ROLE": role,
        "AUDITOR_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
        "AUDITOR_MONGO_URI": infra.mongo_uri,
        "AUDITOR_MONGO_DATABASE": database,
        "AUDITOR_AUTH_JWKS": json.dumps(jwks(key)),
        "AUDITOR_CONSUMER_GROUP_PREFIX": "bench-",  # the processes of one run share their groups, as deployed
        "AUDITOR_LOG_LEVEL": "WARNING",
    }
    logs.mkdir(parents=True, exist_ok=True)
    # BENCH_PROFILE=FILE: the auditor runs under cProfile, which counts the CPU time of its event loop's thread
    # (not the wall time, which other processes on a loaded machine inflate), and writes its stats there when
    # it stops (FILE.oversight for the oversight's process); read them with `python -m pstats FILE`.
    profile = os.environ.get("BENCH_PROFILE")
    stats = str(Path(profile + (".oversight" if role == "oversight" else "")).resolve()) if profile else ""
    with open(logs / f"auditor-{port}.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.trail", "auditor", stats],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            # a session of its own, as `make up` starts each process (and as each is a pod of its own): the
            # kernel's autogroup shares the cores between sessions first, and the two processes sharing the
            # benchmark's one would be held to the share of one process between them
            start_new_session=True,
        )
    return proc, port


def run_queue_seconds(pid: int) -> float:
    """Seconds the process's threads were ready to run but waited for a core (schedstat): the share of the
    wall time a loaded machine took from it, beside its CPU time and the rest, waiting on the broker and the
    database."""
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            waited += int((task / "schedstat").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return waited / 1e9


@dataclass
class Progress:
    """How far one consumer came: its first and last count seen, when, and its process's CPU then."""

    proc: subprocess.Popen
    first: int = 0
    first_at: float = 0.0
    first_cpu: float = 0.0
    first_wait: float = 0.0
    done_at: float | None = None
    done_cpu: float = 0.0
    done_wait: float = 0.0

    def saw(self, count: int, n: int) -> None:
        pid = self.proc.pid
        if count and not self.first:
            self.first, self.first_at = count, time.perf_counter()
            self.first_cpu, self.first_wait = cpu_seconds(pid), run_queue_seconds(pid)
        if count >= n and self.done_at is None:
            self.done_at, self.done_cpu, self.done_wait = time.perf_counter(), cpu_seconds(pid), run_queue_seconds(pid)

    def rate(self, n: int) -> float:
        return (
            (n - self.first) / (self.done_at - self.first_at) if self.done_at and self.done_at > self.first_at else 0.0
        )

    def cpu_per_1000(self, n: int) -> float:
        return (self.done_cpu - self.first_cpu) * 1000 / (n - self.first) if self.done_at and n > self.first else 0.0

    def times_per_1000(self, n: int) -> dict[str, float]:
        """Of the wall time per 1,000 events: CPU, waiting for a core, and the rest (the broker, the database)."""
        if not self.done_at or n <= self.first:
            return {}
        per = 1000 / (n - self.first)
        wall, cpu = (self.done_at - self.first_at) * per, (self.done_cpu - self.first_cpu) * per
        queued = (self.done_wait - self.first_wait) * per
        return {k: round(v, 3) for k, v in {"wall": wall, "cpu": cpu, "run_queue": queued}.items()}


async def run_append(infra: Infra, n: int) -> None:
    """The accesses are all produced first, then the auditor starts and drains them: the producer's speed (and
    its CPU on the same cores) is no part of the figure. The auditor runs as deployed: a `trail` process (the
    REST facade and the trail's consumer) beside an `oversight` process, each reading every access;
    BENCH_AUDITOR_ROLES=all runs both consumers in one process (the arrangement before the roles),
    BENCH_TRAIL_ALONE=1 only the trail's."""
    database = f"bench_trail_{uuid.uuid4().hex[:6]}"
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    send_seconds = await send(infra.bootstrap, n)
    infra_pids = {p.name: p.pid for p in infra.procs if p.pid is not None}
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=300_000, socketTimeoutMS=None)
    head = mongo[database][HEAD]
    alone = bool(os.environ.get("BENCH_TRAIL_ALONE"))
    together = os.environ.get("BENCH_AUDITOR_ROLES") == "all"
    logs = infra.folder / "log"
    trail_proc, _ = spawn_auditor(infra, database, logs, "all" if together and not alone else "trail")
    procs = {"auditor-trail": trail_proc}
    if not alone and not together:
        procs["auditor-oversight"] = spawn_auditor(infra, database, logs, "oversight")[0]
    spawned = time.perf_counter()
    trail = Progress(trail_proc)
    oversight = Progress(procs.get("auditor-oversight", trail_proc))
    try:
        deadline = time.monotonic() + 1800
        oversight_deadline = None
        cpu_before: dict[str, float] = {}
        cpu: dict[str, float] = {}
        oversight_then = 0
        while True:
            if any(p.poll() is not None for p in procs.values()) or time.monotonic() > deadline:
                logged = "".join(p.read_text()[-3000:] for p in logs.glob("auditor-*.log"))
                raise RuntimeError(f"the auditor stopped or stalled at {trail.first} entries: {logged}")
            doc = await asyncio.wait_for(head.find_one({"_id": "head"}), 60)
            sequence = doc["sequence"] if doc else 0
            if sequence and not trail.first:
                print(f"  the auditor appended its first {sequence:,} entries", flush=True)
                cpu_before = {k: cpu_seconds(v) for k, v in infra_pids.items()}
            trail.saw(sequence, n)
            if trail.done_at is not None and oversight_deadline is None:
                cpu = {k: cpu_seconds(v) for k, v in infra_pids.items()}
                oversight_then = await _oversight_handled(mongo, database)
                oversight_deadline = time.monotonic() + OVERSIGHT_WAIT_SECONDS
            if not alone:
                oversight.saw(await _oversight_handled(mongo, database), n)
            if trail.done_at is not None and (alone or oversight.done_at is not None):
                break
            if oversight_deadline is not None and time.monotonic() > oversight_deadline:
                break
            if sequence and int(time.perf_counter()) % 10 == 0:
                print(f"  {sequence:,} entries", end="\r", flush=True)
            await asyncio.sleep(0.5)
        done = trail.done_at or time.perf_counter()
        elapsed = done - trail.first_at
        peak_rss = {name: round(rss_mb(p.pid), 1) for name, p in procs.items()}
        checkpoints = await mongo[database][CHECKPOINTS].count_documents({})
    finally:
        # profiled, SIGINT: cProfile writes its stats as the interrupt unwinds (uvicorn re-raises the signal)
        for p in procs.values():
            p.send_signal(signal.SIGINT if os.environ.get("BENCH_PROFILE") else signal.SIGTERM)
        for p in procs.values():
            p.wait(15)
        if os.environ.get("BENCH_PROFILE"):
            _keep_log(logs, Path(os.environ["BENCH_PROFILE"] + ".log"))
        if os.environ.get("BENCH_KEEP_LOG"):
            _keep_log(logs, Path(os.environ["BENCH_KEEP_LOG"]))
    # the trail the service wrote verifies
    signer_free = await _verify_chain_only(mongo, database)
    await mongo.close()
    appended = n - trail.first
    rate = appended / elapsed if elapsed else 0.0
    oversight_rate = None if alone else oversight.rate(n)
    # CPU seconds per 1,000 entries appended: what a loaded machine inflates least (the rate is the share of the
    # cores the processes got divided by this). Each auditor process over its own consumer's span (first batch
    # committed to all handled); broker and database over the trail's.
    per_1000 = {"auditor-trail": trail.cpu_per_1000(n)}
    if "auditor-oversight" in procs:
        per_1000["auditor-oversight"] = oversight.cpu_per_1000(n)
    per_1000["auditor"] = sum(per_1000.values())
    per_1000 |= {k: (cpu[k] - cpu_before.get(k, 0)) * 1000 / appended for k in infra_pids} if appended else {}
    arrangement = (
        "trail alone" if alone else "one process, both consumers" if together else "trail and oversight processes"
    )
    write_result(
        "auditor-trail-append",
        metric="data access events appended to the hash-chained trail per second, broker → auditor → MongoDB",
        unit="entries/s",
        value=rate,
        baseline_name=None,
        baseline_value=None,
        goal=f">= {GOAL_RATE:,} entries/s sustained through Kafka (the oversight keeping up)",
        met=rate >= GOAL_RATE and (alone or (oversight_rate or 0) >= GOAL_RATE),
        details={
            "events": n,
            "arrangement": arrangement,
            "timed_entries": appended,
            "seconds": round(elapsed, 2),
            "seconds_from_process_start_to_all_appended": round(done - spawned, 2),
            "oversight_events_per_second": None if oversight_rate is None else round(oversight_rate),
            "seconds_from_process_start_to_all_appended_and_projected": (
                round(max(done, oversight.done_at) - spawned, 2) if oversight.done_at else None
            ),
            "batch_per_transaction": 5000,
            "checkpoints_signed": checkpoints,
            "chain_verified_after": signer_free,
            "producer_send_seconds_before_the_auditor_started": round(send_seconds, 2),
            "auditor_rss_mb": peak_rss,
            "oversight_running": not alone,
            "oversight_events_handled_when_the_trail_was_done": None if alone else oversight_then,
            "oversight_all_handled_seconds_after_the_trail": (
                None
                if alone or not oversight.done_at
                else 0.0
                if oversight_then >= n
                else round(max(0.0, oversight.done_at - done), 1)
            ),
            "cpu_seconds_per_1000_entries": {k: round(v, 3) for k, v in per_1000.items()},
            # per process over its consumer's span, its threads summed (CPU and run queue can exceed the wall)
            "seconds_per_1000_events_wall_cpu_run_queue": {"auditor-trail": trail.times_per_1000(n)}
            | ({"auditor-oversight": oversight.times_per_1000(n)} if "auditor-oversight" in procs else {}),
            "note": LOADED,
            "run_note": os.environ.get("BENCH_NOTE", ""),  # what this run was, in the runner's words
            "load_average_1_5_15_min_at_start": load_at_start,
            "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        },
    )


def _keep_log(logs: Path, kept: Path) -> None:
    """The profiled auditor's log, beside its stats (the benchmark's folder goes when it ends)."""
    kept.write_text("".join(p.read_text() for p in logs.glob("auditor-*.log")))


async def _oversight_handled(mongo: AsyncMongoClient, database: str) -> int:
    """The accesses the oversight projected: offsets start at 0 on the benchmark's fresh broker."""
    accesses = {"_id": {"$regex": "^exchange\\.data-accesses:"}}  # the one topic known by marks
    marks = [doc["offset"] + 1 async for doc in mongo[database][POSITIONS].find(accesses)]
    return sum(marks) + await mongo[database][PROCESSED].count_documents({"group": OVERSIGHT_GROUP})


async def _verify_chain_only(mongo: AsyncMongoClient, database: str) -> bool:
    """The chain of what the service appended links up (signatures are the verify benchmark's part)."""

    report = await handlers.verify_trail(MongoTrail(mongo[database], _no_appends), lambda checkpoint: True)
    return report.intact


async def fill(mongo: AsyncMongoClient, database: str, n: int, signer: CheckpointSigner, every: int) -> float:
    """Write a trail of `n` linked entries with a checkpoint every `every`, straight into the database."""
    db = mongo[database]
    secret = b"b" * 32
    head, started, chunk = Head(), time.perf_counter(), 10_000
    await ensure_indexes(db)  # the service's, as it starts
    for first in range(0, n, chunk):
        entries = link(head, [describe(access(i), secret) for i in range(first, min(n, first + chunk))])
        await db[BLOCKS].insert_many([block_document(run) for run in blocks_of(entries)])
        at = datetime.now(UTC).isoformat()
        signed = [handlers.sign(e, signer, at) for e in entries if e.sequence % every == 0]
        if signed:
            await db[CHECKPOINTS].insert_many([checkpoint_document(c) for c in signed])
        head = Head(entries[-1].sequence, entries[-1].hash)
        print(f"  trail filled to {head.sequence:,}", end="\r", flush=True)
    await db[HEAD].replace_one({"_id": "head"}, {"sequence": head.sequence, "hash": head.hash}, upsert=True)
    print()
    return time.perf_counter() - started


def _no_appends() -> Any:
    raise RuntimeError("the benchmark only reads the trail")


async def run_verify(infra: Infra, n: int) -> None:
    database = f"bench_verify_{uuid.uuid4().hex[:6]}"
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=300_000, socketTimeoutMS=None)
    signer = CheckpointSigner(load_signing_key(generate_signing_key()))
    every = 10_000
    fill_seconds = await fill(mongo, database, n, signer, every)
    trail = MongoTrail(mongo[database], _no_appends)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    report = await handlers.verify_trail(trail, signer.valid)
    seconds = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # a range from the nearest checkpoint: the last 1% of the trail
    started = time.perf_counter()
    tail = await handlers.verify_trail(trail, signer.valid, first=n - n // 100 + 1)
    tail_seconds = time.perf_counter() - started
    await mongo.close()
    write_result(
        "auditor-trail-verify",
        metric=f"seconds to verify a trail of {n:,} entries from the start (hashes, links, signed checkpoints)",
        unit="s",
        value=seconds,
        baseline_name=None,
        baseline_value=None,
        goal=f"1,000,000 entries in <= {GOAL_VERIFY_SECONDS:.0f} s, bounded memory",
        met=report.intact and seconds * 1_000_000 / n <= GOAL_VERIFY_SECONDS,
        details={
            "entries": n,
            "intact": report.intact,
            "entries_per_second": round(n / seconds),
            "checkpoints_verified": report.checkpoints,
            "peak_rss_growth_mb": round(rss_after - rss_before, 1),
            "last_1_percent_from_its_checkpoint_seconds": round(tail_seconds, 2),
            "last_1_percent_entries_checked": tail.checked,
            "fill_seconds": round(fill_seconds, 1),
            "note": LOADED,
            "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        },
    )


def run_auditor(stats_file: str) -> None:
    """The auditor service (its role from AUDITOR_ROLE), under cProfile timed by its main thread's CPU clock if
    `stats_file` is given (stats written as it stops)."""
    import cProfile

    from services.auditor.main import main

    if not stats_file:
        main()
        return
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        main()
    finally:
        profiler.disable()
        profiler.dump_stats(stats_file)


if __name__ == "__main__" and sys.argv[1:2] == ["auditor"]:
    run_auditor(sys.argv[2])
