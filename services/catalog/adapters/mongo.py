"""Catalog state in MongoDB: one document per entry with all its versions; writes go through the
runtime's transaction (state + outbox) and are guarded by the entry's revision."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.events import Event
from common.mongo import Transaction
from common.runtime import Runtime
from services.catalog.domain.demands import DemandStatus, ShareDemand
from services.catalog.domain.dictionary import DataElement, Dictionary, ElementVersion, SourceClaim
from services.catalog.domain.entries import (
    CatalogEntry,
    Category,
    ConfidentialityReview,
    DataItem,
    EntryContent,
    EntryExists,
    EntryVersion,
    Finding,
    ItemType,
    MaintenanceConfirmed,
    OpenAttribute,
    PendingUpdate,
    ReviewRound,
    ShareMethod,
    ShareType,
    UpdateCycle,
    VersionConflict,
    VersionStatus,
    Withdrawal,
    content_digest,
)
from services.catalog.domain.search import Viewer, document_of
from services.catalog.domain.sources import claims_of
from services.catalog.domain.wording import worded
from services.catalog.ports import SearchIndex

log = logging.getLogger(__name__)

ENTRIES = "catalog_entries"
SEQUENCES = "catalog_sequences"
DEPARTMENTS = "catalog_departments"  # providers' names, from the directory's events
DEMANDS = "catalog_demands"
ELEMENTS = "catalog_dictionary"  # the data-element dictionary (数据元), one document per element
ELEMENT_VERSIONS = "catalog_dictionary_versions"  # every recorded state of every element
CLAIMS = "catalog_source_claims"  # published entries' items that are the source of an element
DICTIONARY_GUARD = "catalog_dictionary_guard"  # one record every change of the dictionary's names writes
MIGRATIONS = "catalog_migrations"  # one record per start-up migration done, so later starts skip it
DERIVE_CLAIMS = "derive_claims"


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[ENTRIES].create_index([("provider_code", ASCENDING)])
    await db[DEMANDS].create_index([("status", ASCENDING), ("filed_on", ASCENDING)])
    await db[CLAIMS].create_index([("resource_code", ASCENDING)])
    await db[ELEMENT_VERSIONS].create_index([("identifier", ASCENDING), ("version", ASCENDING)])
    await db[DICTIONARY_GUARD].update_one({"_id": "names"}, {"$setOnInsert": {"changes": 0}}, upsert=True)


async def derive_claims(uow: MongoUnitOfWork) -> None:
    """Start-up migration: entries published before the dictionary existed have no claims; each entry in force
    claims the elements its items are the source of, as its approval would have. Runs until it is recorded done
    in MIGRATIONS; later starts skip it (every approval since writes its claims itself). Idempotent (a claim
    stored is kept), one transaction per entry that re-reads it and its own claims, so a concurrent withdrawal is
    never undone and two replicas starting at once conflict on an entry, not corrupt it (the loser's setup runs
    again and finds the claims there). Clashes are not settled here: two departments claiming one element both
    keep their claims, the later is listed by `/duplicate-sources` until the IT office assigns the source."""
    migrations = uow.runtime.db[MIGRATIONS]
    if await migrations.find_one({"_id": DERIVE_CLAIMS}) is not None:
        return
    derived = 0
    codes = [d["_id"] async for d in uow.runtime.db[ENTRIES].find({"in_force": {"$ne": None}}, {"_id": 1})]
    for code in codes:
        async with uow() as tx:
            entry = await tx.entry(code)
            if entry is None or entry.in_force is None:
                continue
            wanted = claims_of(entry)
            held = {c.element for c in await tx.claims_of_entry(code)}
            missing = [c for c in wanted if c.element not in held]
            if missing:
                await tx.replace_claims(code, [c for c in wanted if c.element in held] + missing)
                derived += len(missing)
    done = {"done_at": datetime.now(UTC), "entries": len(codes), "claims_derived": derived}
    try:
        await migrations.update_one({"_id": DERIVE_CLAIMS}, {"$setOnInsert": done}, upsert=True)
    except DuplicateKeyError:
        pass  # another replica recorded it at the same moment
    if derived:
        log.info("derived %d source claims of entries published before the dictionary", derived)


def element_doc(e: DataElement) -> dict[str, Any]:
    return {
        "_id": e.identifier,
        "name": e.name,
        "aliases": list(e.aliases),
        "definition": e.definition,
        "type": e.type,
        "source_code": e.source_code,
        "version": e.version,
    }


def element_of(d: dict[str, Any]) -> DataElement:
    return DataElement(
        d["_id"], d["name"], tuple(d["aliases"]), d["definition"], ItemType(d["type"]), d["source_code"], d["version"]
    )


async def _dictionary(db: AsyncDatabase, session: AsyncClientSession | None) -> Dictionary:
    return Dictionary(tuple([element_of(d) async for d in db[ELEMENTS].find({}, session=session).sort("_id")]))


async def _claims(
    db: AsyncDatabase, session: AsyncClientSession | None, query: dict[str, Any] | None = None
) -> list[SourceClaim]:
    cursor = db[CLAIMS].find(query or {}, session=session).sort("_id")
    return [SourceClaim(d["element"], d["provider_code"], d["resource_code"]) async for d in cursor]


def demand_doc(d: ShareDemand) -> dict[str, Any]:
    return {
        "_id": d.demand_id,
        "requester_code": d.requester_code,
        "title": d.title,
        "description": d.description,
        "wanted_items": list(d.wanted_items),
        "filed_by": d.filed_by,
        "filed_on": _day(d.filed_on),
        "status": d.status,
        "resource_code": d.resource_code,
        "confirmed_by": d.confirmed_by,
        "covered_items": list(d.covered_items),
        "match_reason": d.match_reason,
        "closed_by": d.closed_by,
        "reason": d.reason,
        "legal_basis": d.legal_basis,
    }


def demand_of(doc: dict[str, Any]) -> ShareDemand:
    return ShareDemand(
        doc["_id"],
        doc["requester_code"],
        doc["title"],
        doc["description"],
        tuple(doc["wanted_items"]),
        doc["filed_by"],
        doc["filed_on"].date(),
        DemandStatus(doc["status"]),
        doc["resource_code"],
        doc["confirmed_by"],
        tuple(doc.get("covered_items", ())),
        doc.get("match_reason", ""),
        doc.get("closed_by"),
        doc.get("reason", ""),
        doc.get("legal_basis", ""),
    )


def _day(value: date | None) -> datetime | None:
    return None if value is None else datetime(value.year, value.month, value.day, tzinfo=UTC)


def content_doc(c: EntryContent) -> dict[str, Any]:
    review = c.confidentiality_review
    return {
        "name": c.name,
        "abstract": c.abstract,
        "category": c.category,
        "format": c.format,
        "data_items": [
            {
                "name": i.name,
                "type": i.type,
                "description": i.description,
                "length": i.length,
                "share_type": i.share_type,
                "sensitive": i.sensitive,
                "not_shared_basis": i.not_shared_basis,
                "source_of": i.source_of,
                "refers_to": i.refers_to,
            }
            for i in c.data_items
        ],
        "share_type": c.share_type,
        "share_conditions": c.share_conditions,
        "not_shared_basis": c.not_shared_basis,
        "share_methods": sorted(c.share_methods),
        "open_attribute": c.open_attribute,
        "update_cycle": c.update_cycle,
        "related_codes": list(c.related_codes),
        "confidentiality_review": None
        if review is None
        else {
            "reviewed_by": review.reviewed_by,
            "reviewed_on": _day(review.reviewed_on),
            "conclusion": review.conclusion,
        },
    }


def content_of(d: dict[str, Any]) -> EntryContent:
    review = d.get("confidentiality_review")
    return EntryContent(
        name=d["name"],
        abstract=d["abstract"],
        category=Category(d["category"]) if d["category"] else None,
        format=d["format"],
        data_items=tuple(
            DataItem(
                i["name"],
                ItemType(i["type"]),
                i["description"],
                i["length"],
                ShareType(i["share_type"]) if i["share_type"] else None,
                i["sensitive"],
                not_shared_basis=i.get("not_shared_basis", ""),
                source_of=i.get("source_of", ""),
                refers_to=i.get("refers_to", ""),
            )
            for i in d["data_items"]
        ),
        share_type=ShareType(d["share_type"]),
        share_conditions=d["share_conditions"],
        not_shared_basis=d["not_shared_basis"],
        share_methods=frozenset(ShareMethod(m) for m in d["share_methods"]),
        open_attribute=OpenAttribute(d["open_attribute"]),
        update_cycle=UpdateCycle(d["update_cycle"]) if d["update_cycle"] else None,
        related_codes=tuple(d["related_codes"]),
        confidentiality_review=None
        if review is None
        else ConfidentialityReview(review["reviewed_by"], review["reviewed_on"].date(), review["conclusion"]),
    )


def withdrawal_doc(w: Withdrawal | None) -> dict[str, Any] | None:
    return (
        None
        if w is None
        else {"reason": w.reason, "withdrawn_by": w.withdrawn_by, "withdrawn_on": _day(w.withdrawn_on)}
    )


def withdrawal_of(d: dict[str, Any] | None) -> Withdrawal | None:
    return None if d is None else Withdrawal(d["reason"], d["withdrawn_by"], d["withdrawn_on"].date())


def entry_doc(entry: CatalogEntry) -> dict[str, Any]:
    if entry.withheld:  # what another department reads of an entry is not the entry
        raise ValueError(f"{entry.resource_code}: an entry as another department reads it is never stored")
    return {
        "_id": entry.resource_code,
        "provider_code": entry.provider_code,
        "revision": entry.revision,
        "created_at": entry.created_at,
        "pending_update": None
        if entry.pending_update is None
        else {
            "changed_on": _day(entry.pending_update.changed_on),
            "due_on": _day(entry.pending_update.due_on),
            "reason": entry.pending_update.reason,
        },
        "overdue_notices": list(entry.overdue_notices),
        "source_exceptions": [list(pair) for pair in entry.source_exceptions],
        "excepted_clashes": [list(c) for c in entry.excepted_clashes],
        "withdrawal": withdrawal_doc(entry.withdrawal),
        "maintenance": [
            {"confirmed_on": _day(m.confirmed_on), "confirmed_by": m.confirmed_by, "note": m.note}
            for m in entry.maintenance
        ],
        "status": entry.latest.status,
        "in_force": entry.in_force.version if entry.in_force else None,
        "versions": [
            {
                "version": v.version,
                "content": content_doc(v.content),
                "status": v.status,
                "compiled_by": v.compiled_by,
                "updated_at": v.updated_at,
                "reviewed_by": v.reviewed_by,
                "findings": _findings_doc(v.findings),
                "published_on": _day(v.published_on),
                "edited_by": list(v.edited_by),
                "withdrawal": withdrawal_doc(v.withdrawal),
                "content_kept": v.content_kept,
                "content_digest": v.content_digest,
                "returns": [
                    {
                        "reviewed_by": r.reviewed_by,
                        "returned_at": r.returned_at,
                        "findings": _findings_doc(r.findings),
                        "content_digest": r.content_digest,
                    }
                    for r in v.returns
                ],
            }
            for v in entry.versions
        ],
    }


def _entries_query(provider_code: str | None, viewer: Viewer | None) -> dict[str, Any]:
    """Entries of one provider or all; for a viewer outside oversight only those with a version in force, or
    of its own department."""
    query: dict[str, Any] = {"provider_code": provider_code} if provider_code else {}
    if viewer is not None and not viewer.oversight:
        readable: list[dict[str, Any]] = [{"in_force": {"$ne": None}}]
        if viewer.department_code is not None:
            readable.append({"provider_code": viewer.department_code})
        query["$or"] = readable
    return query


def _overdue_queries(today: date) -> list[dict[str, Any]]:
    """Entries in force with a reported change due before `today`; those whose version in force was published
    and every maintenance confirmed over 365 days ago (a year after a day is never sooner, `one_year_after`, so no
    overdue entry is left out; the few a day early are left out by `CatalogEntry.overdue`). Two queries, not one
    `$or`: the local database server reads every entry for an `$or`, where it uses the provider's index."""
    year_ago = _day(today - timedelta(days=365))
    return [
        {"in_force": {"$ne": None}, "pending_update.due_on": {"$lt": _day(today)}},
        {
            "in_force": {"$ne": None},
            "versions": {"$elemMatch": {"status": VersionStatus.PUBLISHED.value, "published_on": {"$lt": year_ago}}},
            "maintenance": {"$not": {"$elemMatch": {"confirmed_on": {"$gte": year_ago}}}},
        },
    ]


def entry_of(doc: dict[str, Any]) -> CatalogEntry:
    versions = tuple(
        EntryVersion(
            version=v["version"],
            content=content_of(v["content"]),
            status=VersionStatus(v["status"]),
            compiled_by=v["compiled_by"],
            updated_at=v["updated_at"],
            reviewed_by=v["reviewed_by"],
            findings=_findings_of(v["findings"]),
            published_on=v["published_on"].date() if v["published_on"] else None,
            edited_by=tuple(v.get("edited_by") or [v["compiled_by"]]),
            withdrawal=withdrawal_of(v.get("withdrawal")),
            content_kept=v.get("content_kept", True),
            content_digest=v.get("content_digest", ""),
            returns=tuple(
                ReviewRound(r["reviewed_by"], r["returned_at"], _findings_of(r["findings"]), _returned_digest(r))
                for r in v.get("returns", [])
            ),
        )
        for v in doc["versions"]
    )
    pending = doc.get("pending_update")
    return CatalogEntry(
        doc["_id"],
        doc["provider_code"],
        versions,
        doc["revision"],
        doc["created_at"],
        pending_update=None
        if pending is None
        else PendingUpdate(pending["changed_on"].date(), pending["due_on"].date(), pending["reason"]),
        overdue_notices=tuple(doc.get("overdue_notices", [])),
        source_exceptions=tuple((e, b) for e, b in doc.get("source_exceptions", [])),
        excepted_clashes=tuple((i, e, k) for i, e, k in doc.get("excepted_clashes", [])),
        withdrawal=withdrawal_of(doc.get("withdrawal")),
        maintenance=tuple(
            MaintenanceConfirmed(m["confirmed_on"].date(), m["confirmed_by"], m["note"])
            for m in doc.get("maintenance", [])
        ),
    )


def _returned_digest(doc: dict[str, Any]) -> str:
    """Returns stored before digests were kept carry the whole content."""
    return doc["content_digest"] if "content_digest" in doc else content_digest(content_of(doc["content"]))


def _findings_doc(findings: tuple[Finding, ...]) -> list[dict[str, str]]:
    return [{"field": f.field, "finding": f.finding} for f in findings]


def _findings_of(docs: list[dict[str, str]]) -> tuple[Finding, ...]:
    return tuple(Finding(f["field"], f["finding"]) for f in docs)


class MongoCatalogTransaction:
    def __init__(self, tx: Transaction, contents_kept: int = 20) -> None:
        self.contents_kept = contents_kept  # full contents an entry keeps (CatalogEntry.keeping_contents)
        self.tx = tx
        self.db: AsyncDatabase = tx.db
        self.session: AsyncClientSession = tx.session

    def emit(self, topic: str, event: Event) -> None:
        self.tx.emit(topic, event)

    def emit_tombstone(self, topic: str, key: str) -> None:
        self.tx.emit_tombstone(topic, key)

    async def entry(self, resource_code: str) -> CatalogEntry | None:
        doc = await self.db[ENTRIES].find_one({"_id": resource_code}, session=self.session)
        return entry_of(doc) if doc else None

    async def add(self, entry: CatalogEntry) -> None:
        try:
            await self.db[ENTRIES].insert_one(
                entry_doc(entry.keeping_contents(self.contents_kept)), session=self.session
            )
        except DuplicateKeyError:
            raise worded(
                EntryExists("resource_code", f"{entry.resource_code} is already in the catalog"),
                "catalog.entry.exists",
                code=entry.resource_code,
            ) from None

    async def save(self, entry: CatalogEntry, expected_revision: int) -> None:
        result = await self.db[ENTRIES].replace_one(
            {"_id": entry.resource_code, "revision": expected_revision},
            entry_doc(entry.keeping_contents(self.contents_kept)),
            session=self.session,
        )
        if result.matched_count != 1:
            raise worded(
                VersionConflict("revision", "the entry changed meanwhile; reload it and apply your change again"),
                "catalog.entry.stale_write",
            )

    async def next_sequence(self, classification: str) -> int:
        doc = await self.db[SEQUENCES].find_one_and_update(
            {"_id": classification},
            {"$inc": {"value": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        assert doc is not None
        return int(doc["value"])

    async def dictionary(self) -> Dictionary:
        return await _dictionary(self.db, self.session)

    async def source_claims(self) -> list[SourceClaim]:
        return await _claims(self.db, self.session)

    async def claims_of_entry(self, resource_code: str) -> list[SourceClaim]:
        """The claims of one entry, read by the index on resource code."""
        return await _claims(self.db, self.session, {"resource_code": resource_code})

    async def replace_claims(self, resource_code: str, claims: list[SourceClaim]) -> None:
        await self.db[CLAIMS].delete_many({"resource_code": resource_code}, session=self.session)
        if claims:
            docs = [
                {
                    "_id": f"{c.resource_code}|{c.element}",
                    "element": c.element,
                    "provider_code": c.provider_code,
                    "resource_code": c.resource_code,
                }
                for c in claims
            ]
            await self.db[CLAIMS].insert_many(docs, session=self.session)

    async def guard_elements(self, identifiers: list[str]) -> None:
        if identifiers:
            await self.db[ELEMENTS].update_many(
                {"_id": {"$in": identifiers}}, {"$inc": {"claim_seq": 1}}, session=self.session
            )

    async def guard_names(self) -> None:
        await self.db[DICTIONARY_GUARD].update_one(
            {"_id": "names"}, {"$inc": {"changes": 1}}, upsert=True, session=self.session
        )

    async def referring_entries(self, elements: list[str]) -> list[str]:
        if not elements:
            return []
        in_force = {"status": VersionStatus.PUBLISHED.value, "content.data_items.refers_to": {"$in": elements}}
        cursor = self.db[ENTRIES].find({"versions": {"$elemMatch": in_force}}, {"_id": 1}, session=self.session)
        return sorted([d["_id"] async for d in cursor])

    async def save_element(self, element: DataElement, changed_by: str) -> None:
        await self.db[ELEMENTS].replace_one(
            {"_id": element.identifier}, element_doc(element), upsert=True, session=self.session
        )
        await self._record_version(element, changed_by, removed=False)

    async def remove_element(self, identifier: str, changed_by: str) -> None:
        doc = await self.db[ELEMENTS].find_one_and_delete({"_id": identifier}, session=self.session)
        if doc is not None:
            await self._record_version(element_of(doc), changed_by, removed=True)

    async def _record_version(self, element: DataElement, changed_by: str, removed: bool) -> None:
        await self.db[ELEMENT_VERSIONS].insert_one(
            {
                "identifier": element.identifier,
                "version": element.version,
                "element": element_doc(element),
                "changed_by": changed_by,
                "removed": removed,
                "changed_at": datetime.now(UTC),
            },
            session=self.session,
        )

    async def demand(self, demand_id: str) -> ShareDemand | None:
        doc = await self.db[DEMANDS].find_one({"_id": demand_id}, session=self.session)
        return demand_of(doc) if doc else None

    async def save_demand(self, demand: ShareDemand) -> None:
        await self.db[DEMANDS].replace_one(
            {"_id": demand.demand_id}, demand_doc(demand), upsert=True, session=self.session
        )

    async def department_name(self, code: str) -> str:
        doc = await self.db[DEPARTMENTS].find_one({"_id": code}, session=self.session)
        return doc["name"] if doc else ""

    async def record_department(self, code: str, name: str) -> None:
        await self.db[DEPARTMENTS].replace_one({"_id": code}, {"name": name}, upsert=True, session=self.session)


class MongoUnitOfWork:
    def __init__(self, runtime: Runtime, contents_kept: int = 20) -> None:
        self.runtime = runtime
        self.contents_kept = contents_kept

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoCatalogTransaction]:
        async with self.runtime.transaction() as tx:
            yield MongoCatalogTransaction(tx, self.contents_kept)

    async def entry(self, resource_code: str) -> CatalogEntry | None:
        doc = await self.runtime.db[ENTRIES].find_one({"_id": resource_code})
        return entry_of(doc) if doc else None

    async def entries(
        self, *, provider_code: str | None, limit: int, offset: int = 0, viewer: Viewer | None = None
    ) -> list[CatalogEntry]:
        query = _entries_query(provider_code, viewer)
        cursor = self.runtime.db[ENTRIES].find(query).sort("_id", ASCENDING).skip(offset).limit(limit)
        return [entry_of(doc) async for doc in cursor]

    async def count_entries(self, *, provider_code: str | None, viewer: Viewer | None = None) -> int:
        return await self.runtime.db[ENTRIES].count_documents(_entries_query(provider_code, viewer))

    async def overdue_candidates(self, *, provider_code: str | None, today: date) -> list[CatalogEntry]:
        found: dict[str, CatalogEntry] = {}
        for query in _overdue_queries(today):
            if provider_code:
                query["provider_code"] = provider_code
            async for doc in self.runtime.db[ENTRIES].find(query):
                if doc["_id"] not in found:  # overdue both ways: read twice, decoded once
                    found[doc["_id"]] = entry_of(doc)
        return list(found.values())

    async def entries_with_codes(self, codes: list[str]) -> list[CatalogEntry]:
        if not codes:
            return []
        return [entry_of(doc) async for doc in self.runtime.db[ENTRIES].find({"_id": {"$in": codes}})]

    async def demand(self, demand_id: str) -> ShareDemand | None:
        doc = await self.runtime.db[DEMANDS].find_one({"_id": demand_id})
        return demand_of(doc) if doc else None

    async def demands(
        self, *, status: DemandStatus | None, requester_code: str | None, offset: int = 0, limit: int | None = None
    ) -> list[ShareDemand]:
        cursor = (
            self.runtime.db[DEMANDS]
            .find(_demand_query(status, requester_code))
            .sort([("filed_on", ASCENDING), ("_id", ASCENDING)])
            .skip(offset)
        )
        if limit is not None:
            cursor = cursor.limit(limit)
        return [demand_of(d) async for d in cursor]

    async def count_demands(self, *, status: DemandStatus | None, requester_code: str | None) -> int:
        return await self.runtime.db[DEMANDS].count_documents(_demand_query(status, requester_code))

    async def dictionary(self) -> Dictionary:
        return await _dictionary(self.runtime.db, None)

    async def source_claims(self) -> list[SourceClaim]:
        return await _claims(self.runtime.db, None)

    async def element_versions(self, identifier: str) -> list[ElementVersion]:
        cursor = self.runtime.db[ELEMENT_VERSIONS].find({"identifier": identifier}).sort("_id", ASCENDING)
        return [
            ElementVersion(element_of(d["element"]), d["changed_by"], d["removed"], d["changed_at"])
            async for d in cursor
        ]

    async def department_names(self) -> dict[str, str]:
        return {d["_id"]: d["name"] async for d in self.runtime.db[DEPARTMENTS].find({})}


def _demand_query(status: DemandStatus | None, requester_code: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if status:
        query["status"] = status.value
    if requester_code:
        query["requester_code"] = requester_code
    return query


class CachedDepartmentNames:
    """Providers' names for search results without a database read per search: read again when older than
    `max_age` seconds, or when a code is missing and the last read is over a second old (a department the
    directory has just registered)."""

    def __init__(self, uow: MongoUnitOfWork, max_age: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.uow = uow
        self.max_age = max_age
        self.clock = clock
        self._names: dict[str, str] = {}
        self._read_at = -math.inf

    async def of(self, codes: Iterable[str]) -> dict[str, str]:
        age = self.clock() - self._read_at
        if age > self.max_age or (age > 1.0 and any(c not in self._names for c in codes)):
            self._names = await self.uow.department_names()
            self._read_at = self.clock()
        return self._names


CHANGE_WAIT_MS = 10_000


class EntryFollower:
    """Keeps a search index equal to the stored entries: opens the change stream first, then loads every
    entry, then applies changes as they come. The index ignores what it already knows at a later revision,
    so a change seen both in the load and in the stream is harmless."""

    def __init__(self, db: AsyncDatabase, index: SearchIndex, changed: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.index = index
        self.changed = changed  # told of every change besides (what is computed from the entries is stale)
        self.caught_up = False

    async def run(self) -> None:
        # A change ends the server's wait at once; the wait's length only sets how often an idle follower asks.
        watch = self.db[ENTRIES].watch(full_document="updateLookup", max_await_time_ms=CHANGE_WAIT_MS)
        async with await watch as stream:
            loaded = 0
            async for doc in self.db[ENTRIES].find({}):
                self._put(doc)
                loaded += 1
                if loaded % 200 == 0:  # a batch of thousands indexed in one go would starve the driver's heartbeats
                    await asyncio.sleep(0)
            self.changed()
            self.caught_up = True
            async for change in stream:
                self.changed()
                if change.get("fullDocument"):
                    self._put(change["fullDocument"])

    def _put(self, doc: dict[str, Any]) -> None:
        try:
            entry = entry_of(doc)
        except (KeyError, TypeError, ValueError) as exc:  # not an entry this version can read: skip, say so
            log.warning(
                "entry %s left out of the search index: unreadable (%s: %s)", doc.get("_id"), type(exc).__name__, exc
            )
            return
        self.index.put(document_of(entry))
