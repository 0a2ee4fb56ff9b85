"""MongoDB plumbing: the client, a transaction that writes state and its events together (outbox),
the relay that moves outbox messages to Kafka, and the consumers' processed-event record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.errors import KafkaError
from bson import Binary
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.codec import Event
from common.delivery import CURRENT_DELIVERY, AlreadyHandled, Delivery
from common.errors import Invalid
from common.faults import is_transient
from common.kafka import SENDS_PER_TURN, KafkaPublisher
from common.metrics import EVENTS_PUBLISHED, OUTBOX_PARKED_TOTAL, OUTBOX_PENDING, OUTBOX_RELAYED
from common.settings import ServiceSettings

log = logging.getLogger(__name__)

OUTBOX = "outbox"
OUTBOX_PARKED = "outbox_parked"  # documents the broker refused for good, for an operator to look at
PROCESSED = "processed_events"
LEASES = "leases"
OWNER = "owner"


class ForeignDatabase(RuntimeError):
    """The configured database belongs to another service: services share topics and APIs, never data."""


def connect(settings: ServiceSettings) -> AsyncMongoClient:
    """Connects lazily: creating the client never waits for the server."""
    return AsyncMongoClient(
        settings.mongo_uri,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000,
        appname=settings.model_config.get("env_prefix", "datashare").strip("_").lower(),
        tz_aware=True,
        serverMonitoringMode=settings.mongo_server_monitoring,
        heartbeatFrequencyMS=int(settings.mongo_heartbeat_seconds * 1000),
    )


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[PROCESSED].create_index([("group", ASCENDING), ("at", ASCENDING)])


async def claim_database(db: AsyncDatabase, service: str) -> None:
    """Mark `db` as `service`'s own, or refuse it when another service already owns it: two services on one
    database would relay each other's outbox and read each other's collections."""
    try:
        await db[OWNER].update_one({"_id": "service"}, {"$setOnInsert": {"service": service}}, upsert=True)
    except DuplicateKeyError:  # a concurrent first start of the same service
        pass
    owner = await db[OWNER].find_one({"_id": "service"})
    if owner is not None and owner["service"] != service:
        raise ForeignDatabase(
            f"database {db.name!r} belongs to the {owner['service']} service; give {service} its own "
            f"({service.upper()}_MONGO_DATABASE, default datashare_{service})"
        )


@dataclass
class Transaction:
    """State writes (through `session`) and the events they cause commit or abort together."""

    db: AsyncDatabase
    session: AsyncClientSession
    publisher: KafkaPublisher
    pending: list[dict[str, Any]] = field(default_factory=list)
    outbox: str = OUTBOX

    def emit(self, topic: str, event: Event) -> None:
        """Queue an event; it is encoded now, so an invalid or oversized event fails the whole transaction
        (an event the broker would refuse must never reach the outbox, where it would block the ones after)."""
        value = self.publisher.encode(topic, event)
        if len(value) > self.publisher.max_message_bytes:
            raise Invalid(
                event.event_type,
                f"the event would be {len(value):,} bytes, more than the {self.publisher.max_message_bytes:,} a "
                "message may have; send less at once",
            )
        self.pending.append(
            {
                "topic": topic,
                "key": event.key,
                "value": Binary(value),
                "headers": [[k, Binary(v)] for k, v in event.headers()],
                "event_type": event.event_type,
                "event_id": event.event_id,
                "created_at": datetime.now(UTC),
            }
        )

    def emit_tombstone(self, topic: str, key: str) -> None:
        """Queue a null value for `key` on a compacted topic: compaction then forgets the key."""
        self.publisher.check_topic(topic, None)
        event_id = uuid.uuid4().hex
        self.pending.append(
            {
                "topic": topic,
                "key": key,
                "value": None,
                "headers": [["event_id", Binary(event_id.encode())], ["producer", Binary(b"tombstone")]],
                "event_type": None,
                "event_id": event_id,
                "created_at": datetime.now(UTC),
            }
        )

    async def _flush(self) -> None:
        """All the transaction's events in one outbox document: one write, however many events."""
        if self.pending:
            await self.db[self.outbox].insert_one(
                {"messages": self.pending, "created_at": datetime.now(UTC)}, session=self.session
            )


@asynccontextmanager
async def transaction(
    client: AsyncMongoClient,
    db: AsyncDatabase,
    publisher: KafkaPublisher,
    on_outbox: Callable[[], None] | None = None,
    outbox: str = OUTBOX,
) -> AsyncIterator[Transaction]:
    """State writes, the events they cause and, inside a consumer, the record that the event being
    handled was handled: committed together or not at all. A handler changes state in one transaction.
    `on_outbox` is called once a transaction that wrote events committed (the relay wakes up); the events
    go to the collection `outbox`."""
    delivery = CURRENT_DELIVERY.get()
    async with client.start_session() as session, await session.start_transaction():
        if delivery is not None and not delivery.claimed:
            await _claim(db, session, delivery)
        tx = Transaction(db, session, publisher, outbox=outbox)
        yield tx
        await tx._flush()
    if delivery is not None:
        delivery.claimed = True
    if tx.pending and on_outbox is not None:
        on_outbox()


async def _claim(db: AsyncDatabase, session: AsyncClientSession, delivery: Delivery) -> None:
    record = {
        "_id": delivery.record_id,
        "group": delivery.group,
        "event_id": delivery.event_id,
        "at": datetime.now(UTC),
    }
    try:
        await db[PROCESSED].insert_one(record, session=session)
    except DuplicateKeyError:
        raise AlreadyHandled(delivery.record_id) from None


class MongoProcessedEvents:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[PROCESSED]

    async def seen(self, group: str, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        cursor = self.collection.find({"_id": {"$in": [f"{group}:{i}" for i in event_ids]}}, {"event_id": 1})
        return {doc["event_id"] async for doc in cursor}


class OutboxRelay:
    """Moves committed outbox messages to Kafka in order, deleting each batch once the broker acked it.

    The lease belongs to the outbox: one relay at a time moves it, so replicas of a service neither send
    its events twice nor reorder them. `name` only labels the metrics. The relay sleeps until a transaction
    of this process wrote events (`wake`), or for `poll_seconds` at most: events written by another
    replica or process wait that long. A service whose processes do different work (the exchange's API and
    its ingestion) gives each kind its own `outbox` collection, so one's flood is not the other's to relay.
    """

    def __init__(
        self,
        db: AsyncDatabase,
        publisher: KafkaPublisher,
        *,
        name: str,
        poll_seconds: float,
        batch: int = 20,
        outbox: str = OUTBOX,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.publisher = publisher
        self.name = name
        OUTBOX_PARKED_TOTAL.labels(name)  # at 0 from the start: Prometheus sees the first one as an increase
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.lease_seconds = max(15.0, 3 * poll_seconds)
        self.last_ok = 0.0
        self.written = asyncio.Event()

    def wake(self) -> None:
        self.written.set()

    def healthy(self) -> bool:
        """The relay completed a round (or saw another replica holding the lease) recently."""
        return time.monotonic() - self.last_ok < max(10.0, 3 * self.poll_seconds)

    async def run(self) -> None:
        while True:
            if not self.publisher.started:
                await asyncio.sleep(1.0)
                continue
            self.written.clear()
            # The lease is taken only when there is something to relay: an idle relay reads, never writes.
            relayed = await self.relay_once() if await self._pending() and await self._hold_lease() else 0
            self.last_ok = time.monotonic()
            if relayed < self.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.written.wait(), self.poll_seconds)

    async def _pending(self) -> bool:
        if await self.db[self.outbox].find_one({}, {"_id": 1}) is None:
            OUTBOX_PENDING.labels(self.name).set(0)
            return False
        return True

    async def _hold_lease(self) -> bool:
        now = datetime.now(UTC)
        try:
            await self.db[LEASES].find_one_and_update(
                {"_id": self.outbox, "$or": [{"owner": self.owner}, {"expires": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires": now + timedelta(seconds=self.lease_seconds)}},
                upsert=True,
            )
        except DuplicateKeyError:  # another replica holds a live lease
            return False
        return True

    async def relay_once(self) -> int:
        """Publish the oldest outbox documents' messages in order; returns the number of documents. A
        document the broker refuses for good (too large, say) is parked in `outbox_parked` with the reason
        rather than blocking every document after it; an outage stops the round and is retried."""
        outbox = self.db[self.outbox]
        docs = await outbox.find({}).sort("_id", ASCENDING).limit(self.batch).to_list()
        if not docs:
            OUTBOX_PENDING.labels(self.name).set(0)
            return 0
        sending: list[tuple[dict[str, Any], list[asyncio.Future]]] = []
        refused: list[tuple[dict[str, Any], BaseException]] = []
        for doc in docs:
            try:
                sending.append((doc, await self._send_all(doc.get("messages", [doc]))))
            except KafkaError as exc:
                if is_transient(exc):
                    raise
                refused.append((doc, exc))
        relayed, outage = [], None
        for doc, futures in sending:
            results = await asyncio.gather(*futures, return_exceptions=True)
            failure = next((r for r in results if isinstance(r, BaseException)), None)
            if failure is not None:
                if is_transient(failure):
                    outage = outage or failure
                else:
                    refused.append((doc, failure))
                continue
            relayed.append(doc)
        await outbox.delete_many({"_id": {"$in": [d["_id"] for d in relayed]}})
        for doc, error in refused:
            await self._park(doc, error)
        OUTBOX_RELAYED.labels(self.name).inc(sum(len(d.get("messages", [d])) for d in relayed))
        published = Counter((m["topic"], m.get("event_type")) for d in relayed for m in d.get("messages", [d]))
        for (topic, event_type), count in published.items():
            if event_type:  # a tombstone has none
                EVENTS_PUBLISHED.labels(topic, event_type).inc(count)
        OUTBOX_PENDING.labels(self.name).set(await outbox.estimated_document_count())
        if outage is not None:
            raise outage
        return len(docs)

    async def _send_all(self, messages: list[dict[str, Any]]) -> list[asyncio.Future]:
        """Queue a document's messages; a document of an ingested batch holds thousands, and the producer
        rarely waits: the event loop is let go now and then, so probes and heartbeats get their turn."""
        futures = []
        for n, message in enumerate(messages, start=1):
            futures.append(await self._send(message))
            if n % SENDS_PER_TURN == 0:
                await asyncio.sleep(0)
        return futures

    async def _send(self, message: dict[str, Any]) -> asyncio.Future:
        value = message["value"]
        headers = [(k, bytes(v)) for k, v in message["headers"]]
        return await self.publisher.send_raw(
            message["topic"], message["key"], None if value is None else bytes(value), headers
        )

    async def _park(self, doc: dict[str, Any], exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:500]
        await self.db[OUTBOX_PARKED].insert_one({**doc, "reason": reason, "parked_at": datetime.now(UTC)})
        await self.db[self.outbox].delete_one({"_id": doc["_id"]})
        OUTBOX_PARKED_TOTAL.labels(self.name).inc()
        log.error("the broker refused an outbox document for good; parked it", extra={"reason": reason})
