"""The consumer against the real broker and database: poison messages, retries, duplicates, commits."""

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, TopicPartition

from common.codec import EventCodec
from common.errors import RejectedEvent
from common.events import Event
from common.kafka import EventConsumer, KafkaPublisher, consumer_options, poll
from common.mongo import MongoProcessedEvents, connect, transaction
from common.topics import load_topics
from tests.integration.conftest import create_topics, headers_of, read_topic, settings_for
from tests.wakeups import timers_scheduled

CODEC = EventCodec.from_folder()


def revoked(reason: str) -> Event:
    payload = {
        "grant_id": "g1",
        "resource_code": "101001/000001",
        "consumer_code": "c",
        "reason": reason,
        "revoked_by": "admin",
    }
    return Event("GrantRevoked", "g1", payload, producer="test")


async def test_poison_messages_are_dead_lettered_and_everything_after_them_is_handled(infra, topics) -> None:
    topic = f"test.consumer-{uuid.uuid4().hex[:8]}"
    await create_topics(infra.bootstrap, topic, topic + ".dlq")
    settings = settings_for(infra, consumer_max_attempts=3)
    publisher = KafkaPublisher(settings, CODEC, load_topics())
    await publisher.start()
    client = connect(settings)
    handled: list[str] = []
    calls: dict[str, int] = {}

    async def handler(event: Event) -> None:
        calls[event.event_id] = calls.get(event.event_id, 0) + 1
        if event.payload["reason"] == "explode":
            raise RuntimeError("boom")
        if event.payload["reason"] == "never":
            raise RejectedEvent("grant_id", "no such grant will ever exist")
        handled.append(event.event_id)

    first, failing, refused, last = revoked("expired"), revoked("explode"), revoked("never"), revoked("ended early")
    messages = [
        (CODEC.encode(first.event_type, first.payload), first.headers()),
        (b'{"not": "avro"}', [("event_id", b"x1")]),
        (CODEC.encode(failing.event_type, failing.payload), failing.headers()),
        (CODEC.encode(refused.event_type, refused.payload), refused.headers()),
        (CODEC.encode(last.event_type, last.payload), last.headers()),
        (CODEC.encode(first.event_type, first.payload), first.headers()),  # redelivered duplicate
    ]
    for value, headers in messages:
        await (await publisher.send_raw(topic, "g1", value, headers))

    group = f"group-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(
        group=group,
        topics=[topic],
        handlers={"GrantRevoked": handler},
        codec=CODEC,
        publisher=publisher,
        processed=MongoProcessedEvents(client[settings.mongo_database]),
        settings=settings,
    )
    task = asyncio.create_task(consumer.run())
    probe = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap, group_id=group)
    await probe.start()
    try:
        dead = await read_topic(infra.bootstrap, topic + ".dlq", expected=3)
        committed = None
        for _ in range(100):
            committed = await probe.committed(TopicPartition(topic, 0))
            if committed == len(messages):
                break
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await probe.stop()
        await publisher.stop()
        await client.close()

    assert handled == [first.event_id, last.event_id]  # duplicate skipped, poison did not stop the rest
    assert calls[failing.event_id] == 3  # bounded retries
    assert calls[refused.event_id] == 1  # refused: dead-lettered on its first try
    reasons = {headers_of(r)["dlq.offset"]: headers_of(r) for r in dead}
    assert set(reasons) == {"1", "2", "3"}
    assert reasons["1"]["dlq.reason"].startswith("undecodable")
    assert reasons["2"]["dlq.reason"] == "handler failed: RuntimeError: boom"
    assert reasons["2"]["dlq.attempts"] == "3"
    assert reasons["2"]["dlq.topic"] == topic and reasons["2"]["dlq.group"] == group
    assert reasons["2"]["event_id"] == failing.event_id  # original headers kept
    assert reasons["3"]["dlq.reason"] == "rejected: grant_id: no such grant will ever exist"
    assert reasons["3"]["dlq.attempts"] == "1"
    assert {r.value for r in dead} == {messages[1][0], messages[2][0], messages[3][0]}  # original bytes kept
    assert committed == len(messages)  # committed past the poison once it was dead-lettered


async def test_a_redelivered_event_is_not_handled_twice(infra, topics) -> None:
    """The handler's transaction records the event as handled together with its state change."""
    topic = f"test.idem-{uuid.uuid4().hex[:8]}"
    await create_topics(infra.bootstrap, topic, topic + ".dlq")
    settings = settings_for(infra)
    publisher = KafkaPublisher(settings, CODEC, load_topics())
    await publisher.start()
    client = connect(settings)
    db = client[settings.mongo_database]
    processed = MongoProcessedEvents(db)
    event = revoked("expired")
    calls: list[str] = []

    async def handler(e: Event) -> None:
        calls.append(e.event_id)
        async with transaction(client, db, publisher) as tx:
            await tx.db.revocations.update_one(
                {"_id": e.payload["grant_id"]}, {"$inc": {"times": 1}}, upsert=True, session=tx.session
            )

    async def consume_through(group: str, offset: int) -> None:
        """Run the group's consumer until it committed past `offset` (the event handled or skipped)."""
        consumer = EventConsumer(
            group=group,
            topics=[topic],
            handlers={"GrantRevoked": handler},
            codec=CODEC,
            publisher=publisher,
            processed=processed,
            settings=settings,
        )
        task = asyncio.create_task(consumer.run())
        probe = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap, group_id=group)
        await probe.start()
        try:
            for _ in range(300):
                if (await probe.committed(TopicPartition(topic, 0)) or 0) > offset:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"{group} did not commit past offset {offset}")
        finally:
            await probe.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        value = CODEC.encode(event.event_type, event.payload)
        await (await publisher.send_raw(topic, "g1", value, event.headers()))
        await consume_through("ledger", 0)
        # The same event again later (a relay resend after a crash), to the same group, in a new batch:
        await (await publisher.send_raw(topic, "g1", value, event.headers()))
        await consume_through("ledger", 1)
        assert (await db.revocations.find_one({"_id": "g1"}))["times"] == 1
        assert await processed.seen("ledger", [event.event_id]) == {event.event_id}
        # A delivery that slips past the batch look-up is stopped by the transaction's own record:
        from common.delivery import CURRENT_DELIVERY, AlreadyHandled, Delivery

        CURRENT_DELIVERY.set(Delivery("ledger", event.event_id))
        with pytest.raises(AlreadyHandled):
            await handler(event)
        assert (await db.revocations.find_one({"_id": "g1"}))["times"] == 1
    finally:
        await publisher.stop()
        await client.close()


async def test_declared_topic_configs_are_applied_to_existing_topics(infra, topics) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from common.topics import TopicSpec, ensure_topics

    name = f"test.configs-{uuid.uuid4().hex[:8]}"
    await create_topics(infra.bootstrap, name)  # created without the declared config
    spec = TopicSpec(name, 1, "delete", (), 86_400_000, configs=(("message.timestamp.type", "LogAppendTime"),))
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
    await admin.start()
    try:
        assert await ensure_topics(admin, [spec]) == []
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        current = {e[0]: e[1] for response in described for r in response.resources for e in r[4]}
        assert current["message.timestamp.type"] == "LogAppendTime" and current["retention.ms"] == "86400000"
    finally:
        await admin.close()


async def test_an_idle_consumer_pauses_fetching_and_loses_nothing_that_arrives_meanwhile(infra) -> None:
    topic = f"test.idle-{uuid.uuid4().hex[:8]}"
    await create_topics(infra.bootstrap, topic, partitions=3)
    settings = settings_for(infra, kafka_idle_pause_seconds=1.0)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.bootstrap, group_id=f"idle-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest"
    )
    publisher = KafkaPublisher(settings, CODEC, load_topics())
    await consumer.start()
    await publisher.start()
    try:
        while not consumer.assignment():
            await poll(consumer, settings)
        idle = asyncio.create_task(poll(consumer, settings))
        for _ in range(100):  # the empty poll is followed by the pause
            if consumer.paused() or idle.done():
                break
            await asyncio.sleep(0.01)
        assert consumer.paused() == consumer.assignment()
        for n in range(6):
            await (await publisher.send_raw(topic, f"k{n}", f"v{n}".encode(), []))
        assert await idle == {}
        assert not consumer.paused()
        received: list[bytes] = []
        for _ in range(50):
            received += [r.value for records in (await poll(consumer, settings)).values() for r in records]
            if len(received) == 6:
                break
        assert sorted(received) == [f"v{n}".encode() for n in range(6)]
    finally:
        await consumer.stop()
        await publisher.stop()


async def test_an_idle_consumer_asks_the_broker_about_once_per_wake_up_and_sleeps_in_between(infra) -> None:
    # The local broker answers an empty fetch at once instead of holding it: an idle consumer that kept
    # fetching for a fixed while after each pause asked it ten times per wake-up, and aiokafka's fetcher
    # woke every 200 ms even while every partition was paused.
    topic = f"test.idle-{uuid.uuid4().hex[:8]}"
    await create_topics(infra.bootstrap, topic, partitions=3)
    settings = settings_for(infra, kafka_idle_pause_seconds=0.3, kafka_idle_pause_max_seconds=0.3)
    consumer = AIOKafkaConsumer(
        topic, **consumer_options(settings), group_id=f"idle-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest"
    )
    await consumer.start()
    fetches = 0
    send = consumer._client.send

    async def counting_send(node_id, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal fetches
        fetches += type(request).__name__.startswith("FetchRequest")
        return await send(node_id, request, *args, **kwargs)

    consumer._client.send = counting_send  # type: ignore[method-assign]
    try:
        while not consumer.assignment():
            await poll(consumer, settings)
        fetches = 0
        for _ in range(10):
            assert await poll(consumer, settings) == {}
        # about one per wake-up (a slow machine's poll may span a second fetch); the fault was ten each
        assert fetches <= 4 * 10, f"{fetches} fetches in 10 idle polls"

        consumer.pause(*consumer.assignment())
        with timers_scheduled() as timers:
            await asyncio.sleep(2)
        fetcher = sum(n for where, n in timers.items() if "aiokafka/consumer/fetcher.py" in where)
        assert fetcher <= 1, f"the paused consumer's fetcher woke {fetcher} times in 2 s: {timers}"
    finally:
        await consumer.stop()


async def test_a_consumer_handling_a_batch_does_not_fetch_the_partitions_it_has_read_to_the_end(
    infra, monkeypatch
) -> None:
    # The local broker answers an empty fetch at once: while a batch was handled, aiokafka's fetcher asked
    # it again and again about every partition with nothing left (hundreds of fetches a second, most of the
    # auditor's CPU during a backlog). Events that come meanwhile are handled after the batch.
    busy, empty = f"test.busy-{uuid.uuid4().hex[:8]}", f"test.empty-{uuid.uuid4().hex[:8]}"
    await create_topics(infra.bootstrap, busy, busy + ".dlq")
    await create_topics(infra.bootstrap, empty, partitions=3)
    settings = settings_for(infra)
    publisher = KafkaPublisher(settings, CODEC, load_topics())
    await publisher.start()
    for n in range(20):
        await (await publisher.send_raw(busy, "g1", *_encoded(revoked(f"r{n}"))))
    fetches = 0
    send = AIOKafkaClient.send

    async def counting_send(client, node_id, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal fetches
        fetches += type(request).__name__.startswith("FetchRequest")
        return await send(client, node_id, request, *args, **kwargs)

    monkeypatch.setattr(AIOKafkaClient, "send", counting_send)
    handled: list[str] = []
    during: list[int] = []

    async def handler(events: list[Event]) -> dict[str, str]:
        if not handled:
            at = fetches
            for n in range(5):  # arrive while the first batch is handled
                await (await publisher.send_raw(busy, "g1", *_encoded(revoked(f"late{n}"))))
            await asyncio.sleep(1.0)
            during.append(fetches - at)
        handled.extend(e.payload["reason"] for e in events)
        return {}

    consumer = EventConsumer(
        group=f"group-{uuid.uuid4().hex[:6]}",
        topics=[busy, empty],
        handlers={},
        codec=CODEC,
        publisher=publisher,
        processed=None,  # type: ignore[arg-type]  # a batch handler de-duplicates by itself
        settings=settings,
        batch_handler=handler,
    )
    task = asyncio.create_task(consumer.run())
    try:
        for _ in range(200):
            if len(handled) >= 25:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await publisher.stop()
    assert during and during[0] <= 3, f"{during[0]} fetches while a batch was handled for 1 s"
    assert sorted(handled) == sorted([f"r{n}" for n in range(20)] + [f"late{n}" for n in range(5)])


def _encoded(event: Event) -> tuple[bytes, list[tuple[str, bytes]]]:
    return CODEC.encode(event.event_type, event.payload), event.headers()
