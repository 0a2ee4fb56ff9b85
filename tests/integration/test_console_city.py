"""The IT office's and oversight's console pages over HTTP as a browser uses them, against the real directory,
catalog, exchange and auditor: the city's dashboard with its charts, the unmet demands matched and unmatched,
the department directory with its data administrators, the duplicate-source flags, the findings and the
ranking with its report; a department sees its own figures and gets the services' refusals for the city's."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from common.clock import CHINA
from common.policy import Role
from devstack.processes import free_port, start_infra, stop
from services.auditor.adapters.mongo import ACCESS_COUNTS
from services.auditor.domain.findings import Category, ClosedBy, Finding, Status, corrected, reported
from services.auditor.oversight.adapters.mongo import DAILY, FINDINGS, finding_doc
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
    directory: ServiceProcess
    auditor: ServiceProcess
    auditor_db: AsyncDatabase  # the auditor's database, for what its stream worker or deadline watch would write


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
            demand_id = demand.json()["demand_id"]
            yield City(
                console, provider, consumer, resource, demand_id, logins, directory, auditor, mongo[f"{database}_a"]
            )
        finally:
            await mongo.close()
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


FINDING_FORM = {
    "category": "DATA_NOT_PROVIDED_IN_TIME",
    "matter": "resource:城市测试",
    "description": "城市测试：数据未按更新周期提供",
    "evidence": "交换记录：十一月无数据",
}


async def test_the_it_office_raises_a_finding_closes_it_and_reads_the_notice_of_an_escalated_one(city: City) -> None:
    operator = bearer(credit_code("360800", 9003), Role.IT_OFFICE_OPERATOR, subject="it-operator")
    async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as browser:
        await sign_in(browser, *city.logins["operator"])
        form = await browser.get("/oversight/findings/new", params={"department": city.provider})
        assert form.status_code == 200 and f'<option value="{city.provider}" selected>' in form.text
        assert 'for="evidence"' in form.text and 'for="matter"' in form.text  # every field has its label
        request_id = re.search(r'name="request_id" value="([0-9a-f]+)"', form.text)
        assert request_id
        posted = {"csrf_token": csrf_of(form), "request_id": request_id[1], "department_code": city.provider}

        # the auditor refuses a finding without its matter: the form again, with its words and what was typed
        refused = await browser.post("/oversight/findings/raise", data=posted | FINDING_FORM | {"matter": ""})
        assert refused.status_code == 422 and 'class="error"' in refused.text
        assert "城市测试：数据未按更新周期提供" in refused.text

        raised = await browser.post("/oversight/findings/raise", data=posted | FINDING_FORM)
        assert raised.status_code == 303, raised.text[-800:]
        again = await browser.post("/oversight/findings/raise", data=posted | FINDING_FORM)  # a double click
        assert again.headers["location"] == raised.headers["location"]
        finding_id = raised.headers["location"].rpartition("=")[2]
        async with httpx.AsyncClient(base_url=city.auditor.url, headers=operator) as auditor:
            held = (await auditor.get(f"/findings/{finding_id}")).json()
        assert held["status"] == "OPEN" and held["raised_by"] == city.logins["operator"][0]
        # the same request answered as it was, not merged into its own finding as a second occurrence
        assert held["occurrences"] == 1 and held["evidence"] == [FINDING_FORM["evidence"]]
        assert "merged" not in again.headers["location"]
        # another form on the same matter: the auditor adds it to the open finding, and the page says so
        other = await browser.get("/oversight/findings/new", params={"department": city.provider})
        second = re.search(r'name="request_id" value="([0-9a-f]+)"', other.text)
        assert second and second[1] != request_id[1]
        added = await browser.post(
            "/oversight/findings/raise",
            data=posted | FINDING_FORM | {"request_id": second[1], "evidence": "交换记录：十二月也无数据"},
        )
        assert added.headers["location"] == f"/oversight/finding?id={finding_id}&merged=true"
        assert "并入了这一事项" in (await browser.get(added.headers["location"])).text
        async with httpx.AsyncClient(base_url=city.auditor.url, headers=operator) as auditor:
            held = (await auditor.get(f"/findings/{finding_id}")).json()
        assert held["occurrences"] == 2 and held["evidence"][-1] == "交换记录：十二月也无数据"
        # a double click that lands twice at once: still one answer for the one request
        third = re.search(r'name="request_id" value="([0-9a-f]+)"', (await browser.get(other.url)).text)
        assert third
        clicked = posted | FINDING_FORM | {"request_id": third[1], "evidence": "交换记录：一月也无数据"}
        both = await asyncio.gather(*(browser.post("/oversight/findings/raise", data=clicked) for _ in range(2)))
        assert [r.status_code for r in both] == [303, 303], [r.text[-300:] for r in both]
        async with httpx.AsyncClient(base_url=city.auditor.url, headers=operator) as auditor:
            held = (await auditor.get(f"/findings/{finding_id}")).json()
        assert held["occurrences"] == 3 and held["evidence"].count("交换记录：一月也无数据") == 1
        shown = await browser.get(raised.headers["location"])
        assert held["correct_by"] in shown.text and "交换记录：十一月无数据" in shown.text  # the auditor's deadline
        assert "记录整改并结案" in shown.text and 'for="proof"' in shown.text

        closed = await browser.post(
            "/oversight/findings/correct",
            data={"csrf_token": csrf_of(shown), "finding_id": finding_id, "proof": "已补传十一月数据，见交换记录"},
        )
        assert closed.status_code == 303
        shown = await browser.get(closed.headers["location"])
        assert "已整改" in shown.text and "已补传十一月数据" in shown.text and "记录整改并结案" not in shown.text
        twice = await browser.post(
            "/oversight/findings/correct",
            data={"csrf_token": csrf_of(shown), "finding_id": finding_id, "proof": "再次"},
        )
        assert twice.status_code == 409 and 'class="error"' in twice.text  # the auditor's word: it is not open

        # one the deadline watch escalated (its escalation: tests/integration/test_auditor_oversight.py)
        late = Finding(
            finding_id="F" + uuid.uuid4().hex[:20].upper(),
            department_code=city.provider,
            category=Category.CATALOG_NOT_MAINTAINED,
            matter=f"entry:{city.resource}",
            description="城市测试：目录逾期未更新",
            detected_on=date(2026, 10, 9),
            correct_by=date(2026, 10, 23),
            raised_by="auditor",
            evidence=("UPDATE_AFTER_CHANGE due 2026-10-16",),
            status=Status.ESCALATED,
            escalated_on=date(2026, 10, 26),
        )
        await city.auditor_db[FINDINGS].insert_one(finding_doc(late))
        shown = await browser.get("/oversight/finding", params={"id": late.finding_id})
        assert "已通报批评" in shown.text and "通报批评文书" in shown.text
        notice = await browser.get("/oversight/finding/notice", params={"id": late.finding_id})
        assert notice.status_code == 200 and "通报批评" in notice.text and "2026-10-23" in notice.text
        assert notice.headers["content-security-policy"].startswith("sandbox")  # its PDF: test_console_city (unit)

    # the department reads its own findings and notice, and may not close one: the auditor's refusal
    async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as own:
        await sign_in(own, *city.logins["provider-admin"])
        listed = await own.get("/oversight/findings")
        assert listed.status_code == 200 and finding_id in listed.text and late.finding_id in listed.text
        shown = await own.get("/oversight/finding", params={"id": late.finding_id})
        assert shown.status_code == 200 and "记录整改并结案" not in shown.text
        assert (await own.get("/oversight/finding/notice", params={"id": late.finding_id})).status_code == 200
        form = await own.get("/oversight/findings/new")
        raised = await own.post("/oversight/findings/raise", data={"csrf_token": csrf_of(form)} | FINDING_FORM)
        assert raised.status_code == 403 and "无权执行此操作" in raised.text
    async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as other:
        await sign_in(other, *city.logins["admin"])
        # another department's finding: not found, as one that does not exist would be (no existence leak)
        refused = await other.get("/oversight/finding", params={"id": late.finding_id})
        assert refused.status_code == 404 and "未找到" in refused.text and late.description not in refused.text
        notice = await other.get("/oversight/finding/notice", params={"id": late.finding_id})
        assert notice.status_code == 404 and "<html" in notice.text


async def test_the_department_reports_its_rectification_and_the_it_office_rejects_then_accepts(city: City) -> None:
    """The finding's page gives the department's data administrator the report form and the IT office, once a
    report awaits, accept and reject; another department's administrator gets the refusal page."""
    operator = bearer(credit_code("360800", 9003), Role.IT_OFFICE_OPERATOR, subject="it-operator")
    async with httpx.AsyncClient(base_url=city.auditor.url, headers=operator) as auditor:
        body = FINDING_FORM | {"department_code": city.provider, "request_id": uuid.uuid4().hex}
        raised = await auditor.post("/findings", json=body | {"matter": f"resource:{uuid.uuid4().hex[:8]}"})
        assert raised.status_code == 201, raised.text
    finding_id = raised.json()["finding_id"]
    page = {"id": finding_id}
    async with (
        httpx.AsyncClient(base_url=city.console.url, timeout=30) as own,
        httpx.AsyncClient(base_url=city.console.url, timeout=30) as office,
        httpx.AsyncClient(base_url=city.console.url, timeout=30) as other,
    ):
        await sign_in(own, *city.logins["provider-admin"])
        await sign_in(office, *city.logins["operator"])
        await sign_in(other, *city.logins["admin"])

        shown = await own.get("/oversight/finding", params=page)
        assert "报送整改报告" in shown.text and 'for="text"' in shown.text and 'for="reference"' in shown.text
        assert "记录整改并结案" not in shown.text
        form = {"csrf_token": csrf_of(shown), "finding_id": finding_id}
        # another department's data administrator: to the auditor, the finding does not exist
        foreign = await other.get("/oversight/findings")
        refused = await other.post(
            "/oversight/findings/report", data=form | {"csrf_token": csrf_of(foreign), "text": "代为报送"}
        )
        assert refused.status_code == 404 and "未找到" in refused.text
        blank = await own.post("/oversight/findings/report", data=form | {"text": "   "})
        assert blank.status_code == 422 and 'class="error"' in blank.text  # white space is no report

        sent = await own.post(
            "/oversight/findings/report", data=form | {"text": "已补传数据", "reference": "交换批次 7"}
        )
        assert sent.status_code == 303, sent.text[-800:]
        shown = await own.get(sent.headers["location"])
        assert "已补传数据" in shown.text and "交换批次 7" in shown.text and "待市信息化工作办公室核实" in shown.text
        assert 'action="/oversight/findings/report"' not in shown.text  # one report at a time
        queue = await office.get("/oversight/findings", params={"awaiting": "true"})
        assert queue.status_code == 200 and "待审核整改报告" in queue.text and finding_id in queue.text
        assert 'aria-current="page">待审核整改报告' in queue.text and "整改报告待审核" in queue.text
        bypass = await office.post(
            "/oversight/findings/correct",
            data={"csrf_token": csrf_of(queue), "finding_id": finding_id, "proof": "已核实"},
        )
        assert bypass.status_code == 409 and "awaits" in bypass.text  # the report is answered, not bypassed
        accepted_by_self = await own.post(
            "/oversight/findings/report/accept", data=form | {"csrf_token": csrf_of(shown)}
        )
        assert accepted_by_self.status_code == 403 and "无权执行此操作" in accepted_by_self.text

        shown = await office.get("/oversight/finding", params=page)
        assert (
            "认可整改报告并结案" in shown.text and 'for="reason"' in shown.text and "记录整改并结案" not in shown.text
        )
        decided = {"csrf_token": csrf_of(shown), "finding_id": finding_id}
        empty = await office.post("/oversight/findings/report/reject", data=decided | {"reason": ""})
        assert empty.status_code == 422 and 'class="error"' in empty.text  # the auditor's word, beside the forms
        back = await office.post("/oversight/findings/report/reject", data=decided | {"reason": "未见交换记录"})
        assert back.status_code == 303

        shown = await own.get("/oversight/finding", params=page)
        assert "已退回" in shown.text and "未见交换记录" in shown.text and "待整改" in shown.text
        again = await own.post(
            "/oversight/findings/report",
            data={"csrf_token": csrf_of(shown), "finding_id": finding_id, "text": "附交换日志"},
        )
        assert again.status_code == 303

        shown = await office.get("/oversight/finding", params=page)
        done = await office.post(
            "/oversight/findings/report/accept", data={"csrf_token": csrf_of(shown), "finding_id": finding_id}
        )
        assert done.status_code == 303
        shown = await own.get("/oversight/finding", params=page)
        assert "已整改" in shown.text and "已认可" in shown.text and "附交换日志" in shown.text
        assert 'action="/oversight/findings/report"' not in shown.text
        assert "部门整改报告经市信息化工作办公室认可" in shown.text  # what closed it

        # the IT office files a report for the department: the page says so
        async with httpx.AsyncClient(base_url=city.auditor.url, headers=operator) as auditor:
            body = FINDING_FORM | {"department_code": city.provider, "request_id": uuid.uuid4().hex}
            other_id = (
                await auditor.post("/findings", json=body | {"matter": f"resource:{uuid.uuid4().hex[:8]}"})
            ).json()["finding_id"]
            filed = await auditor.post(f"/findings/{other_id}/report", json={"text": "代为报送：已补传"})
            assert filed.status_code == 200 and filed.json()["reports"][-1]["on_behalf"]
        shown = await own.get("/oversight/finding", params={"id": other_id})
        assert "市信息化工作办公室代本部门报送" in shown.text
        # the IT office's queue: the report it filed waits, the accepted one no longer does
        queue = await office.get("/oversight/findings", params={"awaiting": "true", "department": city.provider})
        assert queue.status_code == 200 and 'aria-current="page">待审核整改报告' in queue.text, queue.text[-500:]
        assert other_id in queue.text and finding_id not in queue.text


async def test_a_finding_raised_while_a_report_waits_is_said_merged_and_a_retry_after_the_answer_leads_on(
    city: City,
) -> None:
    """The IT office raises, through the console, a matter whose open finding has a report waiting since an
    earlier day: the auditor keeps it apart from what the report answers, and the page says it was merged as an
    occurrence after the report. The report accepted, the same form sent again is answered with the closed
    finding, and the page leads on to the finding the later occurrence became."""
    operator = bearer(credit_code("360800", 9003), Role.IT_OFFICE_OPERATOR, subject="it-operator")
    tag = uuid.uuid4().hex[:8].upper()
    today = datetime.now(CHINA).date()
    waiting = reported(
        Finding(
            finding_id=f"FWAIT{tag}",
            department_code=city.provider,
            category=Category.DATA_NOT_PROVIDED_IN_TIME,
            matter=f"resource:{tag}",
            description="数据未按更新周期提供",
            detected_on=today - timedelta(days=4),
            correct_by=today + timedelta(days=30),
            raised_by="auditor",
            evidence=("交换记录：无数据",),
        ),
        "已补传数据",
        None,
        "provider-admin",
        city.provider,
        today - timedelta(days=2),
    )
    await city.auditor_db[FINDINGS].insert_one(finding_doc(waiting))
    async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as browser:
        await sign_in(browser, *city.logins["operator"])
        form = await browser.get("/oversight/findings/new", params={"department": city.provider})
        request_id = re.search(r'name="request_id" value="([0-9a-f]+)"', form.text)
        assert form.status_code == 200 and request_id
        posted = {"csrf_token": csrf_of(form), "request_id": request_id[1], "department_code": city.provider}
        body = posted | FINDING_FORM | {"matter": waiting.matter, "evidence": "交换记录：今日仍无数据"}
        added = await browser.post("/oversight/findings/raise", data=body)
        assert added.headers["location"] == f"/oversight/finding?id={waiting.finding_id}&merged=true", added.text
        shown = await browser.get(added.headers["location"])
        assert shown.status_code == 200 and "记为整改报告报送后的新发生" in shown.text, shown.text[-800:]
        async with httpx.AsyncClient(base_url=city.auditor.url, headers=operator) as auditor:
            done = await auditor.post(f"/findings/{waiting.finding_id}/report/acceptance")
            assert done.status_code == 200, done.text
            rest = done.json()["continued"]
            assert rest and (await auditor.get(f"/findings/{rest}")).json()["evidence"] == ["交换记录：今日仍无数据"]
        again = await browser.post("/oversight/findings/raise", data=body)  # sent again after the answer
        assert again.headers["location"] == added.headers["location"]
        shown = await browser.get(again.headers["location"])
        assert shown.status_code == 200 and "这次登记此前已提交" in shown.text, shown.text[-800:]
        assert f'<a href="/oversight/finding?id={rest}"><code>{rest}</code></a>，请在该事项中查看' in shown.text
        assert "并入了这一事项" not in shown.text


async def test_a_report_no_one_answered_says_what_closed_the_finding_and_credits_no_one(city: City) -> None:
    """A waiting report superseded by an event proving the matter made good: no one of the IT office answered
    it, and the page says the event proved it. One the earlier code's closure left waiting reads as not
    verified, the finding closed another way, without naming what closed it, nor who filed it for whom."""
    tag = uuid.uuid4().hex[:8].upper()
    base = Finding(
        finding_id=f"FSUP{tag}",
        department_code=city.provider,
        category=Category.CATALOG_NOT_MAINTAINED,
        matter=f"entry:{tag}",
        description="目录更新逾期",
        detected_on=date(2026, 10, 20),
        correct_by=date(2026, 11, 3),
        raised_by="auditor",
        evidence=("overdue",),
    )
    sent = reported(base, "已更新目录", None, "provider-admin", city.provider, date(2026, 10, 26))
    proven = corrected(sent, "version 2 published on 2026-10-27", date(2026, 10, 27), ClosedBy.EVENT)
    earlier = dataclasses.replace(
        sent, finding_id=f"FOLD{tag}", matter=f"entry:O{tag}", status=Status.CORRECTED, corrected_on=date(2026, 10, 28)
    )
    old = finding_doc(earlier)
    del old["closed_by"], old["closed_by_person"]
    for report in old["reports"]:  # kept before the filer's department was: who filed it is not known
        del report["submitted_by_department"], report["on_behalf"]
    await city.auditor_db[FINDINGS].insert_many([finding_doc(proven), old])
    async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as office:
        await sign_in(office, *city.logins["operator"])
        shown = await office.get("/oversight/finding", params={"id": proven.finding_id})
        assert shown.status_code == 200 and "已更新目录" in shown.text, shown.text[-500:]
        assert "核实前已由后续事件证明整改，无需再核实（2026-10-27，后续事件证明）" in shown.text
        assert "None" not in shown.text and "市信息化工作办公室 None" not in shown.text
        shown = await office.get("/oversight/finding", params={"id": earlier.finding_id})
        assert shown.status_code == 200 and "已更新目录" in shown.text, shown.text[-500:]
        assert "未经核实，该问题已另行结案" in shown.text and "后续事件证明" not in shown.text
        assert "待市信息化工作办公室核实" not in shown.text and "None" not in shown.text
        assert "2026-10-26 报送</strong>（provider-admin）" in shown.text  # neither the department's nor on its behalf
        assert "代本部门报送" not in shown.text and "本部门 provider-admin" not in shown.text


async def test_the_it_office_keeps_the_directory_and_the_directory_decides(city: City) -> None:
    """People registered, deactivated and reactivated, the data administrator appointed and the department
    renamed, each through the directory's own route; its refusals are shown beside the forms."""
    code = credit_code("360800", 600000 + uuid.uuid4().int % 99999)
    operator = bearer(credit_code("360800", 9003), Role.IT_OFFICE_OPERATOR, subject="it-operator")
    async with httpx.AsyncClient(base_url=city.directory.url, headers=operator) as directory:
        body = {"code": code, "name": "城市测试名录局", "level": "CITY", "parent_code": city.provider}
        assert (await directory.post("/departments", json=body)).status_code == 201
    login = f"dir-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as browser:
        await sign_in(browser, *city.logins["operator"])
        page = await browser.get("/city/department", params={"code": code})
        assert page.status_code == 200 and "登记人员" in page.text and 'for="new_person_id"' in page.text

        person = {"csrf_token": csrf_of(page), "department_code": code, "person_id": login, "name": "名录测试员"}
        added = await browser.post("/city/people/add", data=person | {"roles": ["catalog_compiler"]})
        assert added.status_code == 200 and login in added.text
        secret = re.search(r'<code class="secret">([^<]+)</code>', added.text)
        assert secret, added.text[-1000:]
        assert "目录编制人" in added.text
        # posted again (a double click): the directory refuses the login taken; the page says she is registered
        # and offers a new password, which the first one still works until it is used
        taken = await browser.post("/city/people/add", data=person | {"roles": ["catalog_compiler"]})
        assert taken.status_code == 409 and 'class="error"' in taken.text
        assert "已登记为本部门的名录测试员" in taken.text and 'action="/city/people/reset-password"' in taken.text
        assert f'value="{login}"' in taken.text and 'value="catalog_compiler" checked' in taken.text
        # the directory refuses a role of the IT office's staff in a city bureau
        wrong_role = person | {"person_id": login + "-x", "roles": ["it_office_operator"]}
        refused = await browser.post("/city/people/add", data=wrong_role)
        assert refused.status_code == 422 and 'class="error"' in refused.text

        appointed = await browser.post(
            "/city/department/administrator",
            data={"csrf_token": csrf_of(page), "department_code": code, "person_id": login},
        )
        assert appointed.status_code == 303, appointed.text[-800:]
        page = await browser.get(appointed.headers["location"])
        assert re.search(r"<dt>数据管理员</dt><dd>名录测试员</dd>", page.text), page.text[-2000:]
        again = await browser.post(
            "/city/department/administrator",
            data={"csrf_token": csrf_of(page), "department_code": code, "person_id": login},
        )
        assert again.status_code == 409 and 'class="error"' in again.text  # already the data administrator

        seen = {"seen_parent_code": city.provider, "seen_active": "true"}  # as the page showed them
        assert f'name="seen_parent_code" value="{city.provider}"' in page.text
        renamed = await browser.post(
            "/city/department/rename",
            data={"csrf_token": csrf_of(page), "department_code": code, "name": "城市测试新名局"} | seen,
        )
        assert renamed.status_code == 303
        assert "<h1>城市测试新名局" in (await browser.get(renamed.headers["location"])).text
        async with httpx.AsyncClient(base_url=city.directory.url, headers=operator) as directory:
            held = (await directory.get(f"/departments/{code}")).json()
        assert (held["name"], held["parent_code"], held["active"]) == ("城市测试新名局", city.provider, True)

        # the new person signs in with the password shown once; deactivated, no more; reactivated, again
        async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as newcomer:
            await sign_in(newcomer, login, secret[1])
        # deactivating asks first, saying what the directory will do: she is the data administrator now
        target = {"csrf_token": csrf_of(page), "department_code": code, "person_id": login}
        asked = await browser.post("/city/people/deactivate", data=target)
        assert asked.status_code == 200 and "部门将没有数据管理员" in asked.text and "清除其全部角色" in asked.text
        async with httpx.AsyncClient(base_url=city.directory.url, headers=operator) as directory:
            assert (await directory.get(f"/people/{login}")).json()["active"] is True  # nothing done yet
        deactivated = await browser.post("/city/people/deactivate", data=target | {"confirmed": "yes"})
        assert deactivated.status_code == 303
        page = await browser.get(deactivated.headers["location"])
        assert "已停用" in page.text and 'for="reason-1"' in page.text
        assert re.search(r"<dt>数据管理员</dt><dd><span class=\"overdue\">未指定</span>", page.text)
        async with httpx.AsyncClient(base_url=city.directory.url) as directory:
            tried = await directory.post(
                "/token", data={"grant_type": "password", "username": login, "password": secret[1]}
            )
        assert tried.status_code == 401 and tried.json()["detail"] == "account deactivated"
        reactivated = await browser.post(
            "/city/people/reactivate",
            data={"csrf_token": csrf_of(page), "department_code": code, "person_id": login, "reason": "误停用"},
        )
        assert reactivated.status_code == 303
        async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as newcomer:
            await sign_in(newcomer, login, secret[1])
        # she is back without roles (the directory cleared them), and the department still has no administrator
        async with httpx.AsyncClient(base_url=city.directory.url, headers=operator) as directory:
            back = (await directory.get(f"/people/{login}")).json()
        assert (back["active"], back["roles"]) == (True, [])
        page = await browser.get(reactivated.headers["location"])
        assert re.search(r"<dt>数据管理员</dt><dd><span class=\"overdue\">未指定</span>", page.text)

    # anyone else reads the directory, without the forms, and gets the directory's refusal for a change
    async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as admin:
        await sign_in(admin, *city.logins["admin"])
        page = await admin.get("/city/department", params={"code": code})
        assert page.status_code == 200 and "城市测试新名局" in page.text and "修改部门名称" not in page.text
        renamed = await admin.post(
            "/city/department/rename", data={"csrf_token": csrf_of(page), "department_code": code, "name": "改名"}
        )
        assert renamed.status_code == 403 and "无权执行此操作" in renamed.text
    async with httpx.AsyncClient(base_url=city.directory.url, headers=operator) as directory:
        assert (await directory.get(f"/departments/{code}")).json()["name"] == "城市测试新名局"


async def test_the_dashboard_shows_the_city_s_last_twelve_months(city: City) -> None:
    """The auditor's monthly totals: the entry the fixture published counts once the auditor has heard of it;
    accesses as the auditor's projection holds them (here one day's, written as it writes them)."""
    office = bearer(credit_code("360800", 9003), Role.AUDITOR, subject="auditor")
    async with httpx.AsyncClient(base_url=city.auditor.url, headers=office) as auditor:
        months: list[dict] = []
        for _ in range(240):  # the auditor reads the catalog's events as they come; no order is assumed
            months = (await auditor.get("/evaluation/trends")).json()
            if sum(m["entries_published"] for m in months) >= 1:  # this month's, or last's at a month's turn
                break
            await asyncio.sleep(0.25)
        assert sum(m["entries_published"] for m in months) >= 1, months
    this_month = months[-1]["month"]
    first_day = datetime.strptime(this_month + "-01", "%Y-%m-%d")
    await city.auditor_db[DAILY].insert_one(
        {
            "_id": f"used|{city.provider}|{this_month}-01|{city.resource}|{city.consumer}",
            "measure": "used",
            "department_code": city.provider,
            "day": first_day,
            "resource_code": city.resource,
            "other": city.consumer,
            "count": 4321,
        }
    )
    async with httpx.AsyncClient(base_url=city.console.url, timeout=30) as browser:
        await sign_in(browser, *city.logins["leader"])
        page = await browser.get("/city")
    assert page.status_code == 200, page.text[-1500:]
    trends = page.text[page.text.index('id="trends"') :]
    assert trends.count('<td data-label="月份">') == 12 and f'<td data-label="月份">{this_month}</td>' in trends
    assert '<td data-label="数据访问次数">4321</td>' in trends
    charts = [base64.b64decode(found).decode() for found in CHART.findall(trends)]
    assert len(charts) == 1 and "数据访问次数" in charts[0] and "发布的目录版本" in charts[0]
