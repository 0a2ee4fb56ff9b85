"""The catalog's rules that the compilation guide implies: four eyes over every editor, classification and
category, legal bases, withdrawal, reported changes, and the table import's checks."""

from dataclasses import replace
from datetime import date

import pytest

from common.policy import AccessDenied, Principal, Role
from services.catalog import handlers
from services.catalog.adapters import sheets
from services.catalog.domain import sheet
from services.catalog.domain.entries import (
    Category,
    DataItem,
    Finding,
    InvalidEntry,
    ItemType,
    ShareType,
    VersionStatus,
)
from tests.unit.test_catalog import ADMIN, COMPILER, COMPLETE, PROVIDER, REVIEWER, TODAY, FakeUnitOfWork, published

BOTH = Principal("li.both", PROVIDER, frozenset({Role.CATALOG_COMPILER, Role.CATALOG_REVIEWER}))


async def test_everyone_who_edited_a_version_is_its_compiler_for_four_eyes() -> None:
    """The bypass: a person with both roles writes v2, a compiler re-saves it unchanged and submits;
    the first person may not approve it."""
    uow = FakeUnitOfWork()
    entry = await published(uow)
    wider = replace(COMPLETE, data_items=(*COMPLETE.data_items, DataItem("法定代表人", ItemType.STRING)))
    entry = await handlers.edit_entry(entry.resource_code, wider, entry.revision, BOTH, uow)
    entry = await handlers.edit_entry(entry.resource_code, wider, entry.revision, COMPILER, uow)
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    assert entry.working.compiled_by == "li.compiler" and entry.working.edited_by == ("li.both", "li.compiler")
    with pytest.raises(AccessDenied, match="compiled or edited"):
        await handlers.approve_entry(entry.resource_code, entry.revision, BOTH, uow, TODAY)
    with pytest.raises(AccessDenied, match="compiled or edited"):
        await handlers.return_entry(entry.resource_code, (Finding("name", "x"),), entry.revision, BOTH, uow)
    approved = await handlers.approve_entry(entry.resource_code, entry.revision, REVIEWER, uow, TODAY)
    assert approved.in_force.version == 2 and approved.in_force.edited_by == ("li.both", "li.compiler")


async def test_whoever_submits_a_version_may_not_review_it() -> None:
    uow = FakeUnitOfWork()
    entry = await handlers.draft_entry(handlers.DraftEntry(PROVIDER, COMPLETE, classification="101001"), COMPILER, uow)
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, BOTH, uow)
    with pytest.raises(AccessDenied, match="compiled or edited"):
        await handlers.approve_entry(entry.resource_code, entry.revision, BOTH, uow, TODAY)


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (handlers.DraftEntry(PROVIDER, COMPLETE, classification="901001"), "classification"),
        (handlers.DraftEntry(PROVIDER, COMPLETE, resource_code="401001/000001"), "resource_code"),
        (
            handlers.DraftEntry(PROVIDER, replace(COMPLETE, category=Category.THEME), classification="101001"),
            "category",
        ),
        (handlers.DraftEntry(PROVIDER, COMPLETE, resource_code="301001/000001"), "category"),
        (handlers.DraftEntry(PROVIDER, replace(COMPLETE, format="随便写的格式")), "format"),
        (
            handlers.DraftEntry(
                PROVIDER,
                replace(
                    COMPLETE, data_items=(DataItem("身份证件号码", ItemType.STRING, share_type=ShareType.NOT_SHARED),)
                ),
                classification="101001",
            ),
            "data_items",
        ),
    ],
)
async def test_codes_categories_formats_and_not_shared_items_are_checked(
    command: handlers.DraftEntry, field: str
) -> None:
    uow = FakeUnitOfWork()
    if command.resource_code is None and command.classification is None:
        command = replace(command, classification="101001")
    with pytest.raises(InvalidEntry) as error:
        await handlers.draft_entry(command, COMPILER, uow)
    assert error.value.field.split(", ") == [field]
    assert uow.stored == {} and uow.events == []


async def test_category_agrees_with_the_class_digit_when_edited_and_good_values_pass() -> None:
    uow = FakeUnitOfWork()
    theme = replace(COMPLETE, category=Category.THEME, format="电子表格")
    entry = await handlers.draft_entry(handlers.DraftEntry(PROVIDER, theme, classification="201001"), COMPILER, uow)
    with pytest.raises(InvalidEntry, match="class 2"):
        await handlers.edit_entry(entry.resource_code, COMPLETE, entry.revision, COMPILER, uow)
    basis = DataItem(
        "身份证件号码", ItemType.STRING, share_type=ShareType.NOT_SHARED, not_shared_basis="《居民身份证法》"
    )
    with_basis = replace(theme, data_items=(*theme.data_items, basis))
    entry = await handlers.edit_entry(entry.resource_code, with_basis, entry.revision, COMPILER, uow)
    assert entry.working.content.data_items[-1].not_shared_basis == "《居民身份证法》"
    # one basis on the entry may cover its not-shared items
    bare = replace(basis, not_shared_basis="")
    covered = replace(with_basis, data_items=(bare,), not_shared_basis="《居民身份证法》")
    entry = await handlers.edit_entry(entry.resource_code, covered, entry.revision, COMPILER, uow)
    assert entry.working.content.data_items[0].not_shared_basis == ""


async def test_withdrawal_needs_a_reason_and_is_recorded_in_the_entry_and_its_versions() -> None:
    from common.calendar_source import build_calendar

    uow = FakeUnitOfWork()
    entry = await published(uow)
    entry = await handlers.report_change(entry.resource_code, TODAY, "新增字段", ADMIN, uow, build_calendar(), TODAY)
    entry = await handlers.edit_entry(
        entry.resource_code, replace(COMPLETE, format="接口"), entry.revision, COMPILER, uow
    )
    with pytest.raises(InvalidEntry, match="reason"):
        await handlers.withdraw_entry(entry.resource_code, "  ", entry.revision, ADMIN, uow, TODAY)
    later = date(2026, 12, 10)  # five working days after the change: 2 December
    assert [o.kind.value for _, o in await handlers.overdue_entries(uow, later)] == ["UPDATE_AFTER_CHANGE"]
    entry = await handlers.withdraw_entry(entry.resource_code, " 停止采集 ", entry.revision, ADMIN, uow, later)
    assert (entry.withdrawal.reason, entry.withdrawal.withdrawn_by, entry.withdrawal.withdrawn_on) == (
        "停止采集",
        "zhao.admin",
        later,
    )
    assert [v.status for v in entry.versions] == [VersionStatus.WITHDRAWN, VersionStatus.WITHDRAWN]
    assert all(v.withdrawal == entry.withdrawal for v in entry.versions)
    assert uow.events[-2][1].payload["reason"] == "停止采集"
    assert await handlers.overdue_entries(uow, date(2028, 1, 1)) == []  # neither the change nor maintenance


async def test_a_change_before_the_version_in_force_was_published_is_refused() -> None:
    from common.calendar_source import build_calendar

    uow = FakeUnitOfWork()
    entry = await published(uow)  # on TODAY, 2026-11-25
    with pytest.raises(InvalidEntry, match="published on 2026-11-25") as error:
        await handlers.report_change(
            entry.resource_code, date(2026, 11, 24), "新增字段", ADMIN, uow, build_calendar(), TODAY
        )
    assert error.value.field == "changed_on"
    entry = await handlers.report_change(entry.resource_code, TODAY, "新增字段", ADMIN, uow, build_calendar(), TODAY)
    assert entry.pending_update.changed_on == TODAY


def _table(*rows: dict[str, object]) -> list[list[object]]:
    base = {
        "资源代码": "101001/000020",
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
        "信息项名称": "企业名称",
    }
    return [list(sheet.COLUMNS), *[[{**base, **r}.get(c, "") for c in sheet.COLUMNS] for r in rows]]


def test_rows_of_one_entry_must_agree_and_the_disagreeing_rows_are_named() -> None:
    table = _table({}, {"信息项名称": "注册资本"}, {"信息项名称": "住所", "更新周期": "每月"})
    with pytest.raises(sheet.SheetErrors) as errors:
        sheet.read(table)
    [error] = errors.value.errors
    assert "rows 2 and 4" in error and "更新周期" in error and "'每日' / '每月'" in error


def test_the_providers_name_must_be_the_name_of_its_code() -> None:
    names = {PROVIDER: "吉安市市场监督管理局"}
    assert sheet.read(_table({}), names)[0].provider_code == PROVIDER
    with pytest.raises(sheet.SheetErrors, match="row 2: 资源提供方 '吉安市税务局' is not the department of"):
        sheet.read(_table({"资源提供方": "吉安市税务局"}), names)
    with pytest.raises(sheet.SheetErrors, match="not a department the catalog knows"):
        sheet.read(_table({}), {})


def test_a_header_without_rows_is_an_error() -> None:
    with pytest.raises(sheet.SheetErrors, match="no entries"):
        sheet.read([list(sheet.COLUMNS), [None] * len(sheet.COLUMNS)])


def test_a_table_from_the_earlier_layout_without_the_items_legal_basis_column_is_read() -> None:
    table = _table({})
    position = sheet.COLUMNS.index("信息项不予共享依据")
    earlier = [[v for i, v in enumerate(row) if i != position] for row in table]
    [entry] = sheet.read(earlier)
    assert entry.content.data_items[0].name == "企业名称"


def test_the_resource_format_comes_from_the_guides_list() -> None:
    with pytest.raises(sheet.SheetErrors, match="row 2: format '随便写的格式' is not one of"):
        sheet.read(_table({"资源格式": "随便写的格式"}))


async def test_rows_without_a_resource_code_get_one_assigned_in_their_classification() -> None:
    uow = FakeUnitOfWork()
    await published(uow)  # 101001/000001
    table = _table({"资源代码": ""}, {"资源代码": "", "信息项名称": "注册资本"}, {"资源代码": "", "资源名称": "个体户"})
    table[0].append(sheet.CLASSIFICATION)
    for row in table[1:]:
        row.append("101001")
    drafted = await handlers.import_entries(table, COMPILER, uow)
    assert [(e.resource_code, e.latest.content.name, len(e.latest.content.data_items)) for e in drafted] == [
        ("101001/000002", "企业登记基本信息", 2),
        ("101001/000003", "个体户", 1),
    ]
    no_classification = _table({"资源代码": ""})
    with pytest.raises(sheet.SheetErrors, match="row 2: 资源代码 is blank: give the 分类码"):
        sheet.read(no_classification)


def test_a_csv_saved_by_excel_in_gbk_is_read() -> None:
    table = _table({})
    text = "\r\n".join(",".join(str(v) for v in row) for row in table) + "\r\n"
    for encoded in (text.encode("gbk"), text.encode("utf-8"), text.encode("utf-8-sig")):
        rows = sheets.read_table(encoded, "目录.csv")
        [entry] = sheet.read(rows)
        assert entry.content.name == "企业登记基本信息" and entry.content.category is Category.BASE


async def test_the_entry_list_is_paged_by_resource_code_with_a_total() -> None:
    uow = FakeUnitOfWork()
    for classification in ("102001", "101001", "101002"):
        await handlers.draft_entry(
            handlers.DraftEntry(PROVIDER, COMPLETE, classification=classification), COMPILER, uow
        )
    first, total = await handlers.list_entries(uow, None, 0, 2)
    second, _ = await handlers.list_entries(uow, None, 2, 2)
    assert total == 3 and [e.resource_code for e in first + second] == [
        "101001/000001",
        "101002/000001",
        "102001/000001",
    ]
