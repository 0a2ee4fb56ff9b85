"""One data, one source (Art. 12) on the data-element dictionary: a datum an authoritative department
provides is not collected again.

Each data item of an entry is the source of a dictionary element (`source_of`), refers to an element
provided elsewhere (`refers_to`: keys and join columns), or is new. The authoritative source of an element
is the department the IT office assigned; until it assigns one, the departments whose published entries
claim the element. A clash is an item that claims an element another department provides, or a new item
whose name or alias names an element provided by another department that the item does not refer to.
Identity is the element, never a bare name: two items called 有效期至 that are sources of different
elements do not clash."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from common.errors import Invalid
from services.catalog.domain.dictionary import DataElement, Dictionary, SourceClaim
from services.catalog.domain.entries import CatalogEntry, DataItem
from services.catalog.domain.search import Viewer
from services.catalog.domain.wording import worded


class ClashKind(StrEnum):
    SECOND_SOURCE = "SECOND_SOURCE"  # the item claims to be the source of an element provided elsewhere
    UNLINKED_DUPLICATE = "UNLINKED_DUPLICATE"  # a new item named like an element provided elsewhere


@dataclass(frozen=True)
class SourceClash:
    item: str  # the entry's data item
    element: str  # the element's identifier
    element_name: str
    existing_provider: str
    existing_resource: str  # "" when the IT office assigned the source and it has published no entry yet
    kind: ClashKind


def providers(element: DataElement, claims: list[SourceClaim]) -> list[tuple[str, str]]:
    """(department, resource code) providing the element: the assigned source, else every claimant."""
    mine = [c for c in claims if c.element == element.identifier]
    if element.source_code:
        resource = next((c.resource_code for c in mine if c.provider_code == element.source_code), "")
        return [(element.source_code, resource)]
    return list(dict.fromkeys((c.provider_code, c.resource_code) for c in mine))


def unknown_elements(items: tuple[DataItem, ...], dictionary: Dictionary) -> list[str]:
    """Items linked to an element the dictionary does not have."""
    return [
        f"{i.name} → {link}" for i in items for link in (i.source_of, i.refers_to) if link and not dictionary.get(link)
    ]


def clashes(
    provider_code: str,
    resource_code: str,
    items: tuple[DataItem, ...],
    dictionary: Dictionary,
    claims: list[SourceClaim],
) -> list[SourceClash]:
    """Every item is checked by its name, whatever it links to: a link vouches only for the element it names,
    so an item named like another element provided elsewhere is a duplicate even when linked to some element."""
    others = [c for c in claims if c.resource_code != resource_code]
    found = []
    for item in items:
        linked = item.source_of or item.refers_to
        candidates = []
        if item.source_of:
            element = dictionary.get(item.source_of)
            candidates = [(element, ClashKind.SECOND_SOURCE)] if element else []
        candidates += [
            (e, ClashKind.UNLINKED_DUPLICATE) for e in dictionary.matching(item.name) if e.identifier != linked
        ]
        for element, kind in candidates:
            for provider, resource in providers(element, others):
                if provider != provider_code:
                    found.append(SourceClash(item.name, element.identifier, element.name, provider, resource, kind))
                    break
    return found


def unprovided_references(
    resource_code: str, items: tuple[DataItem, ...], dictionary: Dictionary, claims: list[SourceClaim]
) -> list[str]:
    """Items referring to an element no department provides: nothing stands behind such a reference, the
    entry would collect the datum itself."""
    others = [c for c in claims if c.resource_code != resource_code]
    return [
        f"{i.name} → {i.refers_to}"
        for i in items
        if i.refers_to and (element := dictionary.get(i.refers_to)) and not providers(element, others)
    ]


def unresolved(found: list[SourceClash], excepted: tuple[tuple[str, str, str], ...]) -> list[SourceClash]:
    """The clashes no exception covers; an exception covers one item's clash with one element, of one kind."""
    return [c for c in found if (c.item, c.element, c.kind.value) not in excepted]


def claimed(items: tuple[DataItem, ...]) -> list[str]:
    """The elements an entry's items declare themselves the source of."""
    return list(dict.fromkeys(i.source_of for i in items if i.source_of))


def claims_of(entry: CatalogEntry) -> list[SourceClaim]:
    """What an entry in force claims: the elements its items are the source of (none for another entry)."""
    if entry.in_force is None:
        return []
    return [
        SourceClaim(e, entry.provider_code, entry.resource_code) for e in claimed(entry.in_force.content.data_items)
    ]


def check_exception(item: str, found: list[SourceClash]) -> None:
    """An exception names a data item of the entry that is flagged, nothing else."""
    if not any(c.item == item for c in found):
        flagged = ", ".join(dict.fromkeys(c.item for c in found)) or "none"
        raise worded(
            Invalid("item", f"{item!r} is not a flagged data item of this entry (flagged: {flagged})"),
            "catalog.source.exception_not_flagged",
            item=item,
            flagged=flagged,
        )


@dataclass(frozen=True)
class SourceFindings:
    """Every entry's one-data-one-source clashes, as its own department and oversight read them (of the working
    or published version, with the legal exception where one covers the clash) and as everyone else reads them
    (of the version in force, excepted clashes left out: exceptions are the provider's business with the IT
    office). Computed over the whole catalog at once; the service keeps it until an entry or element changes."""

    whole: tuple[tuple[CatalogEntry, SourceClash, str | None], ...]
    in_force: tuple[tuple[CatalogEntry, SourceClash], ...]

    def seen_by(self, viewer: Viewer | None) -> list[tuple[CatalogEntry, SourceClash, str | None]]:
        """By resource code, then item."""
        if viewer is None:
            return list(self.whole)
        own = [f for f in self.whole if viewer.sees_unpublished(f[0].provider_code)]
        others: list[tuple[CatalogEntry, SourceClash, str | None]] = [
            (e, c, None) for e, c in self.in_force if not viewer.sees_unpublished(e.provider_code)
        ]
        return sorted(own + others, key=lambda f: (f[0].resource_code, f[1].item))


def source_findings(entries: list[CatalogEntry], dictionary: Dictionary, claims: list[SourceClaim]) -> SourceFindings:
    whole, in_force = [], []
    for entry in entries:
        version = entry.working or entry.in_force
        if version is None:
            continue
        bases = dict(entry.source_exceptions)
        for clash in clashes(entry.provider_code, entry.resource_code, version.content.data_items, dictionary, claims):
            covered = (clash.item, clash.element, clash.kind.value) in entry.excepted_clashes
            whole.append((entry, clash, bases.get(clash.item) if covered else None))
        if entry.in_force is not None:
            items = entry.in_force.content.data_items
            for clash in clashes(entry.provider_code, entry.resource_code, items, dictionary, claims):
                if (clash.item, clash.element, clash.kind.value) not in entry.excepted_clashes:
                    in_force.append((entry, clash))
    order = lambda f: (f[0].resource_code, f[1].item)  # noqa: E731
    return SourceFindings(tuple(sorted(whole, key=order)), tuple(sorted(in_force, key=order)))
