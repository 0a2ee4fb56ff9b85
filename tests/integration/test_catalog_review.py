"""Review and deadlines people can work with, and errors, facets and lists in people's words, through the
running catalog (issue 14, §5 and §8)."""

import httpx

from common.calendar_source import build_calendar
from common.clock import today_in_china
from common.codec import EventCodec
from common.policy import Role
from services.directory.demo_data import credit_code
from tests.integration import catalog_process
from tests.integration.conftest import ServiceProcess, headers_of, read_topic
from tests.integration.test_catalog import ADMIN, COMPILER, COMPLETE, PROVIDER, REVIEWER, publish_entry
from tests.tokens import bearer

OTHER = credit_code("360800", 7011)
OTHER_COMPILER = bearer(OTHER, Role.CATALOG_COMPILER, subject="hr.compiler")
OTHER_REVIEWER = bearer(OTHER, Role.CATALOG_REVIEWER, subject="hr.reviewer")
OPERATOR = bearer(credit_code("360800", 7100), Role.IT_OFFICE_OPERATOR, subject="it.operator")
NAMES = {PROVIDER: "吉安市市场监督管理局", OTHER: "吉安市人力资源和社会保障局"}


async def start_catalog(infra, services, tmp_path) -> ServiceProcess:
    return await catalog_process.start_catalog(infra, services, tmp_path, NAMES)


async def test_review_findings_deadlines_and_maintenance_over_http(infra, topics, services, tmp_path) -> None:
    catalog = await start_catalog(infra, services, tmp_path)
    async with httpx.AsyncClient(base_url=catalog.url) as client:

        async def call(method: str, path: str, who: dict, body: dict | None = None, status: int = 200) -> dict:
            response = await client.request(method, path, json=body, headers=who)
            assert response.status_code == status, response.text
            return response.json()

        body = {"classification": "101011", "provider_code": PROVIDER, **COMPLETE}
        entry = await call("POST", "/entries", COMPILER, body, 201)
        code = entry["resource_code"]
        entry = await call("POST", f"/entries/{code}/submit", COMPILER, {"revision": entry["revision"]})

        # a finding on an unknown item: 422 with the machine-readable shape, the code and the valid names
        wrong = [{"field": "data_items[法定代表人].length", "finding": "x"}]
        refused = await call(
            "POST", f"/entries/{code}/return", REVIEWER, {"revision": entry["revision"], "findings": wrong}, 422
        )
        assert (refused["error"], refused["field"]) == ("InvalidEntry", "findings")
        assert refused["code"] == "catalog.entry.finding_unknown_field"
        assert "data_items[企业名称]" in refused["message"] and "data_items[…].length" in refused["message"]
        assert "data_items[法定代表人].length" in refused["rule"] and "data_items[企业名称]" in refused["detail"]

        findings = [
            {"field": "data_items[1].length", "finding": "企业名称应注明长度"},
            {"field": "abstract", "finding": "摘要应说明数据范围"},
        ]
        entry = await call(
            "POST", f"/entries/{code}/return", REVIEWER, {"revision": entry["revision"], "findings": findings}
        )
        kept = [{"field": "data_items[企业名称].length", "finding": "企业名称应注明长度"}, findings[1]]
        assert entry["working"]["findings"] == kept

        unchanged = await call("POST", f"/entries/{code}/submit", COMPILER, {"revision": entry["revision"]}, 409)
        assert unchanged["code"] == "catalog.entry.unchanged_after_return" and "审核意见" in unchanged["message"]
        assert unchanged["field"] == "content" and unchanged["error"] == "TransitionNotAllowed"

        items = [COMPLETE["data_items"][0], {"name": "企业名称", "length": 200}]
        fixed = {**COMPLETE, "abstract": "全市在册企业的登记基本信息", "data_items": items}
        entry = await call("PUT", f"/entries/{code}/draft", COMPILER, {**fixed, "revision": entry["revision"]})
        assert entry["working"]["findings"] == kept  # still there while the compiler works through them
        entry = await call("POST", f"/entries/{code}/submit", COMPILER, {"revision": entry["revision"]})
        entry = await call("POST", f"/entries/{code}/approve", REVIEWER, {"revision": entry["revision"]})
        [returned] = (await call("GET", f"/entries/{code}/versions/1", COMPILER))["returns"]
        assert returned["findings"] == kept and returned["reviewed_by"] == "wang.reviewer"
        assert len(returned["content_digest"]) == 64 and "content" not in returned

        # the due date of a reported change, in the answer and in the entry view
        reported = await call("POST", f"/entries/{code}/changes", ADMIN, {"reason": "新增经营范围字段"})
        today = today_in_china()
        due = build_calendar().add_working_days(today, 5).isoformat()
        expected = {"changed_on": today.isoformat(), "due_on": due, "reason": "新增经营范围字段"}
        assert reported["pending_update"] == expected
        assert (await call("GET", f"/entries/{code}", COMPILER))["pending_update"] == expected
        pending = await call("POST", f"/entries/{code}/maintenance", ADMIN, {"revision": reported["revision"]}, 409)
        assert pending["code"] == "catalog.entry.maintenance_change_pending" and due in pending["message"]

        # the item-by-item diff
        changed = {**fixed, "data_items": [{"name": "企业名称", "length": 100}, {"name": "经营范围"}]}
        entry = await call("PUT", f"/entries/{code}/draft", COMPILER, {**changed, "revision": reported["revision"]})
        entry = await call("POST", f"/entries/{code}/submit", COMPILER, {"revision": entry["revision"]})
        entry = await call("POST", f"/entries/{code}/approve", REVIEWER, {"revision": entry["revision"]})
        assert entry["pending_update"] is None
        items_diff = (await call("GET", f"/entries/{code}/diff?from=1&to=2", COMPILER))["data_items"]
        assert [i["name"] for i in items_diff["added"]] == ["经营范围"]
        assert [i["name"] for i in items_diff["removed"]] == ["统一社会信用代码"]
        assert items_diff["changed"] == [{"name": "企业名称", "changes": {"length": {"from": 200, "to": 100}}}]

        # maintenance confirmed, nothing changed: recorded, and the yearly due date restarts from today
        due_before = entry["maintenance_due"]
        refused = await call("POST", f"/entries/{code}/maintenance", REVIEWER, {"revision": entry["revision"]}, 403)
        confirmed = await call(
            "POST", f"/entries/{code}/maintenance", ADMIN, {"revision": entry["revision"], "note": "要素无变化"}
        )
        [record] = confirmed["maintenance"]
        assert record["confirmed_by"] == "zhao.admin" and record["note"] == "要素无变化"
        assert confirmed["maintenance_due"] == due_before  # published today, confirmed today: a year from today
        assert (await call("GET", f"/entries/{code}", COMPILER))["maintenance"] == [record]
        stale = await call("POST", f"/entries/{code}/maintenance", ADMIN, {"revision": entry["revision"]}, 409)
        assert stale["code"] == "catalog.entry.stale" and "请刷新后重新操作" in stale["message"]

        overdue = await client.get("/overdue", params={"on": "2099-01-01", "provider_code": PROVIDER}, headers=ADMIN)
        assert {o["provider_name"] for o in overdue.json()["items"]} == {"吉安市市场监督管理局"}

    events = await read_topic(infra.bootstrap, "catalog.entry-events", 10, where=lambda r: r.key == code.encode())
    assert [headers_of(r)["event_type"] for r in events] == [
        "CatalogEntryDrafted",
        "CatalogEntrySubmitted",
        "CatalogEntryReturned",  # the refused return and the refused resubmission left nothing
        "CatalogEntrySubmitted",
        "CatalogEntryPublished",
        "CatalogEntryChangeReported",
        "CatalogEntryDrafted",
        "CatalogEntrySubmitted",
        "CatalogEntryPublished",
        "CatalogEntryMaintenanceConfirmed",
    ]
    returned_event = EventCodec.from_folder().decode(events[2].value)[1]
    assert returned_event["findings"] == kept  # named as the entry keeps them, not by position
    maintained = EventCodec.from_folder().decode(events[-1].value)[1]
    assert (maintained["version"], maintained["confirmed_by"], maintained["note"]) == (2, "zhao.admin", "要素无变化")
    assert str(maintained["next_due_on"]) == confirmed["maintenance_due"]


async def test_errors_facets_and_clashes_speak_chinese_and_name_departments(infra, topics, services, tmp_path):
    catalog = await start_catalog(infra, services, tmp_path)
    async with httpx.AsyncClient(base_url=catalog.url) as client:
        await publish_entry(client, "101012")

        missing = await client.get("/entries/101012/999999", headers=COMPILER)
        assert missing.status_code == 404
        assert missing.json() == {
            "detail": "resource_code: no entry 101012/999999",
            "error": "EntryNotFound",
            "field": "resource_code",
            "rule": "no entry 101012/999999",
            "code": "catalog.entry.not_found",
            "message": "目录中没有资源代码为 101012/999999 的条目",
        }

        # a second source of 统一社会信用代码, whose source the IT office assigned to the market regulator: the
        # refusal names the department that provides it
        element = {"identifier": "DE0201", "name": "统一社会信用代码", "aliases": ["信用代码"], "source_code": PROVIDER}
        assigned = await client.post("/elements", headers=OPERATOR, json=element)
        assert assigned.status_code == 201, assigned.text
        body = {"classification": "101013", "provider_code": OTHER, **COMPLETE, "name": "社保参保单位信息"}
        entry = (await client.post("/entries", headers=OTHER_COMPILER, json=body)).json()
        code = entry["resource_code"]
        entry = (
            await client.post(f"/entries/{code}/submit", headers=OTHER_COMPILER, json={"revision": entry["revision"]})
        ).json()
        clash = await client.post(
            f"/entries/{code}/approve", headers=OTHER_REVIEWER, json={"revision": entry["revision"]}
        )
        assert clash.status_code == 409 and clash.json()["code"] == "catalog.source.duplicate"
        assert (
            "“统一社会信用代码”即数据元 DE0201（统一社会信用代码），由吉安市市场监督管理局" in clash.json()["message"]
        )

        found = (await client.get("/search", params={"q": "企业", "match": "any"}, headers=COMPILER)).json()
        labels = found["labels"]
        assert labels["category"]["BASE"] == "基础" and labels["share_type"]["CONDITIONAL"] == "有条件共享"
        assert labels["provider_code"][PROVIDER] == "吉安市市场监督管理局"
        assert labels["status"]["PUBLISHED"] == "已发布" and labels["share_method"]["API"] == "接口"
        assert set(labels["category"]) == {f["value"] for f in found["facets"]["category"]}

        export = (await client.get("/catalog.csv", headers=COMPILER)).content.decode("utf-8-sig")
        assert "有条件共享" in export and "接口" in export and "每日" in export and "CONDITIONAL" not in export
