"""Kafka plumbing: an idempotent publisher and a consumer that commits only after its handler succeeded,
skips events it has already handled and dead-letters what it cannot handle."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from aiokafka.structs import RecordMetadata
from datashare_adapter.signing import SIGNATURE_HEADER, value_digest

from common.codec import DecodeError, Event, EventCodec
from common.delivery import CURRENT_DELIVERY, AlreadyHandled, Delivery
from common.errors import RejectedEvent
from common.events import Signature
from common.faults import OutageLog, is_transient
from common.metrics import EVENTS_CONSUMED, EVENTS_PUBLISHED, HANDLER_RETRIES, HANDLER_SECONDS
from common.settings import ServiceSettings
from common.topics import DLQ_SUFFIX, TopicSpec, ensure_topics

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]
# Handles a whole fetched batch at once (bulk writes); returns the ids of events it refused, with why.
BatchHandler = Callable[[list[Event]], Awaitable[dict[str, str]]]


def connection_options(settings: ServiceSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password,
        }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    return options


def consumer_options(settings: ServiceSettings) -> dict[str, Any]:
    """`connection_options` plus what every consumer of the platform sets."""
    # aiokafka's background fetcher otherwise wakes every 200 ms with nothing to do; whatever it must act on
    # (records taken, a seek, a resume, a rebalance, a metadata refresh) wakes it without that timer.
    return connection_options(settings) | {"consumer_timeout_ms": FETCHER_IDLE_WAKE_MS}


SENDS_PER_TURN = 50
DECODES_PER_TURN = 200  # a fetched batch holds up to thousands of records: decoding them all at once held the loop
FETCHER_IDLE_WAKE_MS = 5_000  # also how soon a fetcher that gave up on an absent broker tries again
IDLE_POLL_MS = 100  # with an idle pause, how long a poll waits at most for the broker to answer its fetch
ANSWER_CHECK_MS = 1  # how often that poll looks whether the broker answered


class IdleBackoff:
    """How long an idle consumer stops fetching: `kafka_idle_pause_seconds` after an empty poll, doubling
    with each further one up to `kafka_idle_pause_max_seconds`; a poll that finds records starts over."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.first = settings.kafka_idle_pause_seconds
        self.longest = max(self.first, settings.kafka_idle_pause_max_seconds)
        self.current = self.first

    def idle(self) -> float:
        pause, self.current = self.current, min(self.current * 2, self.longest)
        return pause

    def busy(self) -> None:
        self.current = self.first


async def poll(
    consumer: AIOKafkaConsumer,
    settings: ServiceSettings,
    max_records: int | None = None,
    backoff: IdleBackoff | None = None,
) -> dict[TopicPartition, list[ConsumerRecord]]:
    """One fetch round. When it finds nothing, fetching pauses (`backoff`, or `kafka_idle_pause_seconds`):
    an idle consumer then costs next to nothing even on a broker that answers empty fetches at once.
    Records that arrive meanwhile wait at most that long; a busy consumer never pauses."""
    pause = settings.kafka_idle_pause_seconds
    if pause:
        batches = await fetch_once(consumer, max_records)
    else:
        batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
    if batches and backoff is not None:
        backoff.busy()
    if not batches and pause:
        idle = consumer.assignment()
        consumer.pause(*idle)
        try:
            await asyncio.sleep(pause if backoff is None else backoff.idle())
        finally:
            consumer.resume(*(idle & consumer.assignment()))  # a rebalance meanwhile assigns unpaused partitions
    return batches


async def fetch_once(
    consumer: AIOKafkaConsumer, max_records: int | None = None
) -> dict[TopicPartition, list[ConsumerRecord]]:
    """Records, or nothing once the broker answered a fetch for every partition being fetched (within
    IDLE_POLL_MS). A broker that answers empty fetches at once is asked about once per idle wake-up rather
    than again and again for a fixed while."""
    if not consumer.assignment() - consumer.paused():  # nothing to fetch (not yet assigned, say)
        return {}
    asked_ms = int(time.time() * 1000)  # the clock aiokafka stamps fetch answers with
    deadline = time.monotonic() + IDLE_POLL_MS / 1000
    while True:
        batches = await consumer.getmany(timeout_ms=ANSWER_CHECK_MS, max_records=max_records)
        if batches or time.monotonic() >= deadline:
            return batches
        if _answered_since(consumer, asked_ms):
            # the answer may have stored records after getmany stopped waiting: take them now, not after a pause
            return await consumer.getmany(timeout_ms=0, max_records=max_records)


async def read_to_end(consumer: AIOKafkaConsumer) -> set[TopicPartition]:
    """The partitions being fetched whose every record the consumer has taken, as far as the broker's last
    answer for each told (its end: the last stable offset, read_committed)."""
    done = set()
    for tp in consumer.assignment() - consumer.paused():
        ends = [e for e in (consumer.highwater(tp), consumer.last_stable_offset(tp)) if e is not None and e >= 0]
        if ends and await consumer.position(tp) >= min(ends):
            done.add(tp)
    return done


def _answered_since(consumer: AIOKafkaConsumer, asked_ms: int) -> bool:
    fetched = consumer.assignment() - consumer.paused()
    return bool(fetched) and all((consumer.last_poll_timestamp(tp) or 0) >= asked_ms for tp in fetched)


ENVELOPE_HEADERS = frozenset({"event_id", "event_type", "occurred_at", "producer", SIGNATURE_HEADER})
LOG_APPEND_TIME = 1


def envelope_headers(headers: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in headers if k in ENVELOPE_HEADERS}


def event_from_record(record: ConsumerRecord, codec: EventCodec) -> Event:
    """Decode a record's value and headers; DecodeError when either is not a platform event."""
    headers = envelope_headers(record.headers or ())
    event_type, payload = codec.decode(record.value or b"")
    if "event_id" not in headers:
        raise DecodeError("missing event_id header")
    if headers.get("event_type", event_type) != event_type:
        raise DecodeError(f"event_type header {headers['event_type']!r} disagrees with schema {event_type!r}")
    try:
        occurred_at = datetime.fromisoformat(headers["occurred_at"])
    except (KeyError, ValueError):
        raise DecodeError("missing or malformed occurred_at header") from None
    return Event(
        event_type=event_type,
        key=(record.key or b"").decode("utf-8", "replace"),
        payload=payload,
        producer=headers.get("producer", "unknown"),
        event_id=headers["event_id"],
        occurred_at=occurred_at,
        signature=(
            Signature(headers[SIGNATURE_HEADER], headers["occurred_at"], value_digest(record.value or b""))
            if SIGNATURE_HEADER in headers
            else None
        ),
        appended_at=(
            datetime.fromtimestamp(record.timestamp / 1000, UTC) if record.timestamp_type == LOG_APPEND_TIME else None
        ),
        position=(record.topic, record.partition, record.offset),
    )


class KafkaPublisher:
    """Idempotent producer (acks=all). `start` may fail while the broker is away; callers retry it."""

    def __init__(self, settings: ServiceSettings, codec: EventCodec, topics: dict[str, TopicSpec]) -> None:
        self._options = connection_options(settings)
        self._client_id = settings.model_config.get("env_prefix", "datashare").strip("_").lower()
        self.max_message_bytes = settings.kafka_max_message_bytes
        self.codec = codec
        self.topics = topics
        self._producer: AIOKafkaProducer | None = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **self._options,
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
            compression_type="gzip",  # events of a batch repeat most of their headers and fields
            max_request_size=self.max_message_bytes + 64 * 1024,  # the event plus its headers and framing
            request_timeout_ms=15000,
        )
        try:
            await producer.start()
        except BaseException:
            await asyncio.shield(producer.stop())
            raise
        self._producer = producer

    async def stop(self, timeout: float = 3.0) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout)
            except (TimeoutError, Exception):  # broker gone: unflushed sends stay in the outbox
                log.warning("producer did not stop cleanly within %ss", timeout)

    def _producer_or_raise(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise KafkaConnectionError("Kafka producer is not connected")
        return self._producer

    async def send_all(
        self, messages: Iterable[tuple[str, str, bytes, list[tuple[str, bytes]]]], timeout: float
    ) -> int:
        """Send (topic, key, value, headers) messages and wait for every acknowledgement, all within
        `timeout`: a caller waiting for an answer gets KafkaTimeoutError while the broker is away rather
        than waiting for it to come back. Some of the messages may have been written then."""

        async def send() -> int:
            acknowledged = []
            for n, (topic, key, value, headers) in enumerate(messages, start=1):
                acknowledged.append(await self.send_raw(topic, key, value, headers))
                if n % SENDS_PER_TURN == 0:
                    await asyncio.sleep(0)  # probes and heartbeats get their turn during a long send
            await asyncio.gather(*acknowledged)
            return len(acknowledged)

        try:
            return await asyncio.wait_for(send(), timeout)
        except TimeoutError:
            raise KafkaTimeoutError(f"the broker did not acknowledge within {timeout:.0f}s") from None

    def check_topic(self, topic: str, event_type: str | None) -> None:
        """`event_type` None is a tombstone, allowed on compacted topics only."""
        spec = self.topics.get(topic)
        if spec is None:
            raise ValueError(f"topic {topic!r} is not declared in schemas/topics.toml")
        if event_type is None and spec.cleanup_policy != "compact":
            raise ValueError(f"tombstones belong on compacted topics, and {topic} is not one")
        if event_type is not None and spec.events and event_type not in spec.events:
            raise ValueError(f"event {event_type} is not declared for topic {topic}")

    def encode(self, topic: str, event: Event) -> bytes:
        self.check_topic(topic, event.event_type)
        return self.codec.encode(event.event_type, event.payload)

    async def send_raw(
        self, topic: str, key: str, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future:
        """Queue one message; the returned future resolves when the broker acknowledged it."""
        return await self._producer_or_raise().send(topic, value=value, key=key.encode(), headers=headers)

    async def publish(self, topic: str, event: Event) -> RecordMetadata:
        """Send one event and wait for the broker; returns where it was written."""
        value = self.encode(topic, event)
        written = await (await self.send_raw(topic, event.key, value, event.headers()))
        EVENTS_PUBLISHED.labels(topic, event.event_type).inc()
        return written

    async def publish_many(self, topic: str, events: Iterable[Event]) -> int:
        """Send all, then wait for every acknowledgement."""
        futures, types = [], Counter[str]()
        for event in events:
            futures.append(await self.send_raw(topic, event.key, self.encode(topic, event), event.headers()))
            types[event.event_type] += 1
        await asyncio.gather(*futures)
        for event_type, count in types.items():
            EVENTS_PUBLISHED.labels(topic, event_type).inc(count)
        return len(futures)

    async def ping(self, timeout: float = 2.0) -> None:
        """Raise if the cluster does not answer a metadata request within `timeout`."""
        client = self._producer_or_raise().client
        ok = await asyncio.wait_for(client.fetch_all_metadata(), timeout)
        if ok is None or not ok.brokers():
            raise ConnectionError("no broker answered the metadata request")

    async def ensure_topics(self, specs: list[TopicSpec]) -> list[str]:
        admin = AIOKafkaAdminClient(**self._options, request_timeout_ms=10000)
        await admin.start()
        try:
            return await ensure_topics(admin, specs)
        finally:
            await admin.close()


class ProcessedEvents(Protocol):
    """Which event ids a consumer group already handled. The record itself is written by the handler's
    transaction (see common.mongo.transaction), atomically with the state the handler changed."""

    async def seen(self, group: str, event_ids: list[str]) -> set[str]: ...


@dataclass
class EventConsumer:
    """Consumes `topics` as `group`, handing each event to the handler registered for its type.

    Offsets are committed only after each event of a batch was handled, recognised as a duplicate, or
    written to `<topic>.dlq` with the reason: nothing is skipped silently, and a poison message never
    stops the consumer. Events of types without a handler are acknowledged as not this group's concern.
    A dead letter is written at least once: killed before its commit, the consumer writes it again, with the
    same `dlq.topic`, `dlq.partition` and `dlq.offset` headers to deduplicate by.
    """

    group: str
    topics: list[str]
    handlers: dict[str, Handler]
    codec: EventCodec
    publisher: KafkaPublisher
    processed: ProcessedEvents
    settings: ServiceSettings
    batch_size: int = 500
    running: bool = False
    batch_handler: BatchHandler | None = None  # instead of `handlers`: every decoded event, in one call
    waiting: str | None = None  # the infrastructure failure the consumer is waiting out, for readiness
    outage: OutageLog = field(init=False)

    def __post_init__(self) -> None:
        self.outage = OutageLog(log, f"consumer {self.group}")
        for topic in self.topics:  # at 0 from the start: Prometheus sees the first dead letter as an increase
            EVENTS_CONSUMED.labels(self.group, topic, "dead_lettered")

    async def run(self) -> None:
        """Consume until cancelled. Errors other than handler failures propagate (the supervisor restarts)."""
        consumer = AIOKafkaConsumer(
            *self.topics,
            **consumer_options(self.settings),
            group_id=self.group,
            group_instance_id=f"{self.group}:{self.settings.consumer_instance_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            isolation_level="read_committed",
        )
        await consumer.start()
        backoff = IdleBackoff(self.settings)
        try:
            while True:
                # Consuming means holding partitions: a member that cannot join its group is not ready.
                self.running = bool(consumer.assignment())
                batches = await poll(consumer, self.settings, self.batch_size, backoff)
                if batches:
                    # While the batch is handled, the partitions read to their end are not fetched: a broker
                    # that answers empty fetches at once (the local one) was asked again and again by
                    # aiokafka's fetcher, most of a busy consumer's CPU.
                    drained = await read_to_end(consumer)
                    consumer.pause(*drained)
                    try:
                        await self.process([r for records in batches.values() for r in records])
                        await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
                    finally:
                        consumer.resume(*(drained & consumer.assignment()))
        finally:
            self.running = False
            try:
                await asyncio.wait_for(consumer.stop(), 3)
            except (TimeoutError, Exception):
                log.warning("consumer %s did not stop cleanly", self.group)

    async def process(self, records: list[ConsumerRecord]) -> None:
        """Handle one fetched batch in order; one look-up of already handled ids for all of it."""
        outcomes: Counter[tuple[str, str]] = Counter()
        decoded: list[tuple[ConsumerRecord, Event]] = []
        for n, record in enumerate(records, start=1):
            if n % DECODES_PER_TURN == 0:
                await asyncio.sleep(0)  # probes and heartbeats get their turn during a big batch
            if record.value is None:  # a tombstone on a compacted topic: the key was deleted
                outcomes[record.topic, "tombstone"] += 1
                continue
            try:
                decoded.append((record, event_from_record(record, self.codec)))
            except DecodeError as exc:
                await self.dead_letter(record, f"undecodable: {exc}", attempts=0)
                outcomes[record.topic, "dead_lettered"] += 1
        if self.batch_handler is not None:
            outcomes.update(await self.handle_batch(decoded, self.batch_handler))
            for (topic, outcome), count in outcomes.items():
                EVENTS_CONSUMED.labels(self.group, topic, outcome).inc(count)
            return
        already = await self.processed.seen(self.group, [e.event_id for _, e in decoded])
        for record, event in decoded:
            handler = self.handlers.get(event.event_type)
            if event.event_id in already:
                outcome = "duplicate"
            elif handler is None:
                outcome = "not_handled"
            else:
                outcome = await self.handle_with_retries(record, event, handler)
                already.add(event.event_id)  # a duplicate later in the same batch
            outcomes[record.topic, outcome] += 1
        for (topic, outcome), count in outcomes.items():
            EVENTS_CONSUMED.labels(self.group, topic, outcome).inc(count)

    async def handle_batch(
        self, decoded: list[tuple[ConsumerRecord, Event]], handler: BatchHandler
    ) -> Counter[tuple[str, str]]:
        """Run the batch handler. Refused events go to the DLQ; if the batch keeps failing for a reason of its
        own, its events are handled one by one, so that only a poison event is dead-lettered. Outcomes are
        counted by (topic, outcome): a batch may hold several topics' records."""
        outcomes: Counter[tuple[str, str]] = Counter()
        if not decoded:
            return outcomes
        retry = Retry(self, decoded[0][0].topic)
        while True:
            started = time.perf_counter()
            try:
                refused = await handler([e for _, e in decoded])
            except Exception as exc:
                if await retry.again(exc):
                    continue
                if len(decoded) == 1:
                    record = decoded[0][0]
                    log.exception("batch handler failed %s times, dead-lettering", retry.failures, extra=_where(record))
                    await self.dead_letter(record, f"handler failed: {type(exc).__name__}: {exc}", retry.failures)
                    outcomes[record.topic, "dead_lettered"] += 1
                    return outcomes
                for one in decoded:
                    outcomes.update(await self.handle_batch([one], handler))
                return outcomes
            retry.succeeded()
            HANDLER_SECONDS.labels(self.group, "batch").observe(time.perf_counter() - started)
            await asyncio.gather(
                *(
                    self.dead_letter(r, f"rejected: {refused[e.event_id]}", retry.tries)
                    for r, e in decoded
                    if e.event_id in refused
                )
            )
            for record, event in decoded:
                outcomes[record.topic, "dead_lettered" if event.event_id in refused else "handled"] += 1
            return outcomes

    async def handle_with_retries(self, record: ConsumerRecord, event: Event, handler: Handler) -> str:
        """Run the handler until it succeeds, refuses the event, or fails for a reason of the event's own
        too often; return the outcome for the metrics."""
        token = CURRENT_DELIVERY.set(Delivery(self.group, event.event_id))
        retry = Retry(self, record.topic)
        try:
            while True:
                started = time.perf_counter()
                try:
                    await handler(event)
                except AlreadyHandled:
                    retry.succeeded()
                    return "duplicate"
                except RejectedEvent as exc:
                    retry.succeeded()
                    await self.dead_letter(record, f"rejected: {exc}", retry.tries)
                    return "dead_lettered"
                except Exception as exc:
                    if await retry.again(exc):
                        continue
                    log.exception("handler failed %s times, dead-lettering", retry.failures, extra=_where(record))
                    await self.dead_letter(record, f"handler failed: {type(exc).__name__}: {exc}", retry.failures)
                    return "dead_lettered"
                retry.succeeded()
                HANDLER_SECONDS.labels(self.group, event.event_type).observe(time.perf_counter() - started)
                return "handled"
        finally:
            CURRENT_DELIVERY.reset(token)

    async def dead_letter(self, record: ConsumerRecord, reason: str, attempts: int) -> None:
        """Write the original message to `<topic>.dlq` with why and where; waits for the broker's ack."""
        headers = [
            *(record.headers or ()),
            ("dlq.reason", reason.encode()),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
            ("dlq.group", self.group.encode()),
            ("dlq.attempts", str(attempts).encode()),
        ]
        key = (record.key or b"").decode("utf-8", "replace")
        target = record.topic + DLQ_SUFFIX
        await (await self.publisher.send_raw(target, key, record.value or b"", headers))
        log.warning("dead-lettered a message: %s", reason, extra=_where(record))


RETRY_BACKOFF_MAX = 10.0


class Retry:
    """When to try a failed handler again. A failure of the infrastructure (broker or database away, a lost
    transaction conflict) is retried for as long as it lasts: it says nothing about the event, so it never
    dead-letters one, and offsets stay uncommitted meanwhile. Any other failure is retried up to
    `consumer_max_attempts` times before the event is dead-lettered."""

    def __init__(self, consumer: EventConsumer, topic: str) -> None:
        self.consumer = consumer
        self.topic = topic
        self.tries = 1
        self.failures = 0  # failures of the handler's own

    async def again(self, exc: Exception) -> bool:
        settings, consumer = self.consumer.settings, self.consumer
        if is_transient(exc):
            consumer.outage.failed(exc)
            consumer.waiting = f"{type(exc).__name__}: {exc}"[:300]
        else:
            self.failures += 1
            if self.failures >= settings.consumer_max_attempts:
                return False
        HANDLER_RETRIES.labels(consumer.group, self.topic).inc()
        delay = settings.consumer_retry_backoff_seconds * 2 ** min(self.tries - 1, 10)
        await asyncio.sleep(min(delay, RETRY_BACKOFF_MAX))
        self.tries += 1
        return True

    def succeeded(self) -> None:
        if self.consumer.waiting is not None:
            self.consumer.waiting = None
            self.consumer.outage.recovered()


def _where(record: ConsumerRecord) -> dict[str, Any]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
