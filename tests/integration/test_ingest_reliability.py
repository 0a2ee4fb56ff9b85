"""Ingestion survives kill -9: the exchange is killed in the middle of a run and started again;
the stored records and the version history are those of an uninterrupted run — which, ingestion being
deterministic per subject (one key, one partition, in order), the test computes with the domain's own rule.
Poison messages in the middle of the stream are dead-lettered and everything after them is stored."""

import asyncio
import os
import random
import signal
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from common.codec import EventCodec
from common.kafka import KafkaPublisher
from common.policy import Role
from common.topics import ensure_topics, load_topics
from devstack.processes import start_infra, stop
from devstack.samples import catalog_published
from services.exchange.adapters.mongo import HISTORY, RECORDS
from tests.adapter_keys import register_adapter_key
from tests.integration.conftest import ServiceProcess, headers_of, read_topic, settings_for
from tests.integration.test_exchange import ITEMS, PROVIDER, adapter_for, enterprise
from tests.tokens import bearer

# `make test` runs it at 10k changes; `make test-full-size` (also in CI) at the full 200k.
CHANGES = int(os.environ.get("RELIABILITY_CHANGES", "10000"))


def workload(n: int, rng: random.Random) -> list[tuple[str, str, dict, int]]:
    """(operation, subject, fields, version) in send order: versions rise by 2, and now and then the skipped
    version arrives late (history only); one change in ten is a delete."""
    subjects = n // 4
    version = [0] * subjects
    late = [0] * subjects  # the skipped version last sent late: each change is sent once
    sent = []
    for i in range(n):
        s = rng.randrange(subjects)
        key = enterprise(100000 + s)
        if version[s] >= 2 and late[s] != version[s] - 1 and rng.random() < 0.05:
            late[s] = version[s] - 1
            sent.append(("UPSERT", key, {"统一社会信用代码": key, "企业名称": f"迟到{i}"}, version[s] - 1))
            continue
        version[s] += 2
        if rng.random() < 0.1:
            sent.append(("DELETE", key, {}, version[s]))
        else:
            sent.append(
                ("UPSERT", key, {"统一社会信用代码": key, "企业名称": f"企业{i}", "注册资本": float(i)}, version[s])
            )
    return sent


def expected(sent: list[tuple[str, str, dict, int]]) -> tuple[dict[str, tuple[int, bool, dict]], dict[str, int]]:
    """Final records (subject → version, deleted, fields) and how many changes per subject were applied."""
    final: dict[str, tuple[int, bool, dict]] = {}
    applied: dict[str, int] = {}
    for operation, key, values, version in sent:
        if key in final and version <= final[key][0]:
            continue
        final[key] = (version, operation == "DELETE", {} if operation == "DELETE" else values)
        applied[key] = applied.get(key, 0) + 1
    return final, applied


@pytest.mark.full_size
async def test_kill_9_in_the_middle_of_a_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    infra = start_infra(tmp_path / "infra")  # its own broker: restarted below
    services: list[ServiceProcess] = []
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
        await admin.start()
        await ensure_topics(admin, list(load_topics().values()))
        await admin.close()
        code = "101001/000777"
        publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
        await publisher.start()
        await publisher.publish("catalog.published", catalog_published(code, PROVIDER, ITEMS))
        await publisher.stop()
        await register_adapter_key(infra, "market-adapter", PROVIDER)
        database = f"reliability_{uuid.uuid4().hex[:8]}"
        options = {"mongo_database": database, "consumer_group_prefix": "reliability-"}
        first = ServiceProcess("exchange", infra, tmp_path, **options).start()
        services.append(first)
        await first.wait_ready()
        await first.wait_status(f"/resources/{code}", 200, headers=bearer(PROVIDER, Role.DATA_ADMINISTRATOR))

        sent = workload(CHANGES, random.Random(20261125))
        poison_at = len(sent) // 2
        # The last tenth is sent only after the restart: whatever the first life managed to store, the
        # second must consume to finish the run.
        held_back = len(sent) - len(sent) // 10

        async def send(adapter, changes) -> None:
            for operation, key, values, version in changes:
                if operation == "DELETE":
                    await adapter.delete(code, key, version)
                else:
                    await adapter.upsert(code, key, values, version)

        async with adapter_for(infra, first) as adapter:
            await send(adapter, sent[:poison_at])
            poisoned = sent[poison_at][1]
            unknown = await adapter.upsert(code, poisoned, {"统一社会信用代码": poisoned, "法人": "张三"}, 10**9)
            raw = AIOKafkaProducer(bootstrap_servers=infra.bootstrap)
            await raw.start()
            await raw.send_and_wait("exchange.data-changes", b"not avro at all", key=b"poison")
            await raw.stop()
            await send(adapter, sent[poison_at:held_back])

        mongo = AsyncMongoClient(infra.mongo_uri)
        db = mongo[database]
        while await db[HISTORY].estimated_document_count() < CHANGES // 3:
            await asyncio.sleep(0.5)
        first.signal(signal.SIGKILL)
        first.wait_exit(10)
        stored_at_kill = await db[HISTORY].estimated_document_count()

        # Only the service restarts, never the broker (which never expires a member killed with SIGKILL):
        # the new process takes the old one's place in its group and goes on from the committed offsets.
        second = ServiceProcess("exchange", infra, tmp_path, **options).start()
        services.append(second)
        # Within 90 s: a transaction the killed process left open holds its writes until the database aborts
        # it, 60 s after its last statement (mongod's transactionLifetimeLimitSeconds, as the local server).
        await second.wait_ready(timeout=90)
        async with adapter_for(infra, second) as adapter:
            await send(adapter, sent[held_back:])
        deadline = time.monotonic() + 90
        while await db[HISTORY].estimated_document_count() <= stored_at_kill:
            assert time.monotonic() < deadline, "the restarted exchange is not consuming within 90 s"
            await asyncio.sleep(0.5)
        deadline = time.monotonic() + 1800
        while await db[HISTORY].estimated_document_count() < len(sent):
            assert time.monotonic() < deadline, "the restarted exchange did not finish the run"
            await asyncio.sleep(2)
        await asyncio.sleep(2)  # nothing more may arrive
        assert await db[HISTORY].count_documents({}) == len(sent)

        final, applied = expected(sent)
        history = await db[HISTORY].find({}, {"subject_key": 1, "applied": 1, "sequence": 1}).to_list()
        assert len(history) == len(sent) == len({h["_id"] for h in history})  # each change once
        per_subject: dict[str, int] = {}
        for h in history:
            if h["applied"]:
                per_subject[h["subject_key"]] = per_subject.get(h["subject_key"], 0) + 1
        assert per_subject == applied
        assert sorted(h["sequence"] for h in history if h["applied"]) == list(range(1, sum(applied.values()) + 1))
        stored = {
            r["subject_key"]: (r["source_version"], r["deleted"], r["fields"])
            async for r in db[RECORDS].find({"resource_code": code})
        }
        assert stored == final

        dead = await read_topic(
            infra.bootstrap,
            "exchange.data-changes.dlq",
            4,  # each at most twice (one restart): read them all, for 10 s
            timeout=10,
            where=lambda r: headers_of(r).get("event_id") == unknown or r.key == b"poison",
        )
        # Dead-lettering is at least once: a process killed between the DLQ's ack and its offset commit writes
        # the message again on restart, under the same source position. Two poison messages, two positions.
        by_source: dict[tuple[str, str, str], set[str]] = {}
        for r in dead:
            h = headers_of(r)
            by_source.setdefault((h["dlq.topic"], h["dlq.partition"], h["dlq.offset"]), set()).add(
                h["dlq.reason"].split(":")[0]
            )
        assert sorted(reason for reasons in by_source.values() for reason in reasons) == ["rejected", "undecodable"]
        await mongo.close()
    finally:
        for service in services:
            service.stop()
        stop(infra.procs)
