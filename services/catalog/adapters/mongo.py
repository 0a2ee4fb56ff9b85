"""Catalog state in MongoDB; writes go through the runtime's transaction (state + outbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.events import Event
from common.runtime import Runtime
from services.catalog.domain.entries import CatalogEntry, EntryExists, EntryStatus, ShareType

ENTRIES = "catalog_entries"


def _to_doc(entry: CatalogEntry) -> dict[str, Any]:
    doc = asdict(entry)
    doc["_id"] = doc.pop("resource_code")
    return doc


def _from_doc(doc: dict[str, Any]) -> CatalogEntry:
    fields = {k: v for k, v in doc.items() if k != "_id"}
    fields["share_type"] = ShareType(fields["share_type"])
    fields["status"] = EntryStatus(fields["status"])
    return CatalogEntry(resource_code=doc["_id"], **fields)


class MongoEntries:
    def __init__(self, db: AsyncDatabase, session: AsyncClientSession | None = None) -> None:
        self.collection = db[ENTRIES]
        self.session = session

    async def get(self, resource_code: str) -> CatalogEntry | None:
        doc = await self.collection.find_one({"_id": resource_code}, session=self.session)
        return _from_doc(doc) if doc else None

    async def add(self, entry: CatalogEntry) -> None:
        try:
            await self.collection.insert_one(_to_doc(entry), session=self.session)
        except DuplicateKeyError:
            raise EntryExists("resource_code", f"{entry.resource_code} is already in the catalog") from None


@dataclass
class _Transaction:
    entries: MongoEntries
    _emit: Any

    def emit(self, topic: str, event: Event) -> None:
        self._emit(topic, event)


class MongoUnitOfWork:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[_Transaction]:
        async with self.runtime.transaction() as tx:
            yield _Transaction(MongoEntries(tx.db, tx.session), tx.emit)

    async def entry(self, resource_code: str) -> CatalogEntry | None:
        return await MongoEntries(self.runtime.db).get(resource_code)
