"""What the catalog's handlers need from the outside world."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from common.events import Event
from services.catalog.domain.entries import CatalogEntry

ENTRY_EVENTS = "catalog.entry-events"


class EntryRepository(Protocol):
    async def get(self, resource_code: str) -> CatalogEntry | None: ...

    async def add(self, entry: CatalogEntry) -> None: ...


class CatalogTransaction(Protocol):
    """State changes and the events they cause, committed together or not at all."""

    @property
    def entries(self) -> EntryRepository: ...

    def emit(self, topic: str, event: Event) -> None: ...


class UnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[CatalogTransaction]: ...

    async def entry(self, resource_code: str) -> CatalogEntry | None: ...
