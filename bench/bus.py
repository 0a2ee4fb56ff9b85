"""The bus: 200k Avro data-change events produced and consumed through the local broker, by the project's
codec and plumbing (KafkaPublisher, EventConsumer with its idempotency record in MongoDB) against raw
aiokafka moving the same pre-encoded bytes, in the same run."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.report import write_result
from common.codec import EventCodec
from common.events import Event
from common.kafka import EventConsumer, KafkaPublisher
from common.mongo import MongoProcessedEvents, connect, ensure_indexes
from common.settings import ServiceSettings
from common.topics import TopicSpec

PARTITIONS = 6
CHUNK = 2000  # events in flight before waiting for acks, on both paths
PRODUCER_OPTIONS = {"enable_idempotence": True, "acks": "all", "linger_ms": 5, "max_batch_size": 256 * 1024}


def payloads(n: int) -> list[dict]:
    now = datetime.now(UTC)
    return [
        {
            "change_id": uuid.uuid4().hex,
            "resource_code": f"101001/{i % 50:06d}",
            "provider_code": "11360800MB1234567Y",
            "operation": "DELETE" if i % 10 == 0 else "UPSERT",
            "subject_key": f"91360800MA{i:07d}X",
            "fields": {
                "name": f"吉安市某某科技有限公司{i}",
                "legal_person": "张三",
                "registered_capital": 1_000_000 + i,
                "established": "2015-06-01",
                "address": "江西省吉安市吉州区某某路88号",
                "business_scope": "软件开发；信息技术咨询服务",
                "status": "存续",
                "industry": "I65",
                "employees": i % 300,
                "listed": False,
                "score": 87.5,
                "phone": None,
            },
            "source_version": i,
            "changed_at": now,
        }
        for i in range(n)
    ]


async def create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1), NewTopic(name + ".dlq", PARTITIONS, 1)])
    finally:
        await admin.close()


async def raw_round(bootstrap: str, values: list[bytes], keys: list[bytes]) -> tuple[float, float]:
    topic = f"bench.raw-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_OPTIONS)
    await producer.start()
    started = time.perf_counter()
    for i in range(0, len(values), CHUNK):
        futures = [
            await producer.send(topic, v, key=k)
            for v, k in zip(values[i : i + CHUNK], keys[i : i + CHUNK], strict=True)
        ]
        await asyncio.gather(*futures)
    produced = time.perf_counter() - started
    await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
    )
    started, seen = time.perf_counter(), 0  # both paths include start-up and joining the group
    await consumer.start()
    while seen < len(values):
        batches = await consumer.getmany(timeout_ms=500, max_records=500)
        for tp, records in batches.items():
            seen += len(records)
            await consumer.commit({tp: records[-1].offset + 1})
    consumed = time.perf_counter() - started
    await consumer.stop()
    return produced, consumed


async def project_round(settings: ServiceSettings, codec: EventCodec, items: list[dict]) -> tuple[float, float]:
    topic = f"bench.project-{uuid.uuid4().hex[:8]}"
    await create_topic(settings.kafka_bootstrap_servers, topic)
    spec = TopicSpec(topic, PARTITIONS, "delete", ("DataChanged",), 604800000)
    publisher = KafkaPublisher(settings, codec, {topic: spec, topic + ".dlq": spec.dead_letter()})
    await publisher.start()
    started = time.perf_counter()
    for i in range(0, len(items), CHUNK):
        events = [Event("DataChanged", p["resource_code"], p, "bench") for p in items[i : i + CHUNK]]
        await publisher.publish_many(topic, events)
    produced = time.perf_counter() - started

    client = connect(settings)
    db = client[settings.mongo_database]
    await ensure_indexes(db)
    done = asyncio.Event()
    count = 0

    async def handle(_event: Event) -> None:
        nonlocal count
        count += 1
        if count == len(items):
            done.set()

    consumer = EventConsumer(
        group=f"project-{topic}",
        topics=[topic],
        handlers={"DataChanged": handle},
        codec=codec,
        publisher=publisher,
        processed=MongoProcessedEvents(db),
        settings=settings,
    )
    started = time.perf_counter()
    task = asyncio.create_task(consumer.run())
    await done.wait()
    consumed = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await publisher.stop()
    await client.close()
    return produced, consumed


async def run(bootstrap: str, mongo_uri: str, events: int, rounds: int = 2) -> None:
    codec = EventCodec.from_folder()
    items = payloads(events)
    started = time.perf_counter()
    values = [codec.encode("DataChanged", p) for p in items]
    encode_us = (time.perf_counter() - started) / events * 1e6
    started = time.perf_counter()
    for value in values:
        codec.decode(value)
    decode_us = (time.perf_counter() - started) / events * 1e6
    keys = [p["resource_code"].encode() for p in items]
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, mongo_uri=mongo_uri, mongo_database="bench_bus")
    raw, project = [], []
    for _ in range(rounds):  # alternate so that drift of a noisy machine hits both paths alike
        raw.append(await raw_round(bootstrap, values, keys))
        project.append(await project_round(settings, codec, items))
    raw_p, raw_c = min(r[0] for r in raw), min(r[1] for r in raw)
    pro_p, pro_c = min(r[0] for r in project), min(r[1] for r in project)
    details = {
        "events": events,
        "rounds": rounds,
        "raw_produce_per_s": round(events / raw_p),
        "raw_consume_per_s": round(events / raw_c),
        "project_produce_per_s": round(events / pro_p),
        "project_consume_per_s": round(events / pro_c),
        "codec_encode_us_per_event": round(encode_us, 1),
        "codec_decode_us_per_event": round(decode_us, 1),
        "raw_us_per_event": round((raw_p + raw_c) / events * 1e6, 1),
        "project_path": "KafkaPublisher (Avro single-object encoding, headers, idempotent acks=all) + EventConsumer "
        "(decode, idempotency check and record in MongoDB per batch, commit after handling)",
        "raw_path": "AIOKafkaProducer (same settings) and AIOKafkaConsumer on pre-encoded bytes, commit per batch",
    }
    value, baseline = events / (pro_p + pro_c), events / (raw_p + raw_c)
    write_result(
        "bus",
        metric="events produced and consumed per second",
        unit="events/s",
        value=value,
        baseline_name="raw aiokafka, pre-encoded bytes",
        baseline_value=baseline,
        goal=">= 70% of raw",
        met=value >= 0.7 * baseline,
        details=details,
    )
