"""The auditor's faust worker against the real broker and database: counts per consumer department,
poison messages to the dead-letter topic, and the counts served by the auditor's REST facade."""

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import httpx

from common.codec import EventCodec
from common.events import Event
from common.kafka import KafkaPublisher
from common.policy import Role
from common.topics import load_topics
from devstack.processes import ROOT
from tests.integration.conftest import ServiceProcess, free_port, headers_of, read_topic, settings_for
from tests.tokens import bearer


def access(consumer: str, result: str = "SERVED") -> Event:
    payload = {
        "access_id": uuid.uuid4().hex,
        "resource_code": "101001/000001",
        "provider_code": "P",
        "consumer_code": consumer,
        "grant_id": None,
        "channel": "API",
        "purpose": "企业开办",
        "record_count": 3,
        "accessed_by": "officer",
        "accessed_at": datetime.now(UTC),
        "result": result,
    }
    return Event("DataAccessed", "101001/000001", payload, "exchange")


async def test_data_accesses_are_counted_per_consumer_department(infra, topics, services, tmp_path) -> None:
    settings = settings_for(infra)
    env = {
        **os.environ,
        "AUDITOR_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
        "AUDITOR_MONGO_URI": infra.mongo_uri,
        "AUDITOR_MONGO_DATABASE": settings.mongo_database,
        "AUDITOR_STREAM_WEB_PORT": str(free_port()),
    }
    log = tmp_path / "stream.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "services.auditor.stream"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    auditor = ServiceProcess("auditor", infra, tmp_path, mongo_database=settings.mongo_database).start()
    services.append(auditor)
    a, b = f"A{uuid.uuid4().hex[:6]}", f"B{uuid.uuid4().hex[:6]}"
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        # a refused call is in the trail but is no use of shared data
        await publisher.publish_many(
            "exchange.data-accesses", [access(a), access(b), access(a, "REFUSED"), access(a), access(b, "NOT_FOUND")]
        )
        marker = uuid.uuid4().hex.encode()
        await (await publisher.send_raw("exchange.data-accesses", "x", b"not avro " + marker, []))
        await publisher.publish("exchange.data-accesses", access(a))
        await auditor.wait_ready()
        counts: dict = {}
        async with httpx.AsyncClient(base_url=auditor.url, headers=bearer("IT", Role.AUDITOR)) as client:
            for _ in range(300):
                counts = (await client.get("/evaluation/data-accesses")).json()
                if counts.get(a) == 3 and counts.get(b) == 1:
                    break
                await asyncio.sleep(0.2)
        assert (counts.get(a), counts.get(b)) == (3, 1), log.read_text()[-3000:]
        dead = await read_topic(infra.bootstrap, "exchange.data-accesses.dlq", 1, where=lambda r: marker in r.value)
        assert headers_of(dead[0])["dlq.reason"].startswith("undecodable")

        # Idle, the worker stops fetching for a while (common.streams); what comes then is still counted.
        await asyncio.sleep(4)
        assert worker.poll() is None, log.read_text()[-3000:]
        await publisher.publish("exchange.data-accesses", access(b))
        async with httpx.AsyncClient(base_url=auditor.url, headers=bearer("IT", Role.AUDITOR)) as client:
            for _ in range(150):
                if (await client.get("/evaluation/data-accesses")).json().get(b) == 2:
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"an access after an idle spell was not counted: {log.read_text()[-3000:]}")
    finally:
        await publisher.stop()
        worker.terminate()
        assert worker.wait(15) is not None
