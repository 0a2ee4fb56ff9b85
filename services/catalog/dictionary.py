"""One handler per command on the data-element dictionary (数据元), which the IT office keeps. Every change
is a new version of the element and a `DataElementChanged` event."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from common.events import Event
from common.policy import Principal, authorize
from services.catalog.domain.dictionary import (
    DataElement,
    Dictionary,
    ElementConflict,
    ElementVersion,
    check_source,
    read_sheet,
    revise,
    sheet_rows,
)
from services.catalog.ports import ENTRY_EVENTS, CatalogTransaction, UnitOfWork

PRODUCER = "catalog"


def _changed(element: DataElement, change: str, changed_by: str) -> Event:
    payload = {
        "identifier": element.identifier,
        "change": change,
        "version": element.version,
        "name": element.name,
        "aliases": list(element.aliases),
        "definition": element.definition,
        "type": element.type.value,
        "source_code": element.source_code,
        "changed_by": changed_by,
    }
    return Event("DataElementChanged", element.identifier, payload, PRODUCER)


async def _store(
    tx: CatalogTransaction, dictionary: Dictionary, element: DataElement, expected: int | None, by: str
) -> tuple[Dictionary, DataElement | None]:
    """Admit the element's next version; None when it is the same as the stored one."""
    current = dictionary.get(element.identifier)
    if current is not None and replace(current, version=0) == replace(element, version=0):
        return dictionary, None  # nothing changes: no new version
    revised = revise(current, element, expected)
    dictionary = dictionary.admit(revised)
    await tx.save_element(revised, by)
    tx.emit(ENTRY_EVENTS, _changed(revised, "DEFINED" if current is None else "CHANGED", by))
    return dictionary, revised


async def define_element(element: DataElement, principal: Principal, uow: UnitOfWork) -> DataElement:
    authorize(principal, "catalog.dictionary.edit")
    check_source(element, await uow.department_names())
    async with uow() as tx:
        await tx.guard_names()  # first: two definitions at once cannot both admit the same name
        dictionary = await tx.dictionary()
        if dictionary.get(element.identifier) is not None:
            raise ElementConflict("identifier", f"{element.identifier} is already in the dictionary; change it instead")
        _, stored = await _store(tx, dictionary, element, 0, principal.subject)
    assert stored is not None
    return stored


async def change_element(element: DataElement, version: int, principal: Principal, uow: UnitOfWork) -> DataElement:
    """A new version of the element: names, definition, type, or the source the IT office assigns."""
    authorize(principal, "catalog.dictionary.edit")
    check_source(element, await uow.department_names())
    async with uow() as tx:
        await tx.guard_names()
        dictionary = await tx.dictionary()
        dictionary.require(element.identifier)
        _, stored = await _store(tx, dictionary, element, version, principal.subject)
    return stored or dictionary.require(element.identifier)


async def remove_element(identifier: str, principal: Principal, uow: UnitOfWork) -> None:
    authorize(principal, "catalog.dictionary.edit")
    async with uow() as tx:
        element = (await tx.dictionary()).require(identifier)
        sources = sorted({c.resource_code for c in await tx.source_claims() if c.element == identifier})
        if sources:
            raise ElementConflict(
                "identifier", f"published entries are the source of {identifier}: {', '.join(sources)}"
            )
        # Read inside the transaction: an approval committed later wrote to the element and conflicts with this.
        referring = await tx.referring_entries([identifier])
        if referring:
            raise ElementConflict("identifier", f"published entries refer to {identifier}: {', '.join(referring)}")
        await tx.remove_element(identifier, principal.subject)
        tx.emit(ENTRY_EVENTS, _changed(element, "REMOVED", principal.subject))


async def import_elements(table: list[list[object]], principal: Principal, uow: UnitOfWork) -> list[DataElement]:
    """Define or change the elements of a table; every row is checked first, and a table with an error
    changes nothing. Rows equal to the stored element change nothing either. The rows are read and their
    names checked off the event loop, in one pass."""
    authorize(principal, "catalog.dictionary.edit")
    names = await uow.department_names()
    elements = await asyncio.to_thread(read_sheet, table, names)
    async with uow() as tx:
        await tx.guard_names()
        dictionary = await tx.dictionary()
        changed = await asyncio.to_thread(_revisions, dictionary, elements)
        for revised in changed:
            await tx.save_element(revised, principal.subject)
            change = "CHANGED" if revised.version > 1 else "DEFINED"
            tx.emit(ENTRY_EVENTS, _changed(revised, change, principal.subject))
    return changed


def _revisions(dictionary: Dictionary, elements: list[DataElement]) -> list[DataElement]:
    """The next versions of the imported elements that differ from the stored ones, their names checked
    against each other and the rest of the dictionary at once."""
    changed = []
    for element in elements:
        current = dictionary.get(element.identifier)
        if current is None or replace(current, version=0) != replace(element, version=0):
            changed.append(revise(current, element, None))
    dictionary.admit_all(changed)
    return changed


async def get_element(identifier: str, uow: UnitOfWork) -> DataElement:
    return (await uow.dictionary()).require(identifier)


async def element_history(identifier: str, uow: UnitOfWork) -> list[ElementVersion]:
    versions = await uow.element_versions(identifier)
    if not versions:
        (await uow.dictionary()).require(identifier)
    return versions


async def export_dictionary(uow: UnitOfWork) -> list[list[object]]:
    return sheet_rows(await uow.dictionary(), await uow.department_names())


async def alias_groups(uow: UnitOfWork) -> list[tuple[str, ...]]:
    """Each element's standard name with its aliases: the synonyms search and demand matching use."""
    return (await uow.dictionary()).alias_groups()
