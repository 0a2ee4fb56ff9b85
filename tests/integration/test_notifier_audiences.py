"""Who in a department sees which notice, through the running notifier on the real broker and database: a
compiler and a reviewer of the same department see different steps of one entry's review, its data
administrator the request that arrived, each with an unread count of her own; everyone the finding against the
department and a notice kept before notices had audiences; the department's systems (its adapter over REST,
its Kafka topic, its webhook) every notice."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
from pymongo import AsyncMongoClient

from common.codec import EventCodec
from common.events import Event
from common.kafka import KafkaPublisher
from common.policy import MachineKind, Role
from common.topics import load_topics
from devstack.processes import Infra
from devstack.webhook_receivers import Receiver
from services.notifier.ports import SUBSCRIBED
from tests.integration.conftest import ServiceProcess, read_topic, settings_for, skip_backlog
from tests.integration.test_notifier import fresh_code
from tests.integration.test_notifier_triggers import payload
from tests.integration.test_webhooks import register
from tests.tokens import bearer


async def start_notifier(
    infra: Infra, tmp_path, services: list, it_office: str, database: str, **env: str
) -> ServiceProcess:
    notifier = ServiceProcess("notifier", infra, tmp_path, mongo_database=database, it_office_code=it_office, **env)
    for topic in SUBSCRIBED:  # only what this test sends
        await skip_backlog(infra, f"{notifier.group_prefix}notifier", topic)
    notifier.start()
    services.append(notifier)
    await notifier.wait_ready()
    return notifier


async def send(infra: Infra, topic: str, events: list[tuple[str, str, dict, str]]) -> None:
    """(event type, key, payload, event id), in this order."""
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        await publisher.publish_many(topic, [Event(t, key, p, "test", event_id) for t, key, p, event_id in events])
    finally:
        await publisher.stop()


async def test_each_person_sees_the_notices_for_her_roles_and_the_departments_systems_all(
    infra, topics, services, tmp_path
) -> None:
    it_office, provider, consumer = fresh_code(), fresh_code(), fresh_code()
    database = f"audiences_{uuid.uuid4().hex[:8]}"
    receiver = await Receiver().start()
    try:
        # a rolling upgrade: the notifier started, a replica of the release before still running beside it
        roll = {"upgrade_roll_seconds": "4", "inbox_keys_recheck_seconds": "0.5"}
        notifier = await start_notifier(infra, tmp_path, services, it_office, database, **roll)
        await register(notifier, provider, receiver.url)
        # stores a notice as before notices had audiences (and the inbox its keys): for the whole department, as
        # it always was; and one read before read state was kept per reader: read for everyone
        legacy, legacy_read = f"legacy-{uuid.uuid4().hex[:8]}:{provider}", f"legacy-{uuid.uuid4().hex[:8]}:{provider}"
        async with AsyncMongoClient(infra.mongo_uri) as client:
            await client[database]["notifier_inbox"].insert_many([
                {"_id": key, "recipient_code": provider, "kind": "OTHER", "title": "旧通知", "body": "b",
                 "reference": None, "due_on": None, "created_at": datetime.now(UTC), "read": key == legacy_read,
                 "resource_code": None, "channels": ["INBOX", "KAFKA", "WEBHOOK"], "in_digest": False}
                for key in (legacy, legacy_read)
            ])  # fmt: skip

        resource = f"101001/{uuid.uuid4().int % 10**6:06d}"
        entry = {"resource_code": resource, "provider_code": provider, "version": 1}
        life = [("CatalogEntrySubmitted", "submitted"), ("CatalogEntryReturned", "returned"),
                ("CatalogEntrySubmitted", "resubmitted"), ("CatalogEntryPublished", "approved")]  # fmt: skip
        ids = {step: uuid.uuid4().hex for step in ("submitted", "returned", "resubmitted", "approved", "request",
                                                   "finding", "demand")}  # fmt: skip
        await send(infra, "catalog.entry-events", [(t, resource, payload(t, **entry), ids[step]) for t, step in life])
        request_id, finding_id, demand_id = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
        asked = payload("ShareRequested", request_id=request_id, resource_code=resource, provider_code=provider,
                        consumer_code=consumer, decide_by=date(2099, 1, 5))  # fmt: skip
        await send(infra, "exchange.share-events", [("ShareRequested", request_id, asked, ids["request"])])
        found = payload("AuditFindingRaised", finding_id=finding_id, department_code=provider,
                        correct_by=date.today() + timedelta(days=90))  # fmt: skip
        await send(infra, "auditor.findings", [("AuditFindingRaised", finding_id, found, ids["finding"])])
        demand_event = ids.pop("demand")  # for the IT office
        filed = payload("ShareDemandFiled", demand_id=demand_id, requester_code=consumer)
        await send(infra, "catalog.demand-events", [("ShareDemandFiled", demand_id, filed, demand_event)])
        office_request, office_resource = uuid.uuid4().hex, f"101001/{uuid.uuid4().int % 10**6:06d}"
        to_office = payload("ShareRequested", request_id=office_request, resource_code=office_resource,
                            provider_code=it_office, consumer_code=consumer, decide_by=date(2099, 1, 5))  # fmt: skip
        await send(infra, "exchange.share-events", [("ShareRequested", office_request, to_office, office_request)])
        notice = {step: f"{event_id}:{provider}" for step, event_id in ids.items()}

        adapter = bearer(provider, subject="adapter-1", machine=MachineKind.ADAPTER)
        everything = await inbox_until(notifier, provider, adapter, set(notice.values()) | {legacy, legacy_read})
        assert {n["notification_id"] for n in everything} == set(notice.values()) | {legacy, legacy_read}
        audiences = {n["notification_id"]: n["audience"] for n in everything}
        assert audiences[notice["submitted"]] == ["catalog_reviewer"] and audiences[legacy] == []

        compiler = bearer(provider, Role.CATALOG_COMPILER, subject="compiler-1")
        reviewer = bearer(provider, Role.CATALOG_REVIEWER, subject="reviewer-1")
        admin = bearer(provider, Role.DATA_ADMINISTRATOR, subject="admin-1")
        everyone = {notice["finding"], legacy, legacy_read}
        expected = {
            "compiler": (compiler, {notice["returned"], notice["approved"]} | everyone),
            "reviewer": (reviewer, {notice["submitted"], notice["resubmitted"]} | everyone),
            "admin": (admin, {notice["request"]} | everyone),
        }
        async with httpx.AsyncClient(base_url=notifier.url) as client:
            for who, (headers, wanted) in expected.items():
                page = (await client.get(f"/inbox/{provider}", headers=headers)).json()
                assert {n["notification_id"] for n in page["items"]} == wanted, who
                unread = await client.get(f"/inbox/{provider}", headers=headers, params={"unread": "true", "limit": 1})
                assert unread.json()["total"] == page["total"] - 1 == len(wanted) - 1, who  # legacy_read
            # the compiler reads the return and the finding: her unread count drops, nobody else's (the finding
            # is the whole department's, and each reads it for herself); a notice not hers she cannot mark read
            for read in (notice["returned"], notice["finding"], notice["finding"]):  # read twice: still read
                assert (await client.post(f"/inbox/{provider}/{read}/read", headers=compiler)).status_code == 204
            refused = await client.post(f"/inbox/{provider}/{notice['submitted']}/read", headers=compiler)
            assert refused.status_code == 404
            # the adapter keeps a read state of its own
            assert (
                await client.post(f"/inbox/{provider}/{notice['request']}/read", headers=adapter)
            ).status_code == 204
            another_compiler = bearer(provider, Role.CATALOG_COMPILER, subject="compiler-2")
            left = {"compiler": (compiler, 2), "compiler-2": (another_compiler, 4), "reviewer": (reviewer, 4),
                    "admin": (admin, 3), "adapter": (adapter, 6)}  # fmt: skip
            for who, (headers, unread_left) in left.items():
                page = await client.get(f"/inbox/{provider}", headers=headers, params={"unread": "true"})
                assert page.json()["total"] == unread_left, who
            shown = (await client.get(f"/inbox/{provider}", headers=compiler)).json()["items"]
            assert {n["notification_id"] for n in shown if n["read"]} == {
                notice["returned"],
                notice["finding"],
                legacy_read,
            }
            shown = (await client.get(f"/inbox/{provider}", headers=reviewer)).json()["items"]
            assert {n["notification_id"] for n in shown if n["read"]} == {legacy_read}
            # the IT office: its operators see the unmet demand addressed to them and the finding they follow,
            # its auditor the finding alone; another department's inbox, read as oversight, is all of that
            # department's
            operator = bearer(it_office, Role.IT_OFFICE_OPERATOR, subject="operator-1")
            office_auditor = bearer(it_office, Role.AUDITOR, subject="auditor-1")
            followed = {f"{demand_event}:{it_office}", f"{ids['finding']}:{it_office}"}
            demand = await inbox_until(notifier, it_office, operator, followed)
            assert sorted(n["kind"] for n in demand) == ["DEMAND_EVENT", "OTHER"]
            audited = (await client.get(f"/inbox/{it_office}", headers=office_auditor)).json()
            assert [n["notification_id"] for n in audited["items"]] == [f"{ids['finding']}:{it_office}"]
            assert (await client.get(f"/inbox/{provider}", headers=operator)).json()["total"] == 8
            # overseeing every department, her own department's notices as her own inbox shows them: not the
            # request its data administrator decides (which she could not mark read)
            office_admin = bearer(it_office, Role.DATA_ADMINISTRATOR, subject="office-admin-1")
            await inbox_until(notifier, it_office, office_admin, {f"{office_request}:{it_office}"})
            own = (await client.get(f"/inbox/{it_office}", headers=operator)).json()["items"]
            overseen = (await client.get("/inbox", headers=operator, params={"limit": 100})).json()["items"]
            in_oversight = {n["notification_id"] for n in overseen if n["recipient_code"] == it_office}
            assert in_oversight == {n["notification_id"] for n in own} == followed
            assert {n["notification_id"] for n in overseen if n["recipient_code"] == provider} >= set(notice.values())

        # the department's systems get every notice issued, whoever in it it is for
        on_topic = await read_topic(infra.bootstrap, f"notifier.notices.{provider}", 6, timeout=30)
        codec = EventCodec.from_folder()
        assert {codec.decode(r.value)[1]["notification_id"] for r in on_topic} == set(notice.values())
        delivered = await receiver.wait_for(6, timeout=30)
        assert {r.webhook_id for r in delivered} == set(notice.values())
        # each carrying whom it is for, so that a system forwarding notices to people can route them by role
        on_topic_for = {p["notification_id"]: p["audience"] for p in (codec.decode(r.value)[1] for r in on_topic)}
        hooked_for = {r.webhook_id: json.loads(r.body)["data"]["audience"] for r in delivered}
        assert on_topic_for == hooked_for == {k: v for k, v in audiences.items() if k not in (legacy, legacy_read)}
        assert on_topic_for[notice["request"]] == ["data_administrator"] and on_topic_for[notice["finding"]] == []
    finally:
        await receiver.stop()


async def inbox_until(
    notifier: ServiceProcess, department: str, headers: dict, wanted: set[str], timeout: float = 30
) -> list[dict]:
    """The department's notices once all of `wanted` are there."""
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=notifier.url, headers=headers) as client:
        while time.monotonic() < deadline:
            response = await client.get(f"/inbox/{department}")
            assert response.status_code == 200, response.text
            found = response.json()["items"]
            if wanted <= {n["notification_id"] for n in found}:
                return found
            await asyncio.sleep(0.2)
    return found
