"""One handler per catalog command."""

from __future__ import annotations

from common.events import Event
from common.policy import Principal, Target, authorize
from services.catalog.domain.entries import CatalogEntry, DraftEntry, EntryExists, EntryNotFound
from services.catalog.ports import ENTRY_EVENTS, UnitOfWork

PRODUCER = "catalog"


async def draft_entry(command: DraftEntry, principal: Principal, uow: UnitOfWork) -> CatalogEntry:
    entry = CatalogEntry.draft(command)
    authorize(principal, "catalog.entry.draft", Target(department_code=entry.provider_code))
    async with uow() as tx:
        if await tx.entries.get(entry.resource_code) is not None:
            raise EntryExists("resource_code", f"{entry.resource_code} is already in the catalog")
        await tx.entries.add(entry)
        tx.emit(ENTRY_EVENTS, Event("CatalogEntryDrafted", entry.resource_code, entry.drafted_payload(), PRODUCER))
    return entry


async def get_entry(resource_code: str, uow: UnitOfWork) -> CatalogEntry:
    entry = await uow.entry(resource_code)
    if entry is None:
        raise EntryNotFound("resource_code", f"no entry {resource_code}")
    return entry
