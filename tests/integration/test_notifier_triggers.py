"""The notifier as `make run` runs it, fed real events through the broker: every trigger reaches the departments
concerned, changes of data are told in batches to those who hold the resource, each department reads its own
notices off its own topic, and reminders come in working days across the 2026 National Day holiday, once,
whatever restarts in between."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from datashare_adapter import PlatformConfig, notifications
from pymongo import AsyncMongoClient

from common.codec import SCHEMA_DIR, EventCodec
from common.events import Event
from common.kafka import KafkaPublisher
from common.policy import MachineKind, Role
from common.topics import load_topics
from devstack.processes import Infra
from services.notifier.adapters.topics import KafkaDepartmentTopics
from tests.adapter_keys import directory_event, directory_says
from tests.contract.test_schemas import sample
from tests.integration.conftest import ServiceProcess, headers_of, read_topic, settings_for
from tests.integration.test_notifier import fresh_code, start_notifier
from tests.tokens import bearer


def payload(event_type: str, **values: object) -> dict:
    """A complete payload of the committed schema, with the fields a test cares about."""
    raw = json.loads((SCHEMA_DIR / f"{event_type}.avsc").read_text(encoding="utf-8"))
    return sample(copy.deepcopy(raw), {}) | values


async def send(infra: Infra, topic: str, events: list[tuple[str, str, dict]]) -> None:
    """(event type, key, payload), in this order."""
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        await publisher.publish_many(topic, [Event(t, key, p, "test") for t, key, p in events])
    finally:
        await publisher.stop()


def reader(department: str) -> dict:
    return bearer(department, Role.DATA_ADMINISTRATOR)


def system(department: str) -> dict:
    """The department's adapter: a machine reads every notice of its department, whichever roles in it the
    notice is for (test_notifier_audiences shows what each person sees)."""
    return bearer(department, subject=f"adapter-{department[-6:]}", machine=MachineKind.ADAPTER)


async def inbox_until(
    notifier: ServiceProcess,
    department: str,
    expected: int,
    timeout: float = 30,
    as_who: dict | None = None,
    **query: str,
) -> list[dict]:
    """The department's notices once `expected` are there (and a moment later, so that no more arrive), as
    `as_who` reads them (a person her roles'; by default the department's adapter: all of them)."""
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=notifier.url, headers=as_who or system(department)) as client:
        while time.monotonic() < deadline:
            response = await client.get(f"/inbox/{department}", params=query)
            assert response.status_code == 200, response.text
            found = response.json()["items"]
            if len(found) >= expected:
                await asyncio.sleep(1.0)
                return (await client.get(f"/inbox/{department}", params=query)).json()["items"]
            await asyncio.sleep(0.2)
    return found


def notices_on(records: list) -> set[str]:
    codec = EventCodec.from_folder()
    return {codec.decode(r.value)[1]["notification_id"] for r in records}


def kinds(notices: list[dict]) -> list[str]:
    return sorted(n["kind"] for n in notices)


async def test_catalog_review_duplicates_demands_and_overdue_entries_reach_whom_they_concern(
    infra, topics, services, tmp_path
) -> None:
    it_office, provider, other, requester = fresh_code(), fresh_code(), fresh_code(), fresh_code()
    notifier = await start_notifier(infra, tmp_path, services, it_office)
    resource = f"101001/{uuid.uuid4().int % 10**6:06d}"
    await send(
        infra,
        "catalog.entry-events",
        [
            ("CatalogEntrySubmitted", resource, payload("CatalogEntrySubmitted", resource_code=resource, version=1,
                                                        provider_code=provider, submitted_by="compiler-1")),
            ("CatalogEntryPublished", resource, payload("CatalogEntryPublished", resource_code=resource, version=1,
                                                        provider_code=provider, reviewed_by="reviewer-1",
                                                        published_on=date(2026, 11, 20))),
            ("DuplicateSourceFlagged", resource, payload("DuplicateSourceFlagged", resource_code=resource,
                                                         data_element="身份证号", new_provider_code=provider,
                                                         existing_provider_code=other,
                                                         existing_provider_name="吉安市公安局",
                                                         existing_resource_code="101002/000001",
                                                         element_id="DE0101", element_name="公民身份号码")),
            ("CatalogEntryOverdue", resource, payload("CatalogEntryOverdue", resource_code=resource,
                                                      provider_code=provider, kind="UPDATE_AFTER_CHANGE",
                                                      due_on=date(2026, 11, 26), detected_on=date(2026, 11, 27))),
        ],
    )  # fmt: skip
    demand = uuid.uuid4().hex
    await send(
        infra,
        "catalog.demand-events",
        [
            ("ShareDemandFiled", demand, payload("ShareDemandFiled", demand_id=demand, requester_code=requester,
                                                 title="企业登记信息", wanted_items=["企业名称"])),
            ("ShareDemandMatched", demand, payload("ShareDemandMatched", demand_id=demand, requester_code=requester,
                                                   resource_code=resource, covered_items=["企业名称"], reason="")),
            ("ShareDemandUnmatched", demand, payload("ShareDemandUnmatched", demand_id=demand,
                                                     requester_code=requester, resource_code=resource,
                                                     reason="条目不含所需数据项")),
            ("ShareDemandUnmeetable", demand, payload("ShareDemandUnmeetable", demand_id=demand,
                                                      requester_code=requester, reason="涉及国家秘密",
                                                      legal_basis="《保守国家秘密法》")),
        ],
    )  # fmt: skip

    # read as the people who act on them: a compiler and a reviewer each see their step of the review, both
    # the entry overdue and the duplicate source
    compiler, reviewer = bearer(provider, Role.CATALOG_COMPILER), bearer(provider, Role.CATALOG_REVIEWER)
    to_compiler = await inbox_until(notifier, provider, 3, as_who=compiler)
    to_reviewer = await inbox_until(notifier, provider, 3, as_who=reviewer)
    assert kinds(to_compiler) == kinds(to_reviewer) == ["CATALOG_EVENT", "DEADLINE_PASSED", "DUPLICATE_SOURCE"]
    assert "审核通过并发布" in " ".join(n["title"] for n in to_compiler)
    assert "待审核" in " ".join(n["title"] for n in to_reviewer)
    to_provider = await inbox_until(notifier, provider, 4)  # its adapter: all of them
    assert kinds(to_provider) == ["CATALOG_EVENT", "CATALOG_EVENT", "DEADLINE_PASSED", "DUPLICATE_SOURCE"]
    flagged = next(n for n in to_provider if n["kind"] == "DUPLICATE_SOURCE")
    assert "吉安市公安局" in flagged["body"] and "公民身份号码（DE0101）" in flagged["body"]
    assert all(n["resource_code"] == resource for n in to_provider)
    to_office = await inbox_until(notifier, it_office, 4, as_who=bearer(it_office, Role.IT_OFFICE_OPERATOR))
    assert kinds(to_office) == ["DEADLINE_PASSED", "DEMAND_EVENT", "DEMAND_EVENT", "DUPLICATE_SOURCE"]
    to_requester = await inbox_until(notifier, requester, 3, as_who=bearer(requester, Role.CATALOG_REVIEWER))
    assert kinds(to_requester) == ["DEMAND_EVENT"] * 3
    assert any("《保守国家秘密法》" in n["body"] for n in to_requester)
    # the authoritative source's department: its compilers hear that its element is collected again
    [told] = await inbox_until(notifier, other, 1, as_who=bearer(other, Role.CATALOG_COMPILER))
    assert told["kind"] == "DUPLICATE_SOURCE" and told["audience"] == ["catalog_compiler", "catalog_reviewer"]
    assert await inbox_until(notifier, other, 1, timeout=2, as_who=reader(other)) == []  # not its administrator's


async def test_holders_hear_of_data_changes_in_batches_and_of_their_entry_until_their_grant_ends(
    infra, topics, services, tmp_path
) -> None:
    it_office, provider, holder, subscriber, bystander = (fresh_code() for _ in range(5))
    # a window long enough that both sends below fall in it on a loaded machine
    notifier = await start_notifier(infra, tmp_path, services, it_office, change_window_seconds="6")
    resource, elsewhere = (f"1010{n}1/{uuid.uuid4().int % 10**6:06d}" for n in (0, 1))
    grant = {"provider_code": provider, "valid_from": date(2026, 1, 1), "valid_to": date(2099, 12, 31)}
    published = {"resource_code": resource, "provider_code": provider, "share_type": "CONDITIONAL",
                 "share_methods": ["API", "FILE_DOWNLOAD"], "published_on": date(2026, 11, 2),
                 "data_items": [{"name": "企业名称", "type": "string", "length": None, "description": "",
                                 "share_type": None, "sensitive": False},
                                {"name": "法定代表人", "type": "string", "length": None, "description": "",
                                 "share_type": None, "sensitive": False}]}  # fmt: skip
    await send(infra, "catalog.entry-events", [("CatalogEntryPublished", resource, payload(
        "CatalogEntryPublished", version=1, **published))])  # fmt: skip
    await send(
        infra,
        "exchange.share-events",
        [
            ("GrantIssued", "g1", payload("GrantIssued", grant_id=f"g1-{resource}", request_id="r1",
                                          resource_code=resource, consumer_code=holder, **grant)),
            ("GrantIssued", "g2", payload("GrantIssued", grant_id=f"g2-{resource}", request_id=None,
                                          resource_code=resource, consumer_code=subscriber, **grant)),
            ("GrantIssued", "g3", payload("GrantIssued", grant_id=f"g3-{resource}", request_id=None,
                                          resource_code=elsewhere, consumer_code=bystander, **grant)),
        ],
    )  # fmt: skip
    for department in (holder, subscriber, bystander):  # a grant is the whole department's: a compiler sees it
        as_compiler = bearer(department, Role.CATALOG_COMPILER)
        assert kinds(await inbox_until(notifier, department, 1, as_who=as_compiler)) == ["GRANT_ISSUED"]

    def changes(first: int, last: int, code: str = resource) -> list[tuple[str, str, dict]]:
        return [
            ("ResourceChanged", code, payload("ResourceChanged", resource_code=code, provider_code=provider,
                                              sequence=s, change_id=uuid.uuid4().hex,
                                              operation="DELETE" if s % 100 == 0 else "UPSERT"))
            for s in range(first, last + 1)
        ]  # fmt: skip

    sent = time.monotonic()
    # 1,204 changes, some delivered twice, in a few sends as an exchange's batches come
    await send(infra, "exchange.resource-changes", changes(1, 600))
    await send(infra, "exchange.resource-changes", changes(550, 1204))
    told = {}
    for department in (holder, subscriber):  # the data administrator, who holds the grant or subscription
        told[department] = await inbox_until(
            notifier, department, 1, as_who=reader(department), kind="RESOURCE_CHANGED"
        )
    latency = time.monotonic() - sent
    for notices in told.values():
        [notice] = notices
        assert "1,204 条记录" in notice["body"] and "1–1,204" in notice["body"] and "其中删除 12 条" in notice["body"]
        assert notice["resource_code"] == resource and notice["notification_id"].startswith(
            f"changes:{resource}:1-1204"
        )
    assert latency < 25, f"told {latency:.1f}s after the changes were sent"
    assert await inbox_until(notifier, bystander, 2, timeout=3) != []  # its grant only
    assert kinds(await inbox_until(notifier, bystander, 2, timeout=1)) == ["GRANT_ISSUED"]

    # the entry gets a stricter version, then the holder's grant is revoked; the entry is withdrawn at last
    stricter = published | {"data_items": published["data_items"][:1], "share_methods": ["API"]}
    await send(infra, "catalog.entry-events", [("CatalogEntryPublished", resource, payload(
        "CatalogEntryPublished", version=2, **stricter))])  # fmt: skip
    for department in (holder, subscriber):
        [changed] = await inbox_until(notifier, department, 1, as_who=reader(department), kind="ENTRY_CHANGED")
        assert "收紧" in changed["title"] and "法定代表人" in changed["body"] and "FILE_DOWNLOAD" in changed["body"]
    await send(infra, "exchange.share-events", [("GrantRevoked", "g1", payload(
        "GrantRevoked", grant_id=f"g1-{resource}", resource_code=resource, consumer_code=holder,
        provider_code=provider, reason="超出用途使用"))])  # fmt: skip
    assert len(await inbox_until(notifier, holder, 1, kind="GRANT_REVOKED")) == 1
    await send(infra, "exchange.resource-changes", changes(1200, 1210))  # 1,200–1,204 were told before
    [second] = [n for n in await inbox_until(notifier, subscriber, 2, kind="RESOURCE_CHANGED") if "1,205" in n["body"]]
    assert "6 条记录" in second["body"] and "1,205–1,210" in second["body"]
    assert len(await inbox_until(notifier, holder, 2, timeout=4, kind="RESOURCE_CHANGED")) == 1  # revoked
    withdrawal = payload(
        "CatalogEntryWithdrawn", resource_code=resource, version=2, provider_code=provider, reason="停止采集"
    )
    await send(infra, "catalog.entry-events", [("CatalogEntryWithdrawn", resource, withdrawal)])
    withdrawn = await inbox_until(notifier, subscriber, 2, kind="ENTRY_CHANGED")
    assert any("已撤销" in n["title"] and "停止采集" in n["body"] for n in withdrawn)
    assert len(await inbox_until(notifier, holder, 2, timeout=3, kind="ENTRY_CHANGED")) == 1


async def test_a_department_topic_is_named_by_the_code_as_the_adapter_kit_spells_it(infra, topics) -> None:
    code = fresh_code()
    settings = settings_for(infra)
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    made = KafkaDepartmentTopics(publisher, settings)
    try:
        await made.open([code.lower()])
        assert made.topic(code.lower()) == made.topic(code) == f"notifier.notices.{code}"
        with pytest.raises(ValueError, match="department_code"):
            await made.open(["not-a-code"])
    finally:
        await publisher.stop()
        if made._admin is not None:
            await made._admin.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
    await admin.start()
    try:
        names = set(await admin.list_topics())
        assert f"notifier.notices.{code}" in names and f"notifier.notices.{code.lower()}" not in names
    finally:
        await admin.close()


def counted(notice: dict) -> set[int]:
    """The sequences a change notice names ("有 2,000 条记录发生变化……变更序号 1–1,000、5,001–6,000。"), checked
    against the count it states."""
    found = re.search(r"有 ([\d,]+) 条记录发生变化.*变更序号 ([\d,–、]+)。", notice["body"])
    assert found, notice["body"]
    sequences: set[int] = set()
    for span in found.group(2).replace(",", "").split("、"):
        low, _, high = span.partition("–")
        sequences |= set(range(int(low), int(high or low) + 1))
    assert len(sequences) == int(found.group(1).replace(",", "")), notice["body"]
    return sequences


async def changes_told(
    notifier: ServiceProcess, holder: str, seen: set[str], expected: int, timeout: float = 60
) -> list[dict]:
    """The change notices not in `seen` once they name `expected` changes (a slow consumer may split them)."""
    deadline, fresh = time.monotonic() + timeout, []
    while (left := deadline - time.monotonic()) > 0:
        told = await inbox_until(notifier, holder, len(seen) + 1, timeout=left, kind="RESOURCE_CHANGED")
        fresh = [n for n in told if n["notification_id"] not in seen]
        if sum(len(counted(n)) for n in fresh) >= expected:
            break
    seen |= {n["notification_id"] for n in fresh}
    return fresh


async def test_changes_arriving_out_of_order_are_told_once_each_and_a_busy_resource_is_told_per_longest_batch(
    infra, topics, services, tmp_path
) -> None:
    it_office, provider, holder = (fresh_code() for _ in range(3))
    notifier = await start_notifier(
        infra, tmp_path, services, it_office, change_window_seconds="3", change_batch_max_seconds="6"
    )
    resource = f"101001/{uuid.uuid4().int % 10**6:06d}"
    grant = payload("GrantIssued", grant_id=f"g1-{resource}", request_id="r1", resource_code=resource,
                    consumer_code=holder, provider_code=provider, valid_from=date(2026, 1, 1),
                    valid_to=date(2099, 12, 31))  # fmt: skip
    await send(infra, "exchange.share-events", [("GrantIssued", "g1", grant)])
    assert kinds(await inbox_until(notifier, holder, 1)) == ["GRANT_ISSUED"]

    def changes(sequences: Iterable[int]) -> list[tuple[str, str, dict]]:
        return [
            ("ResourceChanged", resource, payload("ResourceChanged", resource_code=resource, provider_code=provider,
                                                  sequence=s, change_id=uuid.uuid4().hex, operation="UPSERT"))
            for s in sequences
        ]  # fmt: skip

    def each_once(notices: list[dict]) -> set[int]:
        named = [counted(n) for n in notices]
        assert sum(map(len, named)) == len(set().union(*named)), [n["body"] for n in notices]  # none twice
        return set().union(*named)

    seen: set[str] = set()
    # two ingestion replicas: 5,001–6,000 come first, then 1–1,000
    await send(infra, "exchange.resource-changes", changes([*range(5_001, 6_001), *range(1, 1_001)]))
    first = await changes_told(notifier, holder, seen, 2_000)
    assert each_once(first) == {*range(1, 1_001), *range(5_001, 6_001)}
    if len(first) == 1:  # told in one batch, its gap said
        assert "变更序号 1–1,000、5,001–6,000。" in first[0]["body"]
    # after they were told, the rest arrives, with all of it again
    await send(infra, "exchange.resource-changes", changes([*range(1_001, 5_001), *range(1, 6_001)]))
    second = await changes_told(notifier, holder, seen, 4_000)
    assert each_once(second) == set(range(1_001, 5_001))
    await asyncio.sleep(4)  # the changes sent again tell nothing
    assert await changes_told(notifier, holder, set(seen), 1, timeout=3) == []

    # a change every half second for 11 s: batches of at most 6 s, not one notice per 3 s window
    sequence, started = 10_000, time.monotonic()
    while time.monotonic() - started < 11:
        sequence += 1
        await send(infra, "exchange.resource-changes", changes([sequence]))
        await asyncio.sleep(0.5)
    busy = await changes_told(notifier, holder, seen, sequence - 10_000)
    assert each_once(busy) == set(range(10_001, sequence + 1))
    assert 2 <= len(busy) <= 3, [n["body"] for n in busy]


async def test_read_notices_and_change_notices_expire_from_the_inbox(infra, topics, services, tmp_path) -> None:
    it_office, provider, holder = (fresh_code() for _ in range(3))
    notifier = await start_notifier(infra, tmp_path, services, it_office, read_notice_retention_days="0.0001")
    resource = f"101001/{uuid.uuid4().int % 10**6:06d}"
    grants = [
        ("GrantIssued", f"g{n}", payload("GrantIssued", grant_id=f"g{n}-{resource}", request_id=f"r{n}",
                                         resource_code=resource, consumer_code=holder, provider_code=provider,
                                         valid_from=date(2026, 1, 1), valid_to=date(2099, 12, 31)))
        for n in (1, 2)
    ]  # fmt: skip
    change = payload("ResourceChanged", resource_code=resource, provider_code=provider, sequence=1,
                     change_id=uuid.uuid4().hex, operation="UPSERT")  # fmt: skip
    await send(infra, "exchange.share-events", grants)
    # the grants and the change come on two topics, each its own consumer: the holder is told of a change
    # only once the notifier knows of its grants, so the change goes once the grants are known
    assert len(await inbox_until(notifier, holder, 2, kind="GRANT_ISSUED")) == 2
    await send(infra, "exchange.resource-changes", [("ResourceChanged", resource, change)])
    notices = await inbox_until(notifier, holder, 3)
    read, unread = sorted(n["notification_id"] for n in notices if n["kind"] == "GRANT_ISSUED")
    [told] = [n["notification_id"] for n in notices if n["kind"] == "RESOURCE_CHANGED"]
    async with httpx.AsyncClient(base_url=notifier.url, headers=reader(holder)) as client:
        assert (await client.post(f"/inbox/{holder}/{read}/read")).status_code == 204
        marked_at = datetime.now(UTC)
        mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
        try:
            inbox = mongo[notifier.env["NOTIFIER_MONGO_DATABASE"]]["notifier_inbox"]
            expiry = {doc["_id"]: doc.get("expire_at") async for doc in inbox.find({"recipient_code": holder})}
            assert expiry[unread] is None  # unread, not a change: kept until read
            assert abs((expiry[read] - marked_at).total_seconds() - 8.64) < 5
            assert abs((expiry[told] - marked_at) - timedelta(days=90)) < timedelta(minutes=1)
            ttl = [i for i in (await inbox.index_information()).values() if i["key"] == [("expire_at", 1)]]
            assert [i.get("expireAfterSeconds") for i in ttl] == [0]
            # The database sweeps expired documents every 60 s (as mongod's TTL monitor does); once the read
            # notice's time is up, the test asks the local database for its sweep now rather than wait.
            await asyncio.sleep(max(0.0, (expiry[read] - datetime.now(UTC)).total_seconds()) + 0.5)
            await mongo.admin.command({"secantusAdmin.pruneTtl": 1})
        finally:
            await mongo.close()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            kept = {n["notification_id"] for n in (await client.get(f"/inbox/{holder}")).json()["items"]}
            if read not in kept:
                break
            await asyncio.sleep(2)
        assert kept == {unread, told}


async def test_each_department_reads_its_own_notices_off_its_own_topic(infra, topics, services, tmp_path) -> None:
    it_office, first, second = fresh_code(), fresh_code(), fresh_code()
    notifier = await start_notifier(infra, tmp_path, services, it_office)
    forged = fresh_code()
    await directory_says(infra, *[
        ("DepartmentRegistered", code, payload("DepartmentRegistered", department_code=code, name=f"部门{n}",
                                               level="CITY", parent_code=None))
        for n, code in enumerate((first, second))
    ])  # fmt: skip
    # anyone can write a message in the directory's name; unsigned, it makes nothing
    await send(infra, "directory.events", [("DepartmentRegistered", forged, payload(
        "DepartmentRegistered", department_code=forged, name="伪造", level="CITY", parent_code=None))])  # fmt: skip
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
    await admin.start()
    try:
        for _ in range(100):  # made when the department is registered, before any notice
            if {f"notifier.notices.{first}", f"notifier.notices.{second}"} <= set(await admin.list_topics()):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the departments' notice topics were not made")
        dead = await read_topic(
            infra.bootstrap, "directory.events.dlq", 1, where=lambda r: r.key.decode() == forged, timeout=20
        )
        assert "not signed by the directory" in headers_of(dead[0])["dlq.reason"]
        assert f"notifier.notices.{forged}" not in await admin.list_topics()
    finally:
        await admin.close()

    resource = f"101001/{uuid.uuid4().int % 10**6:06d}"
    requests = {code: uuid.uuid4().hex for code in (first, second)}
    await send(infra, "exchange.share-events", [
        ("ShareRequested", request_id, payload("ShareRequested", request_id=request_id, resource_code=resource,
                                               provider_code=code, consumer_code=it_office,
                                               decide_by=date(2099, 1, 5)))
        for code, request_id in requests.items()
    ])  # fmt: skip
    for code in (first, second):
        # the adapter kit reads the department's own topic (the schema from any service's /schemas)
        config = PlatformConfig("unused", notifier.url, infra.bootstrap, "adapter", "unused", code)
        received = notifications(config, group_id=f"adapter-test-{uuid.uuid4().hex[:6]}")
        notice = await asyncio.wait_for(anext(received), 30)
        await received.aclose()
        assert notice["recipient_code"] == code and notice["reference"] == requests[code]
        assert notice["kind"] == "REQUEST_ARRIVED" and notice["resource_code"] == resource
        # its notice only (at least once: a receiver de-duplicates by the id): the other department's never
        assert notices_on(await read_topic(infra.bootstrap, f"notifier.notices.{code}", 5, timeout=3)) == {
            f"{notice['notification_id']}"
        }

    # a department that chose its inbox only gets nothing more on its topic
    async with httpx.AsyncClient(base_url=notifier.url, headers=reader(first)) as client:
        chosen = await client.put(f"/preferences/{first}", json={"channels": ["INBOX", "WEBHOOK"]})
        assert chosen.status_code == 200, chosen.text
        other = await client.put(f"/preferences/{second}", json={"channels": ["INBOX"]})
        assert other.status_code == 403 and other.json()["rule"] == "notifier.preferences.manage"
    again = uuid.uuid4().hex
    await send(infra, "exchange.share-events", [("ShareRequested", again, payload(
        "ShareRequested", request_id=again, resource_code=resource, provider_code=first, consumer_code=it_office,
        decide_by=date(2099, 1, 5)))])  # fmt: skip
    [latest, _] = await inbox_until(notifier, first, 2)
    assert latest["reference"] == again and latest["channels"] == ["INBOX", "WEBHOOK"]
    on_topic = await read_topic(infra.bootstrap, f"notifier.notices.{first}", 2, timeout=3)
    assert latest["notification_id"] not in notices_on(on_topic) and len(notices_on(on_topic)) == 1


async def test_the_inbox_pages_filters_marks_read_and_shows_a_department_only_its_own(
    infra, topics, services, tmp_path
) -> None:
    it_office, provider, consumer = fresh_code(), fresh_code(), fresh_code()
    notifier = await start_notifier(infra, tmp_path, services, it_office)
    resources = [f"101001/{uuid.uuid4().int % 10**6:06d}" for _ in range(2)]
    events = [
        ("ShareRequested", f"r{n}", payload("ShareRequested", request_id=f"r{n}-{provider}", resource_code=resource,
                                            provider_code=provider, consumer_code=consumer,
                                            decide_by=date(2099, 1, 5)))
        for n, resource in enumerate(resources * 3)
    ]  # fmt: skip
    await send(infra, "exchange.share-events", events)
    everything = await inbox_until(notifier, provider, 6)
    assert len(everything) == 6
    async with httpx.AsyncClient(base_url=notifier.url, headers=reader(provider)) as client:
        pages = [(await client.get(f"/inbox/{provider}", params={"limit": 4, "offset": o})).json() for o in (0, 4)]
        assert [p["total"] for p in pages] == [6, 6] and [len(p["items"]) for p in pages] == [4, 2]
        assert {n["notification_id"] for p in pages for n in p["items"]} == {n["notification_id"] for n in everything}
        one = (await client.get(f"/inbox/{provider}", params={"resource": resources[0]})).json()
        assert one["total"] == 3 and {n["resource_code"] for n in one["items"]} == {resources[0]}
        assert (await client.get(f"/inbox/{provider}", params={"kind": "GRANT_ISSUED"})).json()["total"] == 0
        marked = await client.post(f"/inbox/{provider}/{everything[0]['notification_id']}/read")
        assert marked.status_code == 204
        unread = (await client.get(f"/inbox/{provider}", params={"unread": "true"})).json()
        assert unread["total"] == 5 and everything[0]["notification_id"] not in {
            n["notification_id"] for n in unread["items"]
        }
        assert (await client.get(f"/inbox/{provider}", params={"limit": 1001})).status_code == 422
        mine = (await client.get("/inbox")).json()
        assert mine["total"] == 6 and {n["recipient_code"] for n in mine["items"]} == {provider}
    async with httpx.AsyncClient(base_url=notifier.url, headers=reader(consumer)) as client:
        assert (await client.get(f"/inbox/{provider}")).status_code == 403
        assert (await client.post(f"/inbox/{provider}/{everything[1]['notification_id']}/read")).status_code == 403
    office = bearer(it_office, Role.IT_OFFICE_OPERATOR)
    async with httpx.AsyncClient(base_url=notifier.url, headers=office) as client:
        assert (await client.get(f"/inbox/{provider}")).json()["total"] == 6
        assert (await client.get("/inbox", params={"recipient": provider})).json()["total"] == 6


async def test_reminders_come_in_working_days_across_national_day_once_whatever_restarts(
    infra, topics, services, tmp_path
) -> None:
    """Due on Friday 9 October 2026, two working days before is Wednesday 30 September (1–7 October are the
    holiday); due on Monday 12 October, it is Friday 9 October (Saturday 10 October is a working day)."""
    it_office, provider, consumer = fresh_code(), fresh_code(), fresh_code()
    notifier = await start_notifier(
        infra, tmp_path, services, it_office, clock_start="2026-09-30T08:59:54+08:00", timer_max_sleep_seconds="600"
    )
    request = {"provider_code": provider, "consumer_code": consumer, "resource_code": "101001/000001"}
    ids = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in ("soon", "later", "decided")}
    await send(infra, "exchange.share-events", [
        ("ShareRequested", ids["soon"], payload("ShareRequested", request_id=ids["soon"], **request,
                                                decide_by=date(2026, 10, 9))),
        ("ShareRequested", ids["later"], payload("ShareRequested", request_id=ids["later"], **request,
                                                 decide_by=date(2026, 10, 12))),
        ("ShareRequested", ids["decided"], payload("ShareRequested", request_id=ids["decided"], **request,
                                                   decide_by=date(2026, 10, 9))),
        ("ShareDecided", ids["decided"], payload("ShareDecided", request_id=ids["decided"], **request,
                                                 decision="APPROVED", decided_on=date(2026, 9, 30))),
    ])  # fmt: skip
    entry = f"101001/{uuid.uuid4().int % 10**6:06d}"
    await send(infra, "catalog.entry-events", [("CatalogEntryChangeReported", entry, payload(
        "CatalogEntryChangeReported", resource_code=entry, provider_code=provider, reported_on=date(2026, 9, 29),
        due_on=date(2026, 10, 9), reason="新增数据项"))])  # fmt: skip
    await inbox_until(notifier, provider, 3, kind="REQUEST_ARRIVED")
    async with httpx.AsyncClient(base_url=notifier.url, headers=reader(provider)) as client:
        scheduled = (await client.get(f"/reminders/{provider}")).json()
    times = {r["reference"]: r["remind_at"] for r in scheduled}
    assert times.get(ids["later"]) in ("2026-10-09T01:00:00Z", "2026-10-09T01:00:00+00:00"), scheduled
    assert ids["decided"] not in times  # decided: no reminder

    reminded = await inbox_until(notifier, provider, 2, timeout=20, kind="DEADLINE_APPROACHING")
    [soon] = [n for n in reminded if n["reference"] == ids["soon"]]
    [update] = [n for n in reminded if n["reference"] == entry]
    assert soon["due_on"] == "2026-10-09" and update["due_on"] == "2026-10-09" and "目录更新" in update["title"]
    assert soon["notification_id"] == f"reminder:REQUEST_DECISION:{ids['soon']}:{provider}"

    # killed while the later reminder waits; started again on the morning it is due
    notifier.signal(9)
    notifier.wait_exit(10)
    notifier.env["NOTIFIER_CLOCK_START"] = "2026-10-09T08:59:57+08:00"
    notifier.start()
    await notifier.wait_ready()
    reminded = await inbox_until(notifier, provider, 3, timeout=20, kind="DEADLINE_APPROACHING")
    assert sorted(n["reference"] for n in reminded) == sorted([ids["soon"], ids["later"], entry])
    # and once more, later still: nothing is sent twice
    notifier.stop()
    notifier.env["NOTIFIER_CLOCK_START"] = "2026-10-09T10:00:00+08:00"
    notifier.start()
    await notifier.wait_ready()
    assert len(await inbox_until(notifier, provider, 4, timeout=4, kind="DEADLINE_APPROACHING")) == 3


async def test_a_daily_digest_gathers_what_waited_and_goes_on_the_departments_topic(
    infra, topics, services, tmp_path
) -> None:
    it_office, provider = fresh_code(), fresh_code()
    # the notifier's clock starts with its process: the digest is due 40 s later, time enough for it to get
    # ready and take the preference on a loaded machine (after 08:30 the next digest would be tomorrow's)
    notifier = await start_notifier(
        infra, tmp_path, services, it_office, clock_start="2026-11-20T08:29:20+08:00", digest_time="08:30"
    )
    async with httpx.AsyncClient(base_url=notifier.url, headers=reader(provider)) as client:
        chosen = await client.put(f"/preferences/{provider}", json={"delivery": "DAILY_DIGEST"})
        assert chosen.status_code == 200 and chosen.json()["kinds"] is None, chosen.text
    ids = [uuid.uuid4().hex for _ in range(3)]
    await send(infra, "exchange.share-events", [
        ("ShareRequested", request_id, payload("ShareRequested", request_id=request_id, resource_code="101001/000001",
                                               provider_code=provider, consumer_code=it_office,
                                               decide_by=date(2099, 1, 5)))
        for request_id in ids
    ])  # fmt: skip
    entry = {"resource_code": "101001/000002", "provider_code": provider, "version": 1}
    await send(
        infra,
        "catalog.entry-events",
        [("CatalogEntryReturned", "101001/000002", payload("CatalogEntryReturned", **entry))],
    )
    assert len(await inbox_until(notifier, provider, 3, kind="REQUEST_ARRIVED")) == 3  # in the inbox at once
    topic = f"notifier.notices.{provider}"
    # one digest for each audience: the data administrator's names the requests, the compiler's the return
    compiler = bearer(provider, Role.CATALOG_COMPILER)
    [returned] = await inbox_until(notifier, provider, 1, as_who=compiler, kind="CATALOG_EVENT")
    [digest] = await inbox_until(notifier, provider, 1, timeout=60, as_who=reader(provider), kind="DIGEST")
    assert "（3 条）" in digest["title"] and digest["body"].count("数据共享申请待答复") == 3
    assert returned["title"] not in digest["body"] and digest["audience"] == ["data_administrator"]
    [compilers] = await inbox_until(notifier, provider, 1, timeout=60, as_who=compiler, kind="DIGEST")
    assert "（1 条）" in compilers["title"] and returned["title"] in compilers["body"]
    assert "数据共享申请待答复" not in compilers["body"]
    digests = {digest["notification_id"], compilers["notification_id"]}
    assert notices_on(await read_topic(infra.bootstrap, topic, 3, timeout=3)) == digests


async def test_a_request_to_publish_reaches_the_provider_with_a_reminder_and_its_answer_the_consumer(
    infra, topics, services, tmp_path
) -> None:
    """Art. 18: the provider hears of a consumer's request to publish outside government and is reminded two
    working days before its answer is due (across the National Day holiday); the consumer hears the answer,
    which takes the reminder away."""
    it_office, provider, consumer = fresh_code(), fresh_code(), fresh_code()
    notifier = await start_notifier(infra, tmp_path, services, it_office, clock_start="2026-09-28T09:00:00+08:00")
    resource = f"101001/{uuid.uuid4().int % 10**6:06d}"
    asked, answered = (f"consent-{uuid.uuid4().hex[:8]}" for _ in range(2))
    common = {"resource_code": resource, "provider_code": provider, "consumer_code": consumer, "audience": "门户网站"}
    wanted = {"items": ["企业名称"], "purpose": "公示", "decide_by": date(2026, 10, 12)}
    no = {"granted": False, "reasons": "含未公开信息", "decided_on": date(2026, 9, 29)}
    await send(
        infra,
        "exchange.share-events",
        [
            (t, c, payload(t, consent_id=c, **common, **values))
            for t, c, values in (
                ("PublicationConsentRequested", asked, wanted),
                ("PublicationConsentRequested", answered, wanted),
                ("PublicationConsentDecided", answered, no),
            )
        ],
    )
    arrived = await inbox_until(notifier, provider, 2, as_who=reader(provider), kind="REQUEST_ARRIVED")
    assert sorted(n["reference"] for n in arrived) == sorted([asked, answered])
    assert all("对外发布" in n["title"] and n["due_on"] == "2026-10-12" for n in arrived), arrived
    [decided] = await inbox_until(notifier, consumer, 1, as_who=reader(consumer), kind="REQUEST_DECIDED")
    assert decided["reference"] == answered and "不同意" in decided["title"] and "含未公开信息" in decided["body"]
    async with httpx.AsyncClient(base_url=notifier.url, headers=reader(provider)) as client:
        scheduled = (await client.get(f"/reminders/{provider}")).json()
    times = {r["reference"]: r["remind_at"] for r in scheduled}
    # due Monday 12 October: two working days before is Friday 9 October (Saturday 10 October is a working day)
    assert times.get(asked) in ("2026-10-09T01:00:00Z", "2026-10-09T01:00:00+00:00"), scheduled
    assert answered not in times
    assert await inbox_until(notifier, provider, 1, timeout=2, kind="REQUEST_DECIDED") == []  # not the provider's


async def test_events_that_can_never_be_handled_are_dead_lettered_at_once_and_the_next_is_handled(
    infra, topics, services, tmp_path
) -> None:
    """A department named by no credit code, a ruling on a dispute never heard that does not name the parties
    itself, a day in year 9999: each is refused on its first try (dlq.attempts 1, no "handler failed" retries)
    and the next event of its partition is handled. Before, each took five tries with backoff."""
    it_office, department, provider, consumer = (fresh_code() for _ in range(4))
    notifier = await start_notifier(infra, tmp_path, services, it_office)
    request, resource = uuid.uuid4().hex, f"101001/{uuid.uuid4().int % 10**6:06d}"
    finding = payload("AuditFindingRaised", finding_id=uuid.uuid4().hex, department_code=department, reference=None,
                      category="DATA_NOT_PROVIDED_IN_TIME", correct_by=date(2026, 12, 9))  # fmt: skip
    # each refused event and the one after it share a key, so a partition
    pairs = {
        "auditor.findings": [
            Event("AuditFindingRaised", department, finding | {"finding_id": "x", "department_code": "DEPT-X"}, "test"),
            Event("AuditFindingRaised", department, finding, "test"),
        ],
        "exchange.share-events": [
            Event("DisputeRuled", request, payload("DisputeRuled", dispute_id="d-unheard", request_id=request,
                                                   consumer_code="", provider_code=""), "test"),
            Event("ShareRequested", request, payload("ShareRequested", request_id=request, resource_code=resource,
                                                     provider_code=provider, consumer_code=consumer,
                                                     decide_by=date(2026, 12, 11)), "test"),
        ],
        "catalog.entry-events": [
            Event("CatalogEntryPublished", resource, payload("CatalogEntryPublished", resource_code=resource,
                                                             version=1, provider_code=provider,
                                                             published_on=date(9999, 12, 31)), "test"),
            Event("CatalogEntrySubmitted", resource, payload("CatalogEntrySubmitted", resource_code=resource,
                                                             version=2, provider_code=provider), "test"),
        ],
    }  # fmt: skip
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        for topic, events in pairs.items():
            await publisher.publish_many(topic, events)
        codeless = payload("DepartmentRegistered", department_code="DEPT-Y", name="无码部门", level="CITY")
        value, headers = directory_event("DepartmentRegistered", "DEPT-Y", codeless)  # signed by the directory
        await (await publisher.send_raw("directory.events", "DEPT-Y", value, headers))
    finally:
        await publisher.stop()
    refused = {pairs[t][0].event_id: t for t in pairs} | {dict(headers)["event_id"].decode(): "directory.events"}
    rules = {
        "auditor.findings": "rejected: department: AuditFindingRaised.department_code: 'DEPT-X' names no department",
        "exchange.share-events": "rejected: dispute_id: no ShareDisputed d-unheard was heard",
        "catalog.entry-events": "rejected: payload: CatalogEntryPublished.published_on: 9999-12-31 is outside",
        "directory.events": "rejected: department: DepartmentRegistered.department_code: 'DEPT-Y'",
    }

    # the next event of each partition was handled: its notice is there
    assert kinds(await inbox_until(notifier, department, 1)) == ["OTHER"]
    assert kinds(await inbox_until(notifier, provider, 2)) == ["CATALOG_EVENT", "REQUEST_ARRIVED"]
    for topic in {*refused.values()}:
        [dead] = await read_topic(
            infra.bootstrap, topic + ".dlq", 1, where=lambda r: headers_of(r).get("event_id") in refused
        )
        why = headers_of(dead)
        assert why["dlq.attempts"] == "1" and why["dlq.reason"].startswith(rules[topic]), why
        assert why["dlq.group"].startswith(notifier.group_prefix)
    assert "handler failed" not in notifier.log.read_text()


async def test_a_rectification_report_reaches_the_it_office_and_its_rejection_the_department(
    infra, topics, services, tmp_path
) -> None:
    it_office, department = fresh_code(), fresh_code()
    notifier = await start_notifier(infra, tmp_path, services, it_office)
    finding = uuid.uuid4().hex
    common = {"finding_id": finding, "department_code": department, "correct_by": date(2026, 12, 9)}
    await send(
        infra,
        "auditor.findings",
        [
            ("AuditFindingReported", department, payload("AuditFindingReported", report="已补传十一月数据",
                                                         reference=None, reported_on=date(2026, 12, 1), **common)),
            ("AuditFindingReportRejected", department, payload("AuditFindingReportRejected", reason="未见交换记录",
                                                               rejected_on=date(2026, 12, 2), **common)),
        ],
    )  # fmt: skip
    [heard] = await inbox_until(notifier, it_office, 1, as_who=bearer(it_office, Role.IT_OFFICE_OPERATOR))
    assert heard["reference"] == finding and "收到整改报告" in heard["title"] and "已补传十一月数据" in heard["body"]
    assert heard["audience"] == ["it_office_operator"]
    [told] = await inbox_until(notifier, department, 1, as_who=bearer(department, Role.CATALOG_COMPILER))
    assert told["reference"] == finding and "整改报告未通过" in told["title"] and "未见交换记录" in told["body"]
    assert told["audience"] == []  # the department as a whole, as the finding


async def test_a_rectification_report_left_unanswered_reminds_the_it_office_after_its_working_days(
    infra, topics, services, tmp_path
) -> None:
    """A report handed in on Monday 26 October 2026 holds its finding's escalation for as long as it waits:
    after 5 working days (Monday 2 November) the IT office's operators are reminded to answer it. A report
    rejected, or a finding closed, leaves no reminder behind; a later report is due later. Reports handed in on
    19 October, handled only now (a replay), are reminded of a grace after they were handled, not at once: the
    rejection that follows one of them on the topic drops its reminder before it goes."""
    it_office, department = fresh_code(), fresh_code()
    notifier = await start_notifier(
        infra,
        tmp_path,
        services,
        it_office,
        clock_start="2026-11-02T08:59:50+08:00",
        timer_max_sleep_seconds="600",
        report_answer_overdue_grace_seconds="5",
    )
    names = ("waiting", "rejected", "closed", "later", "replayed", "replayed_answered")
    ids = {name: f"F{name}-{uuid.uuid4().hex[:8]}" for name in names}

    def reported(name: str, day: date) -> tuple[str, str, dict]:
        body = payload(
            "AuditFindingReported", finding_id=ids[name], department_code=department, report=f"整改报告 {name}",
            reference=None, reported_on=day, correct_by=date(2026, 11, 2),
        )  # fmt: skip
        return ("AuditFindingReported", department, body)

    closed = {"finding_id": ids["closed"], "department_code": department}
    await send(
        infra,
        "auditor.findings",
        [
            reported("waiting", date(2026, 10, 26)),
            reported("rejected", date(2026, 10, 26)),
            reported("closed", date(2026, 10, 26)),
            reported("later", date(2026, 10, 30)),
            ("AuditFindingReportRejected", department, payload(
                "AuditFindingReportRejected", finding_id=ids["rejected"], department_code=department, reason="不充分",
                rejected_on=date(2026, 10, 30), correct_by=date(2026, 11, 2))),
            ("AuditFindingCorrected", department, payload(
                "AuditFindingCorrected", **closed, corrected_on=date(2026, 10, 30), note="已认可", corrected_by="it")),
            reported("replayed", date(2026, 10, 19)),
            reported("replayed_answered", date(2026, 10, 19)),
            ("AuditFindingReportRejected", department, payload(
                "AuditFindingReportRejected", finding_id=ids["replayed_answered"], department_code=department,
                reason="不充分", rejected_on=date(2026, 10, 21), correct_by=date(2026, 11, 2))),
        ],
    )  # fmt: skip
    both = await inbox_until(notifier, it_office, 2, timeout=40, kind="DEADLINE_APPROACHING")
    assert sorted(r["reference"] for r in both) == sorted([ids["waiting"], ids["replayed"]]), both
    [reminded] = [r for r in both if r["reference"] == ids["waiting"]]
    # no deadline of the IT office's comes near: how long the report has waited, whose and since when
    assert reminded["reference"] == ids["waiting"] and reminded["due_on"] is None, reminded
    assert "整改报告已待核实满 5 个工作日" in reminded["title"] and reminded["audience"] == ["it_office_operator"]
    assert f"部门 {department} 于 2026-10-26 报送" in reminded["body"] and "临近期限" not in reminded["title"]
    assert "应于" not in reminded["body"], reminded["body"]
    assert reminded["notification_id"] == f"reminder:REPORT_ANSWER:{ids['waiting']}:2026-11-02:{it_office}"
    async with httpx.AsyncClient(base_url=notifier.url, headers=system(it_office)) as client:
        scheduled = (await client.get(f"/reminders/{it_office}")).json()
    # the later report's first reminder; the two reminded already, again 5 working days on while unanswered
    due = {ids["later"]: "2026-11-06", ids["waiting"]: "2026-11-09", ids["replayed"]: "2026-11-09"}
    assert {r["reference"]: r["due_on"] for r in scheduled} == due, scheduled
    since = {r["reference"]: (r["about_code"], r["since"]) for r in scheduled}  # whose report, since when
    assert since[ids["later"]] == (department, "2026-10-30") and since[ids["waiting"]] == (department, "2026-10-26")
    # the department is not reminded of the IT office's answer
    assert not await inbox_until(notifier, department, 1, timeout=2, kind="DEADLINE_APPROACHING")


async def test_a_findings_rectification_is_reminded_to_its_department_and_the_it_offices_operators(
    infra, topics, services, tmp_path
) -> None:
    """Due on Wednesday 9 December 2026, the reminder comes two working days before, on Monday 7 December at
    09:00: the department's people see it, and so do the IT office's operators, who follow the finding (its
    auditors see the finding and its escalation, not the reminder); once escalated, the operators and the
    auditors hear that the deadline passed. Read through the inbox route as each of them reads it."""
    it_office, department = fresh_code(), fresh_code()
    notifier = await start_notifier(
        infra, tmp_path, services, it_office, clock_start="2026-12-07T08:59:54+08:00", timer_max_sleep_seconds="600"
    )
    finding = uuid.uuid4().hex
    raised = payload("AuditFindingRaised", finding_id=finding, department_code=department, reference=None,
                     category="DATA_NOT_PROVIDED_IN_TIME", correct_by=date(2026, 12, 9))  # fmt: skip
    await send(infra, "auditor.findings", [("AuditFindingRaised", department, raised)])
    operator = bearer(it_office, Role.IT_OFFICE_OPERATOR, subject="operator-1")
    auditor = bearer(it_office, Role.AUDITOR, subject="auditor-1")
    compiler = bearer(department, Role.CATALOG_COMPILER, subject="compiler-1")
    [reminded] = await inbox_until(notifier, it_office, 1, as_who=operator, kind="DEADLINE_APPROACHING")
    assert reminded["reference"] == finding and reminded["audience"] == ["it_office_operator"]
    assert "审计发现问题整改" in reminded["title"] and department in reminded["body"]
    assert reminded["notification_id"] == f"reminder:FINDING_RECTIFICATION:{finding}:2026-12-09:{it_office}"
    [theirs] = await inbox_until(notifier, department, 1, as_who=compiler, kind="DEADLINE_APPROACHING")
    assert theirs["reference"] == finding and theirs["audience"] == []  # the department as a whole
    assert f"责任部门 {department}" in reminded["body"] and "责任部门" not in theirs["body"]  # not named to itself
    heard = await inbox_until(notifier, it_office, 1, as_who=auditor)
    assert [(n["kind"], n["reference"]) for n in heard] == [("OTHER", finding)]  # raised, not the reminder

    escalated = payload("AuditFindingEscalated", finding_id=finding, department_code=department,
                        escalated_on=date(2026, 12, 10), notice="通报批评")  # fmt: skip
    await send(infra, "auditor.findings", [("AuditFindingEscalated", department, escalated)])
    for who in (operator, auditor):
        [passed] = await inbox_until(notifier, it_office, 1, as_who=who, kind="DEADLINE_PASSED")
        assert passed["reference"] == finding and "通报批评" in passed["title"]
    assert kinds(await inbox_until(notifier, it_office, 3, as_who=operator)) == [
        "DEADLINE_APPROACHING", "DEADLINE_PASSED", "OTHER"
    ]  # fmt: skip
    [told] = await inbox_until(notifier, department, 1, as_who=compiler, kind="DEADLINE_PASSED")
    assert told["reference"] == finding
    # a finding due later: its reminder is listed as scheduled to the department and to the IT office's
    # operators, with the department that owes the rectification; not to its auditors, whom it will not reach
    later = uuid.uuid4().hex
    raised = payload("AuditFindingRaised", finding_id=later, department_code=department, reference=None,
                     category="DATA_NOT_PROVIDED_IN_TIME", correct_by=date(2027, 3, 1))  # fmt: skip
    await send(infra, "auditor.findings", [("AuditFindingRaised", department, raised)])
    async with httpx.AsyncClient(base_url=notifier.url) as client:
        for _ in range(100):
            scheduled = (await client.get(f"/reminders/{it_office}", headers=operator)).json()
            if any(r["reference"] == later for r in scheduled):
                break
            await asyncio.sleep(0.2)
        [followed] = [r for r in scheduled if r["reference"] == later]
        assert followed["deadline"] == "FINDING_RECTIFICATION" and followed["recipient_code"] == department
        assert followed["due_on"] == "2027-03-01"
        assert not [r for r in (await client.get(f"/reminders/{it_office}", headers=auditor)).json()]
        own = (await client.get(f"/reminders/{department}", headers=compiler)).json()
        assert [(r["reference"], r["recipient_code"]) for r in own] == [(later, department)]
