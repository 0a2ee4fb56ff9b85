"""The auditor's access trail. `append`: data access events are put on exchange.data-accesses, then the auditor
service (its own process, as in production) appends them to the hash-chained trail, a consumed batch per
transaction with signed checkpoints; the rate is entries per second from the first entry to the last (a
backlog drained: the rate the trail sustains). Goal: at least 5,000 entries/s. `verify`: a trail of N entries
(default 1,000,000, with a signed checkpoint every 10,000) is verified from the start, as GET /trail/verify
does it (a cursor read in slices, hashes recomputed off the event loop); goal 1M entries in at most 60 s with
memory bounded (the growth of the process's peak RSS is reported). `BENCH_PROFILE=FILE` runs the append
benchmark's auditor under cProfile (CPU time of its event loop's thread): `python -m pstats FILE`.
`BENCH_TRAIL_ALONE=1` runs it without the oversight's consumer (the trail's own cost, for comparison)."""

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


def spawn_auditor(infra: Infra, database: str, logs: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    key = load_signing_key(generate_signing_key())
    env = {
        **os.environ,
        "AUDITOR_HTTP_PORT": str(port),
        "AUDITOR_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
        "AUDITOR_MONGO_URI": infra.mongo_uri,
        "AUDITOR_MONGO_DATABASE": database,
        "AUDITOR_AUTH_JWKS": json.dumps(jwks(key)),
        "AUDITOR_CONSUMER_GROUP_PREFIX": f"bench{port}-",
        "AUDITOR_LOG_LEVEL": "WARNING",
    }
    logs.mkdir(parents=True, exist_ok=True)
    # BENCH_PROFILE=FILE: the auditor runs under cProfile, which counts the CPU time of its event loop's thread
    # (not the wall time, which other processes on a loaded machine inflate), and writes its stats there when
    # it stops; read them with `python -m pstats FILE`.
    profile = os.environ.get("BENCH_PROFILE")
    command = ["-m", "bench.trail", "auditor", str(Path(profile).resolve()) if profile else ""]
    with open(logs / f"auditor-{port}.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    return proc, port


async def run_append(infra: Infra, n: int) -> None:
    database = f"bench_trail_{uuid.uuid4().hex[:6]}"
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    send_seconds = await send(infra.bootstrap, n)
    infra_pids = {p.name: p.pid for p in infra.procs if p.pid is not None}
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=300_000, socketTimeoutMS=None)
    head = mongo[database][HEAD]
    proc, _ = spawn_auditor(infra, database, infra.folder / "log")
    spawned = time.perf_counter()
    try:
        first_seen = None
        sequence = 0
        deadline = time.monotonic() + 1800
        cpu_before: dict[str, float] = {}
        while sequence < n:
            if proc.poll() is not None or time.monotonic() > deadline:
                logged = "".join(p.read_text()[-3000:] for p in (infra.folder / "log").glob("auditor-*.log"))
                raise RuntimeError(f"the auditor stopped or stalled at {sequence} entries: {logged}")
            doc = await asyncio.wait_for(head.find_one({"_id": "head"}), 60)
            sequence = doc["sequence"] if doc else 0
            if sequence and first_seen is None:
                first_seen, first_sequence = time.perf_counter(), sequence
                print(f"  the auditor appended its first {sequence:,} entries", flush=True)
                cpu_before = {"auditor": cpu_seconds(proc.pid)} | {k: cpu_seconds(v) for k, v in infra_pids.items()}
            if sequence and int(time.perf_counter()) % 10 == 0:
                print(f"  {sequence:,} entries", end="\r", flush=True)
            await asyncio.sleep(0.5)
        done = time.perf_counter()
        elapsed = done - (first_seen or done)
        cpu = {"auditor": cpu_seconds(proc.pid)} | {k: cpu_seconds(v) for k, v in infra_pids.items()}
        peak_rss = rss_mb(proc.pid)
        checkpoints = await mongo[database][CHECKPOINTS].count_documents({})
        # The oversight in the same process reads the same accesses (its daily counts): how far it had come
        # when the trail was done, and when it had them all (the auditor keeps up only if both do).
        oversight_then = await _oversight_handled(mongo, database)
        oversight_done, oversight_deadline = None, time.monotonic() + OVERSIGHT_WAIT_SECONDS
        alone = bool(os.environ.get("BENCH_TRAIL_ALONE"))
        while not alone and oversight_then < n and time.monotonic() < oversight_deadline and proc.poll() is None:
            if await _oversight_handled(mongo, database) >= n:
                oversight_done = time.perf_counter()
                break
            await asyncio.sleep(2)
    finally:
        # profiled, SIGINT: cProfile writes its stats as the interrupt unwinds (uvicorn re-raises the signal)
        proc.send_signal(signal.SIGINT if os.environ.get("BENCH_PROFILE") else signal.SIGTERM)
        proc.wait(15)
        if os.environ.get("BENCH_PROFILE"):
            _keep_log(infra.folder / "log", Path(os.environ["BENCH_PROFILE"] + ".log"))
    # the trail the service wrote verifies
    signer_free = await _verify_chain_only(mongo, database)
    await mongo.close()
    appended = n - first_sequence
    rate = appended / elapsed if elapsed else 0.0
    write_result(
        "auditor-trail-append",
        metric="data access events appended to the hash-chained trail per second, broker → auditor → MongoDB",
        unit="entries/s",
        value=rate,
        baseline_name=None,
        baseline_value=None,
        goal=f">= {GOAL_RATE:,} entries/s sustained through Kafka",
        met=rate >= GOAL_RATE,
        details={
            "events": n,
            "timed_entries": appended,
            "seconds": round(elapsed, 2),
            "seconds_from_process_start_to_all_appended": round(done - spawned, 2),
            "batch_per_transaction": 5000,
            "checkpoints_signed": checkpoints,
            "chain_verified_after": signer_free,
            "producer_send_seconds": round(send_seconds, 2),
            "auditor_rss_mb": round(peak_rss, 1),
            "oversight_running": not alone,
            "oversight_events_handled_when_the_trail_was_done": oversight_then,
            "oversight_all_handled_seconds_after_the_trail": (
                0.0 if oversight_then >= n else round(oversight_done - done, 1) if oversight_done else None
            ),
            "cores_used": {k: round((cpu[k] - cpu_before.get(k, 0)) / elapsed, 2) for k in cpu} if elapsed else {},
            # CPU seconds per 1,000 entries appended: what a loaded machine inflates least (the rate is the share
            # of the cores the processes got divided by this)
            "cpu_seconds_per_1000_entries": {
                k: round((cpu[k] - cpu_before.get(k, 0)) * 1000 / appended, 3) for k in cpu
            }
            if appended
            else {},
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
    """The auditor service, under cProfile timed by its main thread's CPU clock if `stats_file` is given
    (stats written as it stops); without the oversight's consumer if BENCH_TRAIL_ALONE is set."""
    import cProfile

    from common.runtime import Runtime
    from services.auditor.main import main
    from services.auditor.oversight.adapters.mongo import GROUP

    if os.environ.get("BENCH_TRAIL_ALONE"):
        consume = Runtime.consume

        def trail_only(self: Runtime, group: str, *args: Any, **kwargs: Any) -> Any:
            made = consume(self, group, *args, **kwargs)
            if group == GROUP:
                self.consumers.remove(made)
            return made

        Runtime.consume = trail_only  # type: ignore[method-assign]
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
