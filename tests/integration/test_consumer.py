"""The consumer against the real broker and database: poison messages, retries, duplicates, commits."""

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from common.codec import EventCodec
from common.events import Event
from common.kafka import EventConsumer, KafkaPublisher
from common.mongo import MongoProcessedEvents, connect
from common.topics import load_topics
from tests.integration.conftest import create_topics, headers_of, read_topic, settings_for

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
        handled.append(event.event_id)

    first, failing, last = revoked("expired"), revoked("explode"), revoked("ended early")
    messages = [
        (CODEC.encode(first.event_type, first.payload), first.headers()),
        (b'{"not": "avro"}', [("event_id", b"x1")]),
        (CODEC.encode(failing.event_type, failing.payload), failing.headers()),
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
        dead = await read_topic(infra.bootstrap, topic + ".dlq", expected=2)
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
    reasons = {headers_of(r)["dlq.offset"]: headers_of(r) for r in dead}
    assert set(reasons) == {"1", "2"}
    assert reasons["1"]["dlq.reason"].startswith("undecodable")
    assert reasons["2"]["dlq.reason"] == "handler failed: RuntimeError: boom"
    assert reasons["2"]["dlq.attempts"] == "3"
    assert reasons["2"]["dlq.topic"] == topic and reasons["2"]["dlq.group"] == group
    assert reasons["2"]["event_id"] == failing.event_id  # original headers kept
    assert {r.value for r in dead} == {messages[1][0], messages[2][0]}  # original bytes kept
    assert committed == len(messages)  # committed past the poison once it was dead-lettered


async def test_a_restarted_consumer_does_not_handle_an_event_twice(infra, topics) -> None:
    topic = f"test.idem-{uuid.uuid4().hex[:8]}"
    await create_topics(infra.bootstrap, topic, topic + ".dlq")
    settings = settings_for(infra)
    publisher = KafkaPublisher(settings, CODEC, load_topics())
    await publisher.start()
    client = connect(settings)
    processed = MongoProcessedEvents(client[settings.mongo_database])
    event = revoked("expired")
    handled: list[str] = []

    async def handler(e: Event) -> None:
        handled.append(e.event_id)

    async def consume_once(group: str) -> None:
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
        await asyncio.sleep(3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        await (await publisher.send_raw(topic, "g1", CODEC.encode(event.event_type, event.payload), event.headers()))
        await consume_once("ledger")
        # The same event delivered again later (a producer retry, a relay resend) to the same group:
        await (await publisher.send_raw(topic, "g1", CODEC.encode(event.event_type, event.payload), event.headers()))
        await consume_once("ledger")
        assert handled == [event.event_id]
    finally:
        await publisher.stop()
        await client.close()
