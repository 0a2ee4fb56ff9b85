"""The catalog entry's life, through the handlers with an in-memory unit of work."""

from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import date

import pytest

from common.events import Event
from common.identifiers import credit_code_check_character
from common.policy import AccessDenied, Principal, Role
from services.catalog import handlers
from services.catalog.domain.demands import ShareDemand
from services.catalog.domain.dictionary import DataElement, Dictionary, ElementVersion, SourceClaim
from services.catalog.domain.entries import (
    CatalogEntry,
    Category,
    ConfidentialityReview,
    DataItem,
    EntryContent,
    EntryExists,
    Finding,
    InvalidEntry,
    ItemType,
    ShareMethod,
    ShareType,
    TransitionNotAllowed,
    UpdateCycle,
    VersionConflict,
    VersionStatus,
)
from services.catalog.domain.search import Viewer, as_seen_by

PROVIDER = "11360800MB1234567" + credit_code_check_character("11360800MB1234567")
COMPILER = Principal("li.compiler", PROVIDER, frozenset({Role.CATALOG_COMPILER}))
REVIEWER = Principal("wang.reviewer", PROVIDER, frozenset({Role.CATALOG_REVIEWER}))
ADMIN = Principal("zhao.admin", PROVIDER, frozenset({Role.DATA_ADMINISTRATOR}))
TODAY = date(2026, 11, 25)


class FakeTransaction:
    def __init__(self, uow: "FakeUnitOfWork") -> None:
        self.entries = dict(uow.stored)
        self.sequences = dict(uow.sequences)
        self.elements = uow.elements
        self.claims = list(uow.claims)
        self.demands = dict(uow.stored_demands)
        self.versions = list(uow.versions)
        self.names = uow.names
        self.events: list[tuple[str, Event | str]] = []

    async def entry(self, code: str) -> CatalogEntry | None:
        return self.entries.get(code)

    async def add(self, entry: CatalogEntry) -> None:
        self.entries[entry.resource_code] = entry

    async def save(self, entry: CatalogEntry, expected_revision: int) -> None:
        if self.entries[entry.resource_code].revision != expected_revision:
            raise VersionConflict("revision", "changed meanwhile")
        self.entries[entry.resource_code] = entry

    async def next_sequence(self, classification: str) -> int:
        self.sequences[classification] = self.sequences.get(classification, 0) + 1
        return self.sequences[classification]

    async def department_name(self, code: str) -> str:
        return self.names.get(code, "")

    async def dictionary(self) -> Dictionary:
        return self.elements

    async def source_claims(self) -> list[SourceClaim]:
        return list(self.claims)

    async def replace_claims(self, resource_code: str, claims: list[SourceClaim]) -> None:
        self.claims = [c for c in self.claims if c.resource_code != resource_code] + claims

    async def guard_elements(self, identifiers: list[str]) -> None: ...  # transactions here never overlap

    async def guard_names(self) -> None: ...

    async def referring_entries(self, elements: list[str]) -> list[str]:
        return sorted(
            code
            for code, e in self.entries.items()
            if e.in_force and any(i.refers_to in elements for i in e.in_force.content.data_items)
        )

    async def save_element(self, element: DataElement, changed_by: str) -> None:
        # stored as given, as the database does: the handler checked its names
        kept = (e for e in self.elements.elements if e.identifier != element.identifier)
        self.elements = Dictionary((*kept, element))
        self.versions.append(ElementVersion(element, changed_by))

    async def remove_element(self, identifier: str, changed_by: str) -> None:
        removed = self.elements.require(identifier)
        self.elements = Dictionary(tuple(e for e in self.elements.elements if e.identifier != identifier))
        self.versions.append(ElementVersion(removed, changed_by, removed=True))

    async def demand(self, demand_id: str) -> ShareDemand | None:
        return self.demands.get(demand_id)

    async def save_demand(self, demand: ShareDemand) -> None:
        self.demands[demand.demand_id] = demand

    async def record_department(self, code: str, name: str) -> None: ...

    def emit(self, topic: str, event: Event) -> None:
        self.events.append((topic, event))

    def emit_tombstone(self, topic: str, key: str) -> None:
        self.events.append((topic, f"tombstone:{key}"))


class FakeUnitOfWork:
    """Commits a transaction's changes and events only when it completes."""

    def __init__(self) -> None:
        self.stored: dict[str, CatalogEntry] = {}
        self.elements = Dictionary()
        self.claims: list[SourceClaim] = []
        self.stored_demands: dict[str, ShareDemand] = {}
        self.versions: list[ElementVersion] = []
        self.names: dict[str, str] = {PROVIDER: "吉安市市场监督管理局"}
        self.sequences: dict[str, int] = {}
        self.events: list[tuple[str, Event | str]] = []

    def __call__(self) -> AbstractAsyncContextManager[FakeTransaction]:
        @asynccontextmanager
        async def transaction():
            tx = FakeTransaction(self)
            yield tx
            self.stored, self.sequences = tx.entries, tx.sequences
            self.elements, self.claims, self.stored_demands, self.versions = (
                tx.elements,
                tx.claims,
                tx.demands,
                tx.versions,
            )
            self.events += tx.events

        return transaction()

    async def entry(self, code: str) -> CatalogEntry | None:
        return self.stored.get(code)

    async def entries(
        self, *, provider_code: str | None, limit: int, offset: int = 0, viewer: Viewer | None = None
    ) -> list[CatalogEntry]:
        found = [
            e
            for code, e in sorted(self.stored.items())
            if provider_code in (None, e.provider_code) and (viewer is None or as_seen_by(e, viewer) is not None)
        ]
        return found[offset : offset + limit]

    async def count_entries(self, *, provider_code: str | None, viewer: Viewer | None = None) -> int:
        return len(await self.entries(provider_code=provider_code, limit=len(self.stored), viewer=viewer))

    async def overdue_candidates(self, *, provider_code: str | None, today: date) -> list[CatalogEntry]:
        return [e for e in self.stored.values() if e.in_force and provider_code in (None, e.provider_code)]

    async def entries_with_codes(self, codes: list[str]) -> list[CatalogEntry]:
        return [self.stored[c] for c in codes if c in self.stored]

    async def dictionary(self) -> Dictionary:
        return self.elements

    async def source_claims(self) -> list[SourceClaim]:
        return list(self.claims)

    async def element_versions(self, identifier: str) -> list[ElementVersion]:
        return [v for v in self.versions if v.element.identifier == identifier]

    async def demand(self, demand_id: str) -> ShareDemand | None:
        return self.stored_demands.get(demand_id)

    async def department_names(self) -> dict[str, str]:
        return dict(self.names)

    def types(self) -> list[str]:
        return [e.event_type if isinstance(e, Event) else e for _, e in self.events]


COMPLETE = EntryContent(
    name="企业登记基本信息",
    abstract="全市企业的登记基本信息",
    category=Category.BASE,
    format="数据库",
    data_items=(DataItem("统一社会信用代码", ItemType.STRING, length=18), DataItem("企业名称", ItemType.STRING)),
    share_type=ShareType.CONDITIONAL,
    share_conditions="用于行政审批和监管",
    share_methods=frozenset({ShareMethod.API}),
    update_cycle=UpdateCycle.DAILY,
    confidentiality_review=ConfidentialityReview("zhao.admin", date(2026, 11, 1), "不涉密"),
)


async def published(uow: FakeUnitOfWork, content: EntryContent = COMPLETE, on: date = TODAY) -> CatalogEntry:
    entry = await handlers.draft_entry(handlers.DraftEntry(PROVIDER, content, classification="101001"), COMPILER, uow)
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    return await handlers.approve_entry(entry.resource_code, entry.revision, REVIEWER, uow, on)


async def test_an_entry_is_compiled_returned_corrected_and_published() -> None:
    uow = FakeUnitOfWork()
    draft = await handlers.draft_entry(
        handlers.DraftEntry(PROVIDER, EntryContent(name="企业登记"), classification="101001"), COMPILER, uow
    )
    assert draft.resource_code == "101001/000001" and draft.latest.status is VersionStatus.DRAFT
    with pytest.raises(InvalidEntry) as incomplete:
        await handlers.submit_entry(draft.resource_code, draft.revision, COMPILER, uow)
    assert {"abstract", "category", "format", "data_items", "update_cycle", "share_methods"} <= set(
        incomplete.value.field.split(", ")
    )
    entry = await handlers.edit_entry(draft.resource_code, COMPLETE, draft.revision, COMPILER, uow)
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    findings = (Finding("abstract", "摘要应说明数据范围"),)
    entry = await handlers.return_entry(entry.resource_code, findings, entry.revision, REVIEWER, uow)
    assert entry.working.status is VersionStatus.RETURNED and entry.working.findings == findings
    better = replace(COMPLETE, abstract="全市在册企业（含个体工商户）的登记基本信息")
    entry = await handlers.edit_entry(entry.resource_code, better, entry.revision, COMPILER, uow)
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    entry = await handlers.approve_entry(entry.resource_code, entry.revision, REVIEWER, uow, TODAY)
    assert entry.in_force.version == 1 and entry.in_force.published_on == TODAY and entry.working is None
    assert uow.types() == [
        "CatalogEntryDrafted",
        "CatalogEntrySubmitted",
        "CatalogEntryReturned",
        "CatalogEntrySubmitted",
        "CatalogEntryPublished",
        "CatalogEntryPublished",
    ]
    assert [t for t, _ in uow.events[-2:]] == ["catalog.entry-events", "catalog.published"]
    payload = uow.events[-1][1].payload
    assert payload["provider_name"] == "吉安市市场监督管理局" and payload["share_methods"] == ["API"]


async def test_a_change_to_a_published_entry_is_a_new_version_while_the_old_stays_in_force() -> None:
    uow = FakeUnitOfWork()
    entry = await published(uow)
    wider = replace(COMPLETE, data_items=(*COMPLETE.data_items, DataItem("法定代表人", ItemType.STRING)))
    entry = await handlers.edit_entry(entry.resource_code, wider, entry.revision, COMPILER, uow)
    assert entry.in_force.version == 1 and entry.working.version == 2
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    assert entry.in_force.version == 1  # still in force during review
    entry = await handlers.approve_entry(entry.resource_code, entry.revision, REVIEWER, uow, TODAY)
    assert entry.in_force.version == 2 and entry.version(1).status is VersionStatus.SUPERSEDED
    changes = await handlers.compare_versions(entry.resource_code, 1, 2, uow)
    assert list(changes) == ["data_items"] and len(changes["data_items"]["to"]) == 3


async def test_withdrawal_tells_the_compacted_catalog_to_forget_the_entry() -> None:
    uow = FakeUnitOfWork()
    entry = await published(uow)
    with pytest.raises(AccessDenied):
        await handlers.withdraw_entry(entry.resource_code, "停止采集", entry.revision, COMPILER, uow, TODAY)
    entry = await handlers.withdraw_entry(entry.resource_code, "停止采集", entry.revision, ADMIN, uow, TODAY)
    assert entry.in_force is None and entry.latest.status is VersionStatus.WITHDRAWN
    assert uow.events[-1] == ("catalog.published", f"tombstone:{entry.resource_code}")
    with pytest.raises(TransitionNotAllowed):
        await handlers.edit_entry(entry.resource_code, COMPLETE, entry.revision, COMPILER, uow)


async def test_a_reviewer_never_approves_what_she_compiled() -> None:
    uow = FakeUnitOfWork()
    both = Principal("li.both", PROVIDER, frozenset({Role.CATALOG_COMPILER, Role.CATALOG_REVIEWER}))
    entry = await handlers.draft_entry(handlers.DraftEntry(PROVIDER, COMPLETE, classification="101001"), both, uow)
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, both, uow)
    with pytest.raises(AccessDenied, match="compiled"):
        await handlers.approve_entry(entry.resource_code, entry.revision, both, uow, TODAY)
    assert (await handlers.approve_entry(entry.resource_code, entry.revision, REVIEWER, uow, TODAY)).in_force


async def test_a_stale_revision_is_a_conflict_and_changes_nothing() -> None:
    uow = FakeUnitOfWork()
    entry = await handlers.draft_entry(handlers.DraftEntry(PROVIDER, COMPLETE, classification="101001"), COMPILER, uow)
    await handlers.edit_entry(entry.resource_code, replace(COMPLETE, name="甲"), entry.revision, COMPILER, uow)
    events = list(uow.events)
    with pytest.raises(VersionConflict, match="revision"):
        await handlers.edit_entry(entry.resource_code, replace(COMPLETE, name="乙"), entry.revision, COMPILER, uow)
    assert uow.stored[entry.resource_code].latest.content.name == "甲" and uow.events == events


async def test_transitions_not_allowed_from_the_current_state() -> None:
    uow = FakeUnitOfWork()
    entry = await handlers.draft_entry(handlers.DraftEntry(PROVIDER, COMPLETE, classification="101001"), COMPILER, uow)
    with pytest.raises(TransitionNotAllowed, match="waiting for review"):
        await handlers.approve_entry(entry.resource_code, entry.revision, REVIEWER, uow, TODAY)
    with pytest.raises(TransitionNotAllowed, match="published"):
        await handlers.withdraw_entry(entry.resource_code, "x", entry.revision, ADMIN, uow, TODAY)
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    with pytest.raises(TransitionNotAllowed, match="under review"):
        await handlers.edit_entry(entry.resource_code, COMPLETE, entry.revision, COMPILER, uow)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (replace(COMPLETE, name=" "), "name"),
        (
            replace(COMPLETE, data_items=(DataItem("名称", ItemType.STRING), DataItem("名称", ItemType.DATE))),
            "data_items",
        ),
        (replace(COMPLETE, share_type=ShareType.NOT_SHARED), "not_shared_basis"),
        (replace(COMPLETE, related_codes=("12345",)), "related_codes"),
    ],
)
async def test_invalid_drafts_name_the_field_and_store_nothing(content: EntryContent, field: str) -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(InvalidEntry) as error:
        await handlers.draft_entry(handlers.DraftEntry(PROVIDER, content, classification="101001"), COMPILER, uow)
    assert field in error.value.field
    assert uow.stored == {} and uow.events == []


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (handlers.DraftEntry(PROVIDER, COMPLETE, resource_code="10101/000001"), "resource_code"),
        (handlers.DraftEntry(PROVIDER, COMPLETE, classification="01001"), "classification"),
        (handlers.DraftEntry(PROVIDER[:-1] + "0", COMPLETE, classification="101001"), "provider_code"),
    ],
)
async def test_bad_codes_are_refused(command: handlers.DraftEntry, field: str) -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(InvalidEntry) as error:
        await handlers.draft_entry(command, COMPILER, uow)
    assert field in error.value.field
    assert uow.stored == {}


async def test_codes_are_sequenced_per_classification_and_given_codes_must_be_free() -> None:
    uow = FakeUnitOfWork()
    codes = [
        (
            await handlers.draft_entry(handlers.DraftEntry(PROVIDER, COMPLETE, classification=c), COMPILER, uow)
        ).resource_code
        for c in ("101001", "101001", "102002")
    ]
    assert codes == ["101001/000001", "101001/000002", "102002/000001"]
    with pytest.raises(EntryExists):
        await handlers.draft_entry(
            handlers.DraftEntry(PROVIDER, COMPLETE, resource_code="101001/000002"), COMPILER, uow
        )


async def test_a_compiler_of_another_department_is_refused() -> None:
    uow = FakeUnitOfWork()
    outsider = Principal("compiler-2", "11360800MB0000002D", frozenset({Role.CATALOG_COMPILER}))
    with pytest.raises(AccessDenied, match="own department"):
        await handlers.draft_entry(handlers.DraftEntry(PROVIDER, COMPLETE, classification="101001"), outsider, uow)
    assert uow.stored == {} and uow.events == []


async def test_a_reported_change_must_be_followed_within_five_working_days_across_spring_festival() -> None:
    from common.calendar_source import build_calendar

    calendar = build_calendar()
    uow = FakeUnitOfWork()
    entry = await published(uow, on=date(2026, 2, 2))
    with pytest.raises(InvalidEntry, match="changed_on"):
        await handlers.report_change(entry.resource_code, date(2026, 12, 1), "新增字段", COMPILER, uow, calendar, TODAY)
    entry = await handlers.report_change(
        entry.resource_code, date(2026, 2, 12), "新增经营范围字段", COMPILER, uow, calendar, TODAY
    )
    # Thursday 12 Feb: Fri 13, Sat 14 (调休), the holiday, then Tue 24, Wed 25, Thu 26.
    assert entry.pending_update.due_on == date(2026, 2, 26)
    assert uow.events[-1][1].payload["due_on"] == date(2026, 2, 26)
    assert await handlers.overdue_entries(uow, date(2026, 2, 26)) == []
    [(_, late)] = await handlers.overdue_entries(uow, date(2026, 2, 27))
    assert late.kind.value == "UPDATE_AFTER_CHANGE"

    assert await handlers.announce_overdue(uow, date(2026, 2, 27)) == 1
    assert await handlers.announce_overdue(uow, date(2026, 3, 2)) == 0  # announced once
    assert uow.types()[-1] == "CatalogEntryOverdue"

    # Publishing a new version follows the change.
    entry = uow.stored[entry.resource_code]
    entry = await handlers.edit_entry(
        entry.resource_code, replace(COMPLETE, format="接口"), entry.revision, COMPILER, uow
    )
    entry = await handlers.submit_entry(entry.resource_code, entry.revision, COMPILER, uow)
    entry = await handlers.approve_entry(entry.resource_code, entry.revision, REVIEWER, uow, date(2026, 3, 2))
    assert entry.pending_update is None and await handlers.overdue_entries(uow, date(2026, 3, 3)) == []


async def test_every_published_entry_is_maintained_once_a_year() -> None:
    uow = FakeUnitOfWork()
    entry = await published(uow)  # published on TODAY, 2026-11-25
    assert entry.maintenance_due() == date(2027, 11, 25)
    assert await handlers.overdue_entries(uow, date(2027, 11, 25)) == []
    [(_, late)] = await handlers.overdue_entries(uow, date(2027, 11, 26))
    assert late.kind.value == "YEARLY_MAINTENANCE"


async def test_only_a_published_entry_follows_changes() -> None:
    from common.calendar_source import build_calendar

    uow = FakeUnitOfWork()
    entry = await handlers.draft_entry(handlers.DraftEntry(PROVIDER, COMPLETE, classification="101001"), COMPILER, uow)
    with pytest.raises(TransitionNotAllowed):
        await handlers.report_change(entry.resource_code, TODAY, "x", COMPILER, uow, build_calendar(), TODAY)


def test_candidates_for_a_demand_are_published_entries_carrying_the_wanted_items() -> None:
    from services.catalog.domain.demands import ShareDemand, candidates

    def entry(code: str, content: EntryContent, status: VersionStatus) -> CatalogEntry:
        version = replace(CatalogEntry.draft(code, PROVIDER, content, "c").latest, status=status, published_on=TODAY)
        return CatalogEntry(code, PROVIDER, (version,))

    register = entry("101001/000001", COMPLETE, VersionStatus.PUBLISHED)
    draft = entry("101001/000002", COMPLETE, VersionStatus.DRAFT)
    unrelated = entry(
        "102001/000001",
        replace(COMPLETE, name="林地资源", abstract="林地", data_items=(DataItem("林班号", ItemType.STRING),)),
        VersionStatus.PUBLISHED,
    )
    demand = ShareDemand.file("d1", "X", "企业登记信息", "", ("统一社会信用代码", "企业名称", "注册资本"), "u", TODAY)
    found = candidates(demand, [(unrelated, 3.0), (register, 2.0), (draft, 2.0)], Dictionary())
    assert [c.resource_code for c in found] == ["101001/000001", "102001/000001"]
    assert found[0].covered_items == ("统一社会信用代码", "企业名称") and found[1].covered_items == ()


async def test_the_catalog_table_round_trips_and_broken_rows_import_nothing() -> None:
    from services.catalog.domain import sheet

    uow = FakeUnitOfWork()
    entry = await published(uow)
    table = await handlers.export_catalog(uow)
    assert table[0] == sheet.COLUMNS and len(table) == 1 + len(COMPLETE.data_items)
    assert table[1][:3] == [entry.resource_code, "企业登记基本信息", PROVIDER] and table[1][7] == "有条件共享"
    # The same rows under new codes come back as the same content.
    renumbered = [table[0]] + [["102001/000009", *row[1:]] for row in table[1:]]
    [imported] = sheet.read(renumbered)
    assert imported.content == COMPLETE  # the confidentiality review included

    broken = [
        table[0],
        ["102001/000010", *table[1][1:]],
        ["2010/01", *table[1][1:]],
        ["102001/000011", *table[1][1:7], "偶尔共享", *table[1][8:]],
        ["102001/000012", *table[1][1:17], "2026-13-01", *table[1][18:]],
    ]
    with pytest.raises(sheet.SheetErrors) as errors:
        await handlers.import_entries(broken, COMPILER, uow)
    assert [e.split(":")[0] for e in errors.value.errors] == ["row 3", "row 4", "row 5"]
    assert "resource_code" in errors.value.errors[0] and "共享类型" in errors.value.errors[1]
    assert "保密审查日期" in errors.value.errors[2]
    assert set(uow.stored) == {entry.resource_code}  # nothing imported

    drafted = await handlers.import_entries(renumbered, COMPILER, uow)
    assert [e.resource_code for e in drafted] == ["102001/000009"]
    with pytest.raises(EntryExists, match="nothing was imported"):
        await handlers.import_entries(renumbered, COMPILER, uow)


async def test_tables_too_large_or_unreadable_are_refused_listing_their_rows() -> None:
    from services.catalog.adapters import sheets
    from services.catalog.domain import sheet

    uow = FakeUnitOfWork()
    await published(uow)
    table = await handlers.export_catalog(uow)
    header, row = table[0], ["102001/000010", *table[1][1:]]
    name, length = sheet.COLUMNS.index("资源名称"), sheet.COLUMNS.index("数据长度")
    other = ["102001/000011", *row[1:]]
    broken = [header, row, [*row[:name], "名" * 201, *row[name + 1 :]], [*other[:length], "²", *other[length + 1 :]]]
    with pytest.raises(sheet.SheetErrors) as errors:
        sheet.read(broken)
    assert [e.split(":")[0] for e in errors.value.errors] == ["row 3", "row 4"]
    assert "资源名称 is longer than 200" in errors.value.errors[0] and "数据长度 '²'" in errors.value.errors[1]

    # A cell over the CSV reader's 128 KiB field limit: the row is named, not a server error.
    csv = sheets.to_csv([header, row, [*row[:4], "摘" * 140_000, *row[5:]]])
    with pytest.raises(sheet.SheetErrors, match="row 3: not readable as CSV"):
        sheets.read_table(csv, "catalog.csv")
