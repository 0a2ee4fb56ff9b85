"""Who reads which of an entry outside search: another department (and any machine) only the version in force,
its own department and oversight everything — through the handlers with the in-memory unit of work."""

from dataclasses import replace
from datetime import date

import pytest

from common.calendar_source import build_calendar
from common.policy import Principal, Role
from services.catalog import handlers
from services.catalog.domain.entries import EntryNotFound
from services.catalog.domain.search import Viewer
from tests.unit.test_catalog import COMPLETE, PROVIDER, FakeUnitOfWork
from tests.unit.test_catalog_dictionary import (
    HR,
    OPERATOR,
    POLICE,
    TAX,
    approve,
    item,
    published,
    seeded,
    submitted,
)

OWN = Viewer(PROVIDER)
OTHER = Viewer(HR)
OVERSIGHT = Viewer(HR, oversight=True)
MACHINE = Viewer(None)  # a machine identity, even of the provider's own department


async def with_draft_in_progress(uow: FakeUnitOfWork) -> str:
    """An entry published as version 1, with version 2 being drafted; its resource code."""
    entry = await published(uow, PROVIDER, "企业登记基本信息", item("企业名称"))
    compiler = Principal("li.compiler", PROVIDER, frozenset({Role.CATALOG_COMPILER}))
    changed = replace(COMPLETE, name="企业登记基本信息（修订）", data_items=(item("企业名称"), item("注册资本")))
    await handlers.edit_entry(entry.resource_code, changed, uow.stored[entry.resource_code].revision, compiler, uow)
    return entry.resource_code


async def test_others_read_only_the_version_in_force_and_the_department_its_draft() -> None:
    uow = FakeUnitOfWork()
    code = await with_draft_in_progress(uow)
    for outsider in (OTHER, MACHINE):
        seen = await handlers.get_entry(code, uow, outsider)
        assert seen.working is None and [v.version for v in seen.versions] == [1]
        assert seen.in_force is not None and seen.in_force.content.name == "企业登记基本信息"
        with pytest.raises(EntryNotFound, match="has no version 2"):
            seen.version(2)
        with pytest.raises(EntryNotFound):
            await handlers.compare_versions(code, 1, 2, uow, outsider)
    for insider in (OWN, OVERSIGHT):
        seen = await handlers.get_entry(code, uow, insider)
        assert seen.working is not None and seen.working.content.name == "企业登记基本信息（修订）"
        assert "data_items" in await handlers.compare_versions(code, 1, 2, uow, insider)


async def test_an_entry_never_published_is_not_found_by_others_as_if_there_were_none() -> None:
    uow = FakeUnitOfWork()
    entry = await submitted(uow, PROVIDER, "企业年报信息", item("企业名称"))
    for outsider in (OTHER, MACHINE):
        with pytest.raises(EntryNotFound) as hidden:
            await handlers.get_entry(entry.resource_code, uow, outsider)
        with pytest.raises(EntryNotFound) as missing:
            await handlers.get_entry("999999/999999", uow, outsider)
        assert hidden.value.rule == missing.value.rule.replace("999999/999999", entry.resource_code)
    assert (await handlers.get_entry(entry.resource_code, uow, OWN)).working is not None
    assert (await handlers.get_entry(entry.resource_code, uow, OVERSIGHT)).working is not None
    # the list leaves it out for others, and counts only what they see
    assert await handlers.list_entries(uow, PROVIDER, 0, 10, OTHER) == ([], 0)
    assert await handlers.list_entries(uow, None, 0, 10, MACHINE) == ([], 0)
    found, total = await handlers.list_entries(uow, PROVIDER, 0, 10, OWN)
    assert [e.resource_code for e in found] == [entry.resource_code] and total == 1


async def test_the_list_shows_others_an_entry_in_force_without_its_draft() -> None:
    uow = FakeUnitOfWork()
    code = await with_draft_in_progress(uow)
    [seen], total = await handlers.list_entries(uow, None, 0, 10, OTHER)
    assert total == 1 and seen.resource_code == code and seen.working is None
    [whole], _ = await handlers.list_entries(uow, None, 0, 10, OVERSIGHT)
    assert whole.working is not None


async def test_duplicate_sources_show_others_nothing_of_a_draft() -> None:
    uow = await seeded()
    await published(uow, POLICE, "户籍人口基本信息", item("公民身份号码", source_of="DE0101"))
    draft = await submitted(uow, TAX, "个体工商户纳税信息", item("身份证号"), item("应纳税额"))
    assert await handlers.duplicate_sources(uow, OTHER) == []
    assert await handlers.duplicate_sources(uow, Viewer(None)) == []
    for insider in (Viewer(TAX), OVERSIGHT):
        [(entry, clash, _)] = await handlers.duplicate_sources(uow, insider)
        assert (entry.resource_code, clash.item) == (draft.resource_code, "身份证号")


async def excepted_tax_entry(uow: FakeUnitOfWork) -> str:
    """The tax bureau's published entry whose 身份证号 the IT office let stay on a legal basis, with its yearly
    maintenance confirmed and a change reported; its resource code."""
    await published(uow, POLICE, "户籍人口基本信息", item("公民身份号码", source_of="DE0101"))
    draft = await submitted(uow, TAX, "个体工商户纳税信息", item("身份证号"), item("应纳税额"))
    await handlers.record_source_exception(draft.resource_code, "身份证号", "《税收征收管理法》第十五条", OPERATOR, uow)
    await approve(uow, draft)
    admin = Principal("sw.admin", TAX, frozenset({Role.DATA_ADMINISTRATOR}))
    code = draft.resource_code
    later = date(2027, 11, 1)
    await handlers.confirm_maintenance(code, "无变化", uow.stored[code].revision, admin, uow, later)
    await handlers.report_change(code, later, "新增字段", admin, uow, build_calendar(), later)
    return code


async def test_others_read_no_deadlines_maintenance_or_exceptions_of_an_entry_in_force() -> None:
    uow = await seeded()
    code = await excepted_tax_entry(uow)
    for outsider in (Viewer(HR), MACHINE):
        seen = await handlers.get_entry(code, uow, outsider)
        assert seen.in_force is not None
        assert (seen.pending_update, seen.maintenance, seen.source_exceptions) == (None, (), ())
        assert seen.maintenance_due() is None and seen.excepted_clashes == ()
        [listed], _ = await handlers.list_entries(uow, TAX, 0, 10, outsider)
        assert listed.pending_update is None and listed.source_exceptions == ()
    for insider in (Viewer(TAX), OVERSIGHT):
        seen = await handlers.get_entry(code, uow, insider)
        assert seen.pending_update is not None and seen.pending_update.reason == "新增字段"
        assert [m.note for m in seen.maintenance] == ["无变化"] and seen.maintenance_due() == date(2028, 11, 1)
        assert [i for i, _ in seen.source_exceptions] == ["身份证号"]


async def test_overdue_lists_an_entrys_deadlines_to_its_department_and_oversight_only() -> None:
    uow = await seeded()
    code = await excepted_tax_entry(uow)
    far = date(2029, 1, 1)  # past the reported change's deadline and the next yearly maintenance
    for outsider in (Viewer(HR), MACHINE):
        assert await handlers.overdue_entries(uow, far, None, outsider) == []
        assert await handlers.overdue_entries(uow, far, TAX, outsider) == []
    for insider in (Viewer(TAX), OVERSIGHT):
        late = await handlers.overdue_entries(uow, far, TAX, insider)
        assert {(e.resource_code, o.kind.value) for e, o in late} == {
            (code, "UPDATE_AFTER_CHANGE"),
            (code, "YEARLY_MAINTENANCE"),
        }


async def test_an_excepted_clash_is_shown_with_its_basis_to_insiders_and_not_at_all_to_others() -> None:
    uow = await seeded()
    code = await excepted_tax_entry(uow)
    for outsider in (Viewer(HR), MACHINE):
        assert await handlers.duplicate_sources(uow, outsider) == []
    for insider in (Viewer(TAX), OVERSIGHT):
        [(entry, clash, basis)] = await handlers.duplicate_sources(uow, insider)
        assert (entry.resource_code, clash.item, basis) == (code, "身份证号", "《税收征收管理法》第十五条")
