"""The trail in MongoDB: entries by sequence (`_id`), signed checkpoints by the sequence they sign, and a
head document that every append rewrites, so that two appends at once conflict and one retries."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from common.mongo import Transaction
from services.auditor.domain.trail import Checkpoint, Head, TrailEntry, canonical, instant
from services.auditor.ports import TrailQuery

log = logging.getLogger(__name__)
TRAIL = "audit_trail"
HEAD = "audit_trail_head"
CHECKPOINTS = "audit_trail_checkpoints"
READ_BATCH = 5000  # entries a verification reads at once: its memory is bounded by this


# Stored beside the entry's canonical JSON, for the queries; an entry read back takes these values, so a
# changed query field breaks the entry's hash like a change of its text does.
QUERIED = (
    "event_id",
    "event_type",
    "action",
    "occurred_at",
    "actor",
    "actor_kind",
    "departments",
    "resource",
    "purpose",
)


def entry_document(entry: TrailEntry) -> dict[str, Any]:
    """The entry as its canonical JSON (the text its hash is of) plus the fields the queries use: few fields
    per document, which the local database writes and reads much faster than the entry's thirty."""
    content = entry.content()
    text = entry.text or canonical(content)
    return {"_id": entry.sequence, "entry": text, "hash": entry.hash} | {name: content[name] for name in QUERIED}


def entry_from(doc: dict[str, Any]) -> TrailEntry:
    content = json.loads(doc["entry"]) | {name: doc.get(name) for name in QUERIED} | {"sequence": doc["_id"]}
    return TrailEntry.from_content(content, doc["hash"])


def checkpoint_from(doc: dict[str, Any]) -> Checkpoint:
    return Checkpoint(doc["_id"], doc["hash"], doc["signed_at"], doc["key_id"], doc["signature"])


async def set_aside_legacy_trail(db: AsyncDatabase) -> None:
    """A trail written before entries said who, what and why (one entry per event, hashed differently) is
    renamed, untouched, so that the new chain starts on its own; the old one stays for reading."""
    if await db[TRAIL].find_one({"action": {"$exists": False}}, {"_id": 1}) is None:
        return
    suffix = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    for name in (TRAIL, HEAD):
        if name in await db.list_collection_names():
            await db[name].rename(f"{name}_legacy_{suffix}")
    log.warning("moved the trail of the earlier format aside, untouched, to %s_legacy_%s", TRAIL, suffix)


async def ensure_indexes(db: AsyncDatabase) -> None:
    await set_aside_legacy_trail(db)
    trail = db[TRAIL]
    await trail.create_index([("event_id", ASCENDING)], unique=True)
    await trail.create_index([("event_type", ASCENDING), ("_id", ASCENDING)])
    # The queries: who sees what (departments), by whom, on what; each then pages in sequence order. Each index
    # costs every append about as much again as the entry's own write on the local server, so purpose and time
    # narrow these (or scan in sequence order) rather than having indexes of their own.
    for name in ("departments", "actor", "resource"):
        await trail.create_index([(name, ASCENDING), ("_id", ASCENDING)])


class MongoTrailAppend:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    async def head(self) -> Head:
        doc = await self.tx.db[HEAD].find_one({"_id": "head"}, session=self.tx.session)
        if doc is None:
            return Head()
        return Head(doc["sequence"], doc["hash"], doc.get("checkpoint_sequence", 0), doc.get("checkpoint_at"))

    async def unseen(self, event_ids: list[str]) -> set[str]:
        found = self.tx.db[TRAIL].find({"event_id": {"$in": event_ids}}, {"event_id": 1}, session=self.tx.session)
        return set(event_ids) - {doc["event_id"] async for doc in found}

    async def append(self, entries: list[TrailEntry], checkpoints: list[Checkpoint], head: Head) -> None:
        session, db = self.tx.session, self.tx.db
        await db[HEAD].update_one(
            {"_id": "head"},
            {
                "$set": {
                    "sequence": head.sequence,
                    "hash": head.hash,
                    "checkpoint_sequence": head.checkpoint_sequence,
                    "checkpoint_at": head.checkpoint_at,
                }
            },
            upsert=True,
            session=session,
        )
        await db[TRAIL].insert_many([entry_document(e) for e in entries], ordered=True, session=session)
        if checkpoints:
            await db[CHECKPOINTS].insert_many(
                [
                    {
                        "_id": c.sequence,
                        "hash": c.hash,
                        "signed_at": c.signed_at,
                        "key_id": c.key_id,
                        "signature": c.signature,
                    }
                    for c in checkpoints
                ],
                session=session,
            )


def _filter(query: TrailQuery) -> dict[str, Any]:
    found: dict[str, Any] = {}
    departments = [d for d in (query.department, query.visible_to) if d]
    if departments:
        found["departments"] = {"$all": departments}
    if query.person:
        found |= {"actor": query.person, "actor_kind": "person"}
    if query.system:
        if query.person and query.person != query.system:
            found["actor"] = {"$in": []}  # nobody is both
        else:
            found |= {"actor": query.system, "actor_kind": "system"}
    for name in ("resource", "purpose", "action", "event_type"):
        if (value := getattr(query, name)) is not None:
            found[name] = value
    when: dict[str, str] = {}
    if query.since is not None:
        when["$gte"] = instant(query.since)
    if query.until is not None:
        when["$lt"] = instant(query.until)
    if when:
        found["occurred_at"] = when
    return found


class MongoTrail:
    def __init__(self, db: AsyncDatabase, transaction: Callable[[], AbstractAsyncContextManager[Transaction]]) -> None:
        self.db = db
        self.transaction = transaction  # the runtime's: with the consumer's processed-event record and outbox

    @asynccontextmanager
    async def append(self) -> AsyncIterator[MongoTrailAppend]:
        async with self.transaction() as tx:
            yield MongoTrailAppend(tx)

    async def after(self, *, after_sequence: int, limit: int, event_type: str | None) -> list[TrailEntry]:
        query: dict[str, Any] = {"_id": {"$gt": after_sequence}}
        if event_type:
            query["event_type"] = event_type
        cursor = self.db[TRAIL].find(query).sort("_id", ASCENDING).limit(limit)
        return [entry_from(doc) for doc in await cursor.to_list()]

    async def find(self, query: TrailQuery, *, offset: int, limit: int) -> tuple[list[TrailEntry], int]:
        where = _filter(query)
        cursor = self.db[TRAIL].find(where).sort("_id", ASCENDING).skip(offset).limit(limit)
        entries = [entry_from(doc) for doc in await cursor.to_list()]
        return entries, await self.db[TRAIL].count_documents(where)

    async def export(self, query: TrailQuery, *, most: int) -> AsyncIterator[TrailEntry]:
        cursor = self.db[TRAIL].find(_filter(query)).sort("_id", ASCENDING).limit(most).batch_size(1000)
        async for doc in cursor:
            yield entry_from(doc)

    async def last_sequence(self) -> int:
        """The end of the trail as far as anything says: the last stored entry, the head, the last checkpoint
        (an entry deleted at the end is still missing when the head or a checkpoint names it)."""
        ends = [0]
        for collection in (TRAIL, CHECKPOINTS):
            doc = await self.db[collection].find_one({}, {"_id": 1}, sort=[("_id", DESCENDING)])
            ends.append(doc["_id"] if doc else 0)
        head = await self.db[HEAD].find_one({"_id": "head"})
        ends.append(head["sequence"] if head else 0)
        return max(ends)

    async def anchor(self, before: int) -> Checkpoint | None:
        doc = await self.db[CHECKPOINTS].find_one({"_id": {"$lt": before}}, sort=[("_id", DESCENDING)])
        return checkpoint_from(doc) if doc else None

    async def checkpoints(self, first: int, last: int) -> list[Checkpoint]:
        cursor = self.db[CHECKPOINTS].find({"_id": {"$gte": first, "$lte": last}}).sort("_id", ASCENDING)
        return [checkpoint_from(doc) async for doc in cursor]

    async def entries(self, first: int, last: int) -> AsyncIterator[list[TrailEntry]]:
        """Entries `first`..`last` in stored order, READ_BATCH at a time (a cursor: bounded memory)."""
        cursor = self.db[TRAIL].find({"_id": {"$gte": first, "$lte": last}}).sort("_id", ASCENDING)
        batch: list[TrailEntry] = []
        async for doc in cursor.batch_size(READ_BATCH):
            batch.append(entry_from(doc))
            if len(batch) == READ_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
