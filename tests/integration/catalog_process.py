"""A catalog process for integration tests, started the one way: its own database, the departments it is to
know registered as the directory would announce them, ready before the test goes on."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from common.codec import EventCodec
from common.events import Event
from common.kafka import KafkaPublisher
from common.topics import load_topics
from devstack.processes import Infra
from tests.integration.conftest import ServiceProcess, settings_for


async def register_departments(infra: Infra, names: dict[str, str]) -> None:
    """Publish `DepartmentRegistered` for each department (credit code → name), as the directory does."""
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        for code, name in names.items():
            registered = {"department_code": code, "name": name, "level": "CITY", "parent_code": None}
            await publisher.publish("directory.events", Event("DepartmentRegistered", code, registered, "directory"))
    finally:
        await publisher.stop()


async def start_catalog(
    infra: Infra,
    services: list[ServiceProcess] | None,
    folder: Path,
    names: dict[str, str],
    database: str | None = None,
    **env: str,
) -> ServiceProcess:
    """A running, ready catalog on a database of its own (or `database`, seeded by the caller), told of the
    departments in `names` (credit code → name). Appended to `services` (stopped at the test's end) if given."""
    catalog = ServiceProcess("catalog", infra, folder, mongo_database=database or f"cat_{uuid.uuid4().hex[:8]}", **env)
    catalog.start()
    if services is not None:
        services.append(catalog)
    await register_departments(infra, names)
    await catalog.wait_ready()
    await departments_known(infra, catalog.env["CATALOG_MONGO_DATABASE"], set(names))
    return catalog


async def departments_known(infra: Infra, database: str, codes: set[str], timeout: float = 30) -> None:
    """Wait until the catalog has taken in the directory's events about these departments (names in answers,
    sources of dictionary elements and providers in imports are checked against them)."""
    from pymongo import AsyncMongoClient

    from services.catalog.adapters.mongo import DEPARTMENTS

    mongo: AsyncMongoClient = AsyncMongoClient(infra.mongo_uri)
    try:
        deadline = time.monotonic() + timeout
        while await mongo[database][DEPARTMENTS].count_documents({"_id": {"$in": sorted(codes)}}) < len(codes):
            assert time.monotonic() < deadline, f"the catalog never learnt of all of {sorted(codes)}"
            await asyncio.sleep(0.1)
    finally:
        await mongo.close()
