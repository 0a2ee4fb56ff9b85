"""Exchange state in MongoDB: current records, change history and per-resource sequence numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from common.events import Event
from common.mongo import Transaction
from common.runtime import Runtime
from services.exchange.domain.records import DataChange, SubjectRecord

RECORDS = "exchange_records"
HISTORY = "exchange_history"
SEQUENCES = "exchange_sequences"


def _record_id(resource_code: str, subject_key: str) -> str:
    return f"{resource_code}|{subject_key}"


def _to_record(doc: dict[str, Any]) -> SubjectRecord:
    return SubjectRecord(**{k: v for k, v in doc.items() if k != "_id"})


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[HISTORY].create_index([("resource_code", ASCENDING), ("subject_key", ASCENDING)])


class MongoExchangeTransaction:
    def __init__(self, tx: Transaction) -> None:
        self.db: AsyncDatabase = tx.db
        self.session: AsyncClientSession = tx.session
        self.emit_event = tx.emit

    def emit(self, topic: str, event: Event) -> None:
        self.emit_event(topic, event)

    async def change_seen(self, change_id: str) -> bool:
        return await self.db[HISTORY].find_one({"_id": change_id}, {"_id": 1}, session=self.session) is not None

    async def add_history(self, change: DataChange, applied: bool) -> None:
        doc = asdict(change) | {"_id": change.change_id, "applied": applied}
        doc["operation"] = change.operation.value
        await self.db[HISTORY].insert_one(doc, session=self.session)

    async def record(self, resource_code: str, subject_key: str) -> SubjectRecord | None:
        doc = await self.db[RECORDS].find_one({"_id": _record_id(resource_code, subject_key)}, session=self.session)
        return _to_record(doc) if doc else None

    async def put_record(self, record: SubjectRecord) -> None:
        doc = asdict(record)
        await self.db[RECORDS].replace_one(
            {"_id": _record_id(record.resource_code, record.subject_key)}, doc, upsert=True, session=self.session
        )

    async def next_sequence(self, resource_code: str) -> int:
        doc = await self.db[SEQUENCES].find_one_and_update(
            {"_id": resource_code},
            {"$inc": {"value": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=self.session,
        )
        assert doc is not None  # upsert with ReturnDocument.AFTER always returns the document
        return int(doc["value"])


class MongoUnitOfWork:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoExchangeTransaction]:
        async with self.runtime.transaction() as tx:
            yield MongoExchangeTransaction(tx)

    async def record(self, resource_code: str, subject_key: str) -> SubjectRecord | None:
        doc = await self.runtime.db[RECORDS].find_one({"_id": _record_id(resource_code, subject_key)})
        return _to_record(doc) if doc else None

    async def history(self, resource_code: str, subject_key: str) -> list[dict]:
        cursor = self.runtime.db[HISTORY].find({"resource_code": resource_code, "subject_key": subject_key})
        return [
            {k: v for k, v in doc.items() if k not in ("_id", "subject_key")}
            for doc in await cursor.sort("source_version", ASCENDING).to_list()
        ]
