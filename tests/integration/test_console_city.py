"""The IT office's and oversight's console pages over HTTP as a browser uses them, against the real directory,
catalog, exchange and auditor: the city's dashboard with its charts, the unmet demands matched and unmatched,
the department directory with its data administrators, the duplicate-source flags, the findings and the
ranking with its report; a department sees its own figures and gets the services' refusals for the city's."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from pymongo import AsyncMongoClient

from common.policy import Role
from devstack.processes import free_port, start_infra, stop
from services.auditor.adapters.mongo import ACCESS_COUNTS
from services.console.pages.oversight import period_or_last_month
from services.directory.demo_data import credit_code
from tests.integration.conftest import ServiceProcess
from tests.integration.console_platform import csrf_of, sign_in
from tests.tokens import KEY, bearer

ENTRY = {
    "classification": "101003",
    "name": "城市测试企业登记信息",
    "abstract": "全市企业的登记基本信息",
    "category": "BASE",
    "format": "数据库",
    "data_items": [{"name": "统一社会信用代码", "type": "string", "length": 18}, {"name": "企业名称"}],
    "share_type": "CONDITIONAL",
    "share_conditions": "用于行政审批和监管",
    "share_methods": ["API", "FILE_DOWNLOAD"],
    "update_cycle": "DAILY",
    "confidentiality_review": {"reviewed_by": "admin", "reviewed_on": "2026-11-01", "conclusion": "不涉密"},
}
CHART = re.compile(r'<img class="chart" src="data:image/svg\+xml;base64,([^"]+)"')


@dataclass
class City:
    console: ServiceProcess
    provider: str
    consumer: str
    resource: str
    demand_id: str
    logins: dict[str, tuple[str, str]]  # (login, password) by name


async def publish_entry(catalog: ServiceProcess, provider: str) -> str:
    compiler = bearer(provider, Role.CATALOG_COMPILER, subject="city-compiler")
    reviewer = bearer(provider, Role.CATALOG_REVIEWER, subject="city-reviewer")
    async with httpx.AsyncClient(base_url=catalog.url) as client:
        entry = (await client.post("/entries", headers=compiler, json={"provider_code": provider, **ENTRY})).json()
        code = entry["resource_code"]
        path = f"/entries/{code}"
        entry = (await client.post(path + "/submit", headers=compiler, json={"revision": entry["revision"]})).json()
        approved = await client.post(path + "/approve", headers=reviewer, json={"revision": entry["revision"]})
        assert approved.status_code == 200, approved.text
        draft = await client.post("/entries", headers=compiler, json={"provider_code": provider, **ENTRY})
        assert draft.status_code == 201, draft.text
    return code


@pytest.fixture(scope="module")
async def city(tmp_path_factory) -> AsyncIterator[City]:
    folder, database = tmp_path_factory.mktemp("console-city"), f"ccity_{uuid.uuid4().hex[:8]}"
    # A broker and database of its own: the catalog numbers entries from 1 in its fresh database, and on the
    # shared broker earlier tests' events about the same codes (withdrawals among them) would reach this exchange.
    infra = start_infra(folder / "own")
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    directory = ServiceProcess("directory", infra, folder, mongo_database=f"{database}_d", signing_key=pem)
    catalog = ServiceProcess("catalog", infra, folder, mongo_database=f"{database}_c")
    exchange = ServiceProcess("exchange", infra, folder, mongo_database=f"{database}_x")
    auditor = ServiceProcess("auditor", infra, folder, mongo_database=f"{database}_a")
    console = ServiceProcess(
        "console",
        infra,
        folder,
        directory_url=directory.url,
        catalog_url=catalog.url,
        exchange_url=exchange.url,
        auditor_url=auditor.url,
        notifier_url=f"http://127.0.0.1:{free_port()}",  # not needed here: the menu shows no count
    )
    running = [directory.start(), catalog.start(), exchange.start(), auditor.start(), console.start()]
    try:
        number = uuid.uuid4().int
        provider, consumer = (
            credit_code("360800", 400000 + number % 99999),
            credit_code("360800", 300000 + number % 99999),
        )
        it_office, leadership = credit_code("360800", 9003), credit_code("360800", 9004)
        for service in running:
            await service.wait_ready()
        operator = bearer(it_office, Role.IT_OFFICE_OPERATOR, subject="it-operator")
        logins = {}
        async with httpx.AsyncClient(base_url=directory.url, headers=operator) as client:
            for code, name, level in (
                (provider, "城市测试提供局", "CITY"),
                (consumer, "城市测试使用局", "CITY"),
                (it_office, "市信息化工作办公室", "IT_OFFICE"),
                (leadership, "领导小组", "LEADERSHIP_GROUP"),
            ):
                body = {"code": code, "name": name, "level": level}
                assert (await client.post("/departments", json=body)).status_code == 201
            for name, code, role in (
                ("operator", it_office, Role.IT_OFFICE_OPERATOR),
                ("leader", leadership, Role.LEADERSHIP_MEMBER),
                ("admin", consumer, Role.DATA_ADMINISTRATOR),
                ("provider-admin", provider, Role.DATA_ADMINISTRATOR),
            ):
                person = {
                    "person_id": f"{name}-{database}",
                    "name": f"{name}-名",
                    "department_code": code,
                    "roles": [role],
                }
                issued = await client.post("/people", json=person)
                assert issued.status_code == 201, issued.text
                logins[name] = (issued.json()["login"], issued.json()["secret"])

        resource = await publish_entry(catalog, provider)
        admin = bearer(consumer, Role.DATA_ADMINISTRATOR, subject="c-admin")
        await exchange.wait_status(f"/resources/{resource}", 200, headers=admin)  # the catalog's event arrived
        async with httpx.AsyncClient(base_url=exchange.url, headers=admin) as client:
            application = {
                "resource_code": resource,
                "items": ["统一社会信用代码"],
                "purpose": "行政审批核验",
                "channels": ["API"],
                "valid_to": "2027-12-31",
            }
            filed = await client.post("/requests", json=application)
            assert filed.status_code == 201, filed.text
        async with httpx.AsyncClient(base_url=catalog.url) as client:
            wanted = {"title": "城市测试需求", "description": "办理企业开办", "wanted_items": ["统一社会信用代码"]}
            demand = await client.post("/demands", headers=bearer(consumer, Role.CATALOG_COMPILER), json=wanted)
            assert demand.status_code == 201, demand.text
        async with httpx.AsyncClient(base_url=auditor.url, headers=operator) as client:
            finding = {
                "department_code": provider,
                "category": "CATALOG_NOT_MAINTAINED",
                "matter": f"entry:{resource}",
                "description": "城市测试：目录未按时维护",
                "evidence": "检查记录",
                "request_id": uuid.uuid4().hex,
            }
            raised = await client.post("/findings", json=finding)
            assert raised.status_code == 201, raised.text
        # the accesses the auditor's stream worker counts (tests/integration/test_auditor_stream.py runs it)
        mongo = AsyncMongoClient(infra.mongo_uri)
        try:
            await mongo[f"{database}_a"][ACCESS_COUNTS].insert_one({"_id": consumer, "count": 7})
        finally:
            await mongo.close()
        yield City(console, provider, consumer, resource, demand.json()["demand_id"], logins)
    finally:
        for service in running:
            service.stop()
        stop(infra.procs)


async def test_the_it_office_sees_the_city_and_works_its_lists(city: City) -> None:
    async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as browser:
        await sign_in(browser, *city.logins["operator"])
        assert 'href="/city"' in (await browser.get("/")).text  # the menu leads there

        # the dashboard: each figure as the services answer it, with a chart drawn as an SVG image
        page = await browser.get("/city")
        assert page.status_code == 200, page.text[-1500:]
        assert "img-src 'self' data:" in page.headers["content-security-policy"]
        volumes = page.text[page.text.index('id="volumes"') : page.text.index('id="accesses"')]
        assert "城市测试提供局" in volumes
        accesses = page.text[page.text.index('id="accesses"') :]
        assert "城市测试使用局" in accesses and '<td data-label="访问次数">7</td>' in accesses
        requests = page.text[page.text.index('id="requests"') : page.text.index('id="volumes"')]
        assert "待决定" in requests
        charts = [base64.b64decode(found).decode() for found in CHART.findall(page.text)]
        entries = page.text[page.text.index('id="entries"') : page.text.index('id="overdue"')]
        assert any("已发布" in svg and "草稿" in svg for svg in charts), entries
        assert any("城市测试使用局" in svg for svg in charts), "no chart of the accesses"

        # an unmet demand: its candidates, matched to the published entry, then the match undone
        demands = await browser.get("/city/demands")
        assert "城市测试需求" in demands.text and "城市测试使用局" in demands.text
        shown = await browser.get("/city/demand", params={"id": city.demand_id})
        assert city.resource in shown.text and "确认匹配" in shown.text
        wrong = await browser.post(
            "/city/demands/match",
            data={"csrf_token": csrf_of(shown), "demand_id": city.demand_id, "resource_code": "101001/999999"},
        )
        assert wrong.status_code in (404, 409, 422) and 'class="error"' in wrong.text  # the catalog's words
        matched = await browser.post(
            "/city/demands/match",
            data={"csrf_token": csrf_of(shown), "demand_id": city.demand_id, "resource_code": city.resource},
        )
        assert matched.status_code == 303, matched.text[-800:]
        shown = await browser.get(matched.headers["location"])
        assert "已匹配" in shown.text and "撤销匹配" in shown.text
        undone = await browser.post(
            "/city/demands/unmatch",
            data={"csrf_token": csrf_of(shown), "demand_id": city.demand_id, "reason": "资源不含注册资本"},
        )
        assert undone.status_code == 303
        assert "待满足" in (await browser.get(undone.headers["location"])).text

        # the directory: every department, and one's people with its data administrator
        listed = await browser.get("/city/departments")
        assert "城市测试提供局" in listed.text and city.provider in listed.text
        department = await browser.get("/city/department", params={"code": city.provider})
        assert (
            department.status_code == 200 and "provider-admin-名" in department.text and "数据管理员" in department.text
        )

        duplicates = await browser.get("/city/duplicates")
        assert duplicates.status_code == 200 and "重复采集" in duplicates.text

        # the auditor's findings, the ranking and its report (the auditor's document, sandboxed)
        findings = await browser.get("/oversight/findings", params={"department": city.provider, "status": ""})
        assert findings.status_code == 200, findings.text[-800:]  # the form's 全部 sends the status empty
        assert "城市测试：目录未按时维护" in findings.text and "待整改" in findings.text
        period = period_or_last_month(None)
        ranking = await browser.get("/oversight/ranking")
        assert ranking.status_code == 200 and period in ranking.text and "目录编制" in ranking.text
        assert f"/oversight/report?period={period}" in ranking.text  # tests/unit/test_console_city.py fetches it


async def test_a_department_sees_its_own_figures_and_the_refusals_for_the_citys(city: City) -> None:
    async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as admin:
        await sign_in(admin, *city.logins["admin"])
        figures = await admin.get("/oversight/figures")
        assert figures.status_code == 200 and "城市测试使用局" in figures.text and "综合得分" in figures.text
        others = await admin.get("/oversight/figures", params={"department": city.provider})
        assert others.status_code == 403 and "无权执行此操作" in others.text
        assert (await admin.get("/oversight/findings", params={"department": city.provider})).status_code == 403
        dashboard = await admin.get("/city")
        assert dashboard.status_code == 403 and "<html" in dashboard.text
        assert (await admin.get("/oversight/ranking")).status_code == 403
        shown = await admin.get("/city/demand", params={"id": city.demand_id})
        match = await admin.post(
            "/city/demands/match",
            data={"csrf_token": csrf_of(shown), "demand_id": city.demand_id, "resource_code": city.resource},
        )
        assert match.status_code == 403 and "无权执行此操作" in match.text
    async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as leader:
        await sign_in(leader, *city.logins["leader"])
        assert (await leader.get("/city")).status_code == 200
