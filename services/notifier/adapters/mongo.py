"""The departments' inboxes in MongoDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from common.events import Event
from common.mongo import Transaction
from common.runtime import Runtime
from services.notifier.domain.events import Dispute
from services.notifier.domain.notifications import Notification, NotificationKind

INBOX = "notifier_inbox"
DISPUTES = "notifier_disputes"


def _to_doc(n: Notification) -> dict[str, Any]:
    doc = asdict(n) | {"_id": n.notification_id, "kind": n.kind.value}
    doc.pop("notification_id")
    if isinstance(n.due_on, date):  # BSON has no date-only type
        doc["due_on"] = datetime(n.due_on.year, n.due_on.month, n.due_on.day)
    return doc


def _from_doc(doc: dict[str, Any]) -> Notification:
    fields = {k: v for k, v in doc.items() if k != "_id"}
    fields["kind"] = NotificationKind(fields["kind"])
    if fields.get("due_on") is not None:
        fields["due_on"] = fields["due_on"].date()
    return Notification(notification_id=doc["_id"], **fields)


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[INBOX].create_index([("recipient_code", ASCENDING), ("created_at", DESCENDING)])


class MongoNotifierTransaction:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    async def exists(self, notification_id: str) -> bool:
        found = await self.tx.db[INBOX].find_one({"_id": notification_id}, {"_id": 1}, session=self.tx.session)
        return found is not None

    async def add(self, notification: Notification) -> None:
        await self.tx.db[INBOX].insert_one(_to_doc(notification), session=self.tx.session)

    def emit(self, topic: str, event: Event) -> None:
        self.tx.emit(topic, event)

    async def remember_dispute(self, dispute: Dispute) -> None:
        doc = asdict(dispute) | {"_id": dispute.dispute_id}
        doc.pop("dispute_id")
        await self.tx.db[DISPUTES].replace_one({"_id": dispute.dispute_id}, doc, upsert=True, session=self.tx.session)

    async def dispute(self, dispute_id: str) -> Dispute | None:
        doc = await self.tx.db[DISPUTES].find_one({"_id": dispute_id}, session=self.tx.session)
        if doc is None:
            return None
        return Dispute(doc["_id"], doc["request_id"], doc["consumer_code"], doc["provider_code"])


class MongoUnitOfWork:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoNotifierTransaction]:
        async with self.runtime.transaction() as tx:
            yield MongoNotifierTransaction(tx)

    async def inbox(self, department_code: str, *, unread_only: bool, limit: int) -> list[Notification]:
        query: dict[str, Any] = {"recipient_code": department_code}
        if unread_only:
            query["read"] = False
        cursor = self.runtime.db[INBOX].find(query).sort("created_at", DESCENDING).limit(limit)
        return [_from_doc(doc) for doc in await cursor.to_list()]

    async def mark_read(self, department_code: str, notification_id: str) -> bool:
        result = await self.runtime.db[INBOX].update_one(
            {"_id": notification_id, "recipient_code": department_code}, {"$set": {"read": True}}
        )
        return result.matched_count == 1
