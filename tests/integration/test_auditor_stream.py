"""The auditor's faust worker against the real broker and database: counts per consumer department,
poison messages to the dead-letter topic, and the counts served by the auditor's REST facade."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from common.codec import EventCodec
from common.events import Event
from common.kafka import KafkaPublisher
from common.policy import Role
from common.topics import load_topics
from devstack.processes import ROOT
from services.auditor.adapters.mongo import ACCESS_COUNTS
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
        async with httpx.AsyncClient(base_url=auditor.url, headers=bearer("IT", Role.AUDITOR), timeout=30) as client:
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
        async with httpx.AsyncClient(base_url=auditor.url, headers=bearer("IT", Role.AUDITOR), timeout=30) as client:
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


def start_worker(infra, database: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "AUDITOR_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
        "AUDITOR_MONGO_URI": infra.mongo_uri,
        "AUDITOR_MONGO_DATABASE": database,
        "AUDITOR_STREAM_WEB_PORT": str(free_port()),
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.auditor.stream"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)


async def projected(mongo: AsyncMongoClient, database: str, department: str, count: int, log: Path) -> None:
    """Wait until the worker's projection says `count` accesses for `department`."""
    for _ in range(600):
        doc = await mongo[database][ACCESS_COUNTS].find_one({"_id": department})
        if doc is not None and doc["count"] == count:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{department} never reached {count} (last {doc}): {log.read_text()[-3000:]}")


async def test_the_stream_worker_restores_its_table_after_a_restart(infra, topics, tmp_path) -> None:
    database, department = f"test_stream_{uuid.uuid4().hex[:8]}", f"R{uuid.uuid4().hex[:6]}"
    log = tmp_path / "stream.log"
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    worker = start_worker(infra, database, log)
    try:
        await publisher.publish_many("exchange.data-accesses", [access(department) for _ in range(3)])
        await projected(mongo, database, department, 3, log)
        # Offsets committed: a restarted worker does not read those accesses again, so a count above 1
        # after the restart can only come from the table restored from its changelog.
        await committed_to_the_end(infra.bootstrap, "auditor-evaluation", log)
        stop_worker(worker)
        # The projection is only a copy: with it gone, the count can come back only from the table's
        # changelog, which the restarted worker reads before it counts again.
        await mongo[database][ACCESS_COUNTS].delete_many({})
        worker = start_worker(infra, database, log)
        await projected(mongo, database, department, 3, log)  # restored, and projected without a new access
        await publisher.publish("exchange.data-accesses", access(department))
        await projected(mongo, database, department, 4, log)  # and counted on from there, nothing twice
    finally:
        stop_worker(worker)
        await publisher.stop()
        await mongo.close()


async def committed_to_the_end(bootstrap: str, group: str, log: Path) -> None:
    """Wait until `group` has committed every partition it reads (the accesses and their repartition topic)
    up to the end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        for _ in range(600):  # faust commits every few seconds; a loaded machine stretches that
            committed = await admin.list_consumer_group_offsets(group)
            read = [
                tp for tp in committed if tp.topic in ("exchange.data-accesses", f"{group}-by-consumer-repartition")
            ]
            ends = await consumer.end_offsets(read) if read else {}
            if read and all(committed[tp].offset >= ends[tp] for tp in read):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{group} did not commit its offsets: {committed} {ends} {log.read_text()[-2000:]}")
    finally:
        await consumer.stop()
        await admin.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_the_idle_stream_worker_does_not_spin(infra, topics, tmp_path) -> None:
    database, department = f"test_stream_{uuid.uuid4().hex[:8]}", f"I{uuid.uuid4().hex[:6]}"
    log = tmp_path / "stream.log"
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    worker = start_worker(infra, database, log)
    try:
        await publisher.publish("exchange.data-accesses", access(department))
        await projected(mongo, database, department, 1, log)  # up, assigned and caught up
        await asyncio.sleep(6)  # the idle pause has grown to its longest (5 s)
        before, started = cpu_seconds(worker.pid), time.monotonic()
        await asyncio.sleep(15)
        share = (cpu_seconds(worker.pid) - before) / (time.monotonic() - started)
        # about half a core before fetching paused when idle; a few wake-ups a second cost well under 2%
        assert share < 0.02, f"the idle worker used {share:.1%} of a core"
        await publisher.publish("exchange.data-accesses", access(department))
        await projected(mongo, database, department, 2, log)  # and still counts what comes
    finally:
        stop_worker(worker)
        await publisher.stop()
        await mongo.close()
