"""The trail in MongoDB as blocks: each document holds up to BLOCK_ENTRIES consecutive entries (their canonical
JSON texts, compressed, and their hashes, in order; `_id` is the first entry's sequence), the event ids they
came from, and the terms the queries find the block by (departments, actors, resources, purposes, actions,
event types: multikey indexes) with its entries' time span. A query finds candidate blocks by one indexed term
and picks the entries inside. Signed checkpoints are kept by the sequence they sign, and a head document that
every append rewrites, so that two appends at once conflict and one retries.

The local database spends its time per document and per index key, not per byte: a thousand entries in one
document cost it about what one entry in a document of its own did."""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import Binary
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from common.mongo import Transaction
from services.auditor.domain.trail import (
    TERMS,
    Checkpoint,
    Head,
    StoredBlock,
    TrailEntry,
    block_terms,
    canonical,
    instant,
)
from services.auditor.ports import TrailQuery

log = logging.getLogger(__name__)
BLOCKS = "audit_trail_blocks"
TRAIL = "audit_trail"  # the earlier layout, one document per entry: converted to blocks once, at start-up
HEAD = "audit_trail_head"
CHECKPOINTS = "audit_trail_checkpoints"
LAYOUT = {"_id": "layout"}  # in HEAD, once the trail is stored as blocks
BLOCK_ENTRIES = 1000
LARGEST_BLOCK = 10_000  # what the block size may be configured to at most
BY_LAST = "last"  # a block's last sequence, indexed
READ_BLOCKS = 4  # blocks fetched at once (about 1 MB compressed): the memory of a read is bounded by this
RECENT_EVENTS = 100_000  # a redelivered event is recognised among the last this many entries
IN_LOOP = 200  # fewer entries are packed on the event loop; more in a worker thread (compression)


# -- block documents ------------------------------------------------------------------------------------


def block_document(entries: list[TrailEntry], earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """Consecutive linked entries as one document; after those of the stored block `earlier` if given (which
    are taken as stored: neither read nor mended)."""
    text = "\n".join(e.text or canonical(e.content()) for e in entries)  # canonical JSON has no newline
    hashes, event_ids = "".join(e.hash for e in entries), "\n".join(e.event_id for e in entries)
    times = [e.occurred_at for e in entries]
    terms = block_terms(vars(e) for e in entries)
    first = entries[0].sequence
    if earlier is not None:
        first = earlier["_id"]
        text = zlib.decompress(earlier["entries"]).decode("utf-8") + "\n" + text
        hashes, event_ids = earlier.get("hashes", "") + hashes, earlier.get("event_ids", "") + "\n" + event_ids
        times += [t for t in (earlier.get("earliest"), earlier.get("latest")) if t]
        for name in TERMS:
            terms[name].update(earlier.get(name) or ())
    return {
        "_id": first,
        "last": entries[-1].sequence,
        "entries": Binary(zlib.compress(text.encode("utf-8"), 1)),
        "hashes": hashes,
        "event_ids": event_ids,
        "earliest": min(times),
        "latest": max(times),
    } | {name: sorted(values) for name, values in terms.items()}


def block_from(doc: dict[str, Any]) -> StoredBlock:
    hashes = doc.get("hashes", "")
    return StoredBlock(
        first=doc["_id"],
        texts=zlib.decompress(doc["entries"]).decode("utf-8").split("\n") if doc.get("entries") else [],
        hashes=[hashes[i : i + 64] for i in range(0, len(hashes), 64)],
        terms={name: frozenset(doc.get(name) or ()) for name in TERMS},
        earliest=doc.get("earliest"),
        latest=doc.get("latest"),
    )


def entry_from(doc: dict[str, Any]) -> TrailEntry:
    """An entry of the earlier layout (one document per entry): its canonical JSON with the queried fields
    stored beside it, which take precedence, so that a changed query field breaks the entry's hash."""
    content = json.loads(doc["entry"]) | {name: doc.get(name) for name in QUERIED} | {"sequence": doc["_id"]}
    return TrailEntry.from_content(content, doc["hash"])


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


def checkpoint_from(doc: dict[str, Any]) -> Checkpoint:
    return Checkpoint(doc["_id"], doc["hash"], doc["signed_at"], doc["key_id"], doc["signature"])


def checkpoint_document(c: Checkpoint) -> dict[str, Any]:
    return {"_id": c.sequence, "hash": c.hash, "signed_at": c.signed_at, "key_id": c.key_id, "signature": c.signature}


def blocks_of(entries: list[TrailEntry], size: int = BLOCK_ENTRIES) -> list[list[TrailEntry]]:
    """`entries` cut in blocks of `size`."""
    runs = [entries[i : i + size] for i in range(0, len(entries), size)]
    return [run for run in runs if run]


# -- start-up: indexes and the earlier layouts ----------------------------------------------------------


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


async def convert_to_blocks(db: AsyncDatabase) -> int:
    """Once (a marker in the head collection says it is done): a trail stored one document per entry becomes
    blocks. Each entry's text is its content as stored, so an entry changed before the conversion still fails
    its hash after it; the documents themselves are kept, renamed. An interrupted conversion starts over."""
    if await db[HEAD].find_one(LAYOUT) is not None:
        return 0
    converted = 0
    if await db[TRAIL].find_one({}, {"_id": 1}) is not None:
        await db[BLOCKS].delete_many({})
        run: list[TrailEntry] = []
        async for doc in db[TRAIL].find({}).sort("_id", ASCENDING).batch_size(BLOCK_ENTRIES):
            run.append(entry_from(doc))
            if len(run) == BLOCK_ENTRIES:
                await db[BLOCKS].insert_one(block_document(run))
                converted, run = converted + len(run), []
        if run:
            await db[BLOCKS].insert_one(block_document(run))
            converted += len(run)
        last = await db[BLOCKS].find_one({}, {"_id": 1}, sort=[("_id", DESCENDING)])  # no index yet: once
        if last is not None:
            await db[HEAD].update_one({"_id": "head"}, {"$set": {"block": last["_id"]}})
        await db[TRAIL].rename(f"{TRAIL}_entries_{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}")
        log.warning(
            "stored the trail's %d entries as blocks; the documents of one entry each are kept aside", converted
        )
    await db[HEAD].insert_one(
        LAYOUT | {"block_entries": BLOCK_ENTRIES, "converted": converted, "at": datetime.now(UTC)}
    )
    return converted


async def ensure_indexes(db: AsyncDatabase) -> None:
    await set_aside_legacy_trail(db)
    await convert_to_blocks(db)
    # One multikey index per kind of term: the local server answers an equality on one of them fast, and a
    # conjunction of two slowly, so a query uses one (see `_candidates`) and checks the rest per entry.
    for name in TERMS:
        await db[BLOCKS].create_index([(name, ASCENDING)])
    # Ranges of blocks are sought by their last sequence: the local server scans the whole collection for a
    # range of `_id` (it uses that index for equality only), and a scan reads every block.
    await db[BLOCKS].create_index([(BY_LAST, ASCENDING)])


# -- appending ------------------------------------------------------------------------------------------


@dataclass
class RecentEvents:
    """The event ids of the trail's last RECENT_EVENTS entries, in memory. The consumer commits its offsets
    after each append, so a redelivery is of the last appends; this replaces an index of every event id,
    which cost the local server one key per entry. Refreshed from the stored blocks whenever the head moved
    without this process (another replica, a restart)."""

    through: int = 0
    ids: dict[str, int] = field(default_factory=dict)  # event id → the last sequence of its block

    async def refresh(self, db: AsyncDatabase, session: AsyncClientSession, head: int) -> None:
        if head < self.through:
            self.through, self.ids = 0, {}
        if head == self.through:
            return
        since = max(self.through, head - RECENT_EVENTS)
        async for doc in db[BLOCKS].find({BY_LAST: {"$gt": since}}, {"event_ids": 1, "last": 1}, session=session):
            self.add(doc.get("event_ids", "").split("\n"), doc["last"])
        self.through = head

    def add(self, event_ids: Iterable[str], sequence: int) -> None:
        self.ids.update(dict.fromkeys(event_ids, sequence))
        if len(self.ids) > 2 * RECENT_EVENTS:
            oldest = sequence - RECENT_EVENTS
            self.ids = {i: s for i, s in self.ids.items() if s > oldest}


class MongoTrailAppend:
    def __init__(self, tx: Transaction, recent: RecentEvents, block_entries: int) -> None:
        self.tx = tx
        self.block_entries = block_entries
        self.recent = recent
        self.block: int | None = None  # the first sequence of the last stored block
        self.sequence: int | None = None  # the head's, as this transaction read it
        self.appended: list[TrailEntry] = []
        self.written = Head()  # the head as this transaction wrote it

    async def head(self) -> Head:
        doc = await self.tx.db[HEAD].find_one({"_id": "head"}, session=self.tx.session)
        self.sequence = doc["sequence"] if doc else 0
        if doc is None:
            return Head()
        self.block = doc.get("block")
        return Head(doc["sequence"], doc["hash"], doc.get("checkpoint_sequence", 0), doc.get("checkpoint_at"))

    async def unseen(self, event_ids: list[str]) -> set[str]:
        if self.sequence is None:
            await self.head()
        await self.recent.refresh(self.tx.db, self.tx.session, self.sequence or 0)
        return set(event_ids) - self.recent.ids.keys()

    async def append(self, entries: list[TrailEntry], checkpoints: list[Checkpoint], head: Head) -> None:
        session, db = self.tx.session, self.tx.db
        blocks = db[BLOCKS]
        earlier, room = None, 0  # a last block with room left: filled first, written anew
        if self.block is None and entries[0].sequence > 1:
            self.block = await _last_block(db, session, entries[0].sequence - 1)
        if self.block is not None and (used := entries[0].sequence - self.block) < self.block_entries:
            earlier = await blocks.find_one({"_id": self.block}, session=session)
            room = self.block_entries - used if earlier is not None else 0

        def documents() -> list[dict[str, Any]]:
            filled = [block_document(entries[:room], earlier)] if room else []
            return filled + [block_document(run) for run in blocks_of(entries[room:], self.block_entries)]

        runs = await _off_loop(len(entries), documents)
        last_block = runs[-1]["_id"]
        if room:
            await blocks.replace_one({"_id": runs[0]["_id"]}, runs[0], session=session)
            runs = runs[1:]
        if runs:
            await blocks.insert_many(runs, ordered=True, session=session)
        await db[HEAD].update_one(
            {"_id": "head"},
            {
                "$set": {
                    "sequence": head.sequence,
                    "hash": head.hash,
                    "checkpoint_sequence": head.checkpoint_sequence,
                    "checkpoint_at": head.checkpoint_at,
                    "block": last_block,
                }
            },
            upsert=True,
            session=session,
        )
        if checkpoints:
            await db[CHECKPOINTS].insert_many([checkpoint_document(c) for c in checkpoints], session=session)
        self.appended, self.written = entries, head


async def _last_block(db: AsyncDatabase, session: AsyncClientSession, sequence: int) -> int | None:
    """The block holding entry `sequence` (the head's): found by the index of their last sequences."""
    found = [doc["_id"] async for doc in db[BLOCKS].find({BY_LAST: {"$gte": sequence}}, {"_id": 1}, session=session)]
    return min(found, default=None)


async def _off_loop(size: int, work: Callable[[], Any]) -> Any:
    return work() if size <= IN_LOOP else await asyncio.to_thread(work)


# -- queries ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """A query as a block filter (one indexed term, the time span) and a test of each entry of a block."""

    blocks: dict[str, Any]
    needle: str | None  # a text every matching entry's canonical JSON contains: cheap before parsing
    matches: Callable[[TrailEntry], bool]


def _search(query: TrailQuery) -> Search:
    departments = {d for d in (query.department, query.visible_to) if d}
    actor_kind = "person" if query.person else "system" if query.system else None
    actor = query.person or query.system
    since = instant(query.since) if query.since is not None else None
    until = instant(query.until) if query.until is not None else None

    def matches(e: TrailEntry) -> bool:
        return (
            departments <= set(e.departments)
            and (actor_kind is None or (e.actor == actor and e.actor_kind == actor_kind))
            and not (query.person and query.system and query.person != query.system)
            and all(
                value is None or getattr(e, name) == value
                for name, value in (
                    ("resource", query.resource),
                    ("purpose", query.purpose),
                    ("action", query.action),
                    ("event_type", query.event_type),
                )
            )
            and (since is None or e.occurred_at >= since)
            and (until is None or e.occurred_at < until)
        )

    # the most selective term the query has, as the one indexed condition on the blocks
    for name, value in (
        ("resources", query.resource),
        ("actors", actor),
        ("purposes", query.purpose),
        ("departments", min(departments) if departments else None),
        ("event_types", query.event_type),
        ("actions", query.action),
    ):
        if value is not None:
            term: dict[str, Any] = {name: value}
            needle: str | None = json.dumps(value, ensure_ascii=False)
            break
    else:
        term, needle = {}, None
    if since is not None:
        term["latest"] = {"$gte": since}
    if until is not None:
        term["earliest"] = {"$lt": until}
    return Search(term, needle, matches)


class MongoTrail:
    def __init__(
        self,
        db: AsyncDatabase,
        transaction: Callable[[], AbstractAsyncContextManager[Transaction]],
        block_entries: int = BLOCK_ENTRIES,
        committed: Callable[[list[TrailEntry], Head], None] | None = None,
    ) -> None:
        self.db = db
        self.block_entries = block_entries
        self.transaction = transaction  # the runtime's: with the consumer's processed-event record and outbox
        self.recent = RecentEvents()
        self.committed = committed  # told of each committed append (the metrics)

    @asynccontextmanager
    async def append(self) -> AsyncIterator[MongoTrailAppend]:
        async with self.transaction() as tx:
            appending = MongoTrailAppend(tx, self.recent, self.block_entries)
            yield appending
        if appending.appended:  # committed: the ids are in the trail now
            self.recent.add((e.event_id for e in appending.appended), appending.appended[-1].sequence)
            self.recent.through = appending.appended[-1].sequence
            if self.committed is not None:
                self.committed(appending.appended, appending.written)

    async def _blocks_from(self, sequence: int, last: int) -> AsyncIterator[StoredBlock]:
        """Blocks in order from the one holding entry `sequence` up to the one holding `last`: sought by their
        last sequence (a block holding `last` ends at most LARGEST_BLOCK - 1 after it), read in one pass along
        that index. No sort is asked (the local server sorts slowly even along the index it scans); the scan
        gives them in order, and a block out of order would break a verification, never pass one."""
        where = {BY_LAST: {"$gte": sequence, "$lt": last + LARGEST_BLOCK}}
        async for doc in self.db[BLOCKS].find(where).batch_size(READ_BLOCKS):
            if doc["_id"] <= last:
                yield await asyncio.to_thread(block_from, doc)  # decompressing a block: milliseconds

    async def _found(self, where: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The blocks `where` finds by one index, in order: their ids first, then the blocks a few at a time
        by `_id` (the local server would sort whole blocks in memory, and a query may find thousands)."""
        ids = sorted([doc["_id"] async for doc in self.db[BLOCKS].find(where, {"_id": 1})])  # no sort asked:
        # the local server sorts slowly even along the index it uses
        for n in range(0, len(ids), READ_BLOCKS):
            group = ids[n : n + READ_BLOCKS]
            docs = {doc["_id"]: doc async for doc in self.db[BLOCKS].find({"_id": {"$in": group}})}
            for found in group:
                if found in docs:
                    yield docs[found]

    async def _matching(self, query: TrailQuery) -> AsyncIterator[list[TrailEntry]]:
        search = _search(query)
        async for doc in self._found(search.blocks):
            yield await asyncio.to_thread(_pick, doc, search)

    async def after(self, *, after_sequence: int, limit: int, event_type: str | None) -> list[TrailEntry]:
        found: list[TrailEntry] = []
        if event_type is None:  # `limit` entries on are in blocks ending before this
            blocks = self._blocks_from(after_sequence + 1, after_sequence + limit)
        else:
            where = {"event_types": event_type, BY_LAST: {"$gt": after_sequence}}
            blocks = (await asyncio.to_thread(block_from, doc) async for doc in self._found(where))
        async for block in blocks:
            found += [
                e
                for e in block.entries()
                if e.sequence > after_sequence and (event_type is None or e.event_type == event_type)
            ]
            if len(found) >= limit:
                break
        return sorted(found, key=lambda e: e.sequence)[:limit]

    async def find(self, query: TrailQuery, *, offset: int, limit: int) -> tuple[list[TrailEntry], int]:
        page: list[TrailEntry] = []
        total = 0
        async for entries in self._matching(query):
            if total + len(entries) > offset and len(page) < limit:
                page += entries[max(0, offset - total) :][: limit - len(page)]
            total += len(entries)
        return page, total

    async def export(self, query: TrailQuery, *, most: int) -> AsyncIterator[TrailEntry]:
        sent = 0
        async for entries in self._matching(query):
            for entry in entries[: most - sent]:
                yield entry
            sent += len(entries)
            if sent >= most:
                return

    async def last_sequence(self) -> int:
        """The end of the trail as far as anything says: the last stored entry, the head, the last checkpoint
        (an entry deleted at the end is still missing when the head or a checkpoint names it)."""
        ends = [0]
        head = await self.db[HEAD].find_one({"_id": "head"})
        ends.append(head["sequence"] if head else 0)
        checkpoint = await self.db[CHECKPOINTS].find_one({}, {"_id": 1}, sort=[("_id", DESCENDING)])
        ends.append(checkpoint["_id"] if checkpoint else 0)
        ends += [doc["last"] async for doc in self.db[BLOCKS].find({BY_LAST: {"$gte": max(ends)}}, {"last": 1})]
        return max(ends)

    async def anchor(self, before: int) -> Checkpoint | None:
        doc = await self.db[CHECKPOINTS].find_one({"_id": {"$lt": before}}, sort=[("_id", DESCENDING)])
        return checkpoint_from(doc) if doc else None

    async def checkpoints(self, first: int, last: int) -> list[Checkpoint]:
        cursor = self.db[CHECKPOINTS].find({"_id": {"$gte": first, "$lte": last}}).sort("_id", ASCENDING)
        return [checkpoint_from(doc) async for doc in cursor]

    async def blocks(self, first: int, last: int) -> AsyncIterator[StoredBlock]:
        """The stored blocks holding entries `first`..`last`, in order, a few at a time (bounded memory)."""
        async for block in self._blocks_from(first, last):
            yield block

    async def entries(self, first: int, last: int) -> AsyncIterator[list[TrailEntry]]:
        """Entries `first`..`last` in stored order, a block at a time."""
        async for block in self.blocks(first, last):
            yield [e for e in block.entries() if first <= e.sequence <= last]


def _pick(doc: dict[str, Any], search: Search) -> list[TrailEntry]:
    """The entries of a stored block the search asks for."""
    block, picked = block_from(doc), []
    for text, hash in zip(block.texts, block.hashes, strict=False):
        if search.needle is None or search.needle in text:
            entry = TrailEntry.from_text(text, hash)
            if search.matches(entry):
                picked.append(entry)
    return picked
