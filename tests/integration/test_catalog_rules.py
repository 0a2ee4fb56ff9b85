"""The catalog's rules through the running service: four eyes over every editor, the checks the
compilation guide implies (codes, formats, legal bases, withdrawal, reported changes, table import), and
lists that page the same way with a total and a stable order."""

import asyncio
import uuid
from datetime import date, timedelta

import httpx

from common.policy import Role
from services.catalog.domain import sheet
from services.directory.demo_data import credit_code
from tests.integration.catalog_process import start_catalog
from tests.integration.conftest import ServiceProcess
from tests.integration.test_catalog import ADMIN, COMPILER, COMPLETE, PROVIDER, REVIEWER, publish_entry
from tests.tokens import bearer

OPERATOR = bearer(credit_code("360800", 7100), Role.IT_OFFICE_OPERATOR, subject="it.operator")
BOTH = bearer(PROVIDER, Role.CATALOG_COMPILER, Role.CATALOG_REVIEWER, subject="li.both")


async def catalog_of(infra, services, tmp_path) -> ServiceProcess:
    catalog = ServiceProcess("catalog", infra, tmp_path, mongo_database=f"cat_{uuid.uuid4().hex[:8]}").start()
    services.append(catalog)
    await catalog.wait_ready()
    return catalog


async def call(client: httpx.AsyncClient, method: str, path: str, who: dict, status: int = 200, **kw) -> dict:
    response = await client.request(method, path, headers=who, **kw)
    assert response.status_code == status, response.text
    return response.json()


async def test_the_four_eyes_bypass_is_closed(infra, topics, services, tmp_path) -> None:
    """A person with both roles writes v2, a compiler re-saves it unchanged and submits: the first person's
    approval is refused; another reviewer's is not."""
    catalog = await catalog_of(infra, services, tmp_path)
    async with httpx.AsyncClient(base_url=catalog.url) as client:
        code = await publish_entry(client, "101001")
        entry = await call(client, "GET", f"/entries/{code}", COMPILER)
        v2 = {**COMPLETE, "abstract": "全市企业（含分支机构）的登记基本信息"}
        entry = await call(client, "PUT", f"/entries/{code}/draft", BOTH, json={**v2, "revision": entry["revision"]})
        entry = await call(
            client, "PUT", f"/entries/{code}/draft", COMPILER, json={**v2, "revision": entry["revision"]}
        )
        assert entry["working"]["compiled_by"] == "li.compiler"
        assert entry["working"]["edited_by"] == ["li.both", "li.compiler"]
        entry = await call(client, "POST", f"/entries/{code}/submit", COMPILER, json={"revision": entry["revision"]})
        refused = await call(
            client, "POST", f"/entries/{code}/approve", BOTH, 403, json={"revision": entry["revision"]}
        )
        assert refused["rule"] == "catalog.entry.review" and "edited" in refused["detail"]
        assert (await call(client, "GET", f"/entries/{code}", COMPILER))["in_force"]["version"] == 1
        approved = await call(
            client, "POST", f"/entries/{code}/approve", REVIEWER, json={"revision": entry["revision"]}
        )
        assert approved["in_force"]["version"] == 2 and approved["in_force"]["reviewed_by"] == "wang.reviewer"


async def test_the_guides_rules_are_checked_and_withdrawal_is_recorded(infra, topics, services, tmp_path) -> None:
    catalog = await catalog_of(infra, services, tmp_path)
    async with httpx.AsyncClient(base_url=catalog.url) as client:
        draft = {"provider_code": PROVIDER, **COMPLETE}
        not_shared_item = {"name": "身份证件号码", "share_type": "NOT_SHARED"}
        for body, field in [
            ({**draft, "classification": "901001"}, "classification"),
            ({**draft, "classification": "101001", "category": "THEME"}, "category"),
            ({**draft, "resource_code": "301001/000001"}, "category"),
            ({**draft, "classification": "101001", "format": "随便写的格式"}, "format"),
            ({**draft, "classification": "101001", "data_items": [not_shared_item]}, "data_items"),
        ]:
            refused = await call(client, "POST", "/entries", COMPILER, 422, json=body)
            assert refused["field"] == field, refused
        with_basis = {**not_shared_item, "not_shared_basis": "《中华人民共和国居民身份证法》第十九条"}
        theme = {**draft, "classification": "201001", "category": "THEME", "data_items": [with_basis]}
        created = await call(client, "POST", "/entries", COMPILER, 201, json=theme)
        assert created["working"]["content"]["data_items"][0]["not_shared_basis"] == with_basis["not_shared_basis"]

        code = await publish_entry(client, "101001")
        kept = await publish_entry(client, "101002")
        entry = await call(client, "GET", f"/entries/{code}", COMPILER)
        published_on = date.fromisoformat(entry["in_force"]["published_on"])
        early = {"changed_on": (published_on - timedelta(days=1)).isoformat(), "reason": "新增字段"}
        assert (await call(client, "POST", f"/entries/{code}/changes", ADMIN, 422, json=early))["field"] == "changed_on"
        change = {"changed_on": published_on.isoformat(), "reason": "新增字段"}
        entry = await call(client, "POST", f"/entries/{code}/changes", ADMIN, json=change)

        no_reason = {"revision": entry["revision"], "reason": " "}
        assert (await call(client, "POST", f"/entries/{code}/withdraw", ADMIN, 422, json=no_reason))[
            "field"
        ] == "reason"
        entry = await call(
            client,
            "POST",
            f"/entries/{code}/withdraw",
            ADMIN,
            json={"revision": entry["revision"], "reason": "停止采集"},
        )
        assert entry["withdrawal"]["reason"] == "停止采集" and entry["withdrawal"]["withdrawn_by"] == "zhao.admin"
        version = await call(client, "GET", f"/entries/{code}/versions/1", COMPILER)
        assert version["status"] == "WITHDRAWN" and version["withdrawal"] == entry["withdrawal"]

        later = (published_on + timedelta(days=800)).isoformat()  # the change and the yearly maintenance overdue
        overdue = await call(client, "GET", "/overdue", COMPILER, params={"on": later})
        assert [o["resource_code"] for o in overdue["items"]] == [kept] and overdue["total"] == 1


def _table(rows: list[dict[str, str]], extra: dict[str, str] | None = None) -> list[list[str]]:
    base = {
        "资源名称": "企业登记基本信息",
        "资源提供方代码": PROVIDER,
        "资源提供方": "吉安市市场监督管理局",
        "资源摘要": "全市企业的登记基本信息",
        "资源分类": "基础",
        "资源格式": "数据库",
        "共享类型": "有条件共享",
        "共享条件": "用于行政审批",
        "共享方式": "接口",
        "更新周期": "每日",
        "保密审查人": "zhao.admin",
        "保密审查日期": "2026-11-01",
        "保密审查结论": "不涉密",
    }
    columns = [*sheet.COLUMNS, *(extra or {})]
    return [columns, *[[{**base, **(extra or {}), **r}.get(c, "") for c in columns] for r in rows]]


def _csv(table: list[list[str]], encoding: str) -> dict:
    text = "\r\n".join(",".join(row) for row in table) + "\r\n"
    return {"file": ("目录.csv", text.encode(encoding))}


async def test_tables_are_checked_on_import(infra, topics, services, tmp_path) -> None:
    catalog = await start_catalog(infra, services, tmp_path, {PROVIDER: "吉安市市场监督管理局"})
    async with httpx.AsyncClient(base_url=catalog.url) as client:

        async def refused(files: dict) -> str:
            return (await call(client, "POST", "/entries/import", COMPILER, 422, files=files))["detail"]

        assert "no entries" in await refused(_csv(_table([]), "utf-8"))
        clash = [
            {"资源代码": "101001/000050", "信息项名称": "企业名称"},
            {"资源代码": "101001/000050", "信息项名称": "注册资本", "更新周期": "每月"},
        ]
        detail = await refused(_csv(_table(clash), "utf-8"))
        assert "rows 2 and 3" in detail and "更新周期" in detail
        wrong = [{"资源代码": "101001/000051", "信息项名称": "企业名称", "资源提供方": "吉安市税务局"}]
        assert "is not the department of" in await refused(_csv(_table(wrong), "utf-8"))
        blank = [{"资源代码": "", "信息项名称": "企业名称"}]
        assert "分类码" in await refused(_csv(_table(blank), "utf-8"))

        # Excel on Chinese Windows saves GBK; blank codes are numbered in their classification.
        rows = [
            {"信息项名称": "企业名称"},
            {"信息项名称": "注册资本"},
            {"资源名称": "个体工商户登记信息", "信息项名称": "经营者"},
        ]
        for _ in range(60):  # the directory's event reaches the catalog shortly after start
            response = await client.post(
                "/entries/import", headers=COMPILER, files=_csv(_table(rows, {"分类码": "101009"}), "gbk")
            )
            if response.status_code != 422 or "not a department the catalog knows" not in response.text:
                break
            await asyncio.sleep(0.5)
        assert response.status_code == 201, response.text
        assert [(e["resource_code"], e["working"]["content"]["name"]) for e in response.json()] == [
            ("101009/000001", "企业登记基本信息"),
            ("101009/000002", "个体工商户登记信息"),
        ]
        assert len(response.json()[0]["working"]["content"]["data_items"]) == 2


async def test_every_list_pages_with_a_total_in_a_stable_order(infra, topics, services, tmp_path) -> None:
    catalog = await catalog_of(infra, services, tmp_path)
    other = credit_code("360800", 7009)
    other_compiler = bearer(other, Role.CATALOG_COMPILER, subject="tax.compiler")
    async with httpx.AsyncClient(base_url=catalog.url) as client:

        async def walk(path: str, key, who: dict = COMPILER, **params) -> tuple[list, int]:
            """Every page of two, and the total each page gave."""
            seen, totals, offset = [], set(), 0
            while True:
                page = await call(client, "GET", path, who, params={**params, "offset": offset, "limit": 2})
                assert page["offset"] == offset and page["limit"] == 2 and len(page["items"]) <= 2
                totals.add(page["total"])
                seen += [key(i) for i in page["items"]]
                if not page["items"]:
                    break
                offset += 2
            [total] = totals
            return seen, total

        published = [await publish_entry(client, "101001") for _ in range(3)]
        for identifier, name in (("DE0201", "统一社会信用代码"), ("DE0202", "企业名称")):
            element = {"identifier": identifier, "name": name, "source_code": PROVIDER}
            await call(client, "POST", "/elements", OPERATOR, 201, json=element)
        # the other department's drafts carry both items, unlinked: each a second source of an element
        draft = {"provider_code": other, **COMPLETE, "name": "纳税人登记信息", "category": "DEPARTMENT"}
        for _ in range(2):
            await call(client, "POST", "/entries", other_compiler, 201, json={**draft, "classification": "301001"})
        codes, total = await walk("/entries", lambda e: e["resource_code"], OPERATOR)  # oversight sees drafts
        assert total == 5 and codes == sorted(codes) and len(set(codes)) == 5
        assert await walk("/entries", lambda e: e["resource_code"]) == (published, 3)  # not another's drafts
        mine, total = await walk("/entries", lambda e: e["resource_code"], provider_code=PROVIDER)
        assert (mine, total) == (published, 3)

        later = (date.today() + timedelta(days=800)).isoformat()
        overdue, total = await walk("/overdue", lambda o: (o["due_on"], o["resource_code"]), on=later)
        assert total == 3 and overdue == sorted(overdue) and [c for _, c in overdue] == published

        clashes, total = await walk("/duplicate-sources", lambda d: (d["resource_code"], d["item"]), OPERATOR)
        assert total == 4 and clashes == sorted(clashes) and len(set(clashes)) == 4  # 2 entries × 2 items
        assert await walk("/duplicate-sources", lambda d: d, COMPILER) == ([], 0)  # drafts of another department

        requester = bearer(other, Role.CATALOG_COMPILER, subject="tax.compiler")
        filed = [
            (await call(client, "POST", "/demands", requester, 201, json={"title": f"需求{n}"}))["demand_id"]
            for n in range(3)
        ]
        demands, total = await walk("/demands", lambda d: (d["filed_on"], d["demand_id"]))
        assert total == 3 and demands == sorted(demands) and {d for _, d in demands} == set(filed)

        for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
            for path in ("/entries", "/overdue", "/duplicate-sources", "/demands"):
                assert (await client.get(path, params=params, headers=COMPILER)).status_code == 422
