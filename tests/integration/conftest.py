"""Integration tests run against a real Kafka-protocol broker and MongoDB-wire server that this session
starts on free ports (its own data folders), and stops at the end."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from common.settings import ServiceSettings
from common.topics import load_topics
from devstack.processes import ROOT, Infra, free_port, start_infra, stop
from tests.tokens import JWKS_JSON

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    running = start_infra(tmp_path_factory.mktemp("infra"))
    yield running
    stop(running.procs)


@pytest.fixture
def own_infra(tmp_path: Path) -> Iterator[Infra]:
    """A broker and database of the test's own, so stopping or killing them disturbs no other test."""
    running = start_infra(tmp_path / "own")
    yield running
    stop(running.procs)


@pytest.fixture(scope="session")
async def topics(infra: Infra) -> dict:
    specs = load_topics()
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
    await admin.start()
    try:
        from common.topics import ensure_topics

        await ensure_topics(admin, list(specs.values()))
    finally:
        await admin.close()
    return specs


def settings_for(infra: Infra, **overrides: object) -> ServiceSettings:
    values = {
        "kafka_bootstrap_servers": infra.bootstrap,
        "mongo_uri": infra.mongo_uri,
        "mongo_database": f"test_{uuid.uuid4().hex[:10]}",
        "consumer_retry_backoff_seconds": 0.05,
        "outbox_poll_seconds": 0.1,
    } | overrides
    return ServiceSettings(**values)


async def create_topics(bootstrap: str, *names: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20.0, where=None) -> list:
    """Records of `topic` from the beginning until `expected` matching ones arrived (or the timeout)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                found += [r for r in records if where is None or where(r)]
    finally:
        await consumer.stop()
    return found


def headers_of(record) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


class ServiceProcess:
    """One service run as `python -m services.<name>`, exactly as `make run` runs it."""

    def __init__(self, name: str, infra: Infra, folder: Path, **env: str) -> None:
        self.name = name
        self.port = free_port()
        prefix = name.upper() + "_"
        own = {
            f"{prefix}HTTP_PORT": str(self.port),
            f"{prefix}KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
            f"{prefix}MONGO_URI": infra.mongo_uri,
            f"{prefix}OUTBOX_POLL_SECONDS": "0.1",
            f"{prefix}KAFKA_IDLE_PAUSE_MAX_SECONDS": "1",  # flows through several services wait less
            f"{prefix}CONSUMER_RETRY_BACKOFF_SECONDS": "0.05",
            f"{prefix}AUTH_JWKS": JWKS_JSON,
            # Each process its own consumer groups: the local broker never expires a member killed with
            # SIGKILL, so a later process could not join a group one of them left that way (nor one of
            # a process whose port it happens to reuse).
            f"{prefix}CONSUMER_GROUP_PREFIX": f"test{uuid.uuid4().hex[:10]}-",
        }
        self.env = own | {prefix + k.upper(): v for k, v in env.items()}
        self.group_prefix = self.env[f"{prefix}CONSUMER_GROUP_PREFIX"]
        self.log = folder / f"{name}-{self.port}.log"
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=ROOT,
                start_new_session=True,
            )
        return self

    async def wait_ready(self, timeout: float = 60) -> dict:
        return await self.wait_status("/readyz", 200, timeout)

    async def wait_status(self, path: str, status: int, timeout: float = 60, headers: dict | None = None) -> dict:
        deadline = time.monotonic() + timeout
        body: dict = {}
        async with httpx.AsyncClient(base_url=self.url, timeout=5, headers=headers) as client:
            while time.monotonic() < deadline:
                assert self.popen and self.popen.poll() is None, f"{self.name} exited: {self.log.read_text()[-2000:]}"
                try:
                    response = await client.get(path)
                    body = response.json()
                    if response.status_code == status:
                        return body
                except httpx.HTTPError:
                    pass
                except ValueError:  # not the service's JSON: not up yet, or someone else's server on the port
                    body = {"not json": response.text[:200], "status": response.status_code}
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name}{path} not {status} within {timeout}s; last: {body}")

    def signal(self, sig: int) -> None:
        assert self.popen
        os.killpg(self.popen.pid, sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.popen
        return self.popen.wait(timeout)

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)


async def skip_backlog(infra: Infra, group: str, topic: str) -> None:
    """Commit `group`'s offsets on `topic` at its end, before the group's service first starts: a new service
    then reads only what its test sends, not the backlog earlier tests of this session left on the topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit({tp: end for tp, end in ends.items()})
    finally:
        await consumer.stop()


@pytest.fixture
async def services(infra: Infra, topics: dict, tmp_path: Path) -> AsyncIterator[list[ServiceProcess]]:
    """Collects the service processes a test starts and stops them afterwards."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        service.stop()
