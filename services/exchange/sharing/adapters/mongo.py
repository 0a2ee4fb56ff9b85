"""Share requests (`exchange_share_requests`) and grants (`exchange_grants`, in the layout of grant_docs) in
MongoDB; a command's writes and its events commit in one transaction (the outbox). The departments' names
the directory announced are in `exchange_department_names`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from common.mongo import Transaction
from common.runtime import Runtime
from services.exchange.adapters.mongo import RESOURCES, _schema_of
from services.exchange.domain.resources import ResourceSchema
from services.exchange.sharing.adapters.grant_docs import GRANTS, grant_doc, grant_of
from services.exchange.sharing.adapters.share_events import BusShareEvents
from services.exchange.sharing.commands import DepartmentNamed
from services.exchange.sharing.grants import Channel, Grant, GrantStatus, RowScope
from services.exchange.sharing.ports import ChangedMeanwhile
from services.exchange.sharing.requests import (
    Decision,
    Dispute,
    Escalation,
    RequestStatus,
    RequestTally,
    Ruling,
    RulingLevel,
    ShareRequest,
    Step,
    Terms,
)

REQUESTS = "exchange_share_requests"
WRITE_CONFLICT = 112  # MongoDB's WriteConflict: another transaction wrote the document first
DEPARTMENT_NAMES = "exchange_department_names"


def _day(value: date | None) -> datetime | None:
    return datetime.combine(value, datetime.min.time()) if value is not None else None


def _date(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def _terms_doc(t: Terms | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "items": list(t.items),
        "scope": {"regions": list(t.scope.regions), "subjects": sorted(t.scope.subjects)},
        "valid_from": _day(t.valid_from),
        "valid_to": _day(t.valid_to),
        "unmasked": sorted(t.unmasked),
    }


def _terms_of(doc: dict[str, Any] | None) -> Terms | None:
    if doc is None:
        return None
    return Terms(
        tuple(doc["items"]),
        RowScope(tuple(doc["scope"]["regions"]), frozenset(doc["scope"]["subjects"])),
        doc["valid_from"].date(),
        doc["valid_to"].date(),
        frozenset(doc.get("unmasked", ())),
    )


def _ruling_doc(r: Ruling | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "level": r.level.value,
        "overturned": r.overturned,
        "reasons": r.reasons,
        "ruled_by": r.ruled_by,
        "ruled_on": _day(r.ruled_on),
        "terms": _terms_doc(r.terms),
    }


def _ruling_of(doc: dict[str, Any] | None) -> Ruling | None:
    if doc is None:
        return None
    return Ruling(
        RulingLevel(doc["level"]),
        doc["overturned"],
        doc["reasons"],
        doc["ruled_by"],
        doc["ruled_on"].date(),
        _terms_of(doc["terms"]),
    )


def _dispute_doc(d: Dispute | None) -> dict[str, Any] | None:
    if d is None:
        return None
    e = d.escalation
    return {
        "dispute_id": d.dispute_id,
        "raised_by": d.raised_by,
        "grounds": d.grounds,
        "raised_on": _day(d.raised_on),
        "rule_by": _day(d.rule_by),
        "ruling": _ruling_doc(d.ruling),
        "escalation": None
        if e is None
        else {
            "escalated_by": e.escalated_by,
            "department_code": e.department_code,
            "grounds": e.grounds,
            "escalated_on": _day(e.escalated_on),
            "rule_by": _day(e.rule_by),
        },
        "final_ruling": _ruling_doc(d.final_ruling),
    }


def _dispute_of(doc: dict[str, Any] | None) -> Dispute | None:
    if doc is None:
        return None
    e = doc.get("escalation")
    return Dispute(
        dispute_id=doc["dispute_id"],
        raised_by=doc["raised_by"],
        grounds=doc["grounds"],
        raised_on=doc["raised_on"].date(),
        rule_by=doc["rule_by"].date(),
        ruling=_ruling_of(doc.get("ruling")),
        escalation=None if e is None else _escalation_of(e),
        final_ruling=_ruling_of(doc.get("final_ruling")),
    )


def _escalation_of(e: dict[str, Any]) -> Escalation:
    on, due = e["escalated_on"].date(), e["rule_by"].date()
    return Escalation(e["escalated_by"], e["department_code"], e["grounds"], on, due)


def request_doc(r: ShareRequest) -> dict[str, Any]:
    d = r.decision
    awaiting = r.awaiting
    unannounced = awaiting is not None and awaiting[0] not in r.overdue
    return {
        "_id": r.request_id,
        "resource_code": r.resource_code,
        "provider_code": r.provider_code,
        "consumer_code": r.consumer_code,
        "consumer_system": r.consumer_system,
        "purpose": r.purpose,
        "channels": sorted(c.value for c in r.channels),
        "asked": _terms_doc(r.asked),
        "requested_by": r.requested_by,
        "requested_on": _day(r.requested_on),
        "decide_by": _day(r.decide_by),
        "entry_version": r.entry_version,
        "status": r.status.value,
        "refusal": r.refusal,
        "decision": None
        if d is None
        else {
            "approved": d.approved,
            "reasons": d.reasons,
            "decided_by": d.decided_by,
            "decided_on": _day(d.decided_on),
            "overdue": d.overdue,
            "terms": _terms_doc(d.terms),
        },
        "dispute": _dispute_doc(r.dispute),
        "grant_id": r.grant_id,
        "overdue": sorted(s.value for s in r.overdue),
        "revision": r.revision,
        # the deadline of the awaited step while its passing is unannounced: what the sweep looks for
        "unannounced_due": _day(awaiting[1]) if awaiting is not None and unannounced else None,
    }


def request_of(doc: dict[str, Any]) -> ShareRequest:
    d = doc.get("decision")
    asked = _terms_of(doc["asked"])
    assert asked is not None
    return ShareRequest(
        request_id=doc["_id"],
        resource_code=doc["resource_code"],
        provider_code=doc["provider_code"],
        consumer_code=doc["consumer_code"],
        consumer_system=doc.get("consumer_system"),
        purpose=doc["purpose"],
        channels=frozenset(Channel(c) for c in doc["channels"]),
        asked=asked,
        requested_by=doc["requested_by"],
        requested_on=doc["requested_on"].date(),
        decide_by=doc["decide_by"].date(),
        entry_version=doc["entry_version"],
        status=RequestStatus(doc["status"]),
        refusal=doc.get("refusal"),
        decision=None
        if d is None
        else Decision(
            d["approved"], d["reasons"], d["decided_by"], d["decided_on"].date(), d["overdue"], _terms_of(d["terms"])
        ),
        dispute=_dispute_of(doc.get("dispute")),
        grant_id=doc.get("grant_id"),
        overdue=frozenset(Step(s) for s in doc.get("overdue", ())),
        revision=doc["revision"],
    )


# a request whose dispute awaits a step (Dispute.step), as a query of the stored layout
AWAITING: dict[str, dict[str, Any]] = {
    Step.IT_OFFICE_RULING.value: {"dispute": {"$ne": None}, "dispute.ruling": None},
    Step.LEADERSHIP_RULING.value: {"dispute.escalation": {"$ne": None}, "dispute.final_ruling": None},
}


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[REQUESTS].create_index([("consumer_code", ASCENDING), ("requested_on", DESCENDING)])
    await db[REQUESTS].create_index([("provider_code", ASCENDING), ("requested_on", DESCENDING)])
    await db[REQUESTS].create_index([("unannounced_due", ASCENDING)])
    await db[GRANTS].create_index([("resource_code", ASCENDING), ("status", ASCENDING)])
    await db[GRANTS].create_index([("status", ASCENDING), ("valid_to", ASCENDING)])
    await db[GRANTS].create_index([("consumer_code", ASCENDING), ("status", ASCENDING)])
    await db[GRANTS].create_index([("provider_code", ASCENDING), ("status", ASCENDING)])


class MongoSharingTransaction:
    def __init__(self, tx: Transaction) -> None:
        self.db: AsyncDatabase = tx.db
        self.session: AsyncClientSession = tx.session
        self.events = BusShareEvents(tx.emit)

    async def schema(self, resource_code: str) -> ResourceSchema | None:
        doc = await self.db[RESOURCES].find_one({"_id": resource_code}, session=self.session)
        return _schema_of(doc) if doc else None

    async def request(self, request_id: str) -> ShareRequest | None:
        doc = await self.db[REQUESTS].find_one({"_id": request_id}, session=self.session)
        return request_of(doc) if doc else None

    async def add_request(self, request: ShareRequest) -> None:
        await self.db[REQUESTS].insert_one(request_doc(request), session=self.session)

    async def save_request(self, request: ShareRequest, read_revision: int) -> None:
        result = await self.db[REQUESTS].replace_one(
            {"_id": request.request_id, "revision": read_revision}, request_doc(request), session=self.session
        )
        if result.matched_count != 1:
            raise ChangedMeanwhile("request_id", "the request changed meanwhile; read it again")

    async def grant(self, grant_id: str) -> Grant | None:
        doc = await self.db[GRANTS].find_one({"_id": grant_id}, session=self.session)
        return grant_of(doc) if doc else None

    async def put_grant(self, grant: Grant) -> None:
        await self.db[GRANTS].replace_one({"_id": grant.grant_id}, grant_doc(grant), upsert=True, session=self.session)

    async def active_grants(self, resource_code: str | None = None, valid_before: date | None = None) -> list[Grant]:
        query: dict[str, Any] = {"status": GrantStatus.ACTIVE.value}
        if resource_code is not None:
            query["resource_code"] = resource_code
        if valid_before is not None:
            query["valid_to"] = {"$lt": _day(valid_before)}
        return [grant_of(d) async for d in self.db[GRANTS].find(query, session=self.session).sort("_id")]

    async def awaiting_requests(self, due_before: date) -> list[ShareRequest]:
        cursor = self.db[REQUESTS].find({"unannounced_due": {"$lt": _day(due_before)}}, session=self.session)
        return [request_of(d) async for d in cursor.sort("_id")]


class MongoSharingStore:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.db = runtime.db

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoSharingTransaction]:
        try:
            async with self.runtime.transaction() as tx:
                yield MongoSharingTransaction(tx)
        except OperationFailure as exc:
            # two decisions on one request at once: the loser's write conflicts. The database is well, so
            # this is no outage (503): the handler reads again and answers what won.
            if exc.code == WRITE_CONFLICT:
                raise ChangedMeanwhile("request_id", "the request or grant changed meanwhile; read it again") from exc
            raise

    async def request(self, request_id: str) -> ShareRequest | None:
        doc = await self.db[REQUESTS].find_one({"_id": request_id})
        return request_of(doc) if doc else None

    async def schema(self, resource_code: str) -> ResourceSchema | None:
        doc = await self.db[RESOURCES].find_one({"_id": resource_code})
        return _schema_of(doc) if doc else None

    async def requests(
        self,
        *,
        consumer_code: str | None,
        provider_code: str | None,
        status: str | None,
        offset: int,
        limit: int,
        awaiting: str | None = None,
    ) -> list[ShareRequest]:
        query: dict[str, Any] = dict(AWAITING.get(awaiting or "", {}))
        if consumer_code is not None:
            query["consumer_code"] = consumer_code
        if provider_code is not None:
            query["provider_code"] = provider_code
        if status is not None:
            query["status"] = status
        cursor = self.db[REQUESTS].find(query).sort([("requested_on", DESCENDING), ("_id", DESCENDING)])
        return [request_of(d) async for d in cursor.skip(offset).limit(limit)]

    async def request_tally(self, today: date) -> RequestTally:
        by_status: list[dict[str, Any]] = [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        late = {  # undecided past its deadline, whether or not the sweep has announced it yet
            "status": RequestStatus.PENDING.value,
            "$or": [{"decide_by": {"$lt": _day(today)}}, {"overdue": Step.PROVIDER_DECISION.value}],
        }
        overdue: list[dict[str, Any]] = [{"$match": late}, {"$group": {"_id": "$provider_code", "n": {"$sum": 1}}}]
        return RequestTally(
            on=today,
            by_status={RequestStatus(d["_id"]): d["n"] async for d in await self.db[REQUESTS].aggregate(by_status)},
            overdue_by_provider={d["_id"]: d["n"] async for d in await self.db[REQUESTS].aggregate(overdue)},
        )

    async def grant(self, grant_id: str) -> Grant | None:
        doc = await self.db[GRANTS].find_one({"_id": grant_id})
        return grant_of(doc) if doc else None

    async def grants(
        self,
        *,
        consumer_code: str | None,
        provider_code: str | None,
        status: GrantStatus | None,
        offset: int,
        limit: int,
    ) -> list[Grant]:
        query: dict[str, Any] = {}
        if consumer_code is not None:
            query["consumer_code"] = consumer_code
        if provider_code is not None:
            query["provider_code"] = provider_code
        if status is not None:
            query["status"] = status.value
        cursor = self.db[GRANTS].find(query).sort([("valid_from", DESCENDING), ("_id", DESCENDING)])
        return [grant_of(d) async for d in cursor.skip(offset).limit(limit)]


class MongoDepartmentNames:
    """One document per department code: its latest name and when the directory said so. Written in the
    consumer's transaction, so the event counts as handled exactly when the name is kept."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.collection = runtime.db[DEPARTMENT_NAMES]

    async def record(self, named: DepartmentNamed) -> bool:
        at = named.named_at.replace(microsecond=named.named_at.microsecond // 1000 * 1000)  # as BSON keeps it
        async with self.runtime.transaction() as tx:
            known = await self.collection.find_one({"_id": named.department_code}, session=tx.session)
            if known is not None and known["named_at"] >= at:
                return False
            doc = {"_id": named.department_code, "name": named.name, "named_at": at}
            await self.collection.replace_one({"_id": named.department_code}, doc, upsert=True, session=tx.session)
        return True

    async def names(self, codes: Collection[str]) -> dict[str, str]:
        cursor = self.collection.find({"_id": {"$in": list(codes)}}, {"name": 1})
        return {doc["_id"]: doc["name"] async for doc in cursor}
