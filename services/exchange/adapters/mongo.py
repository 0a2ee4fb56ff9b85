"""Exchange state in MongoDB: current records, change history (the change feed), digest leaves, what the
catalog says of each resource, and refused changes. A batch of changes is written in one transaction with
bulk writes."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

from datashare_adapter.digest import MASK, bucket_of, top_of
from pymongo import ASCENDING, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from common.events import Event
from common.mongo import Transaction
from common.runtime import Runtime
from services.exchange.domain.records import DataChange, Outcome, SubjectRecord
from services.exchange.domain.resources import ItemSpec, ResourceSchema
from services.exchange.ports import RefusedChange, ResourceState

RECORDS = "exchange_records"
HISTORY = "exchange_history"
SEQUENCES = "exchange_sequences"
LEAVES = "exchange_digest_leaves"
RESOURCES = "exchange_resources"
REFUSALS = "exchange_refusals"
WITHDRAWALS = "exchange_withdrawals"  # the latest entry version withdrawn per resource
IN_CHUNK = 100  # ids per $in: the local server's $in slows down faster than linearly with its length


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + IN_CHUNK] for i in range(0, len(values), IN_CHUNK)]


def record_id(resource_code: str, subject_key: str) -> str:
    """Records of one digest key range sit together under their id."""
    return f"{_bucket_prefix(resource_code, bucket_of(subject_key))}{subject_key}"


def _bucket_prefix(resource_code: str, bucket: int) -> str:
    return f"{resource_code}|{bucket:05d}|"


def _to_record(doc: dict[str, Any]) -> SubjectRecord:
    return SubjectRecord(**{k: v for k, v in doc.items() if k not in ("_id", "key_range")})


def history_doc(change: DataChange, applied: bool, sequence: int | None) -> dict[str, Any]:
    return {  # built by hand: dataclasses.asdict deep-copies, which shows at thousands of changes a second
        "_id": change.change_id,
        "change_id": change.change_id,
        "resource_code": change.resource_code,
        "provider_code": change.provider_code,
        "operation": change.operation.value,
        "subject_key": change.subject_key,
        "subject_kind": change.subject_kind,
        "fields": change.fields,
        "source_version": change.source_version,
        "changed_at": change.changed_at,
        "applied": applied,
        "sequence": sequence,
        "sent_by": change.sent_by,
    }


def record_doc(r: SubjectRecord) -> dict[str, Any]:
    return {
        "resource_code": r.resource_code,
        "provider_code": r.provider_code,
        "subject_key": r.subject_key,
        "subject_kind": r.subject_kind,
        "fields": r.fields,
        "source_version": r.source_version,
        "deleted": r.deleted,
        "last_change_id": r.last_change_id,
        "changed_at": r.changed_at,
        "digest": r.digest,
        "bucket": r.bucket,
        "key_range": _bucket_prefix(r.resource_code, r.bucket),
    }


def _schema_of(doc: dict[str, Any]) -> ResourceSchema:
    return ResourceSchema(
        doc["_id"],
        doc["provider_code"],
        doc["name"],
        tuple(
            ItemSpec(i["name"], i["type"], i.get("length"), i.get("share_type"), i.get("sensitive", False))
            for i in doc["items"]
        ),
        doc.get("update_cycle"),
        doc.get("published", True),
        doc.get("version", 0),
        doc.get("share_type", "CONDITIONAL"),
        doc.get("not_shared_basis"),
        tuple(doc.get("share_methods") or ()),
        _date_of(doc.get("confidentiality_reviewed_on")),
    )


def _date_of(value: datetime | None) -> date | None:
    """MongoDB keeps dates as datetimes at midnight."""
    return value.date() if value is not None else None


def _state_of(doc: dict[str, Any], sequence: int) -> ResourceState:
    records = doc.get("records", 0)
    return ResourceState(_schema_of(doc), doc["published_at"], doc.get("last_change_at"), records, sequence)


def _refusal_of(doc: dict[str, Any]) -> RefusedChange:
    return RefusedChange(
        doc.get("change_id", doc["_id"]),
        doc["resource_code"],
        doc["provider_code"],
        doc["subject_key"],
        doc["rule"],
        doc["detail"],
    )


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[HISTORY].create_index([("resource_code", ASCENDING), ("subject_key", ASCENDING)])
    await db[HISTORY].create_index([("resource_code", ASCENDING), ("sequence", ASCENDING)])
    await db[RECORDS].create_index([("subject_key", ASCENDING)])
    # A digest key range is read by equality: the local server's planner scans the collection for id ranges.
    await db[RECORDS].create_index([("key_range", ASCENDING)])
    await db[LEAVES].create_index([("resource_code", ASCENDING)])
    await db[REFUSALS].create_index([("provider_code", ASCENDING), ("at", ASCENDING)])


async def count_records(db: AsyncDatabase) -> None:
    """Resources stored before their record count was kept get it from their digest leaves, before this
    process ingests anything."""
    async for doc in db[RESOURCES].find({"records": {"$exists": False}}, {"_id": 1}):
        leaves = db[LEAVES].find({"resource_code": doc["_id"]}, {"count": 1})
        records = sum([sum(leaf.get("count", {}).values()) async for leaf in leaves])
        uncounted = {"_id": doc["_id"], "records": {"$exists": False}}
        await db[RESOURCES].update_one(uncounted, {"$set": {"records": records}})


class MongoExchangeTransaction:
    def __init__(self, tx: Transaction) -> None:
        self.db: AsyncDatabase = tx.db
        self.session: AsyncClientSession = tx.session
        self.emit_event = tx.emit

    def emit(self, topic: str, event: Event) -> None:
        self.emit_event(topic, event)

    async def schemas(self, resource_codes: set[str]) -> dict[str, ResourceSchema]:
        cursor = self.db[RESOURCES].find({"_id": {"$in": sorted(resource_codes)}}, session=self.session)
        return {d["_id"]: _schema_of(d) async for d in cursor}

    async def unseen(self, change_ids: list[str]) -> set[str]:
        if not change_ids:
            return set()
        seen: set[str] = set()
        for part in _chunks(change_ids):
            cursor = self.db[HISTORY].find({"_id": {"$in": part}}, {"_id": 1}, session=self.session)
            seen |= {d["_id"] async for d in cursor}
        return set(change_ids) - seen

    async def records(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], SubjectRecord]:
        if not keys:
            return {}
        found: dict[tuple[str, str], SubjectRecord] = {}
        for part in _chunks([record_id(*k) for k in keys]):
            async for doc in self.db[RECORDS].find({"_id": {"$in": part}}, {"fields": 0}, session=self.session):
                record = _to_record(doc)
                found[record.key] = record
        return found

    async def store(self, outcomes: list[Outcome]) -> dict[str, int]:
        if not outcomes:
            return {}
        sequences = await self._number([o.change for o in outcomes if o.after is not None])
        await self.db[HISTORY].insert_many(
            [history_doc(o.change, o.after is not None, sequences.get(o.change.change_id)) for o in outcomes],
            ordered=False,
            session=self.session,
        )
        final: dict[tuple[str, str], SubjectRecord] = {}
        leaves: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        for o in outcomes:
            if o.after is None:
                continue
            final[o.after.key] = o.after
            leaf = leaves[o.after.resource_code, o.after.bucket]
            leaf[0] += o.after.digest - (o.before.digest if o.before else 0)
            leaf[1] += (0 if o.after.deleted else 1) - (1 if o.before and not o.before.deleted else 0)
        if final:
            await self.db[RECORDS].bulk_write(
                [ReplaceOne({"_id": record_id(*k)}, record_doc(r), upsert=True) for k, r in final.items()],
                ordered=False,
                session=self.session,
            )
        # One document per top node holds its 256 leaves: a batch updates at most 256 documents per resource.
        increments: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
        for (code, bucket), (total, count) in leaves.items():
            if (total, count) != (0, 0):
                increments[code, top_of(bucket)] |= {f"sum.{bucket}": total, f"count.{bucket}": count}
        if increments:
            await self.db[LEAVES].bulk_write(
                [
                    UpdateOne(
                        {"_id": f"{code}|{top}"},
                        {"$inc": inc, "$set": {"resource_code": code, "top": top}},
                        upsert=True,
                    )
                    for (code, top), inc in increments.items()
                ],
                ordered=False,
                session=self.session,
            )
        records: Counter[str] = Counter()
        for (code, _), (_, count) in leaves.items():
            records[code] += count
        now = datetime.now(UTC)
        for code in {o.change.resource_code for o in outcomes if o.after is not None}:
            update = {"$max": {"last_change_at": now}, "$inc": {"records": records[code]}}
            await self.db[RESOURCES].update_one({"_id": code}, update, session=self.session)
        return sequences

    async def _number(self, applied: list[DataChange]) -> dict[str, int]:
        """Consecutive sequence numbers per resource, in arrival order."""
        numbered: dict[str, int] = {}
        for code, count in Counter(c.resource_code for c in applied).items():
            doc = await self.db[SEQUENCES].find_one_and_update(
                {"_id": code},
                {"$inc": {"value": count}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=self.session,
            )
            assert doc is not None  # upsert with ReturnDocument.AFTER always returns the document
            next_number = int(doc["value"]) - count + 1
            for change in applied:
                if change.resource_code == code:
                    numbered[change.change_id] = next_number
                    next_number += 1
        return numbered

    async def refuse(self, refused: list[RefusedChange]) -> list[RefusedChange]:
        # Looked up first, not caught as duplicate-key errors: a write error aborts the whole transaction.
        # A refused sender is kept apart: a forged change must not take the place of the provider's own.
        unique = {r.change_id + ("|sender" if r.rule == "sender" else ""): r for r in refused if r.change_id}
        known: set[str] = set()
        for part in _chunks(list(unique)):
            known |= {
                d["_id"] async for d in self.db[REFUSALS].find({"_id": {"$in": part}}, {"_id": 1}, session=self.session)
            }
        new = [(_id, r) for _id, r in unique.items() if _id not in known]
        if new:
            now = datetime.now(UTC)
            await self.db[REFUSALS].insert_many(
                [asdict(r) | {"_id": _id, "at": now} for _id, r in new], session=self.session
            )
        return [r for _, r in new]

    async def withdrawn_version(self, resource_code: str) -> int | None:
        doc = await self.db[WITHDRAWALS].find_one({"_id": resource_code}, session=self.session)
        return int(doc["version"]) if doc else None

    async def put_schema(self, schema: ResourceSchema, version: int, published_at: datetime) -> None:
        await self.db[RESOURCES].update_one(
            {"_id": schema.resource_code},
            {
                "$set": {
                    "provider_code": schema.provider_code,
                    "name": schema.name,
                    "items": [asdict(i) for i in schema.items],
                    "update_cycle": schema.update_cycle,
                    "published": schema.published,
                    "version": version,
                    "share_type": schema.share_type,
                    "not_shared_basis": schema.not_shared_basis,
                    "share_methods": list(schema.share_methods),
                    "confidentiality_reviewed_on": (
                        datetime.combine(schema.confidentiality_reviewed_on, datetime.min.time())
                        if schema.confidentiality_reviewed_on
                        else None
                    ),
                },
                "$setOnInsert": {"published_at": published_at, "last_change_at": None, "records": 0},
            },
            upsert=True,
            session=self.session,
        )

    async def withdraw(self, resource_code: str, version: int) -> None:
        await self.db[WITHDRAWALS].update_one(
            {"_id": resource_code}, {"$max": {"version": version}}, upsert=True, session=self.session
        )
        await self.db[RESOURCES].update_one(  # a later version published meanwhile stays
            {"_id": resource_code, "version": {"$not": {"$gt": version}}},
            {"$set": {"published": False}},
            session=self.session,
        )


class MongoUnitOfWork:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.db = runtime.db
        self.records = runtime.db[RECORDS]  # built once: one per request was 5% of a record read

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoExchangeTransaction]:
        async with self.runtime.transaction() as tx:
            yield MongoExchangeTransaction(tx)

    async def record(self, resource_code: str, subject_key: str) -> SubjectRecord | None:
        doc = await self.records.find_one({"_id": record_id(resource_code, subject_key)})
        return _to_record(doc) if doc else None

    async def records_of(self, resource_code: str, subject_keys: list[str]) -> list[SubjectRecord]:
        """The current records of the given subjects that exist (deleted ones included, as `record` does)."""
        found = []
        for part in _chunks([record_id(resource_code, k) for k in subject_keys]):
            found += [_to_record(d) async for d in self.db[RECORDS].find({"_id": {"$in": part}})]
        return found

    async def records_in(self, resource_code: str) -> AsyncIterator[SubjectRecord]:
        """Every current, undeleted record of a resource, in key-range order."""
        prefix = {"$gte": f"{resource_code}|", "$lt": f"{resource_code}|~"}
        async for doc in self.db[RECORDS].find({"key_range": prefix, "deleted": False}):
            yield _to_record(doc)

    async def records_from(
        self, resource_code: str, bucket: int, after_key: str, until: int
    ) -> AsyncIterator[SubjectRecord]:
        """The current, undeleted records of a resource in the key ranges `bucket` to `until` (excluded), those
        of `bucket` after the subject `after_key` ("": all), in (range, key) order: the record's id is its
        range's prefix and its key, so the id index gives the order and bounds the ranges read."""
        first = _bucket_prefix(resource_code, bucket)
        ids = {"$gt": first + after_key} if after_key else {"$gte": first}
        ids["$lt"] = _bucket_prefix(resource_code, until)
        async for doc in self.db[RECORDS].find({"_id": ids, "deleted": False}).sort("_id", ASCENDING):
            yield _to_record(doc)

    async def subject_records(self, subject_key: str) -> list[SubjectRecord]:
        cursor = self.records.find({"subject_key": subject_key, "deleted": False}).sort("resource_code")
        return [_to_record(d) async for d in cursor]

    async def history(self, resource_code: str, subject_key: str) -> list[dict]:
        cursor = self.db[HISTORY].find({"resource_code": resource_code, "subject_key": subject_key})
        return [
            {k: v for k, v in doc.items() if k not in ("_id", "subject_key")}
            for doc in await cursor.sort("source_version", ASCENDING).to_list()
        ]

    async def resource(self, resource_code: str) -> ResourceState | None:
        doc = await self.db[RESOURCES].find_one({"_id": resource_code})
        if doc is None:
            return None
        sequence = await self.db[SEQUENCES].find_one({"_id": resource_code})
        return _state_of(doc, int(sequence["value"]) if sequence else 0)

    async def sequence(self, resource_code: str) -> int:
        """The sequence number of the resource's last change (0: none yet)."""
        doc = await self.db[SEQUENCES].find_one({"_id": resource_code})
        return int(doc["value"]) if doc else 0

    async def resources(self) -> list[ResourceState]:
        positions = {s["_id"]: int(s["value"]) async for s in self.db[SEQUENCES].find({})}  # one read for all
        return [_state_of(d, positions.get(d["_id"], 0)) async for d in self.db[RESOURCES].find({}).sort("_id")]

    async def changes_since(self, resource_code: str, sequence: int, limit: int) -> list[dict]:
        cursor = (
            self.db[HISTORY]
            .find({"resource_code": resource_code, "sequence": {"$gt": sequence}})
            .sort("sequence", ASCENDING)
            .limit(limit)
        )
        return [{k: v for k, v in d.items() if k not in ("_id", "applied")} async for d in cursor]

    async def leaves(self, resource_code: str) -> dict[int, tuple[int, int]]:
        found = {}
        async for doc in self.db[LEAVES].find({"resource_code": resource_code}):
            for bucket, count in doc.get("count", {}).items():
                if count:
                    found[int(bucket)] = (doc["sum"][bucket] & MASK, count)
        return found

    async def bucket_records(self, resource_code: str, buckets: list[int]) -> list[SubjectRecord]:
        ranges = [_bucket_prefix(resource_code, b) for b in sorted(set(buckets))]
        found = []
        for part in _chunks(ranges):
            found += [
                _to_record(d) async for d in self.db[RECORDS].find({"key_range": {"$in": part}, "deleted": False})
            ]
        return sorted(found, key=lambda r: r.subject_key)

    async def refusals(self, provider_code: str | None, limit: int) -> list[RefusedChange]:
        query = {"provider_code": provider_code} if provider_code else {}
        cursor = self.db[REFUSALS].find(query).sort("at", -1).limit(limit)
        return [_refusal_of(d) async for d in cursor]
