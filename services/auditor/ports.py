"""What the auditor's handlers need from the outside world."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from services.auditor.domain.trail import TrailEntry

AUDITED_TOPICS = [
    "directory.events",
    "catalog.entry-events",
    "catalog.demand-events",
    "exchange.resource-changes",
    "exchange.share-events",
    "exchange.data-accesses",
    "notifier.notifications",
    "auditor.findings",
]


class TrailTransaction(Protocol):
    async def recorded(self, event_id: str) -> bool: ...

    async def last(self) -> TrailEntry | None: ...

    async def append(self, entry: TrailEntry) -> None: ...


class UnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[TrailTransaction]: ...

    async def entries(self, *, after_sequence: int, limit: int, event_type: str | None) -> list[TrailEntry]: ...

    async def all_entries(self) -> list[TrailEntry]: ...

    async def data_access_counts(self) -> dict[str, int]: ...
