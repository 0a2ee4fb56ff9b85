"""In-memory fakes of the services' ports, for fast tests of handlers and domain logic."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from common.events import Event


@dataclass
class FakeStore:
    """Tables of dicts plus emitted events; a transaction works on a copy and commits only on success."""

    tables: dict[str, dict[Any, Any]] = field(default_factory=dict)
    events: list[tuple[str, Event]] = field(default_factory=list)

    def table(self, name: str) -> dict[Any, Any]:
        return self.tables.setdefault(name, {})


class FakeTransaction:
    def __init__(self, store: FakeStore) -> None:
        self.tables = copy.deepcopy(store.tables)
        self.events: list[tuple[str, Event]] = []

    def table(self, name: str) -> dict[Any, Any]:
        return self.tables.setdefault(name, {})

    def emit(self, topic: str, event: Event) -> None:
        self.events.append((topic, event))


@asynccontextmanager
async def committing(store: FakeStore, tx: FakeTransaction) -> AsyncIterator[FakeTransaction]:
    yield tx
    store.tables = tx.tables
    store.events += tx.events
