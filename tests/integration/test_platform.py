"""The four services together, run as `make run` runs them: events flow from one to the others."""

import asyncio
import uuid
from datetime import UTC, date, datetime

import httpx
from datashare_adapter import PlatformConfig, notifications
from datashare_adapter.signing import generate_key
from prometheus_client.parser import text_string_to_metric_families

from common.codec import EventCodec
from common.events import Event
from common.identifiers import citizen_id_check_character, credit_code_check_character
from common.kafka import KafkaPublisher
from common.policy import Role
from common.topics import load_topics
from tests.adapter_keys import directory_says, registered, revoked, signed
from tests.integration.conftest import ServiceProcess, headers_of, read_topic, settings_for
from tests.tokens import bearer

PROVIDER = "11360800MB2000001" + credit_code_check_character("11360800MB2000001")
CONSUMER = "11360800MB3000002" + credit_code_check_character("11360800MB3000002")


async def test_events_flow_between_the_services(own_infra, services, tmp_path) -> None:
    # A broker of its own: what earlier tests left on the shared one is no concern of this flow's consumers.
    infra = own_infra
    for name in ("catalog", "exchange", "notifier", "auditor"):
        services.append(ServiceProcess(name, infra, tmp_path).start())  # each its default database
    catalog, exchange, notifier, auditor = services
    for service in services:
        await service.wait_ready()

    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    content = {
        "resource_code": code,
        "name": "户籍人口基本信息",
        "abstract": "全市户籍人口的基本信息",
        "provider_code": PROVIDER,
        "category": "BASE",
        "format": "数据库",
        "data_items": [
            {"name": "公民身份号码", "type": "string", "length": 18},
            {"name": "姓名"},
            {"name": "年龄", "type": "integer"},
        ],
        "share_type": "CONDITIONAL",
        "share_conditions": "用于公共服务",
        "share_methods": ["API"],
        "update_cycle": "DAILY",
        "confidentiality_review": {"reviewed_by": "admin", "reviewed_on": "2026-11-01", "conclusion": "不涉密"},
    }
    compiler, reviewer = bearer(PROVIDER, Role.CATALOG_COMPILER), bearer(PROVIDER, Role.CATALOG_REVIEWER, subject="r")
    async with httpx.AsyncClient(base_url=catalog.url) as client:
        created = await client.post("/entries", json=content, headers=compiler)
        assert created.status_code == 201, created.text
        assert (await client.get(f"/entries/{code}", headers=compiler)).json()["working"]["status"] == "DRAFT"
        submitted = await client.post(f"/entries/{code}/submit", json={"revision": 1}, headers=compiler)
        approved = await client.post(
            f"/entries/{code}/approve", json={"revision": submitted.json()["revision"]}, headers=reviewer
        )
        assert approved.status_code == 200, approved.text
    provider_admin = bearer(PROVIDER, Role.DATA_ADMINISTRATOR)
    await exchange.wait_status(f"/resources/{code}", 200, timeout=30, headers=provider_admin)  # from the catalog

    settings = settings_for(infra)
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    person = "36080219850214002"
    person += citizen_id_check_character(person)
    good = {
        "change_id": uuid.uuid4().hex,
        "resource_code": code,
        "provider_code": PROVIDER,
        "operation": "UPSERT",
        "subject_key": person.lower(),
        "fields": {"公民身份号码": person, "姓名": "李四", "年龄": 41},
        "source_version": 2,
        "changed_at": datetime.now(UTC),
    }
    older = good | {
        "change_id": uuid.uuid4().hex,
        "fields": {"公民身份号码": person, "姓名": "旧"},
        "source_version": 1,
    }
    invalid = good | {"change_id": uuid.uuid4().hex, "subject_key": person[:-1] + ("0" if person[-1] != "0" else "1")}
    request = {
        "request_id": uuid.uuid4().hex,
        "resource_code": code,
        "provider_code": PROVIDER,
        "consumer_code": CONSUMER,
        "purpose": "企业开办一件事",
        "scope": "全市",
        "data_items": ["name"],
        "period_from": date(2026, 12, 1),
        "period_to": date(2027, 11, 30),
        "requested_by": "officer-9",
        "decide_by": date(2026, 12, 9),
    }
    stranger = generate_key()  # a key the directory never registered
    await directory_says(
        infra,
        ("AdapterKeyRegistered", "provider-adapter", registered("provider-adapter", PROVIDER)),
        ("AdapterKeyRegistered", "consumer-adapter", registered("consumer-adapter", CONSUMER)),
        ("AdapterKeyRegistered", "retired-adapter", registered("retired-adapter", PROVIDER)),
        ("AdapterKeyRevoked", "retired-adapter", revoked("retired-adapter", PROVIDER)),
    )

    def change(payload: dict, by: str = "provider-adapter", key=None) -> Event:
        return signed(Event("DataChanged", code, payload, "adapter"), by, key)

    bad = change(invalid)
    # Only the provider's own adapter may report its data, signed with a key valid when the message arrived.
    intruders = {
        "unsigned change": Event("DataChanged", code, good | {"change_id": uuid.uuid4().hex}, "adapter"),
        "allowed only for the principal's own department": change(
            good | {"change_id": uuid.uuid4().hex}, "consumer-adapter"
        ),
        "a key the directory never registered": change(good | {"change_id": uuid.uuid4().hex}, key=stranger),
        "revoked before the change reached the broker": change(
            good | {"change_id": uuid.uuid4().hex}, "retired-adapter"
        ),
    }
    await publisher.publish_many(
        "exchange.data-changes",
        [change(good), change(older), bad, *intruders.values()],
    )
    await publisher.publish("exchange.share-events", Event("ShareRequested", code, request, "exchange"))
    await publisher.stop()

    # exchange: the newer version stands, the older is history only, the invalid key is dead-lettered
    record = await exchange.wait_status(f"/resources/{code}/records/{person}", 200, timeout=30, headers=provider_admin)
    assert record["fields"] == {"公民身份号码": person, "姓名": "李四", "年龄": 41} and record["source_version"] == 2
    async with httpx.AsyncClient(base_url=exchange.url, headers=provider_admin) as client:
        history = (await client.get(f"/resources/{code}/records/{person}/history")).json()
    assert [(h["source_version"], h["applied"]) for h in history] == [(1, False), (2, True)]
    dead = await read_topic(
        infra.bootstrap, "exchange.data-changes.dlq", 1, where=lambda r: headers_of(r)["event_id"] == bad.event_id
    )
    assert "subject_key.check_character" in headers_of(dead[0])["dlq.reason"]
    ids = {e.event_id: reason for reason, e in intruders.items()}
    refused = await read_topic(
        infra.bootstrap, "exchange.data-changes.dlq", len(ids), where=lambda r: headers_of(r)["event_id"] in ids
    )
    assert {headers_of(r)["event_id"]: headers_of(r)["dlq.reason"] for r in refused}.keys() == ids.keys()
    for r in refused:
        assert ids[headers_of(r)["event_id"]] in headers_of(r)["dlq.reason"]

    # notifier: the provider is told of the request, with the deadline
    async with httpx.AsyncClient(base_url=notifier.url, headers=provider_admin) as client:
        for _ in range(100):  # (the auditor's findings about the refused changes above may come first)
            inbox = (await client.get(f"/inbox/{PROVIDER}")).json()["items"]
            arrived = [n for n in inbox if n["kind"] == "REQUEST_ARRIVED"]
            if arrived:
                break
            await _pause()
    assert arrived and arrived[0]["due_on"] == "2026-12-09", inbox
    # ... and its adapter reads the same notification off the bus with the adapter kit
    config = PlatformConfig("unused", exchange.url, infra.bootstrap, "adapter", "unused", PROVIDER)
    received = notifications(config, group_id=f"adapter-test-{uuid.uuid4().hex[:6]}")

    async def request_notice() -> dict:  # the department's catalog notices (its entry's review) come first
        async for notice in received:
            if notice["kind"] == "REQUEST_ARRIVED":
                return notice
        raise AssertionError("the notices ended")

    notice = await asyncio.wait_for(request_notice(), 30)
    await received.aclose()
    assert notice["recipient_code"] == PROVIDER and notice["reference"] == arrived[0]["reference"]

    # auditor: catalog change, resource change, request and notification are in an intact trail
    wanted = {"CatalogEntryDrafted", "ResourceChanged", "ShareRequested", "NotificationIssued"}
    async with httpx.AsyncClient(base_url=auditor.url, headers=bearer("IT", Role.AUDITOR)) as client:
        found: set[str] = set()
        after = 0
        for _ in range(300):  # the shared broker holds earlier tests' events too: page through the trail
            page = (await client.get("/trail", params={"limit": 1000, "after_sequence": after})).json()
            found |= {e["event_type"] for e in page if code in str(e["payload"]) or e["key"] == PROVIDER}
            after = page[-1]["sequence"] if page else after
            if wanted <= found:
                break
            if len(page) < 1000:
                await _pause()
        assert wanted <= found
        assert (await client.get("/trail/verify")).json()["intact"] is True

    # every service: metrics in valid exposition format, schemas served for adapter authors
    for service in services:
        async with httpx.AsyncClient(base_url=service.url) as client:
            names = {f.name for f in text_string_to_metric_families((await client.get("/metrics")).text)}
            assert "datashare_http_requests" in names
            schema = (await client.get("/schemas/DataChanged")).json()
            assert schema["name"] == "DataChanged"
            assert (await client.get("/openapi.json")).status_code == 200


async def _pause() -> None:
    await asyncio.sleep(0.2)


async def test_bad_requests_get_clear_errors_and_change_nothing(infra, topics, services, tmp_path) -> None:
    catalog = ServiceProcess("catalog", infra, tmp_path, mongo_database=f"bad_{uuid.uuid4().hex[:8]}").start()
    services.append(catalog)
    await catalog.wait_ready()
    base = {
        "resource_code": "101001/000009",
        "name": "x",
        "provider_code": PROVIDER,
        "share_type": "NOT_SHARED",
    }
    async with httpx.AsyncClient(base_url=catalog.url, headers=bearer(PROVIDER, Role.CATALOG_COMPILER)) as client:
        response = await client.post("/entries", json=base)
        assert response.status_code == 422 and "not_shared_basis" in response.json()["detail"]
        response = await client.post("/entries", json=base | {"provider_code": PROVIDER[:-1] + "0"})
        assert response.status_code == 422 and "check_character" in response.json()["detail"]
        assert (await client.get("/entries/101001/000009")).status_code == 404
        ok = base | {"not_shared_basis": "《中华人民共和国保守国家秘密法》"}
        assert (await client.post("/entries", json=ok)).status_code == 201
        again = await client.post("/entries", json=ok)
        assert again.status_code == 409 and "resource_code" in again.json()["detail"]
