"""What the auditor's handlers need from the outside world."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.auditor.domain.trail import Checkpoint, Head, StoredBlock, TrailEntry

AUDITED_TOPICS = [
    "directory.events",
    "catalog.entry-events",
    "catalog.demand-events",
    "exchange.resource-changes",
    "exchange.share-events",
    "exchange.hosted-services",
    "exchange.data-accesses",
    "notifier.notifications",
    "auditor.findings",
]


class TrailAppend(Protocol):
    """One transaction appending to the trail: concurrent appends conflict on the head, one retries."""

    async def head(self) -> Head: ...

    async def unseen(self, event_ids: list[str]) -> set[str]: ...

    async def append(self, entries: list[TrailEntry], checkpoints: list[Checkpoint], head: Head) -> None: ...


@dataclass(frozen=True)
class TrailQuery:
    """Entries by who, what, why and when; `visible_to` limits them to those concerning one department
    (its own accesses and actions, and those on its data)."""

    department: str | None = None
    person: str | None = None
    system: str | None = None
    resource: str | None = None
    purpose: str | None = None
    action: str | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    visible_to: str | None = None


class TrailStore(Protocol):
    def append(self) -> AbstractAsyncContextManager[TrailAppend]: ...

    async def after(self, *, after_sequence: int, limit: int, event_type: str | None) -> list[TrailEntry]: ...

    async def find(self, query: TrailQuery, *, offset: int, limit: int) -> tuple[list[TrailEntry], int]: ...

    def export(self, query: TrailQuery, *, most: int) -> AsyncIterator[TrailEntry]: ...

    async def last_sequence(self) -> int: ...

    async def anchor(self, before: int) -> Checkpoint | None: ...

    async def checkpoints(self, first: int, last: int) -> list[Checkpoint]: ...

    def entries(self, first: int, last: int) -> AsyncIterator[list[TrailEntry]]: ...

    def blocks(self, first: int, last: int) -> AsyncIterator[StoredBlock]: ...


class Signer(Protocol):
    key_id: str

    def sign(self, message: bytes) -> str: ...

    def valid(self, checkpoint: Checkpoint) -> bool: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class EvaluationFigures(Protocol):
    async def data_access_counts(self) -> dict[str, int]: ...
