"""One handler per catalog command; each loads the entry, lets it change itself, stores it and emits
the event of the transition in the same transaction."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date
from typing import Any

from common.events import Event
from common.policy import Principal, Target, authorize
from common.workdays import WorkingCalendar
from services.catalog.domain import sheet
from services.catalog.domain.dictionary import Dictionary
from services.catalog.domain.entries import (
    UPDATE_WORKING_DAYS,
    CatalogEntry,
    DataItem,
    DuplicateSource,
    EntryContent,
    EntryExists,
    EntryNotFound,
    EntryVersion,
    Finding,
    InvalidEntry,
    Overdue,
    SourceStillReferred,
    diff,
    resource_code,
    validate_provider_code,
)
from services.catalog.domain.search import Facet, SearchQuery, SearchResult, Viewer, as_seen_by
from services.catalog.domain.sources import (
    SourceClash,
    SourceFindings,
    check_exception,
    claimed,
    claims_of,
    clashes,
    providers,
    source_findings,
    unknown_elements,
    unprovided_references,
    unresolved,
)
from services.catalog.domain.wording import worded
from services.catalog.ports import (
    ENTRY_EVENTS,
    PUBLISHED,
    CatalogTransaction,
    DepartmentNames,
    FindingsCache,
    SearchIndex,
    UnitOfWork,
)

PRODUCER = "catalog"


@dataclass(frozen=True)
class DraftEntry:
    """Command: compile a new entry. Without a resource code the next 顺序码 of the classification is used."""

    provider_code: str
    content: EntryContent
    resource_code: str | None = None
    classification: str | None = None


def _event(event_type: str, entry: CatalogEntry, payload: dict[str, Any]) -> Event:
    return Event(event_type, entry.resource_code, {"resource_code": entry.resource_code, **payload}, PRODUCER)


async def _load(tx: CatalogTransaction, code: str) -> CatalogEntry:
    entry = await tx.entry(code)
    if entry is None:
        raise not_found(code)
    return entry


def not_found(code: str) -> EntryNotFound:
    return worded(EntryNotFound("resource_code", f"no entry {code}"), "catalog.entry.not_found", code=code)


async def draft_entry(command: DraftEntry, principal: Principal, uow: UnitOfWork) -> CatalogEntry:
    provider = validate_provider_code(command.provider_code)
    authorize(principal, "catalog.entry.draft", Target(department_code=provider))
    async with uow() as tx:
        code = command.resource_code or await _assign(tx, command.classification or "")
        entry = CatalogEntry.draft(code, command.provider_code, command.content, principal.subject)
        if await tx.entry(entry.resource_code) is not None:
            raise worded(
                EntryExists("resource_code", f"{entry.resource_code} is already in the catalog"),
                "catalog.entry.exists",
                code=entry.resource_code,
            )
        await tx.add(entry)
        tx.emit(ENTRY_EVENTS, _drafted(entry, entry.latest))
    return entry


async def _assign(tx: CatalogTransaction, classification: str, reserved: frozenset[str] = frozenset()) -> str:
    """The next free 顺序码 of the classification. A number taken by a code given by hand, or `reserved` for another
    entry of the same command, is skipped, never refused: refusing rolled the sequence back with the transaction,
    so every retry met the same number. (The sequence is not moved past hand-given codes: one far ahead, a typo
    say, would use up the classification.)"""
    while True:
        code = resource_code(classification, await tx.next_sequence(classification))
        if code not in reserved and await tx.entry(code) is None:
            return code


def _drafted(entry: CatalogEntry, version: EntryVersion) -> Event:
    return _event(
        "CatalogEntryDrafted",
        entry,
        {
            "version": version.version,
            "name": version.content.name,
            "provider_code": entry.provider_code,
            "share_type": version.content.share_type.value,
            "compiled_by": version.compiled_by,
        },
    )


async def edit_entry(
    code: str, content: EntryContent, revision: int | None, principal: Principal, uow: UnitOfWork
) -> CatalogEntry:
    async with uow() as tx:
        entry = await _load(tx, code)
        authorize(principal, "catalog.entry.draft", Target(department_code=entry.provider_code))
        edited = entry.edit(content, principal.subject, revision)
        await tx.save(edited, entry.revision)
        if len(edited.versions) > len(entry.versions):  # a change of the published entry: a new version
            tx.emit(ENTRY_EVENTS, _drafted(edited, edited.latest))
    return edited


async def submit_entry(code: str, revision: int | None, principal: Principal, uow: UnitOfWork) -> CatalogEntry:
    async with uow() as tx:
        entry = await _load(tx, code)
        authorize(principal, "catalog.entry.draft", Target(department_code=entry.provider_code))
        submitted, version = entry.submit(revision, submitted_by=principal.subject)
        await tx.save(submitted, entry.revision)
        tx.emit(
            ENTRY_EVENTS,
            _event(
                "CatalogEntrySubmitted",
                entry,
                {"version": version.version, "provider_code": entry.provider_code, "submitted_by": principal.subject},
            ),
        )
        for clash in await _clashes(tx, entry, version):
            flagged = {
                "data_element": clash.item,
                "existing_provider_code": clash.existing_provider,
                "existing_resource_code": clash.existing_resource,
                "new_provider_code": entry.provider_code,
                "element_id": clash.element,
                "element_name": clash.element_name,
                "existing_provider_name": await tx.department_name(clash.existing_provider),
            }
            tx.emit(ENTRY_EVENTS, _event("DuplicateSourceFlagged", entry, flagged))
    return submitted


async def _clashes(tx: CatalogTransaction, entry: CatalogEntry, version: EntryVersion) -> list[SourceClash]:
    """The version's one-data-one-source clashes; an item linked to an element the dictionary lacks is refused."""
    dictionary = await tx.dictionary()
    unknown = unknown_elements(version.content.data_items, dictionary)
    if unknown:
        raise InvalidEntry("data_items", f"no such element in the dictionary: {', '.join(unknown)}")
    items = version.content.data_items
    return clashes(entry.provider_code, entry.resource_code, items, dictionary, await tx.source_claims())


def _involved(items: tuple[DataItem, ...], dictionary: Dictionary) -> list[str]:
    """The elements an approval's one-data-one-source check reads: those linked and those the names match."""
    found = {link for i in items for link in (i.source_of, i.refers_to) if link}
    found |= {e.identifier for i in items for e in dictionary.matching(i.name)}
    return sorted(found)


def _describe(clash: SourceClash, names: dict[str, str]) -> str:
    provider = names.get(clash.existing_provider) or clash.existing_provider
    where = f", {clash.existing_resource}" if clash.existing_resource else ""
    return f"{clash.item} is element {clash.element} ({clash.element_name}), provided by {provider}{where}"


async def return_entry(
    code: str, findings: tuple[Finding, ...], revision: int | None, principal: Principal, uow: UnitOfWork
) -> CatalogEntry:
    async with uow() as tx:
        entry = await _load(tx, code)
        _authorize_review(principal, entry)
        returned, version = entry.return_for_changes(principal.subject, findings, revision)
        await tx.save(returned, entry.revision)
        tx.emit(
            ENTRY_EVENTS,
            _event(
                "CatalogEntryReturned",
                entry,
                {
                    "version": version.version,
                    "provider_code": entry.provider_code,
                    "reviewed_by": principal.subject,
                    "findings": [{"field": f.field, "finding": f.finding} for f in version.findings],
                },
            ),
        )
    return returned


def _authorize_review(principal: Principal, entry: CatalogEntry) -> None:
    """Four eyes: whoever wrote or submitted any part of the version under review does not review it."""
    working = entry.working
    target = Target(
        department_code=entry.provider_code,
        compiled_by=working.compiled_by if working else None,
        edited_by=working.editors if working else frozenset(),
    )
    authorize(principal, "catalog.entry.review", target)


async def approve_entry(
    code: str, revision: int | None, principal: Principal, uow: UnitOfWork, today: date
) -> CatalogEntry:
    async with uow() as tx:
        entry = await _load(tx, code)
        _authorize_review(principal, entry)
        approved, version = entry.approve(principal.subject, today, revision)
        items = version.content.data_items
        dictionary = await tx.dictionary()
        # Claim first: concurrent approvals, element changes and removals touching these elements conflict with
        # this transaction, so two departments cannot both become an element's first claimant unseen; and so do
        # those touching the elements the version in force claimed and this one releases.
        released = claimed(entry.in_force.content.data_items) if entry.in_force else []
        await tx.guard_elements(sorted({*_involved(items, dictionary), *released}))
        await _release_claims(tx, entry, keeping=tuple(claimed(items)))
        blocking = unresolved(await _clashes(tx, entry, version), entry.excepted_clashes)
        if blocking:
            providers = {c.existing_provider: await _department(tx, c.existing_provider) for c in blocking}
            raise worded(
                DuplicateSource(
                    "data_items",
                    "; ".join(_describe(c, providers) for c in blocking)
                    + "; refer to the element, leave the item out, or ask the IT office for an exception (one data, "
                    "one source)",
                ),
                "catalog.source.duplicate",
                clashes="；".join(
                    f"“{c.item}”即数据元 {c.element}（{c.element_name}），由{providers[c.existing_provider]}提供"
                    for c in blocking
                ),
            )
        unprovided = unprovided_references(entry.resource_code, items, dictionary, await tx.source_claims())
        if unprovided:
            raise InvalidEntry(
                "data_items",
                f"no department provides the element referred to: {', '.join(unprovided)}; make the item its "
                "source or leave the link out",
            )
        await tx.save(approved, entry.revision)
        await tx.replace_claims(entry.resource_code, claims_of(approved))
        published = _event(
            "CatalogEntryPublished",
            entry,
            published_payload(approved, version, await tx.department_name(entry.provider_code)),
        )
        tx.emit(ENTRY_EVENTS, published)
        tx.emit(PUBLISHED, Event(published.event_type, published.key, published.payload, PRODUCER))
    return approved


async def _department(tx: CatalogTransaction, code: str) -> str:
    """A department as people know it: its name from the directory, with its credit code."""
    name = await tx.department_name(code)
    return f"{name}（{code}）" if name else code


def published_payload(entry: CatalogEntry, version: EntryVersion, provider_name: str) -> dict[str, Any]:
    c = version.content
    review = c.confidentiality_review
    return {
        "version": version.version,
        "name": c.name,
        "abstract": c.abstract,
        "provider_code": entry.provider_code,
        "provider_name": provider_name,
        "category": c.category.value if c.category else "DEPARTMENT",
        "share_type": c.share_type.value,
        "not_shared_basis": c.not_shared_basis or None,
        "share_methods": sorted(m.value for m in c.share_methods),
        "update_cycle": c.update_cycle.value if c.update_cycle else "YEARLY",
        "data_items": [
            {
                "name": i.name,
                "type": i.type.value,
                "length": i.length,
                "description": i.description,
                "share_type": i.share_type.value if i.share_type else None,
                "sensitive": i.sensitive,
            }
            for i in c.data_items
        ],
        "published_on": version.published_on,
        "reviewed_by": version.reviewed_by or "",
        "format": c.format,
        "share_conditions": c.share_conditions,
        "open_attribute": c.open_attribute.value,
        "related_codes": list(c.related_codes),
        "confidentiality_reviewed_on": review.reviewed_on if review else None,
        "item_links": [
            {"item": i.name, "source_of": i.source_of, "refers_to": i.refers_to}
            for i in c.data_items
            if i.source_of or i.refers_to
        ],
    }


async def record_source_exception(
    code: str, item: str, legal_basis: str, principal: Principal, uow: UnitOfWork
) -> CatalogEntry:
    """The IT office records the legal basis on which a flagged data item of this entry may stay."""
    authorize(principal, "catalog.source.exception")
    async with uow() as tx:
        entry = await _load(tx, code)
        version = entry.working or entry.in_force
        if version is None:
            raise InvalidEntry("item", f"{code} has no version in force or being worked on")
        found = await _clashes(tx, entry, version)
        check_exception(item, found)
        excepted = entry.except_source(
            item, legal_basis, tuple((c.element, c.kind.value) for c in found if c.item == item)
        )
        await tx.save(excepted, entry.revision)
    return excepted


async def duplicate_sources(
    uow: UnitOfWork, viewer: Viewer | None = None, kept: FindingsCache | None = None
) -> list[tuple[CatalogEntry, SourceClash, str | None]]:
    """Entries whose working or published version collects an element another department provides, with the
    legal exception where one is recorded; by resource code, then item. A viewer sees only what it may read
    of each entry (another department's version in force only, its excepted clashes not at all). With `kept`,
    the findings are computed once and kept until the catalog or the dictionary changes."""

    async def compute() -> SourceFindings:
        dictionary, claims = await uow.dictionary(), await uow.source_claims()
        entries = await uow.entries(provider_code=None, limit=1_000_000)
        return await asyncio.to_thread(source_findings, entries, dictionary, claims)  # CPU-bound: off the loop

    findings = await (kept.get(compute) if kept is not None else compute())
    return findings.seen_by(viewer)


async def withdraw_entry(
    code: str, reason: str, revision: int | None, principal: Principal, uow: UnitOfWork, today: date
) -> CatalogEntry:
    async with uow() as tx:
        entry = await _load(tx, code)
        authorize(principal, "catalog.entry.withdraw", Target(department_code=entry.provider_code))
        withdrawn, version = entry.withdraw(reason, principal.subject, today, revision)
        await _release_claims(tx, entry)
        await tx.save(withdrawn, entry.revision)
        tx.emit(
            ENTRY_EVENTS,
            _event(
                "CatalogEntryWithdrawn",
                entry,
                {
                    "version": version.version,
                    "provider_code": entry.provider_code,
                    "withdrawn_by": principal.subject,
                    "reason": reason.strip(),
                },
            ),
        )
        tx.emit_tombstone(PUBLISHED, entry.resource_code)  # the compacted catalog forgets it
        await tx.replace_claims(entry.resource_code, [])  # a withdrawn source releases its claims
    return withdrawn


async def _release_claims(tx: CatalogTransaction, entry: CatalogEntry, keeping: tuple[str, ...] = ()) -> None:
    """An entry withdrawn, or republished without some of its sources (`keeping` those it still claims), releases
    the elements it no longer is the source of; refused while another department's entry in force refers to an
    element no one else would provide (its reference would stand on nothing). The elements are written first, so
    an approval referring to one of them at the same time conflicts with this."""
    claimed_now = claimed(entry.in_force.content.data_items) if entry.in_force else []
    released = [e for e in claimed_now if e not in keeping]
    if not released:
        return
    await tx.guard_elements(released)
    dictionary = await tx.dictionary()
    others = [c for c in await tx.source_claims() if c.resource_code != entry.resource_code]
    orphaned = [e for e in released if (element := dictionary.get(e)) is not None and not providers(element, others)]
    referring = [c for c in await tx.referring_entries(orphaned) if c != entry.resource_code]
    if referring:
        raise worded(
            SourceStillReferred(
                "resource_code",
                f"entries in force refer to {', '.join(orphaned)}, which only {entry.resource_code} provides: "
                f"{', '.join(referring)}; the IT office assigns the element another source first, or those "
                "entries drop the reference",
            ),
            "catalog.source.withdrawal_referred",
            elements="、".join(orphaned),
            codes="、".join(referring),
        )


async def report_change(
    code: str,
    changed_on: date,
    reason: str,
    principal: Principal,
    uow: UnitOfWork,
    calendar: WorkingCalendar,
    today: date,
) -> CatalogEntry:
    """The resource changed: the entry must be updated within 5 working days of the change (Art. 11)."""
    async with uow() as tx:
        entry = await _load(tx, code)
        authorize(principal, "catalog.entry.report_change", Target(department_code=entry.provider_code))
        due = calendar.add_working_days(changed_on, UPDATE_WORKING_DAYS)
        reported = entry.report_change(changed_on, today, due, reason)
        if reported is entry:
            return entry
        await tx.save(reported, entry.revision)
        tx.emit(
            ENTRY_EVENTS,
            _event(
                "CatalogEntryChangeReported",
                entry,
                {
                    "provider_code": entry.provider_code,
                    "reported_on": today,
                    "changed_on": changed_on,
                    "due_on": due,
                    "reason": reason,
                },
            ),
        )
    return reported


async def confirm_maintenance(
    code: str, note: str, revision: int | None, principal: Principal, uow: UnitOfWork, today: date
) -> CatalogEntry:
    """The yearly full maintenance (Art. 11 ¶3) found nothing to change: the next one is due a year on."""
    async with uow() as tx:
        entry = await _load(tx, code)
        authorize(principal, "catalog.entry.report_change", Target(department_code=entry.provider_code))
        confirmed, version = entry.confirm_maintenance(principal.subject, today, note, revision)
        await tx.save(confirmed, entry.revision)
        record = confirmed.maintenance[-1]
        payload = {
            "version": version.version,
            "provider_code": entry.provider_code,
            "confirmed_by": record.confirmed_by,
            "confirmed_on": record.confirmed_on,
            "note": record.note,
            "next_due_on": confirmed.maintenance_due(),
        }
        tx.emit(ENTRY_EVENTS, _event("CatalogEntryMaintenanceConfirmed", entry, payload))
    return confirmed


async def overdue_entries(
    uow: UnitOfWork, today: date, provider_code: str | None = None, viewer: Viewer | None = None
) -> list[tuple[CatalogEntry, Overdue]]:
    """Longest overdue first; ties by resource code and kind. Another department's deadlines are not a
    viewer's to see (`as_seen_by`), so outside oversight only its own department's entries are read at all."""
    if viewer is not None and not viewer.oversight:
        if viewer.department_code is None or provider_code not in (None, viewer.department_code):
            return []
        provider_code = viewer.department_code
    entries = await uow.overdue_candidates(provider_code=provider_code, today=today)
    found = [(entry, o) for entry in entries for o in entry.overdue(today)]
    return sorted(found, key=lambda f: (f[1].due_on, f[0].resource_code, f[1].kind.value))


async def list_entries(
    uow: UnitOfWork, provider_code: str | None, offset: int, limit: int, viewer: Viewer | None = None
) -> tuple[list[CatalogEntry], int]:
    """One page of the entries by resource code, and how many there are in all; with a viewer, the entries as
    it may read them (`as_seen_by`)."""
    found = await uow.entries(provider_code=provider_code, offset=offset, limit=limit, viewer=viewer)
    total = await uow.count_entries(provider_code=provider_code, viewer=viewer)
    if viewer is None:
        return found, total
    return [e for e in (as_seen_by(s, viewer) for s in found) if e is not None], total


async def announce_overdue(uow: UnitOfWork, today: date) -> int:
    """Emit CatalogEntryOverdue once for each overdue state not announced before (a periodic job)."""
    announced = 0
    for code in sorted({entry.resource_code for entry, _ in await overdue_entries(uow, today)}):
        async with uow() as tx:
            current = await _load(tx, code)
            remembered, new = current.announce(current.overdue(today))
            if not new:
                continue
            await tx.save(remembered, current.revision)
            for o in new:
                tx.emit(
                    ENTRY_EVENTS,
                    _event(
                        "CatalogEntryOverdue",
                        current,
                        {
                            "provider_code": current.provider_code,
                            "kind": o.kind.value,
                            "due_on": o.due_on,
                            "detected_on": today,
                        },
                    ),
                )
            announced += len(new)
    return announced


async def get_entry(code: str, uow: UnitOfWork, viewer: Viewer | None = None) -> CatalogEntry:
    """The entry; with a viewer, as it may read it: an entry it may not read at all is not found, alike."""
    entry = await uow.entry(code)
    if entry is not None and viewer is not None:
        entry = as_seen_by(entry, viewer)
    if entry is None:
        raise not_found(code)
    return entry


async def compare_versions(
    code: str, older: int, newer: int, uow: UnitOfWork, viewer: Viewer | None = None
) -> dict[str, dict[str, Any]]:
    entry = await get_entry(code, uow, viewer)
    return diff(entry.content_of(older), entry.content_of(newer))


async def record_department(event: Event, uow: UnitOfWork) -> None:
    """Keep the providers' names (from the directory's events) for the published catalog."""
    async with uow() as tx:
        await tx.record_department(event.payload["department_code"], event.payload["name"])


async def search_catalog(
    query: SearchQuery, index: SearchIndex, names: DepartmentNames
) -> tuple[SearchResult, dict[str, str]]:
    """What a reader finds, with the names of the departments (providers in hits and facets)."""
    result = index.search(query)
    providers = {h.provider_code for h in result.hits} | set(result.facets.get(Facet.PROVIDER, {}))
    return result, await names.of(providers)


async def export_catalog(uow: UnitOfWork) -> list[list[object]]:
    """The published catalog (《共享目录》) as rows in the compilation guide's layout, header first."""
    entries = await uow.entries(provider_code=None, limit=1_000_000)
    names = await uow.department_names()
    header: list[object] = list(sheet.COLUMNS)
    return [header, *sheet.rows(entries, names)]


async def import_entries(table: list[list[object]], principal: Principal, uow: UnitOfWork) -> list[CatalogEntry]:
    """Bulk compilation: every row checked first, then all entries drafted in one transaction, or none.
    Rows without a resource code get the next 顺序码 of their classification."""
    imported = sheet.read(table, await uow.department_names())
    for item in imported:
        authorize(principal, "catalog.entry.draft", Target(department_code=item.provider_code))
    drafted = []
    async with uow() as tx:
        taken = [i.resource_code for i in imported if i.resource_code and await tx.entry(i.resource_code) is not None]
        if taken:
            raise worded(
                EntryExists("resource_code", f"already in the catalog: {', '.join(taken)}; nothing was imported"),
                "catalog.entry.exists_import",
                codes="、".join(taken),
            )
        given = frozenset(i.resource_code for i in imported if i.resource_code)
        for item in imported:
            code = item.resource_code or await _assign(tx, item.classification or "", given)
            entry = CatalogEntry.draft(code, item.provider_code, item.content, principal.subject)
            await tx.add(entry)
            tx.emit(ENTRY_EVENTS, _drafted(entry, entry.latest))
            drafted.append(entry)
    return drafted
