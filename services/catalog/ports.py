"""What the catalog's handlers need from the outside world."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from datetime import date
from typing import Protocol

from common.events import Event
from services.catalog.domain.demands import DemandStatus, ShareDemand
from services.catalog.domain.dictionary import DataElement, Dictionary, ElementVersion, SourceClaim
from services.catalog.domain.entries import CatalogEntry
from services.catalog.domain.search import SearchDocument, SearchQuery, SearchResult, Synonyms, Viewer
from services.catalog.domain.sources import SourceFindings

ENTRY_EVENTS = "catalog.entry-events"
PUBLISHED = "catalog.published"  # compacted: the catalog in force, keyed by resource code
DIRECTORY_EVENTS = "directory.events"
DEMAND_EVENTS = "catalog.demand-events"


class CatalogTransaction(Protocol):
    """State changes and the events they cause, committed together or not at all."""

    async def entry(self, resource_code: str) -> CatalogEntry | None: ...

    async def add(self, entry: CatalogEntry) -> None: ...

    async def save(self, entry: CatalogEntry, expected_revision: int) -> None:
        """Raises VersionConflict when the stored entry is no longer at `expected_revision`."""
        ...

    async def next_sequence(self, classification: str) -> int:
        """The classification's next 顺序码 (the first is 1); taken back if the transaction fails."""
        ...

    async def department_name(self, code: str) -> str: ...

    async def record_department(self, code: str, name: str) -> None: ...

    async def dictionary(self) -> Dictionary:
        """The data-element dictionary (数据元)."""
        ...

    async def source_claims(self) -> list[SourceClaim]:
        """The elements published entries declare themselves the source of."""
        ...

    async def replace_claims(self, resource_code: str, claims: list[SourceClaim]) -> None:
        """The entry's claims become `claims` (none: a withdrawn entry releases its claims)."""
        ...

    async def guard_elements(self, identifiers: list[str]) -> None:
        """Write to each element so that concurrent transactions claiming, checking, changing or removing it
        conflict and one of them fails (transient: retried, it sees the other's result)."""
        ...

    async def guard_names(self) -> None:
        """Write to one record every change of the dictionary writes, so that two changes checking names against
        each other at once conflict and one of them fails (transient: retried, it sees the other's names)."""
        ...

    async def referring_entries(self, elements: list[str]) -> list[str]:
        """Resource codes of entries whose version in force has an item referring to one of `elements`."""
        ...

    async def save_element(self, element: DataElement, changed_by: str) -> None:
        """Store the element's new version, keeping the earlier ones."""
        ...

    async def remove_element(self, identifier: str, changed_by: str) -> None: ...

    async def demand(self, demand_id: str) -> ShareDemand | None: ...

    async def save_demand(self, demand: ShareDemand) -> None: ...

    def emit(self, topic: str, event: Event) -> None: ...

    def emit_tombstone(self, topic: str, key: str) -> None: ...


class UnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[CatalogTransaction]: ...

    async def entry(self, resource_code: str) -> CatalogEntry | None: ...

    async def entries(
        self, *, provider_code: str | None, limit: int, offset: int = 0, viewer: Viewer | None = None
    ) -> list[CatalogEntry]:
        """In the order of their resource codes; with a viewer, only the entries it may read (see `as_seen_by`),
        still whole."""
        ...

    async def count_entries(self, *, provider_code: str | None, viewer: Viewer | None = None) -> int: ...

    async def overdue_candidates(self, *, provider_code: str | None, today: date) -> list[CatalogEntry]:
        """Entries in force (of one provider, or all) that may be overdue on `today`: a reported change due
        before it, or nothing published or confirmed for over 365 days. More may come back than are overdue
        (`CatalogEntry.overdue` decides), never fewer."""
        ...

    async def entries_with_codes(self, codes: list[str]) -> list[CatalogEntry]:
        """The stored entries of these resource codes (those that exist), in one read."""
        ...

    async def dictionary(self) -> Dictionary: ...

    async def source_claims(self) -> list[SourceClaim]: ...

    async def element_versions(self, identifier: str) -> list[ElementVersion]: ...

    async def department_names(self) -> dict[str, str]: ...

    async def demand(self, demand_id: str) -> ShareDemand | None: ...

    async def demands(
        self, *, status: DemandStatus | None, requester_code: str | None, offset: int = 0, limit: int | None = None
    ) -> list[ShareDemand]:
        """Oldest first (by filing day, then id)."""
        ...

    async def count_demands(self, *, status: DemandStatus | None, requester_code: str | None) -> int: ...


class SearchIndex(Protocol):
    def put(self, doc: SearchDocument) -> None:
        """Index an entry unless a later revision of it is already indexed."""
        ...

    def search(self, query: SearchQuery) -> SearchResult: ...

    def use_synonyms(self, synonyms: Synonyms) -> None:
        """Search with these groups of words meaning the same from now on."""
        ...


class DepartmentNames(Protocol):
    async def of(self, codes: Iterable[str]) -> dict[str, str]:
        """Names of departments (a code missing from the answer has no name on record)."""
        ...


class AliasSource(Protocol):
    """Groups of words meaning the same (社保 / 社会保险): the maintained synonym list, the data-element
    dictionary's standard names with their aliases. Each group is a few words; any of them finds the others."""

    def alias_groups(self) -> Iterable[Iterable[str]]: ...


class FindingsCache(Protocol):
    """The one-data-one-source findings over the whole catalog, computed once and kept until an entry or an
    element changes (on any replica)."""

    async def get(self, compute: Callable[[], Awaitable[SourceFindings]]) -> SourceFindings: ...

    def invalidate(self) -> None: ...
