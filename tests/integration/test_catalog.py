"""An entry's whole life over HTTP, with the events it leaves on Kafka."""

import asyncio
import time
import uuid

import httpx

from common.codec import EventCodec
from common.events import Event
from common.kafka import KafkaPublisher
from common.policy import Role
from common.topics import load_topics
from services.directory.demo_data import credit_code
from tests.integration.conftest import ServiceProcess, headers_of, read_topic, settings_for
from tests.tokens import bearer

PROVIDER = credit_code("360800", 7001)
COMPILER = bearer(PROVIDER, Role.CATALOG_COMPILER, subject="li.compiler")
REVIEWER = bearer(PROVIDER, Role.CATALOG_REVIEWER, subject="wang.reviewer")
ADMIN = bearer(PROVIDER, Role.DATA_ADMINISTRATOR, subject="zhao.admin")
COMPLETE = {
    "name": "企业登记基本信息",
    "abstract": "全市企业的登记基本信息",
    "category": "BASE",
    "format": "数据库",
    "data_items": [{"name": "统一社会信用代码", "type": "string", "length": 18}, {"name": "企业名称"}],
    "share_type": "CONDITIONAL",
    "share_conditions": "用于行政审批和监管",
    "share_methods": ["API", "FILE_DOWNLOAD"],
    "update_cycle": "DAILY",
    "confidentiality_review": {"reviewed_by": "zhao.admin", "reviewed_on": "2026-11-01", "conclusion": "不涉密"},
}


async def publish_entry(client: httpx.AsyncClient, classification: str) -> str:
    """Compile, submit and approve a complete entry; return its code."""
    body = {"classification": classification, "provider_code": PROVIDER, **COMPLETE}
    entry = (await client.post("/entries", headers=COMPILER, json=body)).json()
    code = entry["resource_code"]
    entry = (
        await client.post(f"/entries/{code}/submit", headers=COMPILER, json={"revision": entry["revision"]})
    ).json()
    approved = await client.post(f"/entries/{code}/approve", headers=REVIEWER, json={"revision": entry["revision"]})
    assert approved.status_code == 200, approved.text
    return code


async def department_known(infra, database: str, code: str, timeout: float = 30) -> None:
    """Wait until the catalog has taken in the directory's event about the department."""
    from pymongo import AsyncMongoClient

    from services.catalog.adapters.mongo import DEPARTMENTS

    mongo = AsyncMongoClient(infra.mongo_uri)
    try:
        deadline = time.monotonic() + timeout
        while await mongo[database][DEPARTMENTS].find_one({"_id": code}) is None:
            assert time.monotonic() < deadline, f"the catalog never learnt of department {code}"
            await asyncio.sleep(0.1)
    finally:
        await mongo.close()


async def test_an_entry_lives_its_whole_life(infra, topics, services, tmp_path) -> None:
    database = f"cat_{uuid.uuid4().hex[:8]}"
    catalog = ServiceProcess("catalog", infra, tmp_path, mongo_database=database).start()
    services.append(catalog)
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    registered = {"department_code": PROVIDER, "name": "吉安市市场监督管理局", "level": "CITY", "parent_code": None}
    await publisher.publish("directory.events", Event("DepartmentRegistered", PROVIDER, registered, "directory"))
    await publisher.stop()
    await catalog.wait_ready()
    await department_known(infra, database, PROVIDER)  # the published entry names its provider

    async with httpx.AsyncClient(base_url=catalog.url) as client:

        async def call(method: str, path: str, who: dict, body: dict | None = None, status: int = 200) -> dict:
            response = await client.request(method, path, json=body, headers=who)
            assert response.status_code == status, response.text
            return response.json()

        entry = await call(
            "POST",
            "/entries",
            COMPILER,
            {"classification": "101001", "provider_code": PROVIDER, "name": "企业登记"},
            201,
        )
        code = entry["resource_code"]
        assert code.startswith("101001/") and entry["working"]["status"] == "DRAFT"
        incomplete = await call("POST", f"/entries/{code}/submit", COMPILER, {"revision": entry["revision"]}, 422)
        assert {"abstract", "category", "update_cycle", "confidentiality_review"} <= set(
            incomplete["field"].split(", ")
        )
        entry = await call("PUT", f"/entries/{code}/draft", COMPILER, {**COMPLETE, "revision": entry["revision"]})
        entry = await call("POST", f"/entries/{code}/submit", COMPILER, {"revision": entry["revision"]})
        findings = [{"field": "abstract", "finding": "摘要应说明数据范围"}]
        entry = await call(
            "POST", f"/entries/{code}/return", REVIEWER, {"revision": entry["revision"], "findings": findings}
        )
        assert entry["working"]["status"] == "RETURNED" and entry["working"]["findings"] == findings
        fixed = {**COMPLETE, "abstract": "全市在册企业（含个体工商户）的登记基本信息"}
        entry = await call("PUT", f"/entries/{code}/draft", COMPILER, {**fixed, "revision": entry["revision"]})
        entry = await call("POST", f"/entries/{code}/submit", COMPILER, {"revision": entry["revision"]})
        entry = await call("POST", f"/entries/{code}/approve", REVIEWER, {"revision": entry["revision"]})
        assert entry["in_force"]["version"] == 1 and entry["working"] is None

        changed = {**fixed, "data_items": [*COMPLETE["data_items"], {"name": "法定代表人"}]}
        entry = await call("PUT", f"/entries/{code}/draft", COMPILER, {**changed, "revision": entry["revision"]})
        assert entry["in_force"]["version"] == 1 and entry["working"]["version"] == 2
        entry = await call("POST", f"/entries/{code}/submit", COMPILER, {"revision": entry["revision"]})
        entry = await call("POST", f"/entries/{code}/approve", REVIEWER, {"revision": entry["revision"]})
        assert entry["in_force"]["version"] == 2 and entry["versions"] == [1, 2]
        assert (await call("GET", f"/entries/{code}/versions/1", COMPILER))["status"] == "SUPERSEDED"
        diff = await call("GET", f"/entries/{code}/diff?from=1&to=2", COMPILER)
        assert list(diff) == ["data_items"] and diff["data_items"]["to"][-1]["name"] == "法定代表人"

        # bad requests: refused with the field and the rule, and nothing changes
        stale = await call("PUT", f"/entries/{code}/draft", COMPILER, {**changed, "revision": 1}, 409)
        assert stale["field"] == "revision"
        assert (await call("POST", f"/entries/{code}/approve", REVIEWER, {"revision": entry["revision"]}, 409))[
            "field"
        ] == "status"
        twice = {**changed, "data_items": [{"name": "企业名称"}, {"name": "企业名称"}], "revision": entry["revision"]}
        assert "data_items" in (await call("PUT", f"/entries/{code}/draft", COMPILER, twice, 422))["field"]
        assert (await call("GET", f"/entries/{code}", COMPILER))["revision"] == entry["revision"]

        entry = await call(
            "POST", f"/entries/{code}/withdraw", ADMIN, {"revision": entry["revision"], "reason": "停止采集"}
        )
        assert entry["in_force"] is None

    lifecycle = await read_topic(infra.bootstrap, "catalog.entry-events", 10, where=lambda r: r.key == code.encode())
    assert [headers_of(r)["event_type"] for r in lifecycle] == [
        "CatalogEntryDrafted",
        "CatalogEntrySubmitted",
        "CatalogEntryReturned",
        "CatalogEntrySubmitted",
        "CatalogEntryPublished",
        "CatalogEntryDrafted",
        "CatalogEntrySubmitted",
        "CatalogEntryPublished",
        "CatalogEntryWithdrawn",
    ]
    compacted = await read_topic(infra.bootstrap, "catalog.published", 3, where=lambda r: r.key == code.encode())
    codec = EventCodec.from_folder()
    first, second = (codec.decode(r.value)[1] for r in compacted[:2])
    assert (first["version"], second["version"]) == (1, 2)
    assert first["provider_name"] == "吉安市市场监督管理局" and first["share_methods"] == ["API", "FILE_DOWNLOAD"]
    assert compacted[2].value is None  # the tombstone: compaction forgets the withdrawn entry


async def test_overdue_entries_are_listed_and_announced_across_a_holiday(infra, topics, services, tmp_path) -> None:
    from datetime import date

    from pymongo import AsyncMongoClient

    from services.catalog.adapters.http import ContentBody
    from services.catalog.adapters.mongo import ENTRIES, entry_doc
    from services.catalog.domain.entries import CatalogEntry

    # An entry in force since January, before the change it is told of (a change cannot predate it).
    database = f"cat_{uuid.uuid4().hex[:8]}"
    code = "101002/000001"
    stored = CatalogEntry.draft(code, PROVIDER, ContentBody.model_validate(COMPLETE).content(), "li.compiler")
    stored, _ = stored.submit(None)
    stored, _ = stored.approve("wang.reviewer", date(2026, 1, 5), None)
    mongo = AsyncMongoClient(infra.mongo_uri)
    await mongo[database][ENTRIES].insert_one(entry_doc(stored))
    await mongo.close()
    catalog = ServiceProcess("catalog", infra, tmp_path, mongo_database=database, overdue_check_seconds="1").start()
    services.append(catalog)
    await catalog.wait_ready()
    async with httpx.AsyncClient(base_url=catalog.url) as client:
        change = {"changed_on": "2026-02-12", "reason": "新增经营范围字段"}
        reported = await client.post(f"/entries/{code}/changes", headers=ADMIN, json=change)
        assert reported.status_code == 200, reported.text

        async def overdue(on: str) -> list:
            response = await client.get("/overdue", params={"on": on, "provider_code": PROVIDER}, headers=COMPILER)
            return [o for o in response.json()["items"] if o["resource_code"] == code]

        assert await overdue("2026-02-26") == []  # the fifth working day after the change, across 春节
        [late] = await overdue("2026-02-27")
        assert late["kind"] == "UPDATE_AFTER_CHANGE" and late["due_on"] == "2026-02-26"
    events = await read_topic(infra.bootstrap, "catalog.entry-events", 5, where=lambda r: r.key == code.encode())
    types = [headers_of(r)["event_type"] for r in events]
    assert types[-2:] == ["CatalogEntryChangeReported", "CatalogEntryOverdue"]  # announced by the periodic check
    reported_event = EventCodec.from_folder().decode(events[-2].value)[1]
    assert str(reported_event["due_on"]) == "2026-02-26" and str(reported_event["changed_on"]) == "2026-02-12"


async def test_share_demands_are_matched_by_the_it_office_and_unmet_ones_listed(infra, topics, services, tmp_path):
    catalog = ServiceProcess("catalog", infra, tmp_path, mongo_database=f"cat_{uuid.uuid4().hex[:8]}").start()
    services.append(catalog)
    await catalog.wait_ready()
    requester = bearer(credit_code("360800", 7002), Role.CATALOG_COMPILER, subject="approval.compiler")
    operator = bearer(credit_code("360800", 7003), Role.IT_OFFICE_OPERATOR, subject="it.operator")
    async with httpx.AsyncClient(base_url=catalog.url) as client:
        code = await publish_entry(client, "101003")
        second = await publish_entry(client, "101003")
        third = await publish_entry(client, "101003")

        wanted = {
            "title": "企业登记信息",
            "description": "办理企业开办",
            "wanted_items": ["统一社会信用代码", "注册资本"],
        }
        demand = (await client.post("/demands", headers=requester, json=wanted)).json()
        other = (await client.post("/demands", headers=requester, json={"title": "林地资源数据"})).json()
        assert demand["status"] == "OPEN" and demand["requester_code"] == credit_code("360800", 7002)
        path = f"/demands/{demand['demand_id']}/candidates"
        candidates = (await client.get(path, headers=operator)).json()["items"]
        assert [c["resource_code"] for c in candidates] == [code, second, third]  # equal ranks: by resource code
        assert candidates[0]["covered_items"] == ["统一社会信用代码"]
        # paged as every list: a total, and pages that walk the same order
        page = (await client.get(path, params={"offset": 1, "limit": 1}, headers=requester)).json()
        assert (page["total"], page["offset"], page["limit"]) == (3, 1, 1)
        assert [c["resource_code"] for c in page["items"]] == [second]
        refused = await client.post(
            f"/demands/{demand['demand_id']}/match", headers=requester, json={"resource_code": code}
        )
        assert refused.status_code == 403
        matched = await client.post(
            f"/demands/{demand['demand_id']}/match", headers=operator, json={"resource_code": code}
        )
        assert matched.status_code == 200 and matched.json()["status"] == "MATCHED"
        unmet = (await client.get("/demands", params={"status": "OPEN"}, headers=operator)).json()
        assert [d["demand_id"] for d in unmet["items"]] == [other["demand_id"]] and unmet["total"] == 1
    events = await read_topic(
        infra.bootstrap, "catalog.demand-events", 2, where=lambda r: r.key == demand["demand_id"].encode()
    )
    assert [headers_of(r)["event_type"] for r in events] == ["ShareDemandFiled", "ShareDemandMatched"]


async def test_the_catalog_is_exported_and_imported_as_a_workbook(infra, topics, services, tmp_path) -> None:
    import io

    from openpyxl import load_workbook

    catalog = ServiceProcess("catalog", infra, tmp_path, mongo_database=f"cat_{uuid.uuid4().hex[:8]}").start()
    services.append(catalog)
    await catalog.wait_ready()
    async with httpx.AsyncClient(base_url=catalog.url) as client:
        code = await publish_entry(client, "101004")

        workbook = await client.get("/catalog.xlsx", headers=COMPILER)
        assert workbook.status_code == 200
        rows = [list(r) for r in load_workbook(io.BytesIO(workbook.content)).active.iter_rows(values_only=True)]
        assert rows[0][:3] == ["资源代码", "资源名称", "资源提供方代码"] and rows[1][0] == code
        csv_text = (await client.get("/catalog.csv", headers=COMPILER)).content.decode("utf-8-sig")
        assert code in csv_text and "企业登记基本信息" in csv_text

        # Re-import the rows under new codes: one broken row and nothing is imported.
        new_rows = [rows[0]] + [["101004/000900", *r[1:]] for r in rows[1:]]
        broken = [*new_rows, ["101004/000901", *rows[1][1:12], "每两年", *rows[1][13:]]]

        def upload(table: list[list]) -> dict:
            from openpyxl import Workbook

            book = Workbook()
            for row in table:
                book.active.append(row)
            data = io.BytesIO()
            book.save(data)
            return {"file": ("catalog.xlsx", data.getvalue())}

        refused = await client.post("/entries/import", headers=COMPILER, files=upload(broken))
        assert (
            refused.status_code == 422
            and "row 4" in refused.json()["detail"]
            and "更新周期" in refused.json()["detail"]
        )
        assert (await client.get("/entries/101004/000900", headers=COMPILER)).status_code == 404
        imported = await client.post("/entries/import", headers=COMPILER, files=upload(new_rows))
        assert imported.status_code == 201, imported.text
        assert [e["resource_code"] for e in imported.json()] == ["101004/000900"]


async def test_search_covers_stored_entries_and_follows_writes_of_other_replicas(infra, topics, services, tmp_path):
    from pymongo import AsyncMongoClient

    from services.catalog.adapters.mongo import ENTRIES, entry_doc, entry_of
    from services.catalog.domain.entries import CatalogEntry, EntryContent

    database = f"cat_{uuid.uuid4().hex[:8]}"
    mongo = AsyncMongoClient(infra.mongo_uri)
    stored = CatalogEntry.draft("201001/000001", PROVIDER, EntryContent("不动产登记信息", "不动产权利登记簿"), "li")
    await mongo[database][ENTRIES].insert_one(entry_doc(stored))  # there before the service starts

    catalog = ServiceProcess("catalog", infra, tmp_path, mongo_database=database).start()
    services.append(catalog)
    await catalog.wait_ready()
    async with httpx.AsyncClient(base_url=catalog.url) as client:

        async def search(**params) -> dict:
            response = await client.get("/search", params=params, headers=COMPILER)
            assert response.status_code == 200, response.text
            return response.json()

        code = await publish_entry(client, "101001")

        def counts(facet: list[dict]) -> dict[str, int]:
            return {f["value"]: f["count"] for f in facet}

        found = await search(q="企业登记", match="all")
        assert [h["resource_code"] for h in found["hits"]] == [code] and found["terms"] == ["企业", "登记"]
        both = await search(q="登记")
        assert {h["resource_code"] for h in both["hits"]} == {code, "201001/000001"}  # the draft is its own
        assert counts(both["facets"]["status"]) == {"PUBLISHED": 1, "DRAFT": 1}
        published = await search(q="登记", status="PUBLISHED", share_method=["OFFLINE", "API"])
        assert [h["resource_code"] for h in published["hits"]] == [code]
        assert counts(published["facets"]["status"]) == {"PUBLISHED": 1}  # the draft names no share method yet
        assert counts(published["facets"]["share_method"]) == {"API": 1, "FILE_DOWNLOAD": 1}
        assert (await search(q="登记", category="THEME"))["total"] == 0
        assert [h["resource_code"] for h in (await search(q=code))["hits"]] == [code]

        # another replica renames the stored entry: the change stream brings it here
        doc = await mongo[database][ENTRIES].find_one({"_id": "201001/000001"})
        renamed = entry_of(doc).edit(EntryContent("林权登记信息", "林权权利登记簿"), "li", None)
        await mongo[database][ENTRIES].replace_one({"_id": "201001/000001"}, entry_doc(renamed))
        for _ in range(100):
            if (await search(q="林权"))["total"] == 1:
                break
            await asyncio.sleep(0.1)
        assert [h["resource_code"] for h in (await search(q="林权"))["hits"]] == ["201001/000001"]
        assert (await search(q="不动产"))["total"] == 0

        bad = await client.get("/search", params={"q": "登记", "status": "LOST"}, headers=COMPILER)
        assert bad.status_code == 422 and "status" in bad.text
        assert (await client.get("/search", params={"q": "登记"})).status_code == 401
    await mongo.close()
