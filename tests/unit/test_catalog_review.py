"""Review and deadlines people can work with, and the catalog's words for people (issue 14, §5 and §8)."""

import ast
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from common.errors import DomainError
from common.policy import AccessDenied
from services.catalog import handlers
from services.catalog.domain import sheet, wording
from services.catalog.domain.entries import (
    Category,
    DataItem,
    EntryContent,
    Finding,
    InvalidEntry,
    ItemType,
    OpenAttribute,
    ShareMethod,
    ShareType,
    TransitionNotAllowed,
    UpdateCycle,
    VersionStatus,
    content_digest,
    diff,
)
from tests.unit.test_catalog import ADMIN, COMPILER, COMPLETE, PROVIDER, REVIEWER, TODAY, FakeUnitOfWork, published

CATALOG = Path(__file__).resolve().parents[2] / "services" / "catalog"


async def submitted(uow: FakeUnitOfWork, content: EntryContent = COMPLETE):
    entry = await handlers.draft_entry(handlers.DraftEntry(PROVIDER, content, classification="101001"), COMPILER, uow)
    return await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)


async def test_findings_name_data_items_by_name_or_position_and_are_kept_by_name() -> None:
    uow = FakeUnitOfWork()
    entry = await submitted(uow)
    findings = (
        Finding("data_items[1].length", "企业名称应注明长度"),
        Finding("data_items[统一社会信用代码]", "应标注为主键"),
        Finding("confidentiality_review.conclusion", "结论过简"),
        Finding("abstract", "摘要应说明数据范围"),
    )
    entry = await handlers.return_entry(entry.resource_code, findings, entry.revision, REVIEWER, uow)
    assert [f.field for f in entry.working.findings] == [
        "data_items[企业名称].length",
        "data_items[统一社会信用代码]",
        "confidentiality_review.conclusion",
        "abstract",
    ]
    assert [f.finding for f in entry.working.findings] == [f.finding for f in findings]


@pytest.mark.parametrize(
    "path", ["data_items[法定代表人]", "data_items[2]", "data_items[企业名称].colour", "abstrakt", "data_items"]
)
async def test_a_finding_on_nothing_is_refused_listing_what_may_be_named(path: str) -> None:
    uow = FakeUnitOfWork()
    entry = await submitted(uow)
    findings = (Finding(path, "x"),) if path != "data_items" else (Finding("data_items[-1]", "x"),)
    with pytest.raises(InvalidEntry) as refused:
        await handlers.return_entry(entry.resource_code, findings, entry.revision, REVIEWER, uow)
    error = refused.value
    assert error.field == "findings" and error.code == "catalog.entry.finding_unknown_field"
    for valid in ("abstract", "data_items[统一社会信用代码]", "data_items[企业名称]", "data_items[…].length"):
        assert valid in error.rule and valid in error.message
    assert error.message.startswith("审核意见指向的字段不存在")
    assert uow.stored[entry.resource_code].working.status is VersionStatus.SUBMITTED


async def test_findings_stay_in_the_version_history_through_edits_and_publication() -> None:
    uow = FakeUnitOfWork()
    entry = await submitted(uow)
    first = (Finding("abstract", "摘要应说明数据范围"),)
    entry = await handlers.return_entry(entry.resource_code, first, entry.revision, REVIEWER, uow)
    better = replace(COMPLETE, abstract="全市在册企业的登记基本信息")
    entry = await handlers.edit_entry(entry.resource_code, better, entry.revision, COMPILER, uow)
    assert entry.working.status is VersionStatus.DRAFT and entry.working.findings == first  # the next save keeps them
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    second = (Finding("data_items[企业名称].description", "请说明名称口径"),)
    entry = await handlers.return_entry(entry.resource_code, second, entry.revision, REVIEWER, uow)
    best = replace(better, data_items=(COMPLETE.data_items[0], DataItem("企业名称", ItemType.STRING, "登记名称")))
    entry = await handlers.edit_entry(entry.resource_code, best, entry.revision, COMPILER, uow)
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    entry = await handlers.approve_entry(entry.resource_code, entry.revision, REVIEWER, uow, TODAY)

    history = entry.in_force.returns
    assert [r.findings for r in history] == [first, second]
    assert [r.reviewed_by for r in history] == ["wang.reviewer", "wang.reviewer"]
    assert [r.content_digest for r in history] == [content_digest(COMPLETE), content_digest(better)]
    assert entry.in_force.findings == ()  # none open on the version in force


async def test_a_returned_entry_resubmitted_unchanged_is_refused() -> None:
    uow = FakeUnitOfWork()
    entry = await submitted(uow)
    findings = (Finding("abstract", "摘要应说明数据范围"),)
    entry = await handlers.return_entry(entry.resource_code, findings, entry.revision, REVIEWER, uow)
    with pytest.raises(TransitionNotAllowed) as unchanged:
        await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    assert unchanged.value.code == "catalog.entry.unchanged_after_return"
    assert "未作任何修改" in unchanged.value.message
    # saved again with the same content: still unchanged
    entry = await handlers.edit_entry(entry.resource_code, COMPLETE, entry.revision, COMPILER, uow)
    with pytest.raises(TransitionNotAllowed, match="unchanged since it was returned"):
        await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    assert uow.stored[entry.resource_code].working.status is VersionStatus.DRAFT
    better = replace(COMPLETE, abstract="全市在册企业的登记基本信息")
    entry = await handlers.edit_entry(entry.resource_code, better, entry.revision, COMPILER, uow)
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    assert entry.working.status is VersionStatus.SUBMITTED


async def test_confirmed_maintenance_is_recorded_and_moves_the_yearly_due_date() -> None:
    uow = FakeUnitOfWork()
    entry = await published(uow)  # on 2026-11-25
    assert entry.maintenance_due() == date(2027, 11, 25)
    on = date(2027, 11, 20)
    entry = await handlers.confirm_maintenance(entry.resource_code, "要素无变化", entry.revision, ADMIN, uow, on)
    [confirmed] = entry.maintenance
    assert (confirmed.confirmed_on, confirmed.confirmed_by, confirmed.note) == (on, "zhao.admin", "要素无变化")
    assert entry.maintenance_due() == date(2028, 11, 20)
    assert uow.types()[-1] == "CatalogEntryMaintenanceConfirmed"
    payload = uow.events[-1][1].payload
    assert (payload["version"], payload["confirmed_by"], payload["next_due_on"]) == (
        1,
        "zhao.admin",
        date(2028, 11, 20),
    )
    assert await handlers.overdue_entries(uow, date(2027, 11, 26)) == []
    [(_, late)] = await handlers.overdue_entries(uow, date(2028, 11, 21))
    assert late.kind.value == "YEARLY_MAINTENANCE" and late.due_on == date(2028, 11, 20)
    with pytest.raises(AccessDenied):  # a reviewer of the department does not confirm it
        await handlers.confirm_maintenance(entry.resource_code, "", entry.revision, REVIEWER, uow, on)


async def test_maintenance_is_not_confirmed_for_a_draft_or_over_a_reported_change() -> None:
    from common.calendar_source import build_calendar

    uow = FakeUnitOfWork()
    draft = await submitted(uow)
    with pytest.raises(TransitionNotAllowed) as unpublished:
        await handlers.confirm_maintenance(draft.resource_code, "", draft.revision, COMPILER, uow, TODAY)
    assert unpublished.value.code == "catalog.entry.maintenance_unpublished"
    entry = await published(uow)
    entry = await handlers.report_change(
        entry.resource_code, TODAY, "新增经营范围字段", COMPILER, uow, build_calendar(), TODAY
    )
    with pytest.raises(TransitionNotAllowed) as pending:
        await handlers.confirm_maintenance(entry.resource_code, "", entry.revision, COMPILER, uow, TODAY)
    assert pending.value.field == "pending_update" and "2026-12-02" in pending.value.message
    assert uow.stored[entry.resource_code].maintenance == ()


def test_the_diff_goes_item_by_item() -> None:
    newer = replace(
        COMPLETE,
        abstract="新摘要",
        data_items=(
            DataItem("企业名称", ItemType.STRING, length=200),
            DataItem("法定代表人", ItemType.STRING),
        ),
    )
    changes = diff(COMPLETE, newer)
    assert set(changes) == {"abstract", "data_items"}
    items = changes["data_items"]
    assert [i.name for i in items["added"]] == ["法定代表人"]
    assert [i.name for i in items["removed"]] == ["统一社会信用代码"]
    assert items["changed"] == [{"name": "企业名称", "changes": {"length": {"from": None, "to": 200}}}]
    assert items["reordered"] is False
    swapped = replace(COMPLETE, data_items=tuple(reversed(COMPLETE.data_items)))
    only_order = diff(COMPLETE, swapped)["data_items"]
    assert (only_order["added"], only_order["removed"], only_order["changed"], only_order["reordered"]) == (
        [],
        [],
        [],
        True,
    )


async def test_incomplete_submission_is_worded_in_chinese_with_one_code_per_rule() -> None:
    uow = FakeUnitOfWork()
    draft = await handlers.draft_entry(
        handlers.DraftEntry(PROVIDER, EntryContent(name="企业登记"), classification="101001"), COMPILER, uow
    )
    with pytest.raises(InvalidEntry) as incomplete:
        await handlers.submit_entry(draft.resource_code, draft.revision, COMPILER, uow)
    error = incomplete.value
    assert "abstract is mandatory" in error.rule  # the machine-readable rule stays
    assert error.code.split(", ") == [
        "catalog.entry.mandatory",
        "catalog.entry.share_methods_missing",
        "catalog.entry.review_missing",
        "catalog.entry.conditions_missing",
    ]
    assert "资源摘要为必填项" in error.message and "更新周期为必填项" in error.message
    assert "须经保密审查" in error.message


async def test_a_second_source_is_refused_naming_the_department_that_provides_it() -> None:
    from services.catalog.domain.dictionary import DataElement, Dictionary, SourceClaim
    from services.catalog.domain.entries import DuplicateSource

    uow = FakeUnitOfWork()
    uow.names["OTHER-PROVIDER"] = "吉安市公安局"
    uow.elements = Dictionary((DataElement("DE0201", "统一社会信用代码", source_code="OTHER-PROVIDER"),))
    uow.claims = [SourceClaim("DE0201", "OTHER-PROVIDER", "101009/000001")]
    entry = await submitted(uow)
    with pytest.raises(DuplicateSource) as clash:
        await handlers.approve_entry(entry.resource_code, entry.revision, REVIEWER, uow, TODAY)
    assert (
        "“统一社会信用代码”即数据元 DE0201（统一社会信用代码），由吉安市公安局（OTHER-PROVIDER）提供"
        in clash.value.message
    )
    assert clash.value.code == "catalog.source.duplicate" and clash.value.field == "data_items"


def _codes_in_catalog_source() -> set[str]:
    """Every rule code the catalog's code passes to `worded(error, code, …)` or `Problem(field, rule, code, …)`."""
    codes = set()
    for path in CATALOG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                position = {"worded": 1, "Problem": 2}.get(node.func.id)
                if position is not None and len(node.args) > position:
                    code = node.args[position]
                    assert isinstance(code, ast.Constant), f"{path}:{node.lineno}: a rule code is a literal"
                    codes.add(code.value)
    return codes


def test_every_rule_code_of_the_catalog_has_a_chinese_message() -> None:
    used = _codes_in_catalog_source()
    assert len(used) > 30
    assert sorted(used - set(wording.MESSAGES)) == []


def test_worded_errors_keep_their_kind_field_and_rule() -> None:
    error = wording.worded(InvalidEntry("reason", "say what changed"), "catalog.entry.change_reason_missing")
    assert isinstance(error, DomainError) and (error.field, error.rule) == ("reason", "say what changed")
    assert (error.code, error.message) == ("catalog.entry.change_reason_missing", "请说明变更内容")


def test_enumeration_labels_are_those_of_the_catalog_table() -> None:
    """The labels people read in facets are the ones exports write and imports accept."""
    for enum, table in [
        (Category, sheet.CATEGORY),
        (ShareType, sheet.SHARE),
        (ShareMethod, sheet.METHOD),
        (OpenAttribute, sheet.OPEN),
        (UpdateCycle, sheet.CYCLE),
        (ItemType, sheet.TYPES),
    ]:
        assert {wording.label(value) for value in enum} == set(table)
        assert all(table[wording.label(value)] is value for value in enum)
    assert {wording.label(s) for s in VersionStatus} >= {"草稿", "已发布", "已撤销"}
