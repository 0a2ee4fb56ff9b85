"""Webhook fan-out: one real data change of a resource that 1,000 departments hold, each department with a
webhook endpoint (receivers on loopback, in a process of their own); then the same with 10 receivers down
for 60 s.

The notifier runs in this process, built by its own bootstrap (services.notifier.main.build: consumers,
outbox relay, timer, delivery worker, MongoDB on the benchmark's database server). Set-up goes through the
broker as in production: 1,000 `GrantIssued` events on `exchange.share-events` build the notifier's own
projection of who holds the resource (the grant notices they cause are delivered before the endpoints are
registered, so they are not counted). Then ONE `ResourceChanged` event is published on
`exchange.resource-changes`; the notifier's change trigger counts it into the resource's batch, tells it
once the change window (NOTIFIER_CHANGE_WINDOW_SECONDS, 1 s by default) has passed, stores the 1,000
notices and their deliveries, and the worker sends them. Latency is counted from the event's publication to
each receiver's receipt; the change window is part of it.

Phase 2 stops 10 receivers (connections refused), publishes a second change, keeps them down for 60 s,
starts them again, and waits until every receiver has every notice; receivers count notices by
`webhook-id`, so the result says how many arrived exactly once and how many twice or more.

The baseline, measured in the same run: this process posting the same signed bodies straight to the same
receivers (standardwebhooks signatures, aiohttp as the worker uses it, the same concurrency), without
database or queue. Delivery rate per core = deliveries / CPU seconds of this process (and, separately, with
the database server's CPU).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import multiprocessing
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
from pymongo import monitoring
from standardwebhooks import Webhook

from bench.idle import _cpu_seconds
from bench.report import write_result
from common.auth import generate_signing_key, jwks, load_signing_key
from common.codec import EventCodec
from common.events import Event
from common.identifiers import credit_code_check_character
from common.kafka import KafkaPublisher
from common.settings import ServiceSettings
from common.topics import load_topics
from devstack.processes import Infra
from devstack.webhook_receivers import Receiver

DEPARTMENTS = 1000
DOWN = 10
DOWN_SECONDS = 60.0
P99_GOAL = 5.0
CONCURRENCY = 64


def department(n: int) -> str:
    first17 = f"11360800MB{n:07d}"
    return first17 + credit_code_check_character(first17)


# -- the receivers' process ----------------------------------------------------------------------------


def receivers_main(conn: Any, count: int) -> None:
    asyncio.run(_receivers(conn, count))


async def _receivers(conn: Any, count: int) -> None:
    receivers = [await Receiver().start() for _ in range(count)]
    conn.send([r.port for r in receivers])
    loop = asyncio.get_running_loop()
    while True:
        command, arg = await loop.run_in_executor(None, conn.recv)
        if command == "down":
            for n in arg:
                await receivers[n].stop()
        elif command == "up":
            for n in arg:
                await receivers[n].start()
        elif command == "clear":
            for r in receivers:
                r.received.clear()
        elif command == "report":  # per receiver: (webhook-id, arrival time) of each accepted request
            conn.send([[(x.webhook_id, x.at) for x in r.accepted()] for r in receivers])
        elif command == "stop":
            for r in receivers:
                await r.stop()
            conn.send("stopped")
            return


@dataclass
class Receivers:
    conn: Any
    proc: Any
    ports: list[int]

    @classmethod
    def start(cls, count: int) -> Receivers:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=receivers_main, args=(child, count), daemon=True)
        proc.start()
        return cls(parent, proc, parent.recv())

    def ask(self, command: str, arg: Any = None) -> Any:
        self.conn.send((command, arg))
        return self.conn.recv() if command in ("report", "stop") else None

    async def report(self) -> list[list[tuple[str, float]]]:
        return await asyncio.to_thread(self.ask, "report")

    def close(self) -> None:
        self.ask("stop")
        self.proc.join(10)


# -- the notifier, in this process ---------------------------------------------------------------------


async def start_notifier(infra: Infra) -> tuple[Any, Any]:
    from services.notifier import main as notifier_main
    from services.notifier.settings import NotifierSettings

    settings = NotifierSettings(
        kafka_bootstrap_servers=infra.bootstrap,
        mongo_uri=infra.mongo_uri,
        mongo_database="bench_notifier",
        webhook_concurrency=CONCURRENCY,
        webhook_retry_first_seconds=2,
        webhook_retry_longest_seconds=15,  # the outage phase: back within 15 s of the receivers
        http_port=0,
        auth_jwks=json.dumps(jwks(load_signing_key(generate_signing_key()))),  # no directory here
    )
    app, runtime = notifier_main.build(settings)
    runtime.start()
    deadline = time.monotonic() + 60
    while (checks := await runtime.readiness()) and any(v != "ok" for v in checks.values()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the notifier did not get ready: {checks}")
        await asyncio.sleep(0.2)
    return app, runtime


async def register_all(app: Any, ports: list[int]) -> None:
    from services.notifier import webhooks

    channel = app.state.webhooks
    now = datetime.now(UTC)
    for n, port in enumerate(ports):
        await webhooks.register(
            channel.store,
            channel.urls,
            department_code=department(n),
            url=f"http://127.0.0.1:{port}/hook",
            kinds=frozenset(),
            description="bench",
            created_by="bench",
            now=now,
        )


RESOURCE = "101001/000001"
PROVIDER = department(DEPARTMENTS)


def grant_issued(n: int) -> Event:
    payload = {
        "grant_id": f"bench-grant-{n}",
        "request_id": None,  # a subscription to an unconditional resource
        "resource_code": RESOURCE,
        "provider_code": PROVIDER,
        "consumer_code": department(n),
        "purpose": "基准测试",
        "data_items": ["统一社会信用代码"],
        "valid_from": date(2026, 1, 1),
        "valid_to": date(2099, 12, 31),
        "consumer_system": None,
        "channels": ["API"],
        "scope": "全市",
        "unmasked": [],
        "entry_version": 1,
    }
    return Event("GrantIssued", RESOURCE, payload, "bench")


def resource_changed(sequence: int) -> Event:
    payload = {
        "resource_code": RESOURCE,
        "provider_code": PROVIDER,
        "sequence": sequence,
        "change_id": uuid.uuid4().hex,
        "operation": "UPSERT",
        "changed_at": datetime.now(UTC),
    }
    return Event("ResourceChanged", RESOURCE, payload, "bench")


async def hold_all(infra: Infra, app: Any, publisher: KafkaPublisher) -> float:
    """The notifier's projection, fed as in production: the grants on the share-events topic; returns when
    every grant is held and its notice relayed (seconds taken). BENCH_WEBHOOKS_SET_UP=projection writes the
    holdings straight into the projection instead (one transaction; the same documents, no grant notices)."""
    from services.notifier.adapters.events import typed
    from services.notifier.adapters.mongo import HOLDINGS, INBOX
    from services.notifier.domain.events import GrantIssued
    from services.notifier.domain.holdings import Holding

    started = time.monotonic()
    uow = app.state.notifier_uow
    if os.environ.get("BENCH_WEBHOOKS_SET_UP") == "projection":
        async with uow() as tx:
            for n in range(DEPARTMENTS):
                await tx.hold(Holding.of(typed(GrantIssued, grant_issued(n).payload)))
        # each department's own topic exists before its first notice, as after its DepartmentRegistered
        await app.state.notifier.topics.open([department(n) for n in range(DEPARTMENTS)])
        return time.monotonic() - started
    await publisher.publish_many("exchange.share-events", [grant_issued(n) for n in range(DEPARTMENTS)])
    db = uow.db
    deadline = time.monotonic() + 900
    while await db[HOLDINGS].count_documents({}) < DEPARTMENTS or await db[INBOX].count_documents({}) < DEPARTMENTS:
        if time.monotonic() > deadline:
            raise RuntimeError("the grants were not all held within 15 minutes")
        await asyncio.sleep(0.5)
    while await db["outbox"].find_one({}, {"_id": 1}) is not None:  # the grant notices are on their topics
        await asyncio.sleep(0.5)
    return time.monotonic() - started


class CommandTimes(monitoring.CommandListener):
    """The notifier's database commands while `on`, by command and collection: how many, how many documents
    they wrote, and their time as the client sees it (requests run side by side, so the sum is more than the
    wall time; it says where the database's time goes, not how long the fan-out took)."""

    def __init__(self) -> None:
        self.on = False
        self.started_: dict[tuple[int, Any], tuple[str, int]] = {}
        self.totals: dict[str, list[float]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on:
            target = event.command.get(event.command_name)
            what = f"{event.command_name} {target}" if isinstance(target, str) else event.command_name
            if (shape := filter_shape(event.command)) is not None:
                what += f" {shape}"
            written = sum(len(event.command.get(k) or []) for k in ("documents", "updates", "deletes"))
            self.started_[(event.request_id, event.connection_id)] = (what, written)

    def _ended(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent) -> None:
        found = self.started_.pop((event.request_id, event.connection_id), None)
        if found is not None:
            what, written = found
            total = self.totals.setdefault(what, [0, 0, 0.0])
            total[0], total[1], total[2] = total[0] + 1, total[1] + written, total[2] + event.duration_micros / 1e6

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._ended(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._ended(event)

    def report(self, most: int = 20) -> list[dict[str, Any]]:
        ranked = sorted(self.totals.items(), key=lambda item: -item[1][2])[:most]
        return [{"command": w, "count": int(n), "documents": int(d), "seconds": round(t, 3)} for w, (n, d, t) in ranked]

    def per_notice(self, notices: int) -> dict[str, float]:
        """Commands and documents written per notice delivered, and the commands' seconds (client-side)."""
        n, d, t = (sum(total[i] for total in self.totals.values()) for i in range(3))
        return {
            "commands": round(n / notices, 3),
            "documents_written": round(d / notices, 3),
            "command_seconds": round(t / notices, 4),
        }


def filter_shape(command: Any) -> str | None:
    """The fields a find, update or delete selects by (the first statement's, for bulk ones), values left out:
    which query of the notifier a command is."""
    if "filter" in command:
        selector = command["filter"]
    elif command.get("updates") or command.get("deletes"):
        selector = (command.get("updates") or command.get("deletes"))[0].get("q", {})
    else:
        return None
    return "{" + ", ".join(sorted(str(k) for k in selector)) + "}"


@dataclass
class Commits:
    """When the notifier's transactions handed committed deliveries to its worker (a timing tap on the
    unit of work's hand-over; it changes nothing)."""

    at: list[tuple[float, int]]

    @classmethod
    def tap(cls, uow: Any) -> Commits:
        commits, hand_over = cls([]), uow.on_deliveries

        def timed(deliveries: list[Any]) -> None:
            commits.at.append((time.time(), len(deliveries)))
            hand_over(deliveries)

        uow.on_deliveries = timed
        return commits


async def one_change(publisher: KafkaPublisher, sequence: int) -> float:
    """One data change of the resource, published as the exchange publishes it; returns when it was sent."""
    started = time.time()
    await publisher.publish("exchange.resource-changes", resource_changed(sequence))
    return started


async def wait_delivered(receivers: Receivers, expected: int, timeout: float) -> list[list[tuple[str, float]]]:
    deadline = time.monotonic() + timeout
    while True:
        report = await receivers.report()
        if sum(len({i for i, _ in got}) for got in report) >= expected or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def latencies(report: list[list[tuple[str, float]]], started: float) -> list[float]:
    """Per notice: from the change to its first receipt."""
    first: dict[str, float] = {}
    for got in report:
        for webhook_id, at in got:
            first[webhook_id] = min(at, first.get(webhook_id, at))
    return [at - started for at in first.values()]


def counts(report: list[list[tuple[str, float]]]) -> dict[str, int]:
    seen: dict[str, int] = {}
    for got in report:
        for webhook_id, _ in got:
            seen[webhook_id] = seen.get(webhook_id, 0) + 1
    return {
        "distinct": len(seen),
        "exactly_once": sum(1 for c in seen.values() if c == 1),
        "more_than_once": sum(1 for c in seen.values() if c > 1),
    }


# -- the baseline: signed posts straight to the receivers ----------------------------------------------


async def baseline(ports: list[int]) -> dict[str, float]:
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
    body = '{"type":"notification.RESOURCE_CHANGED","timestamp":"2026-11-27T08:00:00+00:00","data":{}}'
    gate = asyncio.Semaphore(CONCURRENCY)
    cpu, wall = time.process_time(), time.monotonic()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as client:

        async def post(port: int) -> int:
            async with gate:
                at = datetime.now(UTC)
                webhook_id = f"baseline-{port}"
                headers = {
                    "webhook-id": webhook_id,
                    "webhook-timestamp": str(int(at.timestamp())),
                    "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
                    "content-type": "application/json",
                }
                async with client.post(f"http://127.0.0.1:{port}/hook", data=body.encode(), headers=headers) as answer:
                    return answer.status

        statuses = await asyncio.gather(*(post(p) for p in ports))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    assert all(s == 200 for s in statuses)
    return {"deliveries": len(ports), "seconds": wall, "cpu_seconds": cpu, "per_cpu_second": len(ports) / cpu}


# -- the run --------------------------------------------------------------------------------------------


async def run(infra: Infra) -> None:
    receivers = Receivers.start(DEPARTMENTS)
    database = next(p for p in infra.procs if p.name == "mongodb")
    database_pid = database.pid or (database.popen.pid if database.popen else 0)
    settings = ServiceSettings(kafka_bootstrap_servers=infra.bootstrap, mongo_uri=infra.mongo_uri)
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        await publisher.ensure_topics(list(publisher.topics.values()))
        commands = CommandTimes()
        monitoring.register(commands)  # the notifier's client, made next, reports to it
        app, runtime = await start_notifier(infra)
        window = app.state.notifier.change_window.total_seconds()
        set_up = await hold_all(infra, app, publisher)
        print(f"webhooks: 1,000 grants held in {set_up:.1f} s", flush=True)
        await register_all(app, receivers.ports)
        commits = Commits.tap(app.state.notifier_uow)
        base = await baseline(receivers.ports)
        await asyncio.to_thread(receivers.ask, "clear")
        await asyncio.sleep(2)

        profile = cProfile.Profile() if os.environ.get("BENCH_WEBHOOKS_PROFILE") else None
        load_before = os.getloadavg()
        cpu, db_cpu = time.process_time(), _cpu_seconds(database_pid)
        if profile is not None:
            profile.enable()
        commands.on = True
        started = await one_change(publisher, 1)
        report = await wait_delivered(receivers, DEPARTMENTS, 300)
        commands.on = False
        if profile is not None:
            profile.disable()
            profile.dump_stats(os.environ["BENCH_WEBHOOKS_PROFILE"])
        cpu, db_cpu = time.process_time() - cpu, _cpu_seconds(database_pid) - db_cpu
        first = latencies(report, started)
        stored = [(at - started, n) for at, n in commits.at]
        fan_out = {
            "delivered": len(first),
            "first_commit_s": round(stored[0][0], 3) if stored else None,
            "last_commit_s": round(stored[-1][0], 3) if stored else None,
            "commits": len(stored),
            "first_s": round(min(first), 3),
            "p50_s": round(percentile(first, 0.5), 3),
            "p99_s": round(percentile(first, 0.99), 3),
            "max_s": round(max(first), 3),
            "notifier_cpu_seconds": round(cpu, 2),
            "database_cpu_seconds": round(db_cpu, 2),
            "deliveries_per_notifier_cpu_second": round(len(first) / cpu, 1),
            "deliveries_per_cpu_second_with_database": round(len(first) / (cpu + db_cpu), 1),
            "load_average_1min_before_and_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            **counts(report),
        }
        print(f"webhooks fan-out: {fan_out}", flush=True)

        await asyncio.to_thread(receivers.ask, "clear")
        down = list(range(DOWN))
        await asyncio.to_thread(receivers.ask, "down", down)
        started2 = await one_change(publisher, 2)
        await asyncio.sleep(DOWN_SECONDS)
        back = time.time()
        await asyncio.to_thread(receivers.ask, "up", down)
        report2 = await wait_delivered(receivers, DEPARTMENTS, 600)
        after = latencies(report2, started2)
        outage = {
            "receivers_down": DOWN,
            "down_seconds": DOWN_SECONDS,
            "delivered": len(after),
            **counts(report2),
            "up_receivers_p99_s": round(
                percentile(latencies([got for n, got in enumerate(report2) if n >= DOWN], started2), 0.99), 3
            ),
            "down_receivers_caught_up_s_after_back": round(
                max((at for n, got in enumerate(report2) if n < DOWN for _, at in got), default=back) - back, 2
            ),
        }
        print(f"webhooks outage: {outage}", flush=True)
        await runtime.stop()
    finally:
        await publisher.stop()
        receivers.close()

    rate = fan_out["deliveries_per_notifier_cpu_second"]
    met = (
        fan_out["delivered"] == DEPARTMENTS
        and fan_out["p99_s"] <= P99_GOAL
        and outage["distinct"] == DEPARTMENTS
        and outage["more_than_once"] == 0
    )
    write_result(
        "notifier-webhooks",
        metric="webhook deliveries per CPU second of the notifier (1,000 departments, one change)",
        unit="deliveries/s/core",
        value=rate,
        baseline_name="signed POSTs straight to the same receivers, no database (same process, same run)",
        baseline_value=base["per_cpu_second"],
        goal=f"all {DEPARTMENTS} delivered, p99 <= {P99_GOAL} s; after {DOWN} receivers down {DOWN_SECONDS:.0f} s "
        "every notice delivered exactly once per webhook-id",
        met=met,
        details={
            "fan_out": fan_out,
            "outage": outage,
            "fan_out_database_commands": commands.report(),
            "fan_out_database_per_notice": commands.per_notice(max(len(first), 1)),
            "baseline": {k: round(v, 3) for k, v in base.items()},
            "concurrency": CONCURRENCY,
            "retry": "first 2 s, doubling, at most 15 s, 50-100 % jitter",
            "machine_note": "2-core machine; the load averages say whether other work ran at the same time (above 2 "
            "the notifier, its database and the receivers each get a fraction of a core); the receivers run in a "
            "process of their own on the same cores, the database server and the broker too",
            "cpu_count": os.cpu_count(),
            "path": "1,000 holdings set up (`set_up`: GrantIssued events through the broker, or written into the "
            "notifier's projection), then one ResourceChanged on exchange.resource-changes; latency from its "
            f"publication to each receipt, the notifier's {window:g} s change window included",
            "run_note": os.environ.get("BENCH_NOTE", ""),  # what this run was, in the runner's words
            "set_up": os.environ.get("BENCH_WEBHOOKS_SET_UP", "broker"),
            "set_up_s": round(set_up, 1),
            "median_s": round(statistics.median(first), 3),
            "date": date.today().isoformat(),
        },
    )
