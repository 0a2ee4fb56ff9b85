"""The data-element dictionary through the running catalog: the IT office keeps it over REST and by
workbook; one data, one source and demand matching go by its elements and aliases (issue 14, points 2 and 6)."""

import asyncio
import csv
import io
from pathlib import Path

import httpx
from openpyxl import Workbook

from common.policy import Role
from services.directory.demo_data import credit_code
from tests.integration import catalog_process
from tests.integration.conftest import ServiceProcess, headers_of, read_topic
from tests.tokens import bearer

SEED = Path(__file__).resolve().parents[2] / "data" / "dictionary" / "jian-demo.csv"
DEPARTMENTS = {
    "吉安市公安局": credit_code("360800", 7101),
    "吉安市市场监督管理局": credit_code("360800", 7102),
    "吉安市人力资源和社会保障局": credit_code("360800", 7103),
    "吉安市交通运输局": credit_code("360800", 7104),
    "吉安市自然资源局": credit_code("360800", 7105),
    "国家税务总局吉安市税务局": credit_code("360800", 7106),
}
POLICE, MARKET, HR, TRANSPORT, _, TAX = DEPARTMENTS.values()
OPERATOR = bearer(credit_code("360800", 7100), Role.IT_OFFICE_OPERATOR, subject="it.operator")
ENTRY = {
    "abstract": "摘要",
    "category": "BASE",
    "format": "数据库",
    "share_type": "CONDITIONAL",
    "share_conditions": "用于行政审批",
    "share_methods": ["API"],
    "update_cycle": "DAILY",
    "confidentiality_review": {"reviewed_by": "x", "reviewed_on": "2026-11-01", "conclusion": "不涉密"},
}


def seed_workbook() -> dict:
    """The demo seed with this test's department codes filled in, as the IT office would upload it."""
    rows = list(csv.reader(SEED.read_text(encoding="utf-8-sig").splitlines()))
    book = Workbook()
    for row in [rows[0], *([*r[:5], DEPARTMENTS[r[6]], r[6]] for r in rows[1:])]:
        book.active.append(row)
    data = io.BytesIO()
    book.save(data)
    return {"file": ("dictionary.xlsx", data.getvalue())}


def people(code: str, slug: str) -> tuple[dict, dict, dict]:
    return (
        bearer(code, Role.CATALOG_COMPILER, subject=f"{slug}.compiler"),
        bearer(code, Role.CATALOG_REVIEWER, subject=f"{slug}.reviewer"),
        bearer(code, Role.DATA_ADMINISTRATOR, subject=f"{slug}.admin"),
    )


async def start_catalog(infra, services, tmp_path, **env: str) -> ServiceProcess:
    return await catalog_process.start_catalog(infra, services, tmp_path, {c: n for n, c in DEPARTMENTS.items()}, **env)


async def test_one_data_one_source_goes_by_the_dictionary_the_it_office_keeps(infra, topics, services, tmp_path):
    catalog = await start_catalog(infra, services, tmp_path)
    async with httpx.AsyncClient(base_url=catalog.url, timeout=30) as client:

        async def call(method: str, path: str, who: dict, body: dict | None = None, status: int = 200) -> dict:
            response = await client.request(method, path, json=body, headers=who)
            assert response.status_code == status, response.text
            return response.json() if response.content else {}

        async def submitted(who: tuple, provider: str, name: str, items: list[dict]) -> dict:
            body = {"classification": "101001", "provider_code": provider, "name": name, "data_items": items, **ENTRY}
            entry = await call("POST", "/entries", who[0], body, 201)
            code = entry["resource_code"]
            return await call("POST", f"/entries/{code}/submit", who[0], {"revision": entry["revision"]})

        async def approve(who: tuple, entry: dict, status: int = 200) -> dict:
            code = entry["resource_code"]
            current = await call("GET", f"/entries/{code}", who[0])
            return await call("POST", f"/entries/{code}/approve", who[1], {"revision": current["revision"]}, status)

        police, market, hr, transport, tax = (
            people(POLICE, "gaj"),
            people(MARKET, "scjgj"),
            people(HR, "rsj"),
            people(TRANSPORT, "jtj"),
            people(TAX, "sw"),
        )
        # The IT office seeds the dictionary from a workbook; nobody else may.
        refused = await client.post("/elements/import", headers=tax[0], files=seed_workbook())
        assert refused.status_code == 403
        imported = await client.post("/elements/import", headers=OPERATOR, files=seed_workbook())
        assert imported.status_code == 200, imported.text
        assert len(imported.json()) == 18
        again = await client.post("/elements/import", headers=OPERATOR, files=seed_workbook())
        assert again.json() == []  # unchanged rows make no new versions
        # A table of more than 5,000 elements is refused whole, in words the IT office reads.
        rows = [next(csv.reader(SEED.read_text(encoding="utf-8-sig").splitlines()))]
        rows += [[f"DE{n:05d}", f"数据元{n}", "", "", "字符型", "", ""] for n in range(5001)]
        table = io.StringIO()
        csv.writer(table).writerows(rows)
        files = {"file": ("dictionary.csv", table.getvalue().encode())}
        too_many = await client.post("/elements/import", headers=OPERATOR, files=files)
        assert too_many.status_code == 422, too_many.text
        assert too_many.json()["code"] == "catalog.element.rows_too_many" and "5001" in too_many.json()["message"]
        assert (await client.get("/elements/DE00000", headers=OPERATOR)).status_code == 404
        citizen_id = await call("GET", "/elements/DE0101", tax[0])
        assert citizen_id["source_code"] == POLICE and "身份证号" in citizen_id["aliases"]

        # HR refers to the citizen ID; the public security bureau, its source, publishes it afterwards.
        insured = await submitted(
            hr,
            HR,
            "参保人员信息",
            [{"name": "公民身份号码", "refers_to": "DE0101"}, {"name": "参保状态", "source_of": "DE0301"}],
        )
        await approve(hr, insured)
        population = await submitted(
            police, POLICE, "户籍人口基本信息", [{"name": "公民身份号码", "source_of": "DE0101"}, {"name": "户籍地址"}]
        )
        await approve(police, population)
        # Two 有效期至 of different elements do not clash; a key item referring to a credit code is no source.
        licence = await submitted(
            transport, TRANSPORT, "道路运输经营许可", [{"name": "有效期至", "source_of": "DE0402"}]
        )
        await approve(transport, licence)
        register = await submitted(
            market,
            MARKET,
            "营业执照信息",
            [{"name": "统一社会信用代码", "source_of": "DE0201"}, {"name": "有效期至", "source_of": "DE0209"}],
        )
        await approve(market, register)
        taxpayers = await submitted(tax, TAX, "纳税人登记信息", [{"name": "统一社会信用代码", "refers_to": "DE0201"}])
        await approve(tax, taxpayers)
        assert (await call("GET", "/duplicate-sources", OPERATOR))["total"] == 0

        # Other names of the same data are caught through aliases, naming the source department.
        traders = await submitted(
            tax, TAX, "个体工商户纳税信息", [{"name": "身份证号"}, {"name": "经营者名称"}, {"name": "应纳税额"}]
        )
        code = traders["resource_code"]
        for _ in range(100):  # the catalog learns departments' names from the directory's events
            listed = (await call("GET", "/duplicate-sources", OPERATOR))["items"]
            if all(d["existing_provider_name"] for d in listed):
                break
            await asyncio.sleep(0.1)
        assert {(d["item"], d["element"], d["existing_provider_name"]) for d in listed} == {
            ("身份证号", "DE0101", "吉安市公安局"),
            ("经营者名称", "DE0202", "吉安市市场监督管理局"),
        }
        assert "provided by 吉安市公安局" in (await approve(tax, traders, 409))["detail"]
        # An exception names a flagged item of the entry, and shows in it.
        bogus = {"item": "应纳税额", "legal_basis": "《税收征收管理法》"}
        assert (
            "not a flagged data item"
            in (await call("POST", f"/entries/{code}/source-exceptions", OPERATOR, bogus, 422))["detail"]
        )
        for item in ("身份证号", "经营者名称"):
            basis = {"item": item, "legal_basis": "《税收征收管理法》第十五条"}
            excepted = await call("POST", f"/entries/{code}/source-exceptions", OPERATOR, basis)
        assert [e["item"] for e in excepted["source_exceptions"]] == ["身份证号", "经营者名称"]
        await approve(tax, traders)

        # An element without an assigned source: a second claimant waits until the first withdraws.
        element = {"identifier": "DE9001", "name": "建设工程规划许可证号", "aliases": ["规划许可证号"]}
        await call("POST", "/elements", hr[0], element, 403)
        assert (await call("POST", "/elements", OPERATOR, element, 201))["version"] == 1
        first = await submitted(hr, HR, "规划许可信息", [{"name": "许可证号", "source_of": "DE9001"}])
        first = await approve(hr, first)
        second = await submitted(
            transport, TRANSPORT, "工程许可信息", [{"name": "规划许可证号", "source_of": "DE9001"}]
        )
        assert "吉安市人力资源和社会保障局" in (await approve(transport, second, 409))["detail"]
        assert (
            "published entries are the source"
            in (await call("DELETE", "/elements/DE9001", OPERATOR, None, 409))["detail"]
        )
        withdraw = {"revision": first["revision"], "reason": "移交自然资源局"}
        await call("POST", f"/entries/{first['resource_code']}/withdraw", hr[2], withdraw)
        await approve(transport, second)

        # The IT office changes the element: a new version, a stale one is refused, history kept.
        changed = await call("PUT", "/elements/DE9001", OPERATOR, {**element, "source_code": TRANSPORT, "version": 1})
        assert changed["version"] == 2 and changed["source_code"] == TRANSPORT
        await call("PUT", "/elements/DE9001", OPERATOR, {**element, "definition": "x", "version": 1}, 409)
        history = await call("GET", "/elements/DE9001/versions", tax[0])
        assert [(v["element"]["version"], v["changed_by"]) for v in history] == [(1, "it.operator"), (2, "it.operator")]
        await call("PUT", "/elements/DE9001", hr[0], {**element, "version": 2}, 403)

    events = await read_topic(infra.bootstrap, "catalog.entry-events", 2, where=lambda r: r.key == b"DE9001")
    assert [headers_of(r)["event_type"] for r in events] == ["DataElementChanged", "DataElementChanged"]


async def test_demands_match_through_aliases_and_are_undone_cancelled_or_found_unmeetable(
    infra, topics, services, tmp_path
):
    catalog = await start_catalog(infra, services, tmp_path)
    requester = bearer(TAX, Role.CATALOG_COMPILER, subject="sw.compiler")
    police = people(POLICE, "gaj")
    async with httpx.AsyncClient(base_url=catalog.url, timeout=30) as client:

        async def call(method: str, path: str, who: dict, body: dict | None = None, status: int = 200) -> dict:
            response = await client.request(method, path, json=body, headers=who)
            assert response.status_code == status, response.text
            return response.json()

        assert (await client.post("/elements/import", headers=OPERATOR, files=seed_workbook())).status_code == 200
        body = {
            "classification": "101002",
            "provider_code": POLICE,
            "name": "户籍人口基本信息",
            "data_items": [{"name": "公民身份号码", "source_of": "DE0101"}, {"name": "姓名", "source_of": "DE0102"}],
            **ENTRY,
        }
        entry = await call("POST", "/entries", police[0], body, 201)
        code = entry["resource_code"]
        entry = await call("POST", f"/entries/{code}/submit", police[0], {"revision": entry["revision"]})
        await call("POST", f"/entries/{code}/approve", police[1], {"revision": entry["revision"]})

        wanted = {"title": "纳税人身份核验", "wanted_items": ["身份证号", "车牌号"]}
        demand = await call("POST", "/demands", requester, wanted, 201)
        path = f"/demands/{demand['demand_id']}"
        [candidate] = (await call("GET", f"{path}/candidates", OPERATOR))["items"]
        assert candidate["resource_code"] == code and candidate["covered_items"] == ["身份证号"]
        matched = await call("POST", f"{path}/match", OPERATOR, {"resource_code": code})
        assert matched["status"] == "MATCHED" and matched["covered_items"] == ["身份证号"]
        await call("POST", f"{path}/unmatch", requester, {"reason": "x"}, 403)
        reopened = await call("POST", f"{path}/unmatch", OPERATOR, {"reason": "只需核验车牌"})
        assert reopened["status"] == "OPEN" and reopened["resource_code"] is None

        plates = await call("POST", "/demands", requester, {"title": "车辆信息", "wanted_items": ["车牌号"]}, 201)
        plates_path = f"/demands/{plates['demand_id']}"
        no_cover = await call("POST", f"{plates_path}/match", OPERATOR, {"resource_code": code}, 422)
        assert "none of the wanted items" in no_cover["detail"]
        reasoned = {"resource_code": code, "reason": "车主身份经户籍核验"}
        assert (await call("POST", f"{plates_path}/match", OPERATOR, reasoned))["match_reason"] == "车主身份经户籍核验"
        cancelled = await call("POST", f"{plates_path}/cancel", requester, {"reason": "不再需要"})
        assert cancelled["status"] == "CANCELLED"

        refusal = {"reason": "涉及国家秘密"}
        await call("POST", f"{path}/unmeetable", OPERATOR, refusal, 422)
        closed = await call(
            "POST", f"{path}/unmeetable", OPERATOR, {**refusal, "legal_basis": "《保守国家秘密法》第九条"}
        )
        assert closed["status"] == "UNMEETABLE" and closed["legal_basis"] == "《保守国家秘密法》第九条"
        everything = await call("GET", "/demands", OPERATOR)
        assert sorted(d["status"] for d in everything["items"]) == ["CANCELLED", "UNMEETABLE"]
        assert (await call("GET", "/demands?status=OPEN", OPERATOR))["total"] == 0
    events = await read_topic(
        infra.bootstrap, "catalog.demand-events", 4, where=lambda r: r.key == demand["demand_id"].encode()
    )
    assert [headers_of(r)["event_type"] for r in events] == [
        "ShareDemandFiled",
        "ShareDemandMatched",
        "ShareDemandUnmatched",
        "ShareDemandUnmeetable",
    ]


async def test_search_finds_an_entry_by_an_alias_the_it_office_gives_its_element(infra, topics, services, tmp_path):
    catalog = await start_catalog(infra, services, tmp_path, synonyms_refresh_seconds="0.5")
    market = people(MARKET, "scjgj")
    async with httpx.AsyncClient(base_url=catalog.url, timeout=30) as client:
        body = {"classification": "101001", "provider_code": MARKET, "name": "居民婚姻登记信息", **ENTRY}
        body["data_items"] = [{"name": "婚姻状况"}]
        drafted = (await client.post("/entries", json=body, headers=market[0])).json()
        code = drafted["resource_code"]
        submitted = await client.post(
            f"/entries/{code}/submit", json={"revision": drafted["revision"]}, headers=market[0]
        )
        approved = await client.post(
            f"/entries/{code}/approve", json={"revision": submitted.json()["revision"]}, headers=market[1]
        )
        assert approved.status_code == 200, approved.text

        async def hits() -> list[str]:
            found = await client.get("/search", params={"q": "婚否"}, headers=market[0])
            return [h["resource_code"] for h in found.json()["hits"]]

        for _ in range(50):  # the search index follows the published entry
            if (await client.get("/search", params={"q": "婚姻"}, headers=market[0])).json()["hits"]:
                break
            await asyncio.sleep(0.1)
        assert await hits() == []
        element = {"identifier": "DE9301", "name": "婚姻状况", "aliases": ["婚否"]}
        assert (await client.post("/elements", json=element, headers=OPERATOR)).status_code == 201
        for _ in range(50):
            if await hits():
                break
            await asyncio.sleep(0.1)
        assert await hits() == [code]


async def test_two_departments_approved_at_once_cannot_both_become_the_first_source(infra, topics, services, tmp_path):
    """Both approvals read the claims before either commits; the claim writes to the element, so one of the
    two transactions loses the write conflict and, run again by the catalog, sees the other's claim: 409."""
    catalog = await start_catalog(infra, services, tmp_path)
    hr, transport = people(HR, "rsj"), people(TRANSPORT, "jtj")
    async with httpx.AsyncClient(base_url=catalog.url, timeout=30) as client:

        async def call(method: str, path: str, who: dict, body: dict | None = None, status: int = 200) -> dict:
            response = await client.request(method, path, json=body, headers=who)
            assert response.status_code == status, response.text
            return response.json()

        async def submitted(who: tuple, provider: str, name: str, element: str) -> dict:
            items = [{"name": name, "source_of": element}]
            body = {"classification": "101001", "provider_code": provider, "name": name, "data_items": items, **ENTRY}
            entry = await call("POST", "/entries", who[0], body, 201)
            code = entry["resource_code"]
            return await call("POST", f"/entries/{code}/submit", who[0], {"revision": entry["revision"]})

        for n in range(5):
            element = {"identifier": f"DE92{n:02d}", "name": f"临时许可证号{n}"}
            await call("POST", "/elements", OPERATOR, element, 201)
            entries = [
                await submitted(who, provider, f"许可信息{n}", element["identifier"])
                for who, provider in ((hr, HR), (transport, TRANSPORT))
            ]
            approvals = [
                client.post(f"/entries/{e['resource_code']}/approve", json={"revision": e["revision"]}, headers=who[1])
                for e, who in zip(entries, (hr, transport), strict=True)
            ]
            statuses = sorted(r.status_code for r in await asyncio.gather(*approvals))
            assert statuses == [200, 409], statuses
            published = []
            for e, who in zip(entries, (hr, transport), strict=True):
                current = await call("GET", f"/entries/{e['resource_code']}", who[0])
                if current["in_force"] is None:  # the loser, retried, is refused: the winner provides the element
                    retry = {"revision": current["revision"]}
                    await call("POST", f"/entries/{e['resource_code']}/approve", who[1], retry, 409)
                else:
                    published.append(e["resource_code"])
            assert len(published) == 1
