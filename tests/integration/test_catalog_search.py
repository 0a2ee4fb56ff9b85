"""Catalog search through the running catalog, as people type (issue 14, point 7): abbreviations, partial words,
traditional characters, pinyin, long phrases; who sees which entries; names and labels people read."""

import asyncio
import uuid
from dataclasses import replace

import httpx
import pytest

from common.policy import Role
from services.catalog.domain.dictionary import DataElement
from services.catalog.domain.entries import CatalogEntry, Category, DataItem, EntryContent, ItemType, VersionStatus
from services.directory.demo_data import credit_code
from tests.integration.catalog_process import start_catalog
from tests.tokens import bearer

MARKET, HR, HEALTH, LAND, POLICE = (credit_code("360800", n) for n in (7101, 7102, 7103, 7104, 7105))
NAMES = {
    MARKET: "吉安市市场监督管理局",
    HR: "吉安市人力资源和社会保障局",
    HEALTH: "吉安市医疗保障局",
    LAND: "吉安市自然资源局",
    POLICE: "吉安市公安局",
}
SEEDED = [  # code, provider, name, abstract, items, status — written as the compilation guide writes them
    (
        "101001/000001",
        MARKET,
        "企业登记基本信息",
        "全市企业注册登记的基本信息",
        ("统一社会信用代码", "企业名称"),
        "PUBLISHED",
    ),
    ("101001/000002", MARKET, "企业年报信息", "企业年度报告公示", ("统一社会信用代码",), "WITHDRAWN"),
    ("102001/000001", HR, "社会保险参保缴费信息", "参保人员的缴费记录", ("公民身份号码", "缴费金额"), "PUBLISHED"),
    ("102002/000001", HEALTH, "医疗保险参保信息", "职工和城乡居民参保记录", ("姓名", "参保日期"), "PUBLISHED"),
    ("103001/000001", LAND, "不动产登记信息", "不动产权利登记簿", ("不动产单元号", "权利人"), "PUBLISHED"),
    ("104001/000001", POLICE, "户籍人口基本信息", "常住人口户籍登记", ("公民身份号码", "姓名"), "PUBLISHED"),
    ("104001/000002", POLICE, "流动人口登记信息", "暂住登记", ("公民身份号码",), "DRAFT"),
    ("104001/000003", POLICE, "拆迁户补偿名册", "", ("拆迁户姓名",), "DRAFT"),
]
MAP = "103002/000001"  # published as version 1, version 2 being drafted
MARKET_COMPILER = bearer(MARKET, Role.CATALOG_COMPILER, subject="li.compiler")
POLICE_COMPILER = bearer(POLICE, Role.CATALOG_COMPILER, subject="zhou.compiler")
READER = bearer(credit_code("360800", 7106), Role.CATALOG_COMPILER, subject="sun.reader")  # owns no entry here
IT_OFFICE = bearer(credit_code("360800", 7199), Role.IT_OFFICE_OPERATOR, subject="it.office")


def stored(code: str, provider: str, name: str, abstract: str, items: tuple[str, ...], status: str) -> CatalogEntry:
    content = EntryContent(name, abstract, Category.BASE, data_items=tuple(DataItem(i, ItemType.STRING) for i in items))
    entry = CatalogEntry.draft(code, provider, content, "seed")
    return replace(entry, versions=(replace(entry.latest, status=VersionStatus(status)),))


def with_draft_in_progress() -> CatalogEntry:
    entry = stored(MAP, LAND, "地籍图册", "宗地界址", ("宗地代码",), "PUBLISHED")
    draft = replace(
        entry.latest,
        version=2,
        status=VersionStatus.DRAFT,
        content=replace(entry.latest.content, name="地籍图册（修订）"),
    )
    return replace(entry, versions=(*entry.versions, draft))


@pytest.fixture(scope="module")
async def catalog(infra, topics, tmp_path_factory):
    """One catalog for the module's tests: they only read."""
    from pymongo import AsyncMongoClient

    from services.catalog.adapters.mongo import ELEMENTS, ENTRIES, element_doc, entry_doc

    database = f"cat_{uuid.uuid4().hex[:8]}"
    mongo = AsyncMongoClient(infra.mongo_uri)
    seeded = [entry_doc(stored(*e)) for e in SEEDED] + [entry_doc(with_draft_in_progress())]
    await mongo[database][ENTRIES].insert_many(seeded)
    # an alias of several words, as the IT office gives it
    credit = DataElement.define("DE0201", "统一社会信用代码", aliases=("企业组织机构代码",))
    await mongo[database][ELEMENTS].insert_one(element_doc(credit))
    await mongo.close()
    process = await start_catalog(infra, None, tmp_path_factory.mktemp("search"), NAMES, database)
    async with httpx.AsyncClient(base_url=process.url) as client:
        for _ in range(200):  # the directory's events reach the catalog's consumer
            hits = (await client.get("/search", params={"q": "信息"}, headers=READER)).json()["hits"]
            if len(hits) == 5 and all(h["provider_name"] for h in hits):
                break
            await asyncio.sleep(0.1)
        yield client
    process.stop()


async def found(client: httpx.AsyncClient, who: dict = READER, **params) -> dict:
    response = await client.get("/search", params=params, headers=who)
    assert response.status_code == 200, response.text
    return response.json()


def codes(result: dict) -> list[str]:
    return [h["resource_code"] for h in result["hits"]]


@pytest.mark.parametrize(
    ("typed", "first", "also"),
    [
        ("社保", "102001/000001", set()),
        ("医保", "102002/000001", set()),
        ("房产", "103001/000001", set()),
        ("户口", "104001/000001", set()),
        ("身份证", "104001/000001", {"102001/000001"}),
        ("不动", "103001/000001", set()),
        ("企業", "101001/000001", set()),
        ("登記", "103001/000001", {"101001/000001", "104001/000001"}),
        ("qiye", "101001/000001", set()),
        ("budongchan", "103001/000001", set()),
        ("hj", "104001/000001", set()),
    ],
)
async def test_what_people_type_finds_the_entries_written_in_full(catalog, typed, first, also) -> None:
    result = await found(catalog, q=typed)
    assert set(codes(result)) == {first} | also, result
    assert first in codes(result)


async def test_a_long_phrase_ranks_entries_holding_more_of_its_words_first(catalog) -> None:
    result = await found(catalog, q="企业登记信息查询")
    assert result["terms"] == ["企业", "登记", "信息", "查询"]
    assert result["total"] == 5  # the visible published entries: each holds 信息
    assert codes(result)[0] == "101001/000001" and result["hits"][0]["matched"] == 3
    assert [h["matched"] for h in result["hits"]] == sorted((h["matched"] for h in result["hits"]), reverse=True)
    assert (await found(catalog, q="企业登记信息查询", match="all"))["total"] == 0


async def test_stop_words_alone_find_nothing_and_say_why(catalog) -> None:
    result = await found(catalog, q="的 和 及")
    assert result["total"] == 0 and result["hits"] == []
    assert result["note"]["rule"] == "only_stop_words" and "停用词" in result["note"]["message"]


async def test_others_see_published_entries_only(catalog) -> None:
    # the police compiler sees the police's draft; the market compiler neither it nor others' unpublished
    police = await found(catalog, POLICE_COMPILER, q="登记")
    assert "104001/000002" in codes(police) and "101001/000002" not in codes(police)
    market = await found(catalog, MARKET_COMPILER, q="登记 年报")
    assert "104001/000002" not in codes(market) and "101001/000002" in codes(market)  # its own withdrawn one
    others = await found(catalog, READER, q="登记 年报")
    assert "104001/000002" not in codes(others) and "101001/000002" not in codes(others)
    assert {f["value"] for f in (await found(catalog, POLICE_COMPILER, q="年报"))["facets"]["status"]} == set()
    assert (await found(catalog, MARKET_COMPILER, q="流动人口", status="DRAFT"))["total"] == 0
    # the IT office sees another department's draft when it asks for drafts
    assert codes(await found(catalog, IT_OFFICE, q="流动人口", status="草稿")) == ["104001/000002"]
    assert codes(await found(catalog, IT_OFFICE, q="流动人口")) == []


async def test_hits_and_facets_carry_names_and_labels_and_filters_take_labels(catalog) -> None:
    result = await found(catalog, q="社保")
    [hit] = result["hits"]
    assert hit["provider_name"] == "吉安市人力资源和社会保障局" and hit["status_label"] == "已发布"
    providers = {f["value"]: f["label"] for f in (await found(catalog, q="信息"))["facets"]["provider_code"]}
    assert providers[POLICE] == "吉安市公安局" and providers[LAND] == "吉安市自然资源局"
    assert {"value": "BASE", "label": "基础", "count": 1} in result["facets"]["category"]
    assert (await found(catalog, q="社保", category="基础"))["total"] == 1
    assert (await found(catalog, q="社保", category="主题"))["total"] == 0
    assert (await found(catalog, q="社保", status="已发布", category="BASE"))["total"] == 1
    refused = await catalog.get("/search", params={"q": "社保", "category": "基本"}, headers=MARKET_COMPILER)
    assert refused.status_code == 422 and refused.json()["field"] == "category"
    assert "基础（BASE）" in refused.json()["detail"]


LAND_COMPILER = bearer(LAND, Role.CATALOG_COMPILER, subject="qian.compiler")


async def test_an_entry_read_outside_search_shows_others_only_its_version_in_force(catalog) -> None:
    # another department's draft: the same 404 as for no entry at all, on every read of it
    for path in ("/entries/104001/000002", "/entries/104001/000002/versions/1", "/entries/104001/000002/diff"):
        hidden = await catalog.get(path, params={"from": 1, "to": 1}, headers=MARKET_COMPILER)
        missing = await catalog.get(
            path.replace("104001/000002", "104001/000099"), params={"from": 1, "to": 1}, headers=MARKET_COMPILER
        )
        assert hidden.status_code == missing.status_code == 404, hidden.text
        alike = missing.text.replace("104001/000099", "104001/000002")
        assert hidden.text == alike and "流动人口" not in hidden.text
    assert (await catalog.get("/entries/104001/000002", headers=POLICE_COMPILER)).json()["working"]["version"] == 1
    # an entry in force with a draft in progress: others read version 1 only
    seen = (await catalog.get(f"/entries/{MAP}", headers=MARKET_COMPILER)).json()
    assert seen["in_force"]["content"]["name"] == "地籍图册" and seen["working"] is None and seen["versions"] == [1]
    assert "修订" not in str(seen)
    assert (await catalog.get(f"/entries/{MAP}/versions/2", headers=MARKET_COMPILER)).status_code == 404
    assert (
        await catalog.get(f"/entries/{MAP}/diff", params={"from": 1, "to": 2}, headers=MARKET_COMPILER)
    ).status_code == 404
    for insider in (LAND_COMPILER, IT_OFFICE):
        whole = (await catalog.get(f"/entries/{MAP}", headers=insider)).json()
        assert whole["working"]["content"]["name"] == "地籍图册（修订）" and whole["versions"] == [1, 2]
        assert (await catalog.get(f"/entries/{MAP}/versions/2", headers=insider)).status_code == 200
    # the list of a department's entries: others see those in force, and the count is theirs
    listed = (await catalog.get("/entries", params={"provider_code": POLICE}, headers=MARKET_COMPILER)).json()
    assert [e["resource_code"] for e in listed["items"]] == ["104001/000001"] and listed["total"] == 1
    own = (await catalog.get("/entries", params={"provider_code": POLICE}, headers=POLICE_COMPILER)).json()
    assert own["total"] == 3
    land = (await catalog.get("/entries", params={"provider_code": LAND}, headers=MARKET_COMPILER)).json()
    assert [e["working"] for e in land["items"]] == [None, None]


async def test_expansions_do_not_reveal_words_of_entries_the_reader_cannot_see(catalog) -> None:
    assert "拆迁" not in str((await found(catalog, READER, q="cq"))["expanded"])
    assert "拆迁户" not in str((await found(catalog, READER, q="拆迁"))["expanded"])
    assert "拆迁" in (await found(catalog, POLICE_COMPILER, q="cq"))["expanded"]["cq"]


async def test_a_dictionary_alias_of_several_words_finds_the_entries_holding_its_element(catalog) -> None:
    for _ in range(100):  # the dictionary's aliases reach search at start
        result = await found(catalog, q="企业组织机构代码", match="all")
        if result["total"]:
            break
        await asyncio.sleep(0.1)
    assert codes(result) == ["101001/000001"]  # it holds 统一社会信用代码, not 组织机构
    assert "统一社会信用代码" in result["expanded"]["企业组织机构代码"]
