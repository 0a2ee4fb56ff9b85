"""The auditor as deployed: a `trail` process (REST facade and the trail's consumer) beside an `oversight`
process (the oversight's consumer and the relay of auditor.findings), on one database and one broker. Each
does its own part once; the findings raised over the trail process's API reach auditor.findings through the
oversight's relay."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from datetime import date

import httpx
from pymongo import AsyncMongoClient

from common.codec import EventCodec
from common.kafka import KafkaPublisher
from common.policy import Role
from common.topics import load_topics
from services.auditor.oversight.adapters.mongo import DAILY_USES
from services.auditor.oversight.ports import OBSERVED_TOPICS
from services.auditor.ports import AUDITED_TOPICS
from tests.integration.conftest import ServiceProcess, headers_of, read_topic, settings_for, skip_backlog
from tests.integration.test_auditor_oversight import access, decision_overdue
from tests.tokens import bearer

ACCESSES = 30
STREAM_PART = 100  # the killed processes' stream, published a part at a time


async def _eventually(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)


async def _start_both(infra, tmp_path, services, settings, **env: str) -> tuple[ServiceProcess, ServiceProcess]:
    """A trail and an oversight process on one database, ready, sharing one pair of consumer groups (as the two
    Deployments do) that start past what other tests left on the topics."""
    prefix = f"test{uuid.uuid4().hex[:10]}-"
    common = {"mongo_database": settings.mongo_database, "today": "2026-11-02", "consumer_group_prefix": prefix}
    trail = ServiceProcess("auditor", infra, tmp_path, role="trail", **common, **env)
    oversight = ServiceProcess("auditor", infra, tmp_path, role="oversight", **common, **env)
    for group, names in (("auditor-oversight", OBSERVED_TOPICS), ("auditor-trail", AUDITED_TOPICS)):
        for topic in names:
            await skip_backlog(infra, f"{prefix}{group}", topic)
    services.append(trail.start())
    services.append(oversight.start())
    await trail.wait_ready()
    await oversight.wait_ready()
    return trail, oversight


async def test_the_trail_and_the_oversight_run_as_two_processes_each_doing_its_part_once(
    infra, topics, services, tmp_path
) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    provider, consumer, code = f"P{tag}", f"C{tag}", f"105{tag[:3]}/{tag}"
    settings = settings_for(infra)
    trail, oversight = await _start_both(infra, tmp_path, services, settings)

    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        await publisher.publish_many(
            "exchange.data-accesses", [access(code, provider, consumer, date(2026, 10, 20)) for _ in range(ACCESSES)]
        )
        late = decision_overdue(f"R{tag}", code, provider, consumer, date(2026, 10, 23), date(2026, 10, 22))
        await publisher.publish("exchange.share-events", late)
    finally:
        await publisher.stop()

    auditor = bearer("IT", Role.AUDITOR, subject="auditor")
    operator = bearer("IT", Role.IT_OFFICE_OPERATOR, subject="it-operator")
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    db = mongo[settings.mongo_database]
    try:
        async with httpx.AsyncClient(base_url=trail.url, timeout=30, headers=auditor) as client:

            async def in_trail() -> int:
                query = {"resource": code, "action": "data.access", "limit": 100}
                page = (await client.get("/trail/entries", params=query)).json()
                return page["total"] if page["total"] >= ACCESSES else 0

            assert await _eventually(in_trail) == ACCESSES  # appended once, by the trail process

            async def uses() -> int:
                counted = [sum(d["uses"].values()) async for d in db[DAILY_USES].find({"department_code": provider})]
                return sum(counted) if sum(counted) >= ACCESSES else 0

            assert await _eventually(uses) == ACCESSES  # projected once, by the oversight process

            # the late decision's finding, raised and escalated by the oversight, and one raised over the trail
            # process's API (which relays nothing): all on auditor.findings, by the oversight's relay
            body = {
                "department_code": provider,
                "category": "USE_OUTSIDE_PURPOSE",
                "matter": f"grant:G{tag}",
                "description": "用于营销",
                "evidence": "举报材料 2026-10-30",
                "request_id": f"req-{tag}",
            }
            raised = await client.post("/findings", json=body, headers=operator)
            assert raised.status_code == 201, raised.text
        events = await read_topic(infra.bootstrap, "auditor.findings", 3, where=lambda r: r.key == provider.encode())
        assert sorted(headers_of(r)["event_type"] for r in events) == [
            "AuditFindingEscalated",
            "AuditFindingRaised",
            "AuditFindingRaised",
        ]
        # the oversight process serves health and metrics only
        async with httpx.AsyncClient(base_url=oversight.url, timeout=30, headers=auditor) as client:
            assert (await client.get("/trail/entries")).status_code == 404
            assert (await client.get("/findings")).status_code == 404
            assert (await client.get("/metrics")).status_code == 200
        # nothing more comes: each consumer did its part once
        await asyncio.sleep(2)
        assert await uses() == ACCESSES
        async with httpx.AsyncClient(base_url=trail.url, timeout=30, headers=auditor) as client:
            assert await in_trail() == ACCESSES
    finally:
        await mongo.close()


async def test_both_processes_killed_9_mid_stream_lose_and_double_nothing(infra, topics, services, tmp_path) -> None:
    """Killed with SIGKILL while each is part-way through the accesses, and started again (the same groups, as a
    restarted pod has): every access is in the trail once, with the chain intact, and counted once."""
    tag = uuid.uuid4().hex[:6].upper()
    provider, consumer, code = f"K{tag}", f"C{tag}", f"106{tag[:3]}/{tag}"
    total = 3000
    settings = settings_for(infra)
    batches = {"trail_batch_size": "200", "oversight_batch_size": "200"}
    trail, oversight = await _start_both(infra, tmp_path, services, settings, **batches)

    auditor = bearer("IT", Role.AUDITOR, subject="auditor")
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    db = mongo[settings.mongo_database]

    async def in_trail() -> int:
        query = {"resource": code, "action": "data.access", "limit": 1}
        async with httpx.AsyncClient(base_url=trail.url, timeout=30, headers=auditor) as client:
            return (await client.get("/trail/entries", params=query)).json()["total"]

    async def uses() -> int:
        return sum([sum(d["uses"].values()) async for d in db[DAILY_USES].find({"department_code": provider})])

    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        # the accesses arrive as a stream over some seconds (the trail takes thousands a second: published at once,
        # they could all be in before the kill); both are killed as soon as both have begun, part-way through it
        async def stream() -> None:
            for _ in range(total // STREAM_PART):
                part = [access(code, provider, consumer, date(2026, 10, 20)) for _ in range(STREAM_PART)]
                await publisher.publish_many("exchange.data-accesses", part)
                await asyncio.sleep(0.1)

        streaming = asyncio.create_task(stream())
        assert await _eventually(lambda: _both_started(in_trail, uses), timeout=60)
        seen = (await in_trail(), await uses())
        for process in (trail, oversight):
            process.signal(signal.SIGKILL)
            process.wait_exit(10)
        assert not streaming.done(), seen  # killed before the last access was even published
        await streaming
        assert seen[0] < total and seen[1] < total, seen
        trail.start()
        oversight.start()
        # within 90 s: a transaction a killed process left open holds its writes until the database aborts it,
        # 60 s after its last statement (docs/architecture.md)
        await trail.wait_ready(timeout=90)
        await oversight.wait_ready(timeout=90)

        async def all_in() -> bool:
            return await in_trail() >= total and await uses() >= total

        assert await _eventually(all_in, timeout=180)
        await asyncio.sleep(2)  # nothing more comes
        assert (await in_trail(), await uses()) == (total, total)
        async with httpx.AsyncClient(base_url=trail.url, timeout=60, headers=auditor) as client:
            report = (await client.get("/trail/verify")).json()
        assert report["intact"], report
    finally:
        await publisher.stop()
        await mongo.close()


async def _both_started(*counts) -> bool:
    return all([await count() > 0 for count in counts])
