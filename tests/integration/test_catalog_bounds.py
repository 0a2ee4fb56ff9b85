"""Through the running catalog and its database: codes given by hand never jam the automatic 顺序码 (a taken
number used to abort the transaction, roll the sequence back and fail again on every retry), and an entry's
document stays bounded."""

import json

import httpx

from services.catalog.domain import sheet
from services.catalog.domain.entries import MAX_CONTENT_BYTES
from tests.integration import catalog_process
from tests.integration.test_catalog import ADMIN, COMPILER, COMPLETE, PROVIDER, REVIEWER
from tests.integration.test_catalog_review import NAMES, start_catalog


def _csv(rows: list[tuple[str, str, str]]) -> dict:
    """Rows of (resource code, resource name, classification), one data item each."""
    base = {
        "资源提供方代码": PROVIDER,
        "资源提供方": NAMES[PROVIDER],
        "资源摘要": "全市企业的登记基本信息",
        "资源分类": "基础",
        "资源格式": "数据库",
        "共享类型": "有条件共享",
        "共享条件": "用于行政审批",
        "共享方式": "接口",
        "更新周期": "每日",
        "信息项名称": "企业名称",
        "保密审查人": "zhao.admin",
        "保密审查日期": "2026-11-01",
        "保密审查结论": "不涉密",
    }
    columns = [*sheet.COLUMNS, sheet.CLASSIFICATION]
    lines = [columns]
    for code, name, classification in rows:
        row = {**base, "资源代码": code, "资源名称": name, sheet.CLASSIFICATION: classification}
        lines.append([row.get(c, "") for c in columns])
    text = "\r\n".join(",".join(line) for line in lines) + "\r\n"
    return {"file": ("目录.csv", text.encode())}


async def test_codes_given_by_hand_never_jam_the_sequence(infra, topics, services, tmp_path) -> None:
    catalog = await start_catalog(infra, services, tmp_path)
    async with httpx.AsyncClient(base_url=catalog.url) as client:

        async def draft(**code: str) -> httpx.Response:
            return await client.post("/entries", headers=COMPILER, json={"provider_code": PROVIDER, **COMPLETE, **code})

        given = await draft(resource_code="101021/000001")
        assert given.status_code == 201, given.text
        assert (await draft(resource_code="101021/000003")).status_code == 201
        assert (await draft(resource_code="101021/999999")).status_code == 201  # far ahead: uses nothing up
        for expected in ("101021/000002", "101021/000004"):
            assigned = await draft(classification="101021")
            assert assigned.status_code == 201, assigned.text
            assert assigned.json()["resource_code"] == expected

        # one sheet: a code given by hand and a blank one in the same classification, in either order
        for classification, rows in [
            ("101022", [("101022/000001", "企业登记基本信息", ""), ("", "个体工商户登记信息", "101022")]),
            ("101023", [("", "个体工商户登记信息", "101023"), ("101023/000001", "企业登记基本信息", "")]),
        ]:
            imported = await client.post("/entries/import", headers=COMPILER, files=_csv(rows))
            assert imported.status_code == 201, imported.text
            codes = {e["working"]["content"]["name"]: e["resource_code"] for e in imported.json()}
            assert codes == {
                "企业登记基本信息": f"{classification}/000001",
                "个体工商户登记信息": f"{classification}/000002",
            }
            after = await draft(classification=classification)
            assert after.json()["resource_code"] == f"{classification}/000003"


async def test_an_entrys_document_stays_bounded(infra, topics, services, tmp_path) -> None:
    catalog = await start_catalog(infra, services, tmp_path)
    async with httpx.AsyncClient(base_url=catalog.url) as client:

        async def call(method: str, path: str, who: dict, body: dict | None = None, status: int = 200) -> dict:
            response = await client.request(method, path, json=body, headers=who)
            assert response.status_code == status, response.text
            return response.json()

        # returned three times unchanged in between: the history keeps findings and digests, no copies
        entry = await call(
            "POST", "/entries", COMPILER, {"classification": "101031", "provider_code": PROVIDER, **COMPLETE}, 201
        )
        code = entry["resource_code"]
        for n in range(3):
            entry = await call("POST", f"/entries/{code}/submit", COMPILER, {"revision": entry["revision"]})
            findings = [{"field": "abstract", "finding": f"第{n}次"}]
            entry = await call(
                "POST", f"/entries/{code}/return", REVIEWER, {"revision": entry["revision"], "findings": findings}
            )
            abstract = f"{COMPLETE['abstract']}（第{n}次修改）"
            body = {**COMPLETE, "abstract": abstract, "revision": entry["revision"]}
            entry = await call("PUT", f"/entries/{code}/draft", COMPILER, body)
        returns = entry["working"]["returns"]
        assert [r["findings"][0]["finding"] for r in returns] == ["第0次", "第1次", "第2次"]
        assert len({r["content_digest"] for r in returns}) == 3 and all("content" not in r for r in returns)
        entry = await call("POST", f"/entries/{code}/submit", COMPILER, {"revision": entry["revision"]})
        entry = await call("POST", f"/entries/{code}/approve", REVIEWER, {"revision": entry["revision"]})

        # confirmed again and again the same year: the year's latest confirmation stands, alone
        for note in ("要素无变化", "再次核对", "第三次核对"):
            entry = await call(
                "POST", f"/entries/{code}/maintenance", ADMIN, {"revision": entry["revision"], "note": note}
            )
        assert [m["note"] for m in entry["maintenance"]] == ["第三次核对"]
        assert (await call("GET", f"/entries/{code}", COMPILER))["maintenance"] == entry["maintenance"]

        # content over the byte budget: 422 naming the limit, within the request size the service accepts
        items = [{"name": f"信息项{n}", "description": "说明" * 1000} for n in range(100)]
        large = {"classification": "101031", "provider_code": PROVIDER, **COMPLETE, "data_items": items}
        raw = json.dumps(large, ensure_ascii=False).encode()
        assert MAX_CONTENT_BYTES < len(raw) < 1 << 20
        refused = await client.post("/entries", headers={**COMPILER, "content-type": "application/json"}, content=raw)
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "catalog.entry.too_large" and refused.json()["field"] == "content"
        listed = await call("GET", "/entries", COMPILER)
        assert listed["total"] == 1


async def test_old_versions_are_kept_as_metadata_and_digest(infra, topics, services, tmp_path) -> None:
    """With CATALOG_VERSION_CONTENTS_KEPT=2, a fourth version leaves the first two as their metadata, name and
    digest, in the stored document and over the API; their diff is refused with the reason."""
    from pymongo import AsyncMongoClient

    from services.catalog.adapters.mongo import ENTRIES

    catalog = await catalog_process.start_catalog(infra, services, tmp_path, NAMES, version_contents_kept="2")
    async with httpx.AsyncClient(base_url=catalog.url) as client:

        async def call(method: str, path: str, who: dict, body: dict | None = None, status: int = 200) -> dict:
            response = await client.request(method, path, json=body, headers=who)
            assert response.status_code == status, response.text
            return response.json()

        entry = await call(
            "POST", "/entries", COMPILER, {"classification": "101032", "provider_code": PROVIDER, **COMPLETE}, 201
        )
        code = entry["resource_code"]
        for n in range(4):
            if n:
                body = {**COMPLETE, "abstract": f"第{n + 1}版摘要", "revision": entry["revision"]}
                entry = await call("PUT", f"/entries/{code}/draft", COMPILER, body)
            entry = await call("POST", f"/entries/{code}/submit", COMPILER, {"revision": entry["revision"]})
            entry = await call("POST", f"/entries/{code}/approve", REVIEWER, {"revision": entry["revision"]})
        first = await call("GET", f"/entries/{code}/versions/1", COMPILER)
        assert first["content_kept"] is False and len(first["content_digest"]) == 64
        assert first["content"]["name"] == COMPLETE["name"] and first["content"]["data_items"] == []
        assert first["status"] == "SUPERSEDED" and first["reviewed_by"] == "wang.reviewer"
        third = await call("GET", f"/entries/{code}/versions/3", COMPILER)
        assert third["content_kept"] is True and third["content"]["abstract"] == "第3版摘要"
        answer = await client.get(f"/entries/{code}/diff", params={"from": 1, "to": 4}, headers=COMPILER)
        assert answer.status_code == 409 and answer.json()["code"] == "catalog.entry.content_not_kept"
        assert "第 1 版" in answer.json()["message"]
        assert "abstract" in await call("GET", f"/entries/{code}/diff?from=3&to=4", COMPILER)
    mongo = AsyncMongoClient(infra.mongo_uri)
    stored = await mongo[catalog.env["CATALOG_MONGO_DATABASE"]][ENTRIES].find_one({"_id": code})
    await mongo.close()
    assert stored is not None
    assert [bool(v["content"]["data_items"]) for v in stored["versions"]] == [False, False, True, True]
