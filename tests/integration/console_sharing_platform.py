"""The console with the exchange behind it, for the sharing pages' integration and browser tests: the
directory, the exchange (its today fixed) and the console; a provider and a consumer department with a data
administrator each, an IT office with an operator; a published conditional entry shared by API and online
browse, and the provider's data of two enterprises of the city itself and two of a county."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from datashare_adapter.identifiers import credit_code_check_character

from common.events import Event
from common.policy import Role
from devstack.processes import Infra, free_port
from devstack.samples import catalog_published
from services.directory.demo_data import credit_code
from services.notifier.ports import DIRECTORY_EVENTS, RESOURCE_CHANGES, SUBSCRIBED
from tests.integration.conftest import ServiceProcess, skip_backlog
from tests.integration.test_sharing import ITEMS, publish
from tests.tokens import KEY, bearer

FILED_ON = "2026-09-30"  # the exchange's today: due 2026-10-20 (the National Day holiday not counted)
REQUEST_ID = re.compile(r"/requests/view\?id=([^&\"]+)")


@dataclass
class Sharing:
    console: ServiceProcess
    resource: str
    logins: dict[str, tuple[str, str]]  # (login, password) by name
    city: list[tuple[str, str]]  # (key, name) of the enterprises registered in the city itself (360800)
    county: list[tuple[str, str]]  # and of those registered in a county (360821)


def enterprise(region: str, serial: int) -> str:
    body = f"91{region}MA{serial:07d}"
    return body + credit_code_check_character(body)


@asynccontextmanager
async def sharing_platform(infra: Infra, folder: Path, with_notifier: bool = False) -> AsyncIterator[Sharing]:
    """`with_notifier`: a notifier too, which the console's inbox shows (the browser test's steps)."""
    database = f"csh_{uuid.uuid4().hex[:8]}"
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    directory = ServiceProcess("directory", infra, folder, mongo_database=f"{database}_d", signing_key=pem)
    exchange = ServiceProcess("exchange", infra, folder, mongo_database=f"{database}_x", sharing_today=FILED_ON)
    nowhere = f"http://127.0.0.1:{free_port()}"  # the catalog (and mostly the notifier) are not needed by these pages
    notifier = ServiceProcess("notifier", infra, folder, mongo_database=f"{database}_n") if with_notifier else None
    console = ServiceProcess(
        "console",
        infra,
        folder,
        directory_url=directory.url,
        exchange_url=exchange.url,
        catalog_url=nowhere,
        notifier_url=notifier.url if notifier else nowhere,
    )
    await skip_backlog(infra, f"{exchange.group_prefix}exchange-ingest", "exchange.data-changes")  # only ours
    if notifier is not None:  # it hears of this platform's events only, not the backlog earlier tests left
        for group, topics in {
            "notifier": SUBSCRIBED,
            "notifier-changes": [RESOURCE_CHANGES],
            "notifier-directory": [DIRECTORY_EVENTS],
        }.items():
            for topic in topics:
                await skip_backlog(infra, notifier.group_prefix + group, topic)
    running = [directory.start(), exchange.start(), console.start()]
    running += [notifier.start()] if notifier is not None else []
    try:
        number = uuid.uuid4().int
        provider, consumer = (
            credit_code("360800", 600000 + number % 99999),
            credit_code("360800", 500000 + number % 99999),
        )
        resource = f"101001/{number % 10**6:06d}"
        base = catalog_published(resource, provider, [])
        payload = base.payload | {
            "share_methods": ["API", "ONLINE_BROWSE"],
            "confidentiality_reviewed_on": date(2026, 1, 5),
            "data_items": [
                {"description": "", "share_type": None, "sensitive": False, "length": None} | i for i in ITEMS
            ],
        }
        await publish(infra, "catalog.published", Event("CatalogEntryPublished", resource, payload, "catalog"))
        for service in running:
            await service.wait_ready()
        await exchange.wait_status(
            f"/resources/{resource}", 200, headers=bearer(provider, Role.DATA_ADMINISTRATOR, subject="p-admin")
        )
        operator = bearer(credit_code("360800", 9003), Role.IT_OFFICE_OPERATOR, subject="it-operator")
        logins = {}
        it_office = credit_code("360800", 800000 + number % 99999)
        people = [
            ("provider", provider, "CITY", Role.DATA_ADMINISTRATOR),
            ("consumer", consumer, "CITY", Role.DATA_ADMINISTRATOR),
            ("it-office", it_office, "IT_OFFICE", Role.IT_OFFICE_OPERATOR),
        ]
        async with httpx.AsyncClient(base_url=directory.url, headers=operator) as client:
            for name, code, level, role in people:
                body = {"code": code, "name": f"{name}局", "level": level}
                assert (await client.post("/departments", json=body)).status_code == 201
                person = {
                    "person_id": f"{name}-admin-{database}",
                    "name": f"{name}-admin",
                    "department_code": code,
                    "roles": [role],
                }
                issued = await client.post("/people", json=person)
                assert issued.status_code == 201, issued.text
                logins[name] = (issued.json()["login"], issued.json()["secret"])
        # the provider's data, uploaded as a department without an adapter does: two enterprises of the city
        # itself and two of a county, each with a sensitive legal representative and telephone
        city = [(enterprise("360800", 100 + n), f"城区{n}号公司") for n in range(2)]
        county = [(enterprise("360821", 200 + n), f"县域{n}号公司") for n in range(2)]
        rows = "".join(f"{key},{name},张{n},1380000000{n},A\n" for n, (key, name) in enumerate(city + county))
        table = ("统一社会信用代码,企业名称,法定代表人,联系电话,内部评级\n" + rows).encode()
        admin = bearer(provider, Role.DATA_ADMINISTRATOR, subject="p-admin")
        async with httpx.AsyncClient(base_url=exchange.url, headers=admin) as client:
            sent = await client.post(f"/resources/{resource}/uploads", files={"file": ("r.csv", table)})
            assert sent.status_code == 202, sent.text
        for key, _ in city + county:
            await exchange.wait_status(f"/resources/{resource}/records/{key}", 200, headers=admin)
        yield Sharing(console, resource, logins, city, county)
    finally:
        for service in running:
            service.stop()
