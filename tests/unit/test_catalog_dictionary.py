"""One data, one source on the data-element dictionary, and demands matched through it: the clashes users
found (issue 14), through the handlers with the in-memory unit of work."""

from dataclasses import replace
from pathlib import Path

import pytest

from common.errors import Conflict, Invalid
from common.limits import NAME_LENGTH
from common.policy import AccessDenied, Principal, Role
from services.catalog import demands, dictionary, handlers
from services.catalog.adapters import sheets
from services.catalog.domain import dictionary as domain_dictionary
from services.catalog.domain.demands import MAX_WANTED_ITEMS, DemandStatus, ShareDemand, candidates, covered_items
from services.catalog.domain.dictionary import (
    MAX_ALIASES,
    MAX_SHEET_ROWS,
    DataElement,
    Dictionary,
    ElementConflict,
    SourceClaim,
)
from services.catalog.domain.entries import (
    CatalogEntry,
    DataItem,
    DuplicateSource,
    EntryContent,
    ItemType,
    VersionStatus,
)
from services.catalog.domain.sheet import SheetErrors
from services.directory.demo_data import credit_code
from tests.unit.test_catalog import COMPLETE, PROVIDER, TODAY, FakeUnitOfWork

SEED = Path(__file__).resolve().parents[2] / "data" / "dictionary" / "jian-demo.csv"
POLICE, HR, TRANSPORT, TAX = (credit_code("360800", n) for n in (8, 12, 16, 31))
MARKET = PROVIDER
NAMES = {
    POLICE: "吉安市公安局",
    HR: "吉安市人力资源和社会保障局",
    TRANSPORT: "吉安市交通运输局",
    MARKET: "吉安市市场监督管理局",
    TAX: "国家税务总局吉安市税务局",
    credit_code("360800", 13): "吉安市自然资源局",
}
OPERATOR = Principal("it.operator", credit_code("360800", 2), frozenset({Role.IT_OFFICE_OPERATOR}))


def item(name: str, source_of: str = "", refers_to: str = "") -> DataItem:
    return DataItem(name, ItemType.STRING, source_of=source_of, refers_to=refers_to)


async def seeded() -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    uow.names = dict(NAMES)
    await dictionary.import_elements(sheets.read_table(SEED.read_bytes(), SEED.name), OPERATOR, uow)
    return uow


async def submitted(uow: FakeUnitOfWork, provider: str, name: str, *items: DataItem) -> CatalogEntry:
    compiler = Principal(f"{provider}.compiler", provider, frozenset({Role.CATALOG_COMPILER}))
    content = replace(COMPLETE, name=name, data_items=items)
    command = handlers.DraftEntry(provider, content, classification="101001")
    entry = await handlers.draft_entry(command, compiler, uow)
    return await handlers.submit_entry(entry.resource_code, entry.revision, compiler, uow)


async def approve(uow: FakeUnitOfWork, entry: CatalogEntry) -> CatalogEntry:
    reviewer = Principal(f"{entry.provider_code}.reviewer", entry.provider_code, frozenset({Role.CATALOG_REVIEWER}))
    current = uow.stored[entry.resource_code]
    return await handlers.approve_entry(current.resource_code, current.revision, reviewer, uow, TODAY)


async def published(uow: FakeUnitOfWork, provider: str, name: str, *items: DataItem) -> CatalogEntry:
    return await approve(uow, await submitted(uow, provider, name, *items))


def flags(uow: FakeUnitOfWork, entry: CatalogEntry) -> list[dict]:
    return [
        e.payload
        for _, e in uow.events
        if not isinstance(e, str) and e.event_type == "DuplicateSourceFlagged" and e.key == entry.resource_code
    ]


async def test_the_seed_names_each_elements_source_department_and_its_aliases() -> None:
    uow = await seeded()
    citizen_id = uow.elements.require("DE0101")
    assert citizen_id.name == "公民身份号码" and citizen_id.source_code == POLICE
    assert "身份证号" in citizen_id.aliases
    assert [e.identifier for e in uow.elements.matching(" 经营者名称")] == ["DE0202"]
    assert ("企业名称", "经营者名称", "市场主体名称") in await dictionary.alias_groups(uow)
    assert {v.element.identifier for v in uow.versions} == {e.identifier for e in uow.elements.elements}
    # Importing the same table again changes nothing: no new versions, no events.
    events = len(uow.events)
    assert await dictionary.import_elements(sheets.read_table(SEED.read_bytes(), SEED.name), OPERATOR, uow) == []
    assert len(uow.events) == events


async def test_public_security_publishes_citizen_ids_although_the_hr_bureau_published_them_first() -> None:
    uow = await seeded()
    insured = await published(
        uow,
        HR,
        "参保人员信息",
        item("公民身份号码", refers_to="DE0101"),
        item("姓名", refers_to="DE0102"),
        item("参保状态", source_of="DE0301"),
    )
    assert insured.in_force is not None and flags(uow, insured) == []
    population = await published(
        uow,
        POLICE,
        "户籍人口基本信息",
        item("公民身份号码", source_of="DE0101"),
        item("姓名", source_of="DE0102"),
        item("户籍地址", source_of="DE0104"),
    )
    assert population.in_force is not None and flags(uow, population) == []
    assert await handlers.duplicate_sources(uow) == []


async def test_a_department_claiming_an_element_assigned_to_another_is_flagged_naming_that_department() -> None:
    uow = await seeded()
    insured = await submitted(uow, HR, "参保人员信息", item("公民身份号码", source_of="DE0101"))
    [flag] = flags(uow, insured)
    assert flag["element_id"] == "DE0101" and flag["existing_provider_code"] == POLICE
    assert flag["existing_provider_name"] == "吉安市公安局" and flag["data_element"] == "公民身份号码"
    with pytest.raises(DuplicateSource, match="provided by 吉安市公安局"):
        await approve(uow, insured)


async def test_two_items_called_valid_until_are_different_elements_and_do_not_clash() -> None:
    uow = await seeded()
    licence = await published(
        uow,
        TRANSPORT,
        "道路运输经营许可信息",
        item("许可证号", source_of="DE0401"),
        item("有效期至", source_of="DE0402"),
    )
    register = await published(
        uow, MARKET, "营业执照信息", item("统一社会信用代码", source_of="DE0201"), item("有效期至", source_of="DE0209")
    )
    # A bare 有效期至 of a third department names no element: it is new, not a second source.
    other = await published(uow, TAX, "纳税信用等级", item("有效期至"), item("纳税信用等级"))
    assert all(e.in_force is not None and flags(uow, e) == [] for e in (licence, register, other))


async def test_key_items_referring_to_credit_codes_and_citizen_ids_are_references_not_sources() -> None:
    uow = await seeded()
    taxpayers = await published(
        uow,
        TAX,
        "纳税人登记信息",
        item("统一社会信用代码", refers_to="DE0201"),
        item("法定代表人身份证号", refers_to="DE0101"),
        item("纳税人识别号"),
    )
    assert taxpayers.in_force is not None and flags(uow, taxpayers) == []
    assert [c for c in uow.claims if c.resource_code == taxpayers.resource_code] == []


async def test_equivalent_items_under_other_names_are_caught_through_aliases() -> None:
    uow = await seeded()
    entry = await submitted(uow, TAX, "个体工商户纳税信息", item("身份证号"), item("经营者名称"), item("应纳税额"))
    found = {(f["data_element"], f["element_id"], f["existing_provider_name"]) for f in flags(uow, entry)}
    assert found == {("身份证号", "DE0101", "吉安市公安局"), ("经营者名称", "DE0202", "吉安市市场监督管理局")}
    with pytest.raises(DuplicateSource) as refused:
        await approve(uow, entry)
    assert "身份证号 is element DE0101 (公民身份号码), provided by 吉安市公安局" in refused.value.rule


async def test_a_withdrawn_source_releases_its_claim_and_the_it_office_not_the_first_comer_decides() -> None:
    uow = FakeUnitOfWork()
    uow.names = dict(NAMES)
    await dictionary.define_element(DataElement.define("DE9001", "建设工程规划许可证号"), OPERATOR, uow)
    first = await published(uow, HR, "规划许可信息", item("许可证号", source_of="DE9001"))
    assert uow.claims == [SourceClaim("DE9001", HR, first.resource_code)]
    second = await submitted(uow, TRANSPORT, "工程许可信息", item("规划许可证号", source_of="DE9001"))
    assert [f["existing_provider_code"] for f in flags(uow, second)] == [HR]

    # Contested: the IT office assigns the source to the second claimant; the first becomes the duplicate.
    element = uow.elements.require("DE9001")
    await dictionary.change_element(replace(element, source_code=TRANSPORT), element.version, OPERATOR, uow)
    second = await approve(uow, second)
    assert second.in_force is not None
    assert [(e.resource_code, c.existing_provider) for e, c, _ in await handlers.duplicate_sources(uow)] == [
        (first.resource_code, TRANSPORT)
    ]
    # The assigned source withdraws its entry: the claim goes, the element stays assigned.
    admin = Principal("t.admin", TRANSPORT, frozenset({Role.DATA_ADMINISTRATOR}))
    await handlers.withdraw_entry(
        second.resource_code, "停止采集", uow.stored[second.resource_code].revision, admin, uow, TODAY
    )
    assert [c.provider_code for c in uow.claims] == [HR]
    # Unassigned again, the remaining claimant is the only source and no longer flagged.
    element = uow.elements.require("DE9001")
    await dictionary.change_element(replace(element, source_code=""), element.version, OPERATOR, uow)
    assert await handlers.duplicate_sources(uow) == []


async def test_a_withdrawn_claimant_no_longer_blocks_another_department() -> None:
    uow = FakeUnitOfWork()
    uow.names = dict(NAMES)
    await dictionary.define_element(DataElement.define("DE9002", "排污许可证编号"), OPERATOR, uow)
    first = await published(uow, HR, "排污许可信息", item("排污许可证编号", source_of="DE9002"))
    second = await submitted(uow, TRANSPORT, "排污许可登记", item("排污许可证编号", source_of="DE9002"))
    with pytest.raises(DuplicateSource, match="吉安市人力资源和社会保障局"):
        await approve(uow, second)
    admin = Principal("h.admin", HR, frozenset({Role.DATA_ADMINISTRATOR}))
    await handlers.withdraw_entry(
        first.resource_code, "移交", uow.stored[first.resource_code].revision, admin, uow, TODAY
    )
    assert (await approve(uow, second)).in_force is not None


async def test_an_exception_must_name_a_flagged_item_of_the_entry_and_shows_in_it() -> None:
    uow = await seeded()
    population = await published(uow, POLICE, "户籍人口基本信息", item("公民身份号码", source_of="DE0101"))
    entry = await submitted(uow, TAX, "个体工商户纳税信息", item("身份证号"), item("应纳税额"))
    code = entry.resource_code
    for bogus in ("不存在的信息项", "应纳税额"):
        with pytest.raises(Invalid, match="not a flagged data item"):
            await handlers.record_source_exception(code, bogus, "《税收征收管理法》", OPERATOR, uow)
    with pytest.raises(Invalid, match="not a flagged data item"):  # the source's own entry has nothing flagged
        await handlers.record_source_exception(population.resource_code, "公民身份号码", "x", OPERATOR, uow)
    reviewer = Principal("tax.reviewer", TAX, frozenset({Role.CATALOG_REVIEWER}))
    with pytest.raises(AccessDenied):
        await handlers.record_source_exception(code, "身份证号", "《税收征收管理法》", reviewer, uow)
    excepted = await handlers.record_source_exception(code, "身份证号", "《税收征收管理法》第十五条", OPERATOR, uow)
    assert excepted.source_exceptions == (("身份证号", "《税收征收管理法》第十五条"),)
    assert (await approve(uow, excepted)).in_force is not None
    [(listed, clash, basis)] = await handlers.duplicate_sources(uow)
    assert (listed.resource_code, clash.item, basis) == (code, "身份证号", "《税收征收管理法》第十五条")


async def test_linking_an_item_to_an_unrelated_element_does_not_hide_that_its_name_is_provided_elsewhere() -> None:
    uow = await seeded()
    # 身份证号 is an alias of DE0101 (public security); DE0501 (自然资源局) has nothing to do with it.
    for link in ({"refers_to": "DE0501"}, {"source_of": "DE0501"}):
        entry = await submitted(uow, TAX, "个体工商户纳税信息", item("身份证号", **link), item("应纳税额"))
        assert {(f["data_element"], f["element_id"]) for f in flags(uow, entry)} >= {("身份证号", "DE0101")}
        with pytest.raises(DuplicateSource, match="身份证号 is element DE0101"):
            await approve(uow, entry)
    assert [c for c in uow.claims if c.element == "DE0501"] == []  # never became DE0501's claimant
    # Linked to the element its name names, a reference is fine and a source of it is the second source.
    fine = await published(uow, TAX, "纳税人身份信息", item("身份证号", refers_to="DE0101"))
    assert fine.in_force is not None and flags(uow, fine) == []


async def test_a_reference_to_an_element_nobody_provides_is_refused_at_approval() -> None:
    uow = FakeUnitOfWork()
    uow.names = dict(NAMES)
    await dictionary.define_element(DataElement.define("DE9005", "备注"), OPERATOR, uow)
    entry = await submitted(uow, TAX, "纳税人备注", item("备注", refers_to="DE9005"))
    with pytest.raises(Invalid, match="no department provides the element referred to: 备注 → DE9005"):
        await approve(uow, entry)
    await published(uow, HR, "备注信息", item("备注", source_of="DE9005"))
    assert (await approve(uow, entry)).in_force is not None


async def test_an_exception_covers_the_clash_it_was_recorded_for_not_the_item_name_in_later_versions() -> None:
    uow = await seeded()
    entry = await submitted(uow, TAX, "个体工商户纳税信息", item("身份证号"), item("应纳税额"))
    code = entry.resource_code
    excepted = await handlers.record_source_exception(code, "身份证号", "《税收征收管理法》第十五条", OPERATOR, uow)
    assert excepted.excepted_clashes == (("身份证号", "DE0101", "UNLINKED_DUPLICATE"),)
    published_once = await approve(uow, excepted)
    # The next version makes 身份证号 the source of the market's element: a clash the exception never covered.
    compiler = Principal("tax.compiler", TAX, frozenset({Role.CATALOG_COMPILER}))
    items = (item("身份证号", source_of="DE0202"), item("应纳税额"))
    content = replace(COMPLETE, name="个体工商户纳税信息", data_items=items)
    edited = await handlers.edit_entry(code, content, published_once.revision, compiler, uow)
    await handlers.submit_entry(code, edited.revision, compiler, uow)
    with pytest.raises(DuplicateSource, match="DE0202") as refused:
        await approve(uow, uow.stored[code])
    assert "DE0101" not in refused.value.rule  # the clash with the citizen ID stays excepted
    found = {(c.element, basis) for _, c, basis in await handlers.duplicate_sources(uow)}
    assert found == {("DE0101", "《税收征收管理法》第十五条"), ("DE0202", None)}


async def test_an_item_linked_to_an_element_the_dictionary_lacks_is_refused_at_submission() -> None:
    uow = await seeded()
    with pytest.raises(Invalid, match="DE9999"):
        await submitted(uow, TAX, "纳税人信息", item("统一社会信用代码", refers_to="DE9999"))
    with pytest.raises(Invalid, match="not both"):
        await submitted(uow, TAX, "纳税人信息", item("统一社会信用代码", source_of="DE0201", refers_to="DE0201"))


async def test_only_the_it_office_keeps_the_dictionary_and_every_change_is_a_version() -> None:
    uow = await seeded()
    compiler = Principal("tax.compiler", TAX, frozenset({Role.CATALOG_COMPILER}))
    with pytest.raises(AccessDenied):
        await dictionary.define_element(DataElement.define("DE9003", "纳税人识别号"), compiler, uow)
    element = await dictionary.define_element(DataElement.define("DE9003", "纳税人识别号"), OPERATOR, uow)
    with pytest.raises(ElementConflict, match="already in the dictionary"):
        await dictionary.define_element(element, OPERATOR, uow)
    with pytest.raises(ElementConflict, match="already names element DE0101"):
        await dictionary.change_element(replace(element, aliases=("身份证号",)), 1, OPERATOR, uow)
    changed = await dictionary.change_element(replace(element, source_code=TAX, aliases=("税号",)), 1, OPERATOR, uow)
    assert changed.version == 2 and changed.source_code == TAX
    with pytest.raises(ElementConflict, match="changed meanwhile"):
        await dictionary.change_element(replace(changed, definition="x"), 1, OPERATOR, uow)
    assert [v.element.version for v in await dictionary.element_history("DE9003", uow)] == [1, 2]
    await published(uow, TAX, "纳税人信息", item("纳税人识别号", source_of="DE9003"))
    with pytest.raises(Conflict, match="published entries are the source"):
        await dictionary.remove_element("DE9003", OPERATOR, uow)
    referring = await published(uow, HR, "参保人员信息", item("公民身份号码", refers_to="DE0101"))
    with pytest.raises(Conflict, match=f"published entries refer to DE0101: {referring.resource_code}"):
        await dictionary.remove_element("DE0101", OPERATOR, uow)
    changes = [e.payload["change"] for _, e in uow.events if not isinstance(e, str) and e.key == "DE9003"]
    assert changes == ["DEFINED", "CHANGED"]


async def test_a_broken_dictionary_table_changes_nothing_and_names_its_rows() -> None:
    uow = await seeded()
    table = [
        ["标识符", "标准名称", "同义名称", "定义", "数据类型", "权威来源部门代码", "权威来源部门"],
        ["DE9010", "纳税人识别号", "税号", "", "字符型", "", "国家税务总局吉安市税务局"],
        ["DE9011", "", "", "", "字符型", "", ""],
        ["DE9012", "车牌号", "", "", "文本", "", ""],
        ["DE9013", "船舶识别号", "", "", "字符型", "", "不存在的局"],
        ["DE9014", "营运车辆号牌", "", "", "字符型", "91360800MA3ABCDE0X", ""],
    ]
    with pytest.raises(SheetErrors) as errors:
        await dictionary.import_elements(table, OPERATOR, uow)
    assert [e.split(":")[0] for e in errors.value.errors] == ["row 3", "row 4", "row 5", "row 6"]
    assert uow.elements.get("DE9010") is None
    with pytest.raises(SheetErrors, match="header"):
        await dictionary.import_elements([["资源代码"]], OPERATOR, uow)


def test_a_source_named_by_a_name_two_departments_share_must_be_given_by_its_code() -> None:
    one, other, third = credit_code("360800", 8101), credit_code("360800", 8102), credit_code("360800", 8103)
    known = {one: "吉安市公安局", other: "吉安市公安局", third: "吉安市统计局"}
    table = [
        ["标识符", "标准名称", "同义名称", "定义", "数据类型", "权威来源部门代码", "权威来源部门"],
        ["DE9020", "户籍地址", "", "", "字符型", "", "吉安市公安局"],
        ["DE9021", "户籍类别", "", "", "字符型", other, "吉安市公安局"],
        ["DE9022", "统计期", "", "", "字符型", "", "吉安市统计局"],
    ]
    with pytest.raises(SheetErrors) as errors:
        domain_dictionary.read_sheet(table, known)
    assert [e.split(":")[0] for e in errors.value.errors] == ["row 2"]
    assert "give its code" in errors.value.errors[0]
    good = domain_dictionary.read_sheet([table[0], *table[2:]], known)
    assert [(e.identifier, e.source_code) for e in good] == [("DE9021", other), ("DE9022", third)]


# -- demands -------------------------------------------------------------------------------------


def demand(*wanted: str) -> ShareDemand:
    return ShareDemand.file("d1", TAX, "企业登记信息", "", wanted, "tax.compiler", TODAY)


def in_force(provider: str, content: EntryContent, code: str = "101001/000001") -> CatalogEntry:
    draft = CatalogEntry.draft(code, provider, content, "c")
    return replace(draft, versions=(replace(draft.latest, status=VersionStatus.PUBLISHED),))


async def test_a_wanted_item_is_covered_under_any_of_its_names() -> None:
    uow = await seeded()
    population = in_force(POLICE, replace(COMPLETE, name="户籍人口基本信息", data_items=(item("公民身份号码"),)))
    linked = (item("证件号", refers_to="DE0101"), item("名称"))
    licences = in_force(TRANSPORT, replace(COMPLETE, data_items=linked), "101001/000002")
    assert covered_items(("身份证号", "企业名称"), population.latest.content.data_items, uow.elements) == ("身份证号",)
    assert covered_items(("身份证号码",), licences.latest.content.data_items, uow.elements) == ("身份证号码",)
    assert covered_items(("身份证号",), population.latest.content.data_items, Dictionary()) == ()
    [best, _] = candidates(demand("身份证号"), [(licences, 3.0), (population, 1.0)], uow.elements)
    assert best.covered_items == ("身份证号",)


def test_a_match_covers_a_wanted_item_or_carries_the_it_offices_reason() -> None:
    entry = in_force(MARKET, COMPLETE)  # 统一社会信用代码, 企业名称
    names = Dictionary((DataElement.define("DE0202", "企业名称", ("经营者名称",)),))
    assert demand("经营者名称").match(entry, "it", "", names).covered_items == ("经营者名称",)
    with pytest.raises(Invalid, match="none of the wanted items"):
        demand("注册资本").match(entry, "it", "", Dictionary())
    with pytest.raises(Invalid, match="none of the wanted items"):
        demand().match(entry, "it", " ", Dictionary())
    matched = demand("注册资本").match(entry, "it", "注册资本另行提供", Dictionary())
    assert matched.status is DemandStatus.MATCHED and matched.match_reason == "注册资本另行提供"
    assert matched.covered_items == ()


async def test_a_match_is_undone_and_a_demand_cancelled_or_found_unmeetable_on_legal_grounds() -> None:
    uow = await seeded()
    register = await published(
        uow,
        MARKET,
        "企业登记基本信息",
        item("统一社会信用代码", source_of="DE0201"),
        item("企业名称", source_of="DE0202"),
    )
    requester = Principal("tax.compiler", TAX, frozenset({Role.CATALOG_COMPILER}))
    filed = await demands.file_demand("个体户信息", "", ("经营者名称", "注册资本"), requester, uow, TODAY)
    matched = await demands.confirm_match(filed.demand_id, register.resource_code, "", OPERATOR, uow)
    assert matched.status is DemandStatus.MATCHED and matched.covered_items == ("经营者名称",)
    with pytest.raises(Conflict, match="undo that match first"):
        await demands.declare_unmeetable(filed.demand_id, "x", "y", OPERATOR, uow)
    with pytest.raises(AccessDenied):
        await demands.undo_match(filed.demand_id, "匹配有误", requester, uow)
    reopened = await demands.undo_match(filed.demand_id, "匹配有误", OPERATOR, uow)
    assert reopened.status is DemandStatus.OPEN and reopened.resource_code is None and reopened.reason == "匹配有误"
    with pytest.raises(Invalid, match="legal grounds") as refused:
        await demands.declare_unmeetable(filed.demand_id, "涉及国家秘密", " ", OPERATOR, uow)
    assert refused.value.code == "catalog.demand.unmeetable_basis" and "第十四条" in (refused.value.message or "")
    closed = await demands.declare_unmeetable(filed.demand_id, "涉及国家秘密", "《保守国家秘密法》", OPERATOR, uow)
    assert closed.status is DemandStatus.UNMEETABLE and closed.legal_basis == "《保守国家秘密法》"

    other = await demands.file_demand("车辆信息", "", ("车牌号",), requester, uow, TODAY)
    stranger = Principal("hr.compiler", HR, frozenset({Role.CATALOG_COMPILER}))
    with pytest.raises(AccessDenied):
        await demands.cancel_demand(other.demand_id, "不再需要", stranger, uow)
    cancelled = await demands.cancel_demand(other.demand_id, "不再需要", requester, uow)
    assert cancelled.status is DemandStatus.CANCELLED and cancelled.closed_by == "tax.compiler"
    with pytest.raises(Conflict) as closed_again:
        await demands.confirm_match(other.demand_id, register.resource_code, "", OPERATOR, uow)
    assert closed_again.value.message == "该需求的状态为“已撤回”，不能再办理"
    types = [e.event_type for topic, e in uow.events if topic == "catalog.demand-events" and not isinstance(e, str)]
    assert types[-5:] == [
        "ShareDemandMatched",
        "ShareDemandUnmatched",
        "ShareDemandUnmeetable",
        "ShareDemandFiled",
        "ShareDemandCancelled",
    ]


# -- size: lookups by table, caps -----------------------------------------------------------------


HEADER = ["标识符", "标准名称", "同义名称", "定义", "数据类型", "权威来源部门代码", "权威来源部门"]


def large(count: int) -> list[DataElement]:
    return [DataElement.define(f"DE{n:05d}", f"数据元{n}", (f"别名{n}甲", f"别名{n}乙")) for n in range(count)]


def counting_normal(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name the dictionary normalises, recorded."""
    seen: list[str] = []

    def normal(name: str) -> str:
        seen.append(name)
        return original(name)

    original = domain_dictionary.normal
    monkeypatch.setattr(domain_dictionary, "normal", normal)
    return seen


def test_lookups_in_a_large_dictionary_normalise_only_the_name_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    found = Dictionary(tuple(large(5000)))
    normalised = counting_normal(monkeypatch)
    assert [e.identifier for e in found.matching("别名1234乙")] == ["DE01234"]
    assert len(normalised) <= 15001  # the tables, built once: each of the 15,000 names, and the name asked for
    normalised.clear()
    for n in range(1000):
        assert found.get(f"DE{n:05d}") is not None
        assert [e.identifier for e in found.matching(f" 别名{n}甲 ")] == [f"DE{n:05d}"]
        assert found.equivalents(f"数据元{n}") == {f"数据元{n}", f"别名{n}甲", f"别名{n}乙"}
    assert len(normalised) == 2000  # one per name asked for, never the dictionary's names again
    assert found.matching("不存在的名称") == [] and found.equivalents("不存在的名称") == {"不存在的名称"}


async def test_a_large_table_is_imported_checking_its_names_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    uow = FakeUnitOfWork()
    uow.names = dict(NAMES)
    rows = [[e.identifier, e.name, "、".join(e.aliases), "", "字符型", "", ""] for e in large(3000)]
    normalised = counting_normal(monkeypatch)
    assert len(await dictionary.import_elements([HEADER, *rows], OPERATOR, uow)) == 3000
    assert len(normalised) < 20 * 3000  # linear in the table (quadratic before: every row against every element)
    normalised.clear()
    rows[2999][2] = "别名7甲"  # the last row takes a name of an element already stored
    with pytest.raises(ElementConflict, match="别名7甲 already names element DE00007"):
        await dictionary.import_elements([HEADER, *rows], OPERATOR, uow)
    assert len(normalised) < 20 * 3000
    clash = [[f"DE9000{n}", f"新数据元{n}", "共同别名", "", "", "", ""] for n in (1, 2)]
    with pytest.raises(ElementConflict, match="共同别名 already names element DE90001"):
        await dictionary.import_elements([HEADER, *clash], OPERATOR, uow)
    assert uow.elements.get("DE90001") is None
    assert uow.elements.require("DE02999").aliases == ("别名2999甲", "别名2999乙")


async def test_a_table_of_more_than_5000_elements_is_refused_whole() -> None:
    uow = await seeded()
    rows = [[f"DE{n:05d}", f"数据元{n}", "", "", "字符型", "", ""] for n in range(MAX_SHEET_ROWS + 1)]
    with pytest.raises(SheetErrors) as refused:
        await dictionary.import_elements([HEADER, *rows, ["", "", ""]], OPERATOR, uow)
    assert refused.value.code == "catalog.element.rows_too_many"
    assert refused.value.message == "表格有 5001 个数据元，一次最多导入 5000 个；请分批导入"
    assert uow.elements.get("DE00000") is None


def test_an_element_has_at_most_50_aliases_of_at_most_200_characters() -> None:
    assert len(DataElement.define("DE9020", "车牌号", [f"号牌{n}" for n in range(MAX_ALIASES)]).aliases) == 50
    for aliases in ([f"号牌{n}" for n in range(MAX_ALIASES + 1)], ["号" * (NAME_LENGTH + 1)]):
        with pytest.raises(Invalid) as refused:
            DataElement.define("DE9020", "车牌号", aliases)
        assert refused.value.field == "aliases" and refused.value.code == "catalog.element.aliases_too_many"
        assert refused.value.message == "一个数据元最多 50 个同义名称，每个同义名称最多 200 个字"


def test_a_demand_names_at_most_50_wanted_items() -> None:
    assert len(demand(*(f"信息项{n}" for n in range(MAX_WANTED_ITEMS))).wanted_items) == 50
    with pytest.raises(Invalid) as refused:
        demand(*(f"信息项{n}" for n in range(MAX_WANTED_ITEMS + 1)))
    assert refused.value.field == "wanted_items" and refused.value.code == "catalog.demand.wanted_too_many"
    assert refused.value.message == "一项需求最多列出 50 个所需信息项（您列出了 51 个）"


async def test_an_elements_source_must_be_a_department_the_catalog_knows() -> None:
    uow = await seeded()
    stranger = credit_code("360800", 99)  # a valid credit code the directory never announced
    with pytest.raises(domain_dictionary.InvalidElement) as refused:
        await dictionary.define_element(DataElement.define("DE9004", "船舶登记号", source_code=stranger), OPERATOR, uow)
    assert refused.value.code == "catalog.element.source_unknown" and stranger in (refused.value.message or "")
    element = await dictionary.define_element(DataElement.define("DE9004", "船舶登记号"), OPERATOR, uow)
    with pytest.raises(domain_dictionary.InvalidElement, match="not a department the catalog knows"):
        await dictionary.change_element(replace(element, source_code=stranger), 1, OPERATOR, uow)
    header = ["标识符", "标准名称", "同义名称", "定义", "数据类型", "权威来源部门代码", "权威来源部门"]
    with pytest.raises(SheetErrors, match=f"row 2: 权威来源部门代码 {stranger} is not a department"):
        await dictionary.import_elements(
            [header, ["DE9005", "渔船编号", "", "", "字符型", stranger, ""]], OPERATOR, uow
        )
    assert uow.elements.get("DE9005") is None and uow.elements.require("DE9004").source_code == ""


async def test_a_source_is_not_withdrawn_while_others_refer_to_what_only_it_provides() -> None:
    uow = FakeUnitOfWork()
    uow.names = dict(NAMES)
    await dictionary.define_element(DataElement.define("DE9006", "道路运输证号"), OPERATOR, uow)
    source = await published(uow, TRANSPORT, "道路运输证信息", item("道路运输证号", source_of="DE9006"))
    referring = await published(uow, TAX, "运输企业纳税信息", item("道路运输证号", refers_to="DE9006"))
    admin = Principal("t.admin", TRANSPORT, frozenset({Role.DATA_ADMINISTRATOR}))

    async def withdraw() -> CatalogEntry:
        current = uow.stored[source.resource_code]
        return await handlers.withdraw_entry(source.resource_code, "停止采集", current.revision, admin, uow, TODAY)

    with pytest.raises(Conflict) as refused:
        await withdraw()
    assert refused.value.code == "catalog.source.withdrawal_referred"
    assert referring.resource_code in (refused.value.message or "") and "DE9006" in refused.value.rule
    assert uow.stored[source.resource_code].in_force is not None and uow.claims
    # Once the IT office assigns the element a source, the reference stands on that department: withdrawal goes.
    element = uow.elements.require("DE9006")
    await dictionary.change_element(replace(element, source_code=TRANSPORT), element.version, OPERATOR, uow)
    assert (await withdraw()).in_force is None and uow.claims == []


async def test_the_catalog_table_and_the_published_event_carry_each_items_links() -> None:
    import json

    from common.codec import SCHEMA_DIR, EventCodec, load_schema
    from services.catalog.domain import sheet

    uow = await seeded()
    await published(uow, POLICE, "户籍人口基本信息", item("公民身份号码", source_of="DE0101"))
    insured = await published(
        uow, HR, "参保人员信息", item("公民身份号码", refers_to="DE0101"), item("参保状态", source_of="DE0301")
    )
    table = await handlers.export_catalog(uow)
    source, reference = sheet.COLUMNS.index("来源数据元"), sheet.COLUMNS.index("引用数据元")
    rows = {(r[0], r[sheet.COLUMNS.index("信息项名称")]): (r[source], r[reference]) for r in table[1:]}
    assert rows[insured.resource_code, "公民身份号码"] == ("", "DE0101")
    assert rows[insured.resource_code, "参保状态"] == ("DE0301", "")
    # imported again, the items keep their links
    again = [table[0], *[["102001/000009", *r[1:]] for r in table[1:] if r[0] == insured.resource_code]]
    [imported] = sheet.read(again)
    assert imported.content.data_items == insured.in_force.content.data_items  # type: ignore[union-attr]

    [event] = [
        e
        for _, e in uow.events
        if not isinstance(e, str) and e.event_type == "CatalogEntryPublished" and e.key == insured.resource_code
    ][:1]
    codec = EventCodec.from_folder()
    _, decoded = codec.decode(codec.encode("CatalogEntryPublished", event.payload))
    assert decoded["item_links"] == [
        {"item": "公民身份号码", "source_of": "", "refers_to": "DE0101"},
        {"item": "参保状态", "source_of": "DE0301", "refers_to": ""},
    ]
    # a message written before links were carried (the compacted topic keeps such) still decodes
    earlier = json.loads((SCHEMA_DIR / "history" / "CatalogEntryPublished.1.avsc").read_text(encoding="utf-8"))
    old = EventCodec([load_schema(earlier)]).encode(
        "CatalogEntryPublished", {k: v for k, v in event.payload.items() if k != "item_links"}
    )
    assert codec.decode(old)[1]["item_links"] == []


async def test_broken_rows_and_elements_are_told_in_chinese_beside_the_english_rows() -> None:
    from services.catalog.domain import sheet

    uow = await seeded()
    header = ["标识符", "标准名称", "同义名称", "定义", "数据类型", "权威来源部门代码", "权威来源部门"]
    rows = [header, ["DE9007", "", "", "", "字符型", "", ""], ["DE9007", "重复", "", "", "文本", "", "某局"]]
    with pytest.raises(SheetErrors) as refused:
        await dictionary.import_elements(rows, OPERATOR, uow)
    assert refused.value.errors == ["row 2: name an element has a standard name", "row 3: DE9007 is already on row 2"]
    assert refused.value.message == (
        "表格有 2 处错误，未导入任何条目：第 2 行：数据元须有标准名称；第 3 行：标识符 DE9007 与第 2 行重复"
    )
    with pytest.raises(domain_dictionary.InvalidElement) as invalid:
        DataElement.define("DE 01", "")
    assert invalid.value.code == "catalog.element.identifier, catalog.element.name_missing"
    assert invalid.value.message == "数据元标识符应为 1 至 32 位字母、数字或“.”“_”“-”，如 DE0001；数据元须有标准名称"

    entry = await published(uow, POLICE, "户籍人口基本信息", item("公民身份号码", source_of="DE0101"))
    table = await handlers.export_catalog(uow)
    cycle, length = sheet.COLUMNS.index("更新周期"), sheet.COLUMNS.index("数据长度")
    broken = [table[0], [*table[1][:cycle], "偶尔", *table[1][cycle + 1 :]]]
    broken[1][0], broken[1][length] = "101001/000090", "十八"
    with pytest.raises(SheetErrors) as rows_refused:
        sheet.read(broken)
    words = rows_refused.value.message or ""
    assert "第 2 行：数据长度“十八”应为 1 至" in words and "第 2 行：更新周期“偶尔”不是可选的值：实时、每日" in words
    assert all(e.startswith("row 2: ") for e in rows_refused.value.errors) and entry.in_force is not None


async def test_a_new_version_dropping_a_source_others_rely_on_is_refused_like_a_withdrawal() -> None:
    uow = FakeUnitOfWork()
    uow.names = dict(NAMES)
    await dictionary.define_element(DataElement.define("DE9008", "车辆识别代号"), OPERATOR, uow)
    source = await published(uow, TRANSPORT, "车辆登记信息", item("车辆识别代号", source_of="DE9008"))
    await published(uow, TAX, "车船税信息", item("车辆识别代号", refers_to="DE9008"))
    compiler = Principal("t.compiler", TRANSPORT, frozenset({Role.CATALOG_COMPILER}))
    unlinked = replace(COMPLETE, name="车辆登记信息", data_items=(item("车辆识别代号"),))
    current = uow.stored[source.resource_code]
    edited = await handlers.edit_entry(source.resource_code, unlinked, current.revision, compiler, uow)
    await handlers.submit_entry(source.resource_code, edited.revision, compiler, uow)
    with pytest.raises(Conflict) as refused:
        await approve(uow, source)
    assert refused.value.code == "catalog.source.withdrawal_referred"
    assert [c.element for c in uow.claims] == ["DE9008"]
