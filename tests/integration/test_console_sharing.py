"""The console's sharing pages over HTTP as a browser uses them, against the real directory and exchange: a
consumer department's data administrator applies for a conditional resource, the provider's sees it among the
incoming requests with its working-day deadline (overdue in red), approves narrower or denies with reasons, and
each sees the state; the exchange's refusals come back as pages."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from common.events import Event
from common.policy import Role
from devstack.processes import free_port
from devstack.samples import catalog_published
from services.directory.demo_data import credit_code
from tests.integration.conftest import ServiceProcess
from tests.integration.console_platform import csrf_of, sign_in
from tests.integration.test_sharing import ITEMS, publish
from tests.tokens import KEY, bearer

FILED_ON = "2026-09-30"  # the exchange's today: due 2026-10-20 (the National Day holiday not counted)
REQUEST_ID = re.compile(r"/requests/view\?id=([^&\"]+)")


@dataclass
class Sharing:
    console: ServiceProcess
    resource: str
    logins: dict[str, tuple[str, str]]  # (login, password) by name


@pytest.fixture(scope="module")
async def sharing(infra, topics, tmp_path_factory) -> AsyncIterator[Sharing]:
    folder, database = tmp_path_factory.mktemp("console-sharing"), f"csh_{uuid.uuid4().hex[:8]}"
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    directory = ServiceProcess("directory", infra, folder, mongo_database=f"{database}_d", signing_key=pem)
    exchange = ServiceProcess("exchange", infra, folder, mongo_database=f"{database}_x", sharing_today=FILED_ON)
    nowhere = f"http://127.0.0.1:{free_port()}"  # the catalog and notifier are not needed by these pages
    console = ServiceProcess(
        "console",
        infra,
        folder,
        directory_url=directory.url,
        exchange_url=exchange.url,
        catalog_url=nowhere,
        notifier_url=nowhere,
    )
    running = [directory.start(), exchange.start(), console.start()]
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
        async with httpx.AsyncClient(base_url=directory.url, headers=operator) as client:
            for name, code in (("provider", provider), ("consumer", consumer)):
                body = {"code": code, "name": f"{name}局", "level": "CITY"}
                assert (await client.post("/departments", json=body)).status_code == 201
                person = {
                    "person_id": f"{name}-admin-{database}",
                    "name": f"{name}-admin",
                    "department_code": code,
                    "roles": [Role.DATA_ADMINISTRATOR],
                }
                issued = await client.post("/people", json=person)
                assert issued.status_code == 201, issued.text
                logins[name] = (issued.json()["login"], issued.json()["secret"])
        yield Sharing(console, resource, logins)
    finally:
        for service in running:
            service.stop()


async def apply(browser: httpx.AsyncClient, fields: dict) -> httpx.Response:
    token = csrf_of(await browser.get("/requests/new"))
    return await browser.post("/requests/new", data={"csrf_token": token, **fields})


async def test_a_consumer_applies_and_the_provider_approves_narrower_or_denies(sharing: Sharing) -> None:
    url = sharing.console.url
    async with httpx.AsyncClient(base_url=url) as consumer, httpx.AsyncClient(base_url=url) as provider:
        await sign_in(consumer, *sharing.logins["consumer"])
        await sign_in(provider, *sharing.logins["provider"])
        form = {
            "resource_code": sharing.resource,
            "items": "统一社会信用代码\n企业名称\n法定代表人",
            "regions": "3608",
            "purpose": "行政审批核验",
            "channels": ["API", "ONLINE_BROWSE"],
            "valid_to": "2027-09-30",
        }
        # the exchange's refusal comes back on the form, with what was typed kept
        refused = await apply(consumer, form | {"channels": []})
        assert refused.status_code == 422 and 'class="error"' in refused.text and "行政审批核验" in refused.text

        filed = await apply(consumer, form)
        assert filed.status_code == 303, filed.text
        rid = REQUEST_ID.search(filed.headers["location"]).group(1)
        shown = await consumer.get(filed.headers["location"])
        assert "待决定" in shown.text and "2026-10-20" in shown.text and "法定代表人" in shown.text
        assert "作出决定" not in shown.text  # the applicant does not decide

        # the provider's incoming requests: the deadline passed (today is after 2026-10-20), in red
        incoming = await provider.get("/requests")
        row = next(line for line in incoming.text.splitlines() if "2026-10-20" in line and "overdue" in line)
        assert "已逾期" in row
        assert rid in incoming.text
        mine = await consumer.get("/requests")
        assert rid in mine.text and "已逾期" not in mine.text

        # the applicant posting a decision is refused by the exchange, shown as a page
        token = csrf_of(await consumer.get(f"/requests/view?id={rid}"))
        forged = {"csrf_token": token, "request_id": rid, "decision": "APPROVED", "reasons": "自批"}
        denied = await consumer.post("/requests/decide", data=forged)
        assert denied.status_code == 403, denied.status_code

        # approved narrower: two items, the city's own registrations
        page = await provider.get(f"/requests/view?id={rid}")
        assert "作出决定" in page.text
        decision = {
            "csrf_token": csrf_of(page),
            "request_id": rid,
            "decision": "APPROVED",
            "reasons": "审批核验所需",
            "items": "统一社会信用代码\n企业名称",
            "regions": "360800",
        }
        decided = await provider.post("/requests/decide", data=decision)
        assert decided.status_code == 303, decided.text
        seen = (await consumer.get(f"/requests/view?id={rid}")).text
        assert "已同意" in seen and "审批核验所需" in seen
        granted = seen.split("同意的数据项")[1].split("</dd>")[0]
        assert "企业名称" in granted and "法定代表人" not in granted
        assert "360800" in seen.split("同意的数据范围")[1].split("</dd>")[0]
        # decided, it leaves the provider's list of those awaiting a decision; the applicant still lists it
        assert rid not in (await provider.get("/requests")).text
        assert rid in (await consumer.get("/requests")).text

        # a second decision is the exchange's 409, shown on the request's page
        again = await provider.post("/requests/decide", data=decision | {"decision": "DENIED"})
        assert again.status_code == 409 and 'class="error"' in again.text

        # another application, denied with reasons
        second = await apply(consumer, form | {"purpose": "统计分析"})
        rid2 = REQUEST_ID.search(second.headers["location"]).group(1)
        page = await provider.get(f"/requests/view?id={rid2}")
        no = {"csrf_token": csrf_of(page), "request_id": rid2, "decision": "DENIED", "reasons": "用途与职责无关"}
        assert (await provider.post("/requests/decide", data=no)).status_code == 303
        seen = (await consumer.get(f"/requests/view?id={rid2}")).text
        assert "已拒绝" in seen and "用途与职责无关" in seen
