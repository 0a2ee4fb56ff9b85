"""The API channel's outbound adapters: grants and resource terms read from MongoDB and kept a moment in
memory, the clock, and the access log that writes `DataAccessed` events in groups (one acknowledged send to
the broker for every access pending, however many requests wait on it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka.errors import KafkaTimeoutError
from pymongo.asynchronous.database import AsyncDatabase

from common.events import Event
from common.kafka import KafkaPublisher
from common.metrics import ACCESS_GROUP_SIZE, ACCESS_WRITE_SECONDS, EVENTS_PUBLISHED
from services.exchange.domain.resources import ResourceSchema
from services.exchange.ports import UnitOfWork
from services.exchange.sharing.access import DataAccess
from services.exchange.sharing.adapters.grant_docs import GRANTS, grant_of
from services.exchange.sharing.grants import Grant, subject_hash

log = logging.getLogger(__name__)
DATA_ACCESSES = "exchange.data-accesses"
PRODUCER = "exchange"
WAIT_MARGIN_SECONDS = 1.0  # a request's wait beyond its group's linger and send timeout
CACHED_AT_MOST = 10_000  # grants or resources held at once; beyond that the cache starts afresh


class _Recent:
    """Values read a moment ago: each is trusted for `seconds`, then read again. A revocation or withdrawal
    written to the database is seen by every replica within `seconds` (no invalidation messages to lose)."""

    def __init__(self, seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.monotonic = monotonic
        self.held: dict[str, tuple[float, Any]] = {}
        self.reading: dict[str, asyncio.Future] = {}

    def get(self, key: str) -> tuple[bool, Any]:
        hit = self.held.get(key)
        if hit is None or self.monotonic() - hit[0] >= self.seconds:
            return False, None
        return True, hit[1]

    def put(self, key: str, value: Any) -> None:
        if len(self.held) >= CACHED_AT_MOST:
            self.held.clear()
        self.held[key] = (self.monotonic(), value)

    async def fetch(self, key: str, read: Callable[[], Awaitable[Any]]) -> Any:
        """The value held, or read once however many requests want it meanwhile."""
        known, value = self.get(key)
        if known:
            return value
        reading = self.reading.get(key)
        if reading is None:
            reading = self.reading[key] = asyncio.ensure_future(read())
            reading.add_done_callback(lambda done: self._read(key, done))
        return await asyncio.shield(reading)

    def _read(self, key: str, done: asyncio.Future) -> None:
        self.reading.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self.put(key, done.result())


class MongoGrants:
    """Grants as the sharing lifecycle stores them (`exchange_grants`), each read at most once per
    `seconds` per process: a single query costs no grant read while its grant is fresh."""

    def __init__(self, db: AsyncDatabase, seconds: float) -> None:
        self.collection = db[GRANTS]
        self.recent = _Recent(seconds)

    async def grant(self, grant_id: str) -> Grant | None:
        return await self.recent.fetch(grant_id, lambda: self._read(grant_id))

    async def _read(self, grant_id: str) -> Grant | None:
        doc = await self.collection.find_one({"_id": grant_id})
        return grant_of(doc) if doc is not None else None


class RecentResources:
    """Resource terms as the exchange keeps them from the catalog (adapters.mongo), held for `seconds`."""

    def __init__(self, uow: UnitOfWork, seconds: float) -> None:
        self.uow = uow
        self.recent = _Recent(seconds)

    async def schema(self, resource_code: str) -> ResourceSchema | None:
        return await self.recent.fetch(resource_code, lambda: self._read(resource_code))

    async def _read(self, resource_code: str) -> ResourceSchema | None:
        state = await self.uow.resource(resource_code)
        return state.schema if state is not None else None

    async def schemas(self) -> list[ResourceSchema]:
        return [state.schema for state in await self.uow.resources()]


def access_payload(access: DataAccess, secret: bytes) -> dict[str, Any]:
    """The DataAccessed event of an access; subject keys only as keyed hashes."""
    call, principal = access.call, access.call.principal
    return {
        "access_id": "",  # set from the event id by the caller
        "resource_code": call.resource_code,
        "provider_code": access.provider_code,
        "consumer_code": principal.department_code if principal else "",
        "grant_id": call.grant_id or None,
        "channel": call.channel.value,
        "purpose": call.purpose or "",
        "record_count": access.record_count,
        "accessed_by": principal.subject if principal else "",
        "accessed_at": access.accessed_at,
        "accessor_kind": principal.kind if principal else "unauthenticated",
        "operation": access.operation.value,
        "items": list(access.items),
        "subjects_requested": access.subjects_requested,
        "subject_hashes": [subject_hash(key, secret) for key in access.subject_keys],
        "result": access.result.value,
        "reason": access.reason,
    }


def access_event(access: DataAccess, secret: bytes) -> Event:
    event = Event("DataAccessed", access.call.resource_code, {}, PRODUCER, occurred_at=access.accessed_at)
    event.payload.update(access_payload(access, secret) | {"access_id": event.event_id})
    return event


class AccessEvents(Protocol):
    async def __call__(self, events: list[Event]) -> None:
        """Return once the broker acknowledged every event (acks=all); raise when it did not."""
        ...


async def publish_accesses(publisher: KafkaPublisher, timeout: float, events: list[Event]) -> None:
    """The access events straight onto their topic, acknowledged: an access changes no state of the exchange's,
    so there is nothing to commit with it, and a database outbox would only add a write, a read and a
    contended transaction per group (under a busy ingest those held requests past their timeout)."""
    await publisher.send_all(
        ((DATA_ACCESSES, e.key, publisher.encode(DATA_ACCESSES, e), e.headers()) for e in events), timeout
    )
    EVENTS_PUBLISHED.labels(DATA_ACCESSES, "DataAccessed").inc(len(events))


class GroupedAccessLog:
    """Group commit: a request enqueues its access and waits; the writer sends every access pending to the
    broker in one go (after `linger` seconds, or at once when `most` are pending) and answers them all once
    acknowledged. While one group is sent the next gathers, so the cost per request falls as load rises. An
    access not recorded fails its request (503 naming the broker: not served); `timeout` is the send's own."""

    def __init__(
        self,
        send: AccessEvents,
        secret: bytes,
        *,
        linger: float,
        most: int,
        timeout: float,
    ) -> None:
        self.send = send
        self.secret = secret
        self.linger = linger
        self.most = most
        self.timeout = timeout
        # a request waits for its group to gather and for the send's own timeout, which then answers it first
        self.wait = linger + timeout + WAIT_MARGIN_SECONDS
        self.pending: list[tuple[DataAccess, asyncio.Future[BaseException | None]]] = []
        self.waiting = asyncio.Event()
        self.full = asyncio.Event()

    async def record(self, access: DataAccess) -> None:
        done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.pending.append((access, done))
        self.waiting.set()
        if len(self.pending) >= self.most:
            self.full.set()
        try:
            failure = await asyncio.wait_for(asyncio.shield(done), self.wait)
        except TimeoutError:  # the broker's, not the database's: the HTTP layer answers 503 naming kafka
            raise KafkaTimeoutError(f"the access was not acknowledged within {self.wait:.1f}s") from None
        if failure is not None:
            raise failure

    async def run(self) -> None:
        """The writer, for as long as the service runs."""
        try:
            while True:
                await self.waiting.wait()
                if self.linger and len(self.pending) < self.most:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.full.wait(), self.linger)
                group, self.pending = self.pending[: self.most], self.pending[self.most :]
                if not self.pending:
                    self.waiting.clear()
                    self.full.clear()
                await self.write(group)
        finally:
            self._answer(self.pending, ConnectionError("the access log stopped"))
            self.pending = []

    async def write(self, group: list[tuple[DataAccess, asyncio.Future[BaseException | None]]]) -> None:
        started = time.perf_counter()
        ACCESS_GROUP_SIZE.observe(len(group))
        try:
            await self.send([access_event(access, self.secret) for access, _ in group])
        except Exception as exc:
            ACCESS_WRITE_SECONDS.labels("failed").observe(time.perf_counter() - started)
            log.warning("data accesses not recorded: %s", exc, extra={"accesses": len(group)})
            self._answer(group, exc)
            return
        ACCESS_WRITE_SECONDS.labels("written").observe(time.perf_counter() - started)
        self._answer(group, None)

    @staticmethod
    def _answer(group: list[tuple[DataAccess, asyncio.Future[BaseException | None]]], outcome: Any) -> None:
        for _, done in group:
            if not done.done():
                done.set_result(outcome)
