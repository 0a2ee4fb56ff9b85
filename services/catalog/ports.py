"""What the catalog's handlers need from the outside world."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from common.events import Event
from services.catalog.domain.demands import DemandStatus, ShareDemand
from services.catalog.domain.entries import CatalogEntry
from services.catalog.domain.search import SearchDocument, SearchQuery, SearchResult
from services.catalog.domain.sources import ElementSource

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

    async def next_sequence(self, classification: str) -> int: ...

    async def department_name(self, code: str) -> str: ...

    async def record_department(self, code: str, name: str) -> None: ...

    async def element_sources(self) -> dict[str, ElementSource]:
        """The registry of standard data elements: element key → authoritative source."""
        ...

    async def register_elements(self, names: list[str], source: ElementSource) -> None:
        """Record `source` for the elements that have no source yet."""
        ...

    async def demand(self, demand_id: str) -> ShareDemand | None: ...

    async def save_demand(self, demand: ShareDemand) -> None: ...

    def emit(self, topic: str, event: Event) -> None: ...

    def emit_tombstone(self, topic: str, key: str) -> None: ...


class UnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[CatalogTransaction]: ...

    async def entry(self, resource_code: str) -> CatalogEntry | None: ...

    async def entries(self, *, provider_code: str | None, limit: int, offset: int = 0) -> list[CatalogEntry]:
        """In the order of their resource codes."""
        ...

    async def count_entries(self, *, provider_code: str | None) -> int: ...

    async def element_sources(self) -> dict[str, ElementSource]: ...

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
