"""A service outlives its broker and database: it stays up, says why it is not ready, recovers by itself
when they return, and still stops within 10 s on SIGTERM while they are away."""

import signal
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from common.codec import EventCodec
from common.events import Event
from common.identifiers import citizen_id_check_character
from common.kafka import KafkaPublisher
from common.policy import MachineKind, Role
from common.topics import load_topics
from devstack.processes import start, stop, wait_port
from devstack.samples import catalog_published
from tests.integration.conftest import ServiceProcess, settings_for, start_infra
from tests.tokens import bearer, token


@pytest.fixture
def own_infra(tmp_path):
    """A broker and database of this test's own, so stopping them disturbs no other test."""
    running = start_infra(tmp_path / "own")
    yield running
    stop(running.procs)


ADAPTER = token("P1", machine=MachineKind.ADAPTER)


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
    await publisher.publish("catalog.published", catalog_published("101001/000001", "P1", items))
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
        "exchange.data-changes", Event("DataChanged", "101001/000001", change, "adapter", credentials=ADAPTER)
    )
    await publisher.stop()
    found = await exchange.wait_status(f"/resources/101001/000001/records/{subject}", 200, timeout=30, headers=admin)
    assert found["fields"] == {"公民身份号码": subject, "name": "张三"}

    stop([kafka])
    await exchange.wait_status("/readyz", 503, timeout=30)
    assert stop_within(exchange, 10) < 10


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
