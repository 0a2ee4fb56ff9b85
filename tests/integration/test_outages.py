"""A service outlives its broker and database: it stays up, says why it is not ready, recovers by itself
when they return, and still stops within 10 s on SIGTERM while they are away."""

import asyncio
import os
import signal
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote

import httpx
from pymongo import AsyncMongoClient

from common.codec import EventCodec
from common.events import Event
from common.identifiers import citizen_id_check_character
from common.kafka import KafkaPublisher
from common.policy import MachineKind, Role
from common.topics import load_topics
from devstack.processes import start, stop, wait_port
from devstack.samples import catalog_published
from services.exchange.sharing.adapters.grant_docs import GRANTS, grant_doc
from services.exchange.sharing.grants import Channel, Grant, RowScope
from tests.adapter_keys import register_adapter_key, signed
from tests.integration.conftest import ServiceProcess, read_topic, settings_for
from tests.tokens import bearer


def restart(proc, folder) -> None:
    start(proc, folder / "log", detach=False)
    wait_port(proc)


async def alive(service: ServiceProcess) -> bool:
    async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
        return (await client.get("/healthz")).status_code == 200


def stop_within(service: ServiceProcess, seconds: float) -> float:
    started = time.monotonic()
    service.signal(signal.SIGTERM)
    service.wait_exit(seconds)
    return time.monotonic() - started


async def test_broker_outage(own_infra, services, tmp_path) -> None:
    kafka = own_infra.procs[0]
    settings = settings_for(own_infra)
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    exchange = ServiceProcess("exchange", own_infra, tmp_path, mongo_database=settings.mongo_database).start()
    services.append(exchange)
    await exchange.wait_ready()

    stop([kafka])
    body = await exchange.wait_status("/readyz", 503, timeout=30)
    assert body["checks"]["kafka"].startswith("unreachable")
    assert body["checks"]["mongo"] == "ok"
    assert await alive(exchange)

    restart(kafka, own_infra.folder)
    await exchange.wait_ready(timeout=60)

    # The consumers work again: the catalog's entry and then a change published now are stored.
    await publisher.start()
    items = [{"name": "公民身份号码", "type": "string", "length": 18}, {"name": "name", "type": "string"}]
    entry = catalog_published("101001/000001", "P1", items)
    entry.payload["confidentiality_reviewed_on"] = date.today()  # so that the API channel may serve it
    await publisher.publish("catalog.published", entry)
    await register_adapter_key(own_infra, "p1-adapter", "P1")
    admin = bearer("P1", Role.DATA_ADMINISTRATOR)
    await exchange.wait_status("/resources/101001/000001", 200, timeout=30, headers=admin)
    subject = "36080219900101001"
    subject += citizen_id_check_character(subject)
    change = {
        "change_id": uuid.uuid4().hex,
        "resource_code": "101001/000001",
        "provider_code": "P1",
        "operation": "UPSERT",
        "subject_key": subject,
        "fields": {"公民身份号码": subject, "name": "张三"},
        "source_version": 1,
        "changed_at": datetime.now(UTC),
    }
    await publisher.publish(
        "exchange.data-changes", signed(Event("DataChanged", "101001/000001", change, "adapter"), "p1-adapter")
    )
    await publisher.stop()
    found = await exchange.wait_status(f"/resources/101001/000001/records/{subject}", 200, timeout=30, headers=admin)
    assert found["fields"] == {"公民身份号码": subject, "name": "张三"}
    # A consumer system's grant (written where the lifecycle keeps grants): the API channel serves it.
    await grant_to_consumer(own_infra, settings.mongo_database)
    query = f"/services/101001/000001/records/{subject}"
    assert (await exchange.wait_status(query, 200, timeout=30, headers=CONSUMER))["fields"]["name"] == "张三"

    stop([kafka])
    await exchange.wait_status("/readyz", 503, timeout=30)
    # An upload meanwhile is refused within seconds, saying why; it never hangs.
    other = "36080219900101002"
    other += citizen_id_check_character(other)
    csv = f"公民身份号码,name\n{other},李四\n".encode()
    async with httpx.AsyncClient(base_url=exchange.url, timeout=60, headers=admin) as client:
        started = time.monotonic()
        refused = await client.post("/resources/101001/000001/uploads", files={"file": ("r.csv", csv)})
        assert time.monotonic() - started < 20
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] and refused.json()["dependency"] == "kafka"
    # Nor does the API channel serve what it cannot record: its access event needs the broker.
    async with httpx.AsyncClient(base_url=exchange.url, timeout=60) as client:
        started = time.monotonic()
        unrecorded = await client.get(query, headers=CONSUMER)
        assert time.monotonic() - started < 10
    assert unrecorded.status_code == 503 and "张三" not in unrecorded.text
    assert unrecorded.json()["dependency"] == "kafka", unrecorded.text
    assert stop_within(exchange, 10) < 10


CONSUMER = bearer("C1", subject="c1-system", machine=MachineKind.CONSUMER_SYSTEM) | {
    "X-Grant-Id": "outage-grant",
    "X-Purpose": quote("核验"),
}


async def grant_to_consumer(infra, database: str) -> None:
    grant = Grant(
        grant_id="outage-grant",
        request_id=None,
        resource_code="101001/000001",
        provider_code="P1",
        consumer_code="C1",
        consumer_system="c1-system",
        items=("公民身份号码", "name"),
        scope=RowScope(),
        purpose="核验",
        channels=frozenset({Channel.API}),
        valid_from=date.today() - timedelta(days=1),
        valid_to=date.today() + timedelta(days=30),
        entry_version=1,
    )
    mongo = AsyncMongoClient(infra.mongo_uri)
    await mongo[database][GRANTS].insert_one(grant_doc(grant))
    await mongo.close()


async def test_database_outage(own_infra, services, tmp_path) -> None:
    mongo = own_infra.procs[1]
    auditor = ServiceProcess("auditor", own_infra, tmp_path).start()
    services.append(auditor)
    await auditor.wait_ready()

    stop([mongo])
    body = await auditor.wait_status("/readyz", 503, timeout=30)
    assert body["checks"]["mongo"].startswith("unreachable")
    assert body["checks"]["kafka"] == "ok"
    assert await alive(auditor)

    restart(mongo, own_infra.folder)
    await auditor.wait_ready(timeout=60)

    stop([mongo])
    await auditor.wait_status("/readyz", 503, timeout=30)
    assert stop_within(auditor, 10) < 10


def grant_revoked(n: int) -> Event:
    payload = {
        "grant_id": f"g{n}",
        "resource_code": "101001/000001",
        "consumer_code": "C1",
        "reason": "期满",
        "revoked_by": "admin",
    }
    return Event("GrantRevoked", f"g{n}", payload, producer="test")


async def trail_ids(auditor: ServiceProcess) -> list[str]:
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=auditor.url, timeout=10, headers=bearer("IT", Role.AUDITOR)) as client:
        while page := (await client.get("/trail", params={"after_sequence": len(ids), "limit": 1000})).json():
            ids += [entry["event_id"] for entry in page]
    return ids


async def test_services_killed_9_take_their_place_again_without_a_broker_restart(own_infra, tmp_path) -> None:
    # The same consumer groups before and after, as a restarted process of a deployment has. The local
    # broker never expires a member killed with SIGKILL: only static membership lets the new one in.
    services = [
        ServiceProcess(name, own_infra, tmp_path, consumer_group_prefix="").start()
        for name in ("catalog", "exchange", "notifier", "auditor")
    ]
    try:
        for service in services:
            await service.wait_ready(timeout=90)
        for service in services:
            service.signal(signal.SIGKILL)
            service.wait_exit(10)
            service.start()
            started = time.monotonic()
            await service.wait_ready(timeout=60)  # ready means every consumer has its partitions again
            assert time.monotonic() - started < 60

        # And they consume: the exchange learns a resource, the auditor records an event.
        publisher = KafkaPublisher(settings_for(own_infra), EventCodec.from_folder(), load_topics())
        await publisher.start()
        items = [{"name": "公民身份号码", "type": "string", "length": 18}]
        await publisher.publish("catalog.published", catalog_published("101001/000002", "P1", items))
        await publisher.publish("exchange.share-events", event := grant_revoked(0))
        await publisher.stop()
        exchange, auditor = services[1], services[3]
        admin = bearer("P1", Role.DATA_ADMINISTRATOR)
        await exchange.wait_status("/resources/101001/000002", 200, timeout=30, headers=admin)
        deadline = time.monotonic() + 30
        while event.event_id not in await trail_ids(auditor):
            assert time.monotonic() < deadline, "the restarted auditor did not record the event"
            await asyncio.sleep(0.5)
    finally:
        for service in services:
            service.stop()


async def test_a_database_killed_9_dead_letters_nothing_and_answers_503_meanwhile(own_infra, tmp_path) -> None:
    mongo = own_infra.procs[1]
    auditor = ServiceProcess("auditor", own_infra, tmp_path).start()
    try:
        await auditor.wait_ready()
        publisher = KafkaPublisher(settings_for(own_infra), EventCodec.from_folder(), load_topics())
        await publisher.start()
        before = [grant_revoked(n) for n in range(20)]
        await publisher.publish_many("exchange.share-events", before)

        os.killpg(mongo.pid, signal.SIGKILL)
        lines_before = len(auditor.log.read_text().splitlines())
        during = [grant_revoked(n) for n in range(20, 60)]
        await publisher.publish_many("exchange.share-events", during)
        deadline = time.monotonic() + 30
        while not (await auditor.wait_status("/readyz", 503))["checks"]["mongo"].startswith("unreachable"):
            assert time.monotonic() < deadline, "readiness did not report the database"
            await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=auditor.url, timeout=10, headers=bearer("IT", Role.AUDITOR)) as client:
            await client.get("/trail")  # the first call may wait for the driver's timeout
            started = time.monotonic()
            refused = await client.get("/trail")
            assert time.monotonic() - started < 1.5
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] and refused.json()["dependency"] == "mongo"
        await asyncio.sleep(20)  # an outage longer than every bounded retry would last

        restart(mongo, own_infra.folder)
        await auditor.wait_ready(timeout=60)
        expected = [e.event_id for e in before + during]
        deadline = time.monotonic() + 60
        while len(found := await trail_ids(auditor)) < len(expected):
            assert time.monotonic() < deadline, f"{len(found)} of {len(expected)} events in the trail"
            await asyncio.sleep(0.5)
        assert sorted(found) == sorted(expected)  # each once
        dead = await read_topic(own_infra.bootstrap, "exchange.share-events.dlq", 1, timeout=3)
        assert dead == []
        outage_lines = len(auditor.log.read_text().splitlines()) - lines_before
        assert outage_lines < 40, auditor.log.read_text()[-3000:]
        await publisher.stop()
    finally:
        auditor.stop()
