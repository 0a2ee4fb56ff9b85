"""The one-data-one-source findings over the whole catalog, kept in memory per replica: computed on the first
read after a change, not on every read. Changes reach every replica through MongoDB change streams (entries,
with the claims their approvals and withdrawals write, and dictionary elements); the replica that wrote also
invalidates at once, so its next answer shows its own change."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pymongo.asynchronous.database import AsyncDatabase

from services.catalog.domain.sources import SourceFindings

CHANGE_WAIT_MS = 10_000


class KeptFindings:
    def __init__(self) -> None:
        self._generation = 0
        self._kept: tuple[int, SourceFindings] | None = None
        self._computing = asyncio.Lock()
        self.computed = 0  # how often the findings were computed (what the cache saves is visible in tests)

    async def get(self, compute: Callable[[], Awaitable[SourceFindings]]) -> SourceFindings:
        if (kept := self._fresh()) is not None:
            return kept
        async with self._computing:  # readers arriving meanwhile wait for this one computation
            if (kept := self._fresh()) is not None:
                return kept
            generation = self._generation
            found = await compute()
            self.computed += 1
            self._kept = (generation, found)  # a change meanwhile raised the generation: the next read computes
            return found

    def _fresh(self) -> SourceFindings | None:
        kept = self._kept
        return kept[1] if kept is not None and kept[0] == self._generation else None

    def invalidate(self) -> None:
        self._generation += 1


class ChangeFollower:
    """Calls `changed` for every change of a collection (a change ends the server's wait at once; the wait's
    length only sets how often an idle follower asks)."""

    def __init__(self, db: AsyncDatabase, collection: str, changed: Callable[[], None]) -> None:
        self.db = db
        self.collection = collection
        self.changed = changed
        self.caught_up = False

    async def run(self) -> None:
        watch = self.db[self.collection].watch(max_await_time_ms=CHANGE_WAIT_MS)
        async with await watch as stream:
            self.changed()  # whatever happened before the stream opened
            self.caught_up = True
            async for _change in stream:
                self.changed()
