"""What keeps the catalog usable over years: automatic 顺序码 never jam on codes given by hand, and an entry's
stored history stays bounded however often it is returned or confirmed."""

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from services.catalog import handlers
from services.catalog.adapters import mongo
from services.catalog.domain import sheet
from services.catalog.domain.entries import (
    MAX_CONTENT_BYTES,
    CatalogEntry,
    DataItem,
    Finding,
    InvalidEntry,
    ItemType,
    ReviewRound,
    content_digest,
)
from tests.unit.test_catalog import ADMIN, COMPILER, COMPLETE, PROVIDER, REVIEWER, FakeUnitOfWork, published


async def _draft(uow: FakeUnitOfWork, *, code: str | None = None, classification: str | None = None) -> str:
    command = handlers.DraftEntry(PROVIDER, COMPLETE, resource_code=code, classification=classification)
    return (await handlers.draft_entry(command, COMPILER, uow)).resource_code


async def test_codes_given_by_hand_are_numbered_around_not_refused() -> None:
    uow = FakeUnitOfWork()
    assert await _draft(uow, code="101001/000001") == "101001/000001"
    assert await _draft(uow, classification="101001") == "101001/000002"
    assert await _draft(uow, code="101001/000004") == "101001/000004"
    assert await _draft(uow, code="101001/999999") == "101001/999999"  # far ahead: uses nothing up
    assigned = [await _draft(uow, classification="101001") for _ in range(3)]
    assert assigned == ["101001/000003", "101001/000005", "101001/000006"]


async def _sheet(*rows: tuple[str, str, str]) -> list[list[object]]:
    """Rows of (resource code, resource name, classification), each with COMPLETE's first item as exported."""
    source = FakeUnitOfWork()
    await published(source)
    exported = (await handlers.export_catalog(source))[1]
    header = [*sheet.COLUMNS, sheet.CLASSIFICATION]
    return [header, *([code, name, *exported[2:], classification] for code, name, classification in rows)]


@pytest.mark.parametrize("given_first", [True, False])
async def test_an_import_mixing_a_given_code_and_a_blank_one_numbers_around_it(given_first: bool) -> None:
    given = ("101005/000001", "企业登记基本信息", "")
    blank = ("", "个体工商户登记信息", "101005")
    uow = FakeUnitOfWork()
    drafted = await handlers.import_entries(
        await _sheet(*((given, blank) if given_first else (blank, given))), COMPILER, uow
    )
    codes = {e.latest.content.name: e.resource_code for e in drafted}
    assert codes == {"企业登记基本信息": "101005/000001", "个体工商户登记信息": "101005/000002"}
    assert set(uow.stored) == {"101005/000001", "101005/000002"}
    assert await _draft(uow, classification="101005") == "101005/000003"


async def test_a_return_keeps_a_digest_of_what_was_returned_not_a_copy() -> None:
    uow = FakeUnitOfWork()
    entry = await handlers.submit_entry(await _draft(uow, classification="101001"), 1, COMPILER, uow)
    entry = await handlers.return_entry(entry.resource_code, (Finding("abstract", "x"),), entry.revision, REVIEWER, uow)
    [returned] = entry.working.returns
    assert returned.content_digest == content_digest(COMPLETE)
    assert not hasattr(returned, "content")
    assert content_digest(replace(COMPLETE, abstract="另一个摘要")) != returned.content_digest
    # the same content built anew (share methods in another order) has the same digest
    assert content_digest(replace(COMPLETE, share_methods=frozenset(COMPLETE.share_methods))) == content_digest(
        COMPLETE
    )


def test_returns_stored_with_a_copy_of_the_content_read_as_its_digest() -> None:
    entry = CatalogEntry.draft("101001/000001", PROVIDER, COMPLETE, "li.compiler")
    round_ = ReviewRound("wang.reviewer", datetime(2026, 11, 25, tzinfo=UTC), (Finding("abstract", "x"),), "")
    doc = mongo.entry_doc(replace(entry, versions=(replace(entry.latest, returns=(round_,)),)))
    [stored] = doc["versions"][0]["returns"]
    del stored["content_digest"]
    stored["content"] = mongo.content_doc(COMPLETE)  # as returns were stored before digests
    [read] = mongo.entry_of(doc).latest.returns
    assert read.content_digest == content_digest(COMPLETE) and read.findings == round_.findings


async def test_the_returned_event_names_items_as_the_entry_keeps_them() -> None:
    uow = FakeUnitOfWork()
    entry = await handlers.submit_entry(await _draft(uow, classification="101001"), 1, COMPILER, uow)
    findings = (Finding("data_items[1].length", "企业名称应注明长度"), Finding(" abstract ", "摘要应说明数据范围"))
    await handlers.return_entry(entry.resource_code, findings, entry.revision, REVIEWER, uow)
    returned = uow.events[-1][1]
    assert returned.event_type == "CatalogEntryReturned"
    assert returned.payload["findings"] == [
        {"field": "data_items[企业名称].length", "finding": "企业名称应注明长度"},
        {"field": "abstract", "finding": "摘要应说明数据范围"},
    ]


async def test_maintenance_keeps_one_confirmation_per_year_the_latest() -> None:
    uow = FakeUnitOfWork()
    entry = await published(uow)  # on 2026-11-25
    for on, note in [(date(2027, 3, 1), "一"), (date(2027, 11, 20), "二"), (date(2027, 11, 20), "三")]:
        entry = await handlers.confirm_maintenance(entry.resource_code, note, entry.revision, ADMIN, uow, on)
    assert [(m.confirmed_on, m.note) for m in entry.maintenance] == [(date(2027, 11, 20), "三")]
    assert entry.maintenance_due() == date(2028, 11, 20)
    entry = await handlers.confirm_maintenance(entry.resource_code, "四", entry.revision, ADMIN, uow, date(2028, 11, 1))
    assert [m.note for m in entry.maintenance] == ["三", "四"]
    assert uow.events[-1][1].payload["note"] == "四"


async def test_content_over_the_byte_budget_is_refused_naming_its_size() -> None:
    items = tuple(DataItem(f"信息项{n}", ItemType.STRING, "说明" * 1000) for n in range(100))  # 600 KB
    large = replace(COMPLETE, data_items=items)
    uow = FakeUnitOfWork()
    with pytest.raises(InvalidEntry) as refused:
        await handlers.draft_entry(handlers.DraftEntry(PROVIDER, large, classification="101001"), COMPILER, uow)
    assert refused.value.code == "catalog.entry.too_large" and refused.value.field == "content"
    assert f"{MAX_CONTENT_BYTES // 1024} KB" in refused.value.message
    assert uow.stored == {}
    fits = replace(COMPLETE, data_items=items[:80])  # 480 KB
    assert await handlers.draft_entry(handlers.DraftEntry(PROVIDER, fits, classification="101001"), COMPILER, uow)


def test_old_versions_keep_their_metadata_and_digest_not_their_content() -> None:
    from datetime import date

    from services.catalog.domain.entries import (
        CatalogEntry,
        ContentNotKept,
        DataItem,
        ItemType,
        content_digest,
    )
    from tests.unit.test_catalog import COMPLETE, PROVIDER

    entry = CatalogEntry.draft("101001/000001", PROVIDER, COMPLETE, "li.compiler")
    contents = []
    for n in range(1, 6):
        content = replace(COMPLETE, name=f"企业登记信息{n}", data_items=(DataItem(f"项{n}", ItemType.STRING),))
        contents.append(content)
        entry = entry.edit(content, "li.compiler", None)
        entry, _ = entry.submit(None)
        entry, _ = entry.approve("wang.reviewer", date(2026, 11, n), None)
    entry = entry.edit(replace(COMPLETE, name="企业登记信息（修订中）"), "li.compiler", None)  # version 6, a draft
    kept = entry.keeping_contents(2)
    assert [v.content_kept for v in kept.versions] == [False, False, False, False, True, True]
    old = kept.version(2)
    assert old.content.name == "企业登记信息2" and old.content.data_items == ()
    assert old.content_digest == content_digest(contents[1]) and old.published_on == date(2026, 11, 2)
    assert old.reviewed_by == "wang.reviewer" and old.status.value == "SUPERSEDED"
    assert kept.in_force is not None and kept.in_force.content == contents[4]  # in force: kept whatever its age
    assert kept.keeping_contents(2) == kept  # trimming again changes nothing
    with pytest.raises(ContentNotKept) as refused:
        kept.content_of(2)
    assert refused.value.code == "catalog.entry.content_not_kept"
    assert kept.content_of(5) == contents[4]
    # the version in force stays whole even when more than `keep` newer versions came and went
    assert entry.keeping_contents(1).in_force == entry.in_force
