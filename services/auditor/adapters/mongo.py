"""The trail in MongoDB: entries by sequence plus a head document that serialises appends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from common.mongo import Transaction
from common.runtime import Runtime
from services.auditor.domain.trail import TrailEntry

TRAIL = "audit_trail"
HEAD = "audit_trail_head"
ACCESS_COUNTS = "evaluation_data_accesses"  # written by the stream worker (services/auditor/stream.py)


def _from_doc(doc: dict[str, Any]) -> TrailEntry:
    return TrailEntry(**{k: v for k, v in doc.items() if k != "_id"})


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[TRAIL].create_index([("event_id", ASCENDING)], unique=True)
    await db[TRAIL].create_index([("event_type", ASCENDING), ("sequence", ASCENDING)])


class MongoTrailTransaction:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    async def recorded(self, event_id: str) -> bool:
        found = await self.tx.db[TRAIL].find_one({"event_id": event_id}, {"_id": 1}, session=self.tx.session)
        return found is not None

    async def last(self) -> TrailEntry | None:
        doc = await self.tx.db[TRAIL].find_one({}, sort=[("_id", DESCENDING)], session=self.tx.session)
        return _from_doc(doc) if doc else None

    async def append(self, entry: TrailEntry) -> None:
        # Writing the head in the same transaction makes two concurrent appends conflict; one retries.
        await self.tx.db[HEAD].update_one(
            {"_id": "head"},
            {"$set": {"sequence": entry.sequence, "hash": entry.hash}},
            upsert=True,
            session=self.tx.session,
        )
        await self.tx.db[TRAIL].insert_one(asdict(entry) | {"_id": entry.sequence}, session=self.tx.session)


class MongoUnitOfWork:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoTrailTransaction]:
        async with self.runtime.transaction() as tx:
            yield MongoTrailTransaction(tx)

    async def entries(self, *, after_sequence: int, limit: int, event_type: str | None) -> list[TrailEntry]:
        query: dict[str, Any] = {"_id": {"$gt": after_sequence}}
        if event_type:
            query["event_type"] = event_type
        cursor = self.runtime.db[TRAIL].find(query).sort("_id", ASCENDING).limit(limit)
        return [_from_doc(doc) for doc in await cursor.to_list()]

    async def all_entries(self) -> list[TrailEntry]:
        cursor = self.runtime.db[TRAIL].find({}).sort("_id", ASCENDING)
        return [_from_doc(doc) async for doc in cursor]

    async def data_access_counts(self) -> dict[str, int]:
        return {doc["_id"]: doc["count"] async for doc in self.runtime.db[ACCESS_COUNTS].find({})}
