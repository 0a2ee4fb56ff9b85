"""The consumer's handling of a fetched batch, without a broker: records as aiokafka hands them over."""

import asyncio
import time

from aiokafka import ConsumerRecord

from common.codec import EventCodec
from common.events import Event
from common.kafka import EventConsumer
from common.settings import ServiceSettings

CODEC = EventCodec.from_folder()


def record(offset: int, topic: str = "t") -> ConsumerRecord:
    payload = {"grant_id": f"g{offset}", "resource_code": "101001/000001", "consumer_code": "c", "reason": "期满"}
    event = Event("GrantRevoked", f"g{offset}", payload | {"revoked_by": "admin"}, producer="test")
    value = CODEC.encode(event.event_type, event.payload)
    return ConsumerRecord(topic, 0, offset, 0, 0, event.key.encode(), value, None, 0, len(value), event.headers())


class DeadLetters:
    """Where the consumer writes dead letters, kept in memory (the broker's side is tests/integration)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []

    async def send_raw(self, topic: str, key: str, value: bytes, headers: list) -> asyncio.Future:
        self.sent.append((topic, {k: v.decode() for k, v in headers}))
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_a_batch_of_several_topics_counts_each_records_outcome_under_its_own_topic() -> None:
    """A batch handler's consumer fetches several topics at once: the outcomes were all counted under the
    first record's topic, so one topic's dead letters showed on another's dashboard and alert."""
    from prometheus_client import REGISTRY

    records = [record(0, "mixed.a"), record(1, "mixed.b"), record(2, "mixed.b"), record(3, "mixed.a")]
    refused_key = "g2"

    async def handler(events: list[Event]) -> dict[str, str]:
        return {e.event_id: "not this one" for e in events if e.key == refused_key}

    dead = DeadLetters()
    consumer = EventConsumer(
        group="g-mixed",
        topics=["mixed.a", "mixed.b"],
        handlers={},
        codec=CODEC,
        publisher=dead,  # type: ignore[arg-type]
        processed=None,  # type: ignore[arg-type]  # a batch handler de-duplicates by itself
        settings=ServiceSettings(),
        batch_handler=handler,
    )
    await consumer.process(records)

    def count(topic: str, outcome: str) -> float | None:
        labels = {"group": "g-mixed", "topic": topic, "outcome": outcome}
        return REGISTRY.get_sample_value("datashare_events_consumed_total", labels)

    assert (count("mixed.a", "handled"), count("mixed.b", "handled")) == (2, 1)
    assert (count("mixed.a", "dead_lettered"), count("mixed.b", "dead_lettered")) == (0, 1)
    [(topic, headers)] = dead.sent
    assert topic == "mixed.b.dlq" and headers["dlq.reason"] == "rejected: not this one"
    assert headers["dlq.attempts"] == "1"


async def test_a_big_fetched_batch_is_decoded_in_turns_with_the_rest_of_the_event_loop() -> None:
    """Decoding thousands of records at once held the event loop for hundreds of milliseconds: probes and
    the consumers' heartbeats waited. Other tasks run while a batch is decoded, and the handler still gets
    the whole batch, in order."""
    records = [record(n) for n in range(2000)]
    ticks: list[int] = []  # how many times another task ran before the handler was called
    handled: list[list[str]] = []

    async def handler(events: list[Event]) -> dict[str, str]:
        handled.append([e.key for e in events])
        ticks.append(turns)
        return {}

    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    consumer = EventConsumer(
        group="g",
        topics=["t"],
        handlers={},
        codec=CODEC,
        publisher=None,  # type: ignore[arg-type]  # nothing is dead-lettered here
        processed=None,  # type: ignore[arg-type]  # a batch handler de-duplicates by itself
        settings=ServiceSettings(),
        batch_handler=handler,
    )
    other = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    started_at = turns
    try:
        await consumer.process(records)
    finally:
        other.cancel()
    assert handled == [[f"g{n}" for n in range(2000)]]
    assert ticks[0] - started_at >= 5, "the event loop ran nothing else while the batch was decoded"


class AnsweredLate:
    """A consumer whose fetch answer, with records, is stored just after a getmany stopped waiting for it:
    the race between aiokafka's fetcher task and the waiter."""

    def __init__(self) -> None:
        self.tp = ("t", 0)
        self.answered_ms = 0
        self.stored: dict = {}

    def assignment(self) -> set:
        return {self.tp}

    def paused(self) -> set:
        return set()

    def last_poll_timestamp(self, _tp: object) -> int:
        return self.answered_ms

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        found, self.stored = self.stored, {}
        if not found and timeout_ms and not self.answered_ms:
            await asyncio.sleep(timeout_ms / 1000)
            self.answered_ms = int(time.time() * 1000) + 1  # the answer lands as the wait ends
            self.stored = {self.tp: [record(0)]}
        return found


async def test_records_the_answer_stored_after_the_wait_ended_are_returned_not_paused_over() -> None:
    from common.kafka import fetch_once

    consumer = AnsweredLate()
    fetched = await fetch_once(consumer)  # type: ignore[arg-type]
    assert [r.offset for r in fetched.get(consumer.tp, [])] == [0]  # type: ignore[call-overload]


def test_a_consumer_counts_no_dead_letters_from_the_start_so_the_first_one_is_an_increase() -> None:
    """Prometheus's increase() sees a counter born at 1 as no increase: the dead-letter alert missed the first
    dead letter of each process's life. Each consumed topic's count starts at 0 when the consumer is made."""
    from prometheus_client import REGISTRY

    EventConsumer(
        group="g-first",
        topics=["t1", "t2"],
        handlers={},
        codec=CODEC,
        publisher=None,  # type: ignore[arg-type]
        processed=None,  # type: ignore[arg-type]
        settings=ServiceSettings(),
    )
    for topic in ("t1", "t2"):
        labels = {"group": "g-first", "topic": topic, "outcome": "dead_lettered"}
        assert REGISTRY.get_sample_value("datashare_events_consumed_total", labels) == 0


def test_the_counters_alerts_take_increases_of_exist_at_zero_before_their_first_event() -> None:
    """The same for the outbox's parked documents and the webhooks given up (DatashareOutboxParked,
    DatashareWebhooksDead)."""
    from prometheus_client import REGISTRY

    import services.notifier.adapters.webhooks_delivery  # noqa: F401 - registers the webhook counters
    from common.mongo import OutboxRelay

    OutboxRelay(None, None, name="first-outbox", poll_seconds=1)  # type: ignore[arg-type]
    assert REGISTRY.get_sample_value("datashare_outbox_parked_total", {"outbox": "first-outbox"}) == 0
    # the series exists from the import on (0 then; another test in this process may have given one up since)
    assert REGISTRY.get_sample_value("datashare_webhook_attempts_total", {"outcome": "dead"}) is not None


async def test_directory_events_met_before_the_directorys_keys_are_read_wait_as_for_an_outage() -> None:
    """Each consumer of directory.events checks the directory's signature. Until the directory's keys (its
    JWKS) are read, that is an outage, retried for as long as it lasts: it was a failure of the handler's own,
    and after five tries a good registration was dead-lettered (the directory slower to start than they)."""
    from common.faults import is_transient
    from common.keys import KeySource
    from services.auditor.oversight.adapters.observed_events import department_of
    from services.exchange.sharing.adapters.directory_events import signed_by_directory
    from services.notifier.adapters.events import directory_subscriptions

    keys = KeySource(ServiceSettings())  # not loaded yet
    code = "91360800MA35XXXX0X"
    event = Event("DepartmentRegistered", code, {"department_code": code, "name": "吉安市某局"}, "directory")
    notifier = directory_subscriptions(None, keys)["DepartmentRegistered"]  # type: ignore[arg-type]
    checks = [lambda: department_of(event, keys), lambda: signed_by_directory(event, keys), lambda: notifier(event)]
    for check in checks:
        try:
            waited = check()
            if asyncio.iscoroutine(waited):
                await waited
        except Exception as exc:
            assert is_transient(exc), f"{type(exc).__name__}: {exc}"
        else:
            raise AssertionError("handled without the directory's keys")
