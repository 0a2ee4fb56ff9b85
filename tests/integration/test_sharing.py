"""The sharing lifecycle against a running exchange: subscriptions, applications and decisions, disputes up
to the leadership group, a decision overdue across the National Day holiday, grants revoked or ended by
the catalog, and the abuse cases, each refused with its reason."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pypdf import PdfReader

from common.calendar_source import build_calendar
from common.codec import EventCodec
from common.events import Event
from common.kafka import KafkaPublisher
from common.policy import MachineKind, Role
from common.topics import ensure_topics, load_topics
from devstack.processes import Infra, start_infra, stop
from devstack.samples import catalog_published, catalog_withdrawn
from services.directory import demo_data
from services.directory.demo_data import CITY_REGION, credit_code
from tests.adapter_keys import directory_says
from tests.integration.conftest import ServiceProcess, headers_of, read_topic, settings_for
from tests.tokens import bearer

MARKET, APPROVAL, HEALTH = (credit_code("360800", n) for n in (7001, 7002, 7003))
IT, LG = credit_code("360800", 7004), credit_code("360800", 7005)
FILED_ON = "2026-09-30"  # the day before the 2026 National Day holiday (1–7 October; Saturday the 10th worked)
ITEMS = [
    {"name": "统一社会信用代码", "type": "string", "length": 18, "share_type": "UNCONDITIONAL"},
    {"name": "企业名称", "type": "string", "length": 100, "share_type": "UNCONDITIONAL"},
    {"name": "法定代表人", "type": "string", "length": 50, "sensitive": True},
    {"name": "联系电话", "type": "string", "length": 20, "sensitive": True},
    {"name": "内部评级", "type": "string", "length": 10, "share_type": "NOT_SHARED"},
]
MARKET_ADMIN = bearer(MARKET, Role.DATA_ADMINISTRATOR, subject="market-admin")
MARKET_COMPILER = bearer(MARKET, Role.CATALOG_COMPILER, subject="market-compiler")
APPROVAL_ADMIN = bearer(APPROVAL, Role.DATA_ADMINISTRATOR, subject="approval-admin")
APPROVAL_SYSTEM = bearer(APPROVAL, subject="approval-system", machine=MachineKind.CONSUMER_SYSTEM)
HEALTH_ADMIN = bearer(HEALTH, Role.DATA_ADMINISTRATOR, subject="health-admin")
OPERATOR = bearer(IT, Role.IT_OFFICE_OPERATOR, subject="it-operator")
LEADER = bearer(LG, Role.LEADERSHIP_MEMBER, subject="leader")
AUDITOR = bearer(IT, Role.AUDITOR, subject="auditor")


@pytest.fixture(scope="module")
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Infra]:
    """A broker and database of this module's own: its disputes and grants on the shared broker would reach
    the inboxes other tests watch (the IT office hears of every dispute)."""
    infra = start_infra(tmp_path_factory.mktemp("sharing-infra"))
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
        await admin.start()
        try:
            await ensure_topics(admin, list(load_topics().values()))
        finally:
            await admin.close()
        yield infra
    finally:
        stop(infra.procs)


@pytest.fixture
def services() -> Iterator[list[ServiceProcess]]:
    """The exchanges a test starts, stopped afterwards."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        service.stop()


def entry(code: str, version: int = 1, share_type: str = "CONDITIONAL", reviewed: bool = True, items=ITEMS) -> Event:
    """The catalog's publication of an entry with its sharing terms."""
    base = catalog_published(code, MARKET, [], version=version)
    payload = base.payload | {
        "share_type": share_type,
        "share_methods": ["API", "FILE_DOWNLOAD"],
        "not_shared_basis": "《企业信息公示暂行条例》第十四条",
        "confidentiality_reviewed_on": date(2026, 1, 5) if reviewed else None,
        "data_items": [{"description": "", "share_type": None, "sensitive": False, "length": None} | i for i in items],
    }
    return Event("CatalogEntryPublished", code, payload, "catalog")


def new_code() -> str:
    return f"101001/{uuid.uuid4().int % 10**6:06d}"


async def publish(infra, topic: str, *events: Event) -> None:
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        await publisher.publish_many(topic, list(events))
    finally:
        await publisher.stop()


async def exchange_with(infra, services, tmp_path: Path, *entries: Event, database: str | None = None, **env: str):
    exchange = ServiceProcess(
        "exchange",
        infra,
        tmp_path,
        mongo_database=database or f"share_{uuid.uuid4().hex[:8]}",
        **({"sharing_today": FILED_ON} | env),
    ).start()
    services.append(exchange)
    if entries:
        await publish(infra, "catalog.published", *entries)
    await exchange.wait_ready()
    for published in entries:
        await exchange.wait_status(f"/resources/{published.key}", 200, headers=MARKET_ADMIN)
    return exchange


async def until(probe, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await probe()
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.3)


async def share_events(infra, key: str, expected: int, timeout: float = 20.0) -> list[str]:
    """The types of the share events announced about one request (or subscription grant), in order."""
    records = await read_topic(
        infra.bootstrap, "exchange.share-events", expected, timeout, where=lambda r: r.key.decode() == key
    )
    return [dict(r.headers)["event_type"].decode() for r in records]


def application(code: str, **changes) -> dict:
    return {
        "resource_code": code,
        "items": ["统一社会信用代码", "企业名称", "法定代表人", "联系电话"],
        "regions": ["3608"],
        "purpose": "行政审批核验",
        "channels": ["API"],
        "consumer_system": "approval-system",
        "valid_to": "2027-09-30",
    } | changes


async def test_subscription_application_narrowed_approval_and_revocation(broker, services, tmp_path) -> None:
    open_code, register, unreviewed = new_code(), new_code(), new_code()
    exchange = await exchange_with(
        broker,
        services,
        tmp_path,
        entry(open_code, share_type="UNCONDITIONAL", items=ITEMS[:2]),
        entry(register),
        entry(unreviewed, reviewed=False),
    )
    async with httpx.AsyncClient(base_url=exchange.url) as client:
        # unconditional: a subscription with its purpose is a grant at once
        subscription = {
            "resource_code": open_code,
            "purpose": "企业名称核验",
            "channels": ["API"],
            "valid_to": "2027-01-01",
        }
        response = await client.post("/subscriptions", json=subscription, headers=APPROVAL_ADMIN)
        assert response.status_code == 201, response.text
        subscribed = response.json()
        assert subscribed["request_id"] is None and subscribed["items"] == ["统一社会信用代码", "企业名称"]
        assert subscribed["valid_from"] == FILED_ON and subscribed["status"] == "ACTIVE"
        mine = (await client.get("/grants", headers=APPROVAL_SYSTEM)).json()
        assert [g["grant_id"] for g in mine] == [subscribed["grant_id"]]
        given = (await client.get("/grants", params={"as": "provider"}, headers=MARKET_ADMIN)).json()
        assert [g["grant_id"] for g in given] == [subscribed["grant_id"]]
        foreign = await client.get(f"/grants/{subscribed['grant_id']}", headers=HEALTH_ADMIN)
        assert foreign.status_code == 403 and foreign.json()["rule"] == "exchange.grant.read"
        conditional = subscription | {"resource_code": register, "items": ["法定代表人"]}
        refused = await client.post("/subscriptions", json=conditional, headers=APPROVAL_ADMIN)
        assert refused.status_code == 422 and "/requests" in refused.json()["detail"]

        # conditional: an application, due 10 working days later, the holiday not counted
        in_clear = {"unmasked": ["法定代表人"]}
        filed = await client.post("/requests", json=application(register, **in_clear), headers=APPROVAL_ADMIN)
        assert filed.status_code == 201, filed.text
        request = filed.json()
        assert request["status"] == "PENDING" and request["decide_by"] == "2026-10-20"
        assert build_calendar().add_working_days(date.fromisoformat(FILED_ON), 10).isoformat() == "2026-10-20"
        rid = request["request_id"]

        # refused at once, or refused as bad input
        not_shared = await client.post(
            "/requests", json=application(register, items=["企业名称", "内部评级"]), headers=APPROVAL_ADMIN
        )
        assert not_shared.status_code == 201 and not_shared.json()["status"] == "REFUSED"
        assert "第十四条" in not_shared.json()["refusal"]
        no_review = await client.post("/requests", json=application(unreviewed), headers=APPROVAL_ADMIN)
        assert no_review.json()["status"] == "REFUSED" and "confidentiality review" in no_review.json()["refusal"]
        unknown = await client.post("/requests", json=application(register, items=["注册资本"]), headers=APPROVAL_ADMIN)
        assert unknown.status_code == 422 and unknown.json()["field"] == "items" and "注册资本" in unknown.text
        too_many = await client.post(
            "/requests", json=application(register, subjects=["x"] * 1001), headers=APPROVAL_ADMIN
        )
        assert too_many.status_code == 422
        # a period past the platform's last day, or starting far ahead (the notifier dates nothing after 2999)
        for path, body, says in [
            ("/requests", application(register, valid_from="2999-06-01", valid_to="3000-01-01"), "2999-12-31"),
            ("/requests", application(register, valid_from="2030-01-01", valid_to="2030-06-30"), "days ahead"),
            ("/subscriptions", subscription | {"valid_from": "2999-12-01", "valid_to": "3000-01-31"}, "2999-12-31"),
        ]:
            far = await client.post(path, json=body, headers=APPROVAL_ADMIN)
            assert far.status_code == 422 and far.json()["field"] == "valid_to" and says in far.json()["detail"]

        # only the provider's data administrator decides, never wider than asked, with reasons
        decision = {
            "decision": "APPROVED",
            "reasons": "限本县企业，用于审批核验",
            "items": ["统一社会信用代码", "企业名称", "法定代表人"],
            "regions": ["360821"],
            "valid_to": "2027-03-31",
            "unmasked": ["法定代表人"],
        }
        for who in (APPROVAL_ADMIN, HEALTH_ADMIN, MARKET_COMPILER, OPERATOR, APPROVAL_SYSTEM):
            response = await client.post(f"/requests/{rid}/decision", json=decision, headers=who)
            assert response.status_code == 403 and response.json()["rule"] == "exchange.request.decide"
        wider = await client.post(
            f"/requests/{rid}/decision", json=decision | {"regions": ["36"]}, headers=MARKET_ADMIN
        )
        assert wider.status_code == 422 and wider.json()["field"] == "regions"
        no_reasons = await client.post(
            f"/requests/{rid}/decision", json=decision | {"reasons": ""}, headers=MARKET_ADMIN
        )
        assert no_reasons.status_code == 422
        decided = await client.post(f"/requests/{rid}/decision", json=decision, headers=MARKET_ADMIN)
        assert decided.status_code == 200, decided.text
        assert decided.json()["status"] == "APPROVED" and not decided.json()["decision"]["overdue"]
        again = await client.post(f"/requests/{rid}/decision", json=decision, headers=MARKET_ADMIN)
        assert again.status_code == 409 and again.json()["error"] == "AlreadyDecided"

        grant = (await client.get(f"/grants/{decided.json()['grant_id']}", headers=APPROVAL_SYSTEM)).json()
        assert grant["items"] == decision["items"] and grant["scope"] == {"regions": ["360821"], "subjects": []}
        assert grant["unmasked"] == ["法定代表人"] and grant["valid_to"] == "2027-03-31"
        assert grant["purpose"] == "行政审批核验" and grant["consumer_system"] == "approval-system"
        assert grant["channels"] == ["API"] and grant["request_id"] == rid and grant["entry_version"] == 1

        for who in (APPROVAL_ADMIN, MARKET_ADMIN, AUDITOR):
            assert (await client.get(f"/requests/{rid}", headers=who)).status_code == 200
        assert (await client.get(f"/requests/{rid}", headers=HEALTH_ADMIN)).status_code == 403
        received = (await client.get("/requests", params={"as": "provider"}, headers=MARKET_ADMIN)).json()
        assert rid in {r["request_id"] for r in received}

        # the provider revokes, with a reason; the consumer cannot
        revocation = {"reason": "超出约定用途使用"}
        grant_id = grant["grant_id"]
        assert (
            await client.post(f"/grants/{grant_id}/revoke", json=revocation, headers=APPROVAL_ADMIN)
        ).status_code == 403
        revoked = await client.post(f"/grants/{grant_id}/revoke", json=revocation, headers=MARKET_ADMIN)
        assert revoked.status_code == 200 and revoked.json()["status"] == "REVOKED"
        assert revoked.json()["ended_reason"] == "超出约定用途使用"
        assert (
            await client.post(f"/grants/{grant_id}/revoke", json=revocation, headers=MARKET_ADMIN)
        ).status_code == 409

    assert await share_events(broker, rid, 4) == ["ShareRequested", "ShareDecided", "GrantIssued", "GrantRevoked"]
    assert await share_events(broker, subscribed["grant_id"], 1) == ["GrantIssued"]


async def awaiting(client: httpx.AsyncClient, step: str) -> set[str]:
    """The requests of every department whose dispute awaits `step`, as the IT office lists them."""
    listed = await client.get("/requests", params={"awaiting": step}, headers=OPERATOR)
    assert listed.status_code == 200, listed.text
    return {r["request_id"] for r in listed.json()}


async def test_denial_dispute_rulings_up_to_the_leadership_group(broker, services, tmp_path) -> None:
    register = new_code()
    exchange = await exchange_with(broker, services, tmp_path, entry(register))
    async with httpx.AsyncClient(base_url=exchange.url) as client:
        rid = (await client.post("/requests", json=application(register), headers=APPROVAL_ADMIN)).json()["request_id"]
        denial = {"decision": "DENIED", "reasons": "涉及商业秘密"}
        assert (await client.post(f"/requests/{rid}/decision", json=denial, headers=MARKET_ADMIN)).status_code == 200

        grounds = {"grounds": "行政审批必需核验法定代表人"}
        third = await client.post(f"/requests/{rid}/dispute", json=grounds, headers=HEALTH_ADMIN)
        assert third.status_code == 403 and third.json()["rule"] == "exchange.request.dispute"
        disputed = await client.post(f"/requests/{rid}/dispute", json=grounds, headers=APPROVAL_ADMIN)
        assert disputed.status_code == 200, disputed.text
        assert disputed.json()["dispute"]["rule_by"] == "2026-10-20"
        assert (
            await awaiting(client, "IT_OFFICE_RULING") == {rid} and await awaiting(client, "LEADERSHIP_RULING") == set()
        )
        listed = await client.get("/requests", params={"awaiting": "IT_OFFICE_RULING"}, headers=APPROVAL_ADMIN)
        assert listed.status_code == 403  # every department's disputes: oversight only

        ruling = {"outcome": "DECISION_UPHELD", "reasons": "提供部门理由充分"}
        for who in (APPROVAL_ADMIN, MARKET_ADMIN, LEADER, AUDITOR):
            response = await client.post(f"/requests/{rid}/dispute/ruling", json=ruling, headers=who)
            assert response.status_code == 403 and response.json()["rule"] == "exchange.dispute.coordinate"
        ruled = await client.post(f"/requests/{rid}/dispute/ruling", json=ruling, headers=OPERATOR)
        assert ruled.status_code == 200 and ruled.json()["grant_id"] is None

        third = await client.post(f"/requests/{rid}/dispute/escalation", json=grounds, headers=HEALTH_ADMIN)
        assert third.status_code == 403
        escalated = await client.post(f"/requests/{rid}/dispute/escalation", json=grounds, headers=APPROVAL_ADMIN)
        assert escalated.status_code == 200 and escalated.json()["dispute"]["escalation"]["department_code"] == APPROVAL
        assert await awaiting(client, "IT_OFFICE_RULING") == set() and await awaiting(client, "LEADERSHIP_RULING") == {
            rid
        }

        final = {
            "outcome": "DECISION_OVERTURNED",
            "reasons": "审批确需，限定字段",
            "items": ["统一社会信用代码", "法定代表人"],
        }
        assert (
            await client.post(f"/requests/{rid}/dispute/final-ruling", json=final, headers=OPERATOR)
        ).status_code == 403
        ruled = await client.post(f"/requests/{rid}/dispute/final-ruling", json=final, headers=LEADER)
        assert ruled.status_code == 200, ruled.text
        assert ruled.json()["dispute"]["final_ruling"]["final"] is True
        grant = (await client.get(f"/grants/{ruled.json()['grant_id']}", headers=APPROVAL_ADMIN)).json()
        assert grant["items"] == ["统一社会信用代码", "法定代表人"] and grant["status"] == "ACTIVE"
        assert grant["scope"]["regions"] == ["3608"] and grant["unmasked"] == []
        once_more = await client.post(f"/requests/{rid}/dispute/final-ruling", json=final, headers=LEADER)
        assert once_more.status_code == 409
        assert await awaiting(client, "LEADERSHIP_RULING") == set()

    assert await share_events(broker, rid, 7) == [
        "ShareRequested",
        "ShareDecided",
        "ShareDisputed",
        "DisputeRuled",
        "DisputeEscalated",
        "DisputeRuled",
        "GrantIssued",
    ]


async def test_grants_end_with_their_catalog_rule(broker, services, tmp_path) -> None:
    tightened, withdrawn = new_code(), new_code()
    exchange = await exchange_with(broker, services, tmp_path, entry(tightened), entry(withdrawn))
    grants = {}
    async with httpx.AsyncClient(base_url=exchange.url) as client:
        for code in (tightened, withdrawn):
            rid = (await client.post("/requests", json=application(code), headers=APPROVAL_ADMIN)).json()["request_id"]
            approval = {"decision": "APPROVED", "reasons": "同意"}
            decided = await client.post(f"/requests/{rid}/decision", json=approval, headers=MARKET_ADMIN)
            grants[code] = decided.json()["grant_id"]

        # version 2 makes a granted item not shared; the withdrawal ends the other entry's grant
        stricter = [i | {"share_type": "NOT_SHARED"} if i["name"] == "联系电话" else i for i in ITEMS]
        await publish(broker, "catalog.published", entry(tightened, version=2, items=stricter))
        await publish(broker, "catalog.entry-events", catalog_withdrawn(withdrawn, MARKET))

        async def ended(code: str) -> dict | None:
            grant = (await client.get(f"/grants/{grants[code]}", headers=APPROVAL_ADMIN)).json()
            return grant if grant["status"] == "ENDED" else None

        first, second = await until(lambda: ended(tightened)), await until(lambda: ended(withdrawn))
        assert first and "联系电话" in first["ended_reason"] and "NOT_SHARED" in first["ended_reason"]
        assert second and "withdrawn" in second["ended_reason"]
        active = (await client.get("/grants", params={"status": "ACTIVE"}, headers=APPROVAL_ADMIN)).json()
        assert active == []


async def test_a_decision_overdue_across_the_holiday_is_announced_once(broker, services, tmp_path) -> None:
    register = new_code()
    database = f"share_{uuid.uuid4().hex[:8]}"
    before = await exchange_with(broker, services, tmp_path, entry(register), database=database)
    async with httpx.AsyncClient(base_url=before.url) as client:
        request = (await client.post("/requests", json=application(register), headers=APPROVAL_ADMIN)).json()
    rid = request["request_id"]
    assert request["decide_by"] == "2026-10-20"  # 1–7 October are holidays, Saturday the 10th a working day
    before.stop()

    # the day after the deadline: the periodic sweep announces it, and the late decision does not again
    after = await exchange_with(
        broker, services, tmp_path, database=database, sharing_today="2026-10-21", sharing_sweep_seconds="0.5"
    )
    async with httpx.AsyncClient(base_url=after.url) as client:

        async def marked() -> bool:
            found = (await client.get(f"/requests/{rid}", headers=MARKET_ADMIN)).json()
            return found["overdue"] == ["PROVIDER_DECISION"]

        assert await until(marked)
        # the city's tally (the IT office's dashboard): the market bureau's decision is overdue
        tally = await client.get("/requests/tally", headers=OPERATOR)
        assert tally.json() == {
            "on": "2026-10-21",
            "by_status": {"PENDING": 1},
            "overdue_by_provider": {MARKET: 1},
        }, tally.text
        refused = await client.get("/requests/tally", headers=MARKET_ADMIN)
        assert refused.status_code == 403
        denial = {"decision": "DENIED", "reasons": "数据正在治理"}
        decided = await client.post(f"/requests/{rid}/decision", json=denial, headers=MARKET_ADMIN)
        assert decided.status_code == 200 and decided.json()["decision"]["overdue"] is True
        tally = (await client.get("/requests/tally", headers=LEADER)).json()
        assert tally["by_status"] == {"DENIED": 1} and tally["overdue_by_provider"] == {}
        await asyncio.sleep(1.5)  # a few more sweeps
    found = await share_events(broker, rid, 3)
    assert found == ["ShareRequested", "ShareDecisionOverdue", "ShareDecided"], found
    records = await read_topic(broker.bootstrap, "exchange.share-events", 4, 2.0, where=lambda r: r.key.decode() == rid)
    overdue = [EventCodec.from_folder().decode(r.value)[1] for r in records]
    overdue = [p for p in overdue if p.get("step") == "PROVIDER_DECISION"]
    assert [(p["responsible_code"], p["due_on"].isoformat()) for p in overdue] == [(MARKET, "2026-10-20")]


def demo_departments() -> dict[str, tuple[str, str]]:
    """The demo directory's city bureaus by slug: (code, name), numbered as `make demo` numbers them (the
    city government, the IT office and the leadership group first)."""
    return {slug: (credit_code(CITY_REGION, 4 + n), name) for n, (name, slug) in enumerate(demo_data.CITY_BUREAUS)}


def pdf_text(pdf: bytes) -> str:
    """The text of every page, without white space: a name that wraps onto two lines is found whole."""
    return "".join("".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages)


async def test_the_printable_application_names_both_departments_for_its_readers_only(
    broker, services, tmp_path
) -> None:
    bureaus = demo_departments()
    (market, market_name), (approval, approval_name) = bureaus["scjgj"], bureaus["xzspj"]
    health = bureaus["wjw"][0]
    # the directory announces its departments, signed; a renaming nobody signed is dead-lettered
    registered = [{"department_code": c, "name": n, "level": "CITY", "parent_code": None} for c, n in bureaus.values()]
    await directory_says(broker, *(("DepartmentRegistered", p["department_code"], p) for p in registered))
    forged = {"department_code": market, "name": "伪造的市场监管局", "parent_code": None, "active": True}
    await publish(broker, "directory.events", Event("DepartmentChanged", market, forged, "directory"))
    register = new_code()
    published = entry(register)
    published = replace(published, payload=published.payload | {"provider_code": market})
    market_admin = bearer(market, Role.DATA_ADMINISTRATOR, subject="scjgj-admin")
    approval_admin = bearer(approval, Role.DATA_ADMINISTRATOR, subject="xzspj-admin")
    exchange = await exchange_with(broker, services, tmp_path)
    await publish(broker, "catalog.published", published)
    await exchange.wait_status(f"/resources/{register}", 200, headers=market_admin)
    dead = await read_topic(broker.bootstrap, "directory.events.dlq", 1, where=lambda r: r.key.decode() == market)
    assert dead and "not signed by the directory" in headers_of(dead[0])["dlq.reason"]

    async with httpx.AsyncClient(base_url=exchange.url) as client:
        subjects = [credit_code("360821", 500 + n) for n in range(3)]
        filed = await client.post("/requests", json=application(register, subjects=subjects), headers=approval_admin)
        assert filed.status_code == 201, filed.text
        rid = filed.json()["request_id"]
        path = f"/requests/{rid}/form.pdf"

        async def names_known() -> bool:
            text = pdf_text((await client.get(path, headers=approval_admin)).content)
            return market_name in text and approval_name in text

        assert await until(names_known), "the departments' names did not reach the exchange"
        for who in (approval_admin, market_admin, AUDITOR):
            response = await client.get(path, headers=who)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/pdf"
            assert response.headers["content-disposition"] == f'attachment; filename="{rid}.pdf"'
            text = pdf_text(response.content)
            assert rid in text and market_name in text and approval_name in text and "伪造" not in text
            assert "企业登记基本信息" in text and "列明的3个主体" in text
            assert not any(s in text for s in subjects)  # counted, never listed
        refused = await client.get(path, headers=bearer(health, Role.DATA_ADMINISTRATOR, subject="wjw-admin"))
        assert refused.status_code == 403 and refused.json()["rule"] == "exchange.request.read"
        assert (await client.get("/requests/none/form.pdf", headers=approval_admin)).status_code == 404
