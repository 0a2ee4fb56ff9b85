"""The notifier as `make run` runs it: share events published on `exchange.share-events` become notices in
the inboxes of the departments concerned."""

import asyncio
import uuid
from datetime import date

import httpx

from common.codec import EventCodec
from common.events import Event
from common.identifiers import credit_code_check_character
from common.kafka import KafkaPublisher
from common.policy import Role
from common.topics import load_topics
from devstack.processes import Infra
from services.notifier.ports import RESOURCE_CHANGES, SUBSCRIBED
from tests.integration.conftest import ServiceProcess, settings_for, skip_backlog
from tests.tokens import bearer


def fresh_code() -> str:
    """A department of this run's own: the shared broker holds other tests' events too."""
    first17 = f"11360800MB{uuid.uuid4().int % 10**7:07d}"
    return first17 + credit_code_check_character(first17)


GROUPS = {"notifier": SUBSCRIBED, "notifier-changes": [RESOURCE_CHANGES], "notifier-directory": ["directory.events"]}


async def start_notifier(infra: Infra, tmp_path, services: list, it_office: str, **env: str) -> ServiceProcess:
    notifier = ServiceProcess(
        "notifier", infra, tmp_path, mongo_database=f"notify_{uuid.uuid4().hex[:8]}", it_office_code=it_office, **env
    )
    for group, topics in GROUPS.items():  # only what this test sends, not the session's backlog
        for topic in topics:
            await skip_backlog(infra, f"{notifier.group_prefix}{group}", topic)
    notifier.start()
    services.append(notifier)
    await notifier.wait_ready()
    return notifier


async def test_share_events_reach_the_departments_concerned(infra, topics, services, tmp_path) -> None:
    it_office, provider, consumer = fresh_code(), fresh_code(), fresh_code()
    notifier = await start_notifier(infra, tmp_path, services, it_office)

    request_id, dispute_id, grant_id, resource = uuid.uuid4().hex, "d1", "g1", "101001/000001"
    parties = {"provider_code": provider, "consumer_code": consumer}
    asked = {"purpose": "企业开办一件事", "data_items": ["企业名称", "法定代表人"], "resource_code": resource}
    events = [
        ("ShareRequested", {"request_id": request_id, **parties, **asked, "scope": "全市",
                            "period_from": date(2026, 12, 1), "period_to": date(2027, 11, 30),
                            "requested_by": "officer-9", "decide_by": date(2026, 12, 11)}),
        ("ShareDecided", {"request_id": request_id, "resource_code": resource, **parties, "decision": "REJECTED",
                          "reasons": "超出职责范围", "decided_by": "admin", "decided_on": date(2026, 12, 3)}),
        ("ShareDisputed", {"dispute_id": dispute_id, "request_id": request_id, **parties,
                           "grounds": "属于职责范围", "raised_by": "officer-9"}),
        ("DisputeRuled", {"dispute_id": dispute_id, "request_id": request_id, "level": "IT_OFFICE",
                          "outcome": "DECISION_OVERTURNED", "reasons": "符合共享条件", "ruled_by": "xxb-operator",
                          "final": False}),
        ("GrantIssued", {"grant_id": grant_id, "request_id": request_id, **parties, **asked,
                         "valid_from": date(2026, 12, 4), "valid_to": date(2027, 11, 30)}),
        ("GrantRevoked", {"grant_id": grant_id, "resource_code": resource, "consumer_code": consumer,
                          "reason": "超出用途使用", "revoked_by": "admin"}),
        ("ShareRefused", {"request_id": "x" + request_id, "resource_code": "101001/000002", "consumer_code": consumer,
                          "legal_basis": "《中华人民共和国保守国家秘密法》"}),
    ]  # fmt: skip
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        # one key, so in order, as the events of one request are
        await publisher.publish_many(
            "exchange.share-events", [Event(t, request_id, payload, "exchange") for t, payload in events]
        )
    finally:
        await publisher.stop()

    expected = {
        provider: ["REQUEST_ARRIVED", "DISPUTE_RAISED", "DISPUTE_RULED"],
        consumer: ["REQUEST_DECIDED", "REQUEST_DECIDED", "DISPUTE_RULED", "GRANT_ISSUED", "GRANT_REVOKED"],
        it_office: ["DISPUTE_RAISED"],
    }
    inboxes = {code: await inbox(notifier, code, len(kinds)) for code, kinds in expected.items()}
    for code, kinds in expected.items():
        assert sorted(n["kind"] for n in inboxes[code]) == sorted(kinds), inboxes[code]
    arrived = next(n for n in inboxes[provider] if n["kind"] == "REQUEST_ARRIVED")
    assert arrived["due_on"] == "2026-12-11" and arrived["reference"] == request_id
    assert any("《中华人民共和国保守国家秘密法》" in n["body"] for n in inboxes[consumer])
    assert "属于职责范围" in inboxes[it_office][0]["body"]


async def inbox(notifier: ServiceProcess, department: str, expected: int) -> list[dict]:
    headers = bearer(department, Role.IT_OFFICE_OPERATOR, Role.DATA_ADMINISTRATOR)
    found: list[dict] = []
    async with httpx.AsyncClient(base_url=notifier.url, headers=headers) as client:
        for _ in range(150):
            response = await client.get(f"/inbox/{department}")
            assert response.status_code == 200, response.text
            found = response.json()["items"]
            if len(found) >= expected:
                await asyncio.sleep(0.5)  # and no more than expected arrive
                return (await client.get(f"/inbox/{department}")).json()["items"]
            await asyncio.sleep(0.2)
    return found
