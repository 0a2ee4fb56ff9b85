"""What every service runs beside its own logic: the Mongo client, the Kafka publisher, the outbox relay
and its consumers, each supervised so that a missing broker or database never stops the process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from common.calendar_source import build_calendar
from common.codec import EventCodec
from common.faults import Dependency, OutageLog, is_transient
from common.kafka import BatchHandler, EventConsumer, Handler, KafkaPublisher
from common.keys import KeySource
from common.metrics import DEPENDENCY_UP
from common.mongo import (
    OUTBOX,
    MongoProcessedEvents,
    OutboxRelay,
    claim_database,
    connect,
    ensure_indexes,
    transaction,
)
from common.revocations import Revocations
from common.settings import ServiceSettings
from common.topics import load_topics
from common.workdays import WorkingCalendar

log = logging.getLogger(__name__)
RESTART_BACKOFF_MAX = 5.0


@dataclass
class Runtime:
    name: str
    settings: ServiceSettings
    codec: EventCodec
    client: AsyncMongoClient
    db: AsyncDatabase
    publisher: KafkaPublisher
    calendar: WorkingCalendar
    consumers: list[EventConsumer] = field(default_factory=list)
    tasks: dict[str, asyncio.Task] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    setup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    relay: OutboxRelay | None = None
    periodic: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    followers: dict[str, tuple[Callable[[], Awaitable[None]], Callable[[], bool]]] = field(default_factory=dict)
    keys: KeySource = field(init=False)
    revocations: Revocations = field(default_factory=Revocations)
    dependencies: dict[str, Dependency] = field(
        default_factory=lambda: {"kafka": Dependency("kafka"), "mongo": Dependency("mongo")}
    )
    trouble: asyncio.Event = field(default_factory=asyncio.Event)
    outbox: str = OUTBOX  # the collection this process's transactions write their events to

    def __post_init__(self) -> None:
        self.keys = KeySource(self.settings)

    def dependency_failed(self, name: str, exc: BaseException) -> None:
        """A call to the broker or database failed for want of it: watch it until it answers again."""
        self.dependencies[name].failed(exc)
        self.trouble.set()

    @classmethod
    def build(cls, name: str, settings: ServiceSettings) -> Runtime:
        codec = EventCodec.from_folder()
        client = connect(settings)
        topics = load_topics(replication_factor=settings.kafka_replication_factor)
        return cls(
            name=name,
            settings=settings,
            codec=codec,
            client=client,
            db=client[settings.mongo_database],
            publisher=KafkaPublisher(settings, codec, topics),
            calendar=build_calendar(settings.calendar_dir),
        )

    def transaction(self):
        return transaction(
            self.client, self.db, self.publisher, self.relay.wake if self.relay else None, outbox=self.outbox
        )

    def consume(
        self,
        group: str,
        topics: list[str],
        handlers: dict[str, Handler] | None = None,
        *,
        batch: BatchHandler | None = None,
        batch_size: int = 500,
        idle_pause_max: float | None = None,
    ) -> EventConsumer:
        """Consume `topics` as `group`: each event by its type's handler, or whole batches by `batch`; idle, it
        fetches again after at most `idle_pause_max` seconds (default: the service's kafka_idle_pause_max_seconds)."""
        settings = self.settings
        if idle_pause_max is not None:
            settings = settings.model_copy(update={"kafka_idle_pause_max_seconds": idle_pause_max})
        consumer = EventConsumer(
            group=self.settings.consumer_group_prefix + group,
            topics=topics,
            handlers=handlers or {},
            batch_handler=batch,
            batch_size=batch_size,
            codec=self.codec,
            publisher=self.publisher,
            processed=MongoProcessedEvents(self.db),
            settings=settings,
        )
        self.consumers.append(consumer)
        return consumer

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.problems.update({"database-setup": "pending", "kafka-setup": "pending"})
        self._spawn("database-setup", self._prepare_database, forever=False)
        self._spawn("kafka-setup", self._connect_kafka, forever=False)
        if self.keys.verifier is None:  # the directory sets its own keys before start
            self._spawn("auth-keys", self.keys.run)
        if self.settings.outbox_relay_enabled:
            self.relay = OutboxRelay(
                self.db,
                self.publisher,
                name=self.name,
                poll_seconds=self.settings.outbox_poll_seconds,
                outbox=self.outbox,
            )
            self._spawn("outbox-relay", self._after_setup(self.relay.run, ("database-setup",)))
        follow_revocations = partial(self.revocations.follow, self.settings, self.codec, self.keys)
        self._spawn("revocations", self._after_setup(follow_revocations, ("kafka-setup",)))
        for consumer in self.consumers:
            self._spawn(f"consumer:{consumer.group}", self._after_setup(consumer.run))
        for name, loop in self.periodic.items():
            self._spawn(name, self._after_setup(loop))
        for name, (job, _) in self.followers.items():
            self._spawn(name, job)
        self._spawn("dependency-watch", self._watch_dependencies)

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.wait(list(self.tasks.values()), timeout=4)
        await self.publisher.stop()
        await self.client.close()

    def every(self, name: str, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        """Run `job` now and then every `seconds` (periodic checks); failures are retried by the supervisor."""

        async def loop() -> None:
            while True:
                await job()
                await asyncio.sleep(seconds)

        self.periodic[name] = loop

    def follow(self, name: str, job: Callable[[], Awaitable[None]], caught_up: Callable[[], bool]) -> None:
        """Run `job` for as long as the service runs (a read model following its source); the service is
        not ready until `caught_up()` says so."""
        self.followers[name] = (job, caught_up)

    def _spawn(self, name: str, job: Callable[[], Awaitable[None]], forever: bool = True) -> None:
        self.tasks[name] = asyncio.create_task(self._supervise(name, job, forever), name=name)

    async def _supervise(self, name: str, job: Callable[[], Awaitable[None]], forever: bool) -> None:
        """Run `job`; on failure record why, wait (growing to 5 s) and run it again. An outage is logged
        when it begins and when it ends; a failure of the job's own every time."""
        delay = 0.5
        outage = OutageLog(log, name)
        while True:
            try:
                await job()
                self.problems.pop(name, None)
                outage.recovered()
                if not forever:
                    return
                delay = 0.5  # a job meant to run forever returned: start it again
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.problems[name] = f"{type(exc).__name__}: {exc}"[:300]
                if is_transient(exc):
                    outage.failed(exc)
                else:
                    log.warning("%s failed, retrying in %.1fs: %s", name, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_BACKOFF_MAX)

    async def _watch_dependencies(self) -> None:
        """While a dependency is failing, ask it every second whether it is back; idle otherwise."""
        probes = self._probes()
        while True:
            await self.trouble.wait()
            self.trouble.clear()
            while failing := [d for d in self.dependencies.values() if d.failing_since is not None]:
                for dependency in failing:
                    await self._probe(dependency, probes[dependency.name])
                await asyncio.sleep(1.0)

    def _probes(self) -> dict[str, Callable[[], Awaitable[object]]]:
        return {"kafka": self.publisher.ping, "mongo": partial(self.client.admin.command, "ping")}

    async def _probe(self, dependency: Dependency, probe: Callable[[], Awaitable[object]]) -> str:
        try:
            await asyncio.wait_for(probe(), 2.5)
        except Exception as exc:
            dependency.failed(exc)
            DEPENDENCY_UP.labels(dependency.name).set(0)
            self.trouble.set()
            return f"unreachable: {dependency.reason}"
        dependency.succeeded()
        DEPENDENCY_UP.labels(dependency.name).set(1)
        return "ok"

    def _after_setup(
        self, job: Callable[[], Awaitable[None]], needs: tuple[str, ...] = ("kafka-setup", "database-setup")
    ) -> Callable[[], Awaitable[None]]:
        """`job` once the publisher and the keys are there and the `needs` setups are done: handlers write
        where the database setup made indexes and backfilled data first."""

        async def run() -> None:
            while not self.publisher.started or self.keys.verifier is None or any(n in self.problems for n in needs):
                await asyncio.sleep(0.2)
            await job()

        return run

    async def _prepare_database(self) -> None:
        await claim_database(self.db, self.name)
        await ensure_indexes(self.db)
        for step in self.setup:
            await step()

    async def _connect_kafka(self) -> None:
        if not self.publisher.started:
            await self.publisher.start()
        await self.publisher.ensure_topics(list(self.publisher.topics.values()))

    # -- readiness -------------------------------------------------------------------------------

    async def readiness(self) -> dict[str, str]:
        """'ok' or the reason, for the broker, the database and each background job."""
        checks: dict[str, str] = {}
        for name, probe in self._probes().items():
            dependency = self.dependencies[name]
            answer = await self._probe(dependency, probe)
            # One failed ping under load is not an outage: unready once it has failed for a few seconds.
            checks[name] = answer if dependency.down else "ok"
        for name in ("database-setup", "kafka-setup"):
            if name in self.problems:
                checks[name] = self.problems[name]
        if self.keys.verifier is None:
            checks["auth-keys"] = self.problems.get("auth-keys", "token signing keys not loaded yet")
        if not self.revocations.caught_up:
            checks["revocations"] = self.problems.get("revocations", "reading the directory's revocations")
        if self.relay is not None and not self.relay.healthy():
            checks["outbox-relay"] = self.problems.get("outbox-relay", "not relaying yet")
        for consumer in self.consumers:
            name = f"consumer:{consumer.group}"
            if not consumer.running:
                checks[name] = self.problems.get(name, "not consuming yet")
            elif consumer.waiting:
                checks[name] = f"waiting for the infrastructure: {consumer.waiting}"
        for name, (_, caught_up) in self.followers.items():
            if not caught_up():
                checks[name] = self.problems.get(name, "catching up")
        return checks
