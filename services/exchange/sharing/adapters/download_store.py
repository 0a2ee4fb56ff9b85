"""Downloads' jobs (`exchange_downloads`), their watermarks (`exchange_download_marks`, the ledger the trace
reads, kept after the job and its file are deleted) and publication consents (`exchange_publication_consents`)
in MongoDB; a consent and its event commit in one transaction (the outbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from common.events import Event
from common.mongo import Transaction
from common.runtime import Runtime
from services.exchange.ports import UnitOfWork
from services.exchange.sharing.adapters.grant_docs import GRANTS, grant_of
from services.exchange.sharing.consents import ConsentDecided, ConsentStatus, PublicationConsent
from services.exchange.sharing.downloads import Download, FileFormat, JobStatus, Watermark
from services.exchange.sharing.grants import Grant
from services.exchange.sharing.ports import SHARE_EVENTS

DOWNLOADS = "exchange_downloads"
MARKS = "exchange_download_marks"
CONSENTS = "exchange_publication_consents"
PRODUCER = "exchange"
ENDED = [JobStatus.READY.value, JobStatus.FAILED.value]
TAGS_AT_ONCE = 1000  # tags looked up per query


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[DOWNLOADS].create_index([("status", ASCENDING), ("expires_at", ASCENDING)])
    await db[DOWNLOADS].create_index([("status", ASCENDING), ("alive_at", ASCENDING)])
    await db[DOWNLOADS].create_index([("watermark.consumer_code", ASCENDING), ("_id", DESCENDING)])
    await db[MARKS].create_index([("made_at", DESCENDING)])
    await db[MARKS].create_index([("tag", ASCENDING)])  # the trace looks a mark's download up by its tag
    await db[CONSENTS].create_index([("consumer_code", ASCENDING), ("_id", DESCENDING)])
    await db[CONSENTS].create_index([("provider_code", ASCENDING), ("_id", DESCENDING)])
    await db[CONSENTS].create_index([("resource_code", ASCENDING), ("consumer_code", ASCENDING), ("status", ASCENDING)])


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _day(value: date | None) -> datetime | None:
    return datetime.combine(value, datetime.min.time()) if value is not None else None


def _date(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def mark_doc(w: Watermark) -> dict[str, Any]:
    return {
        "_id": w.download_id,
        "tag": w.tag,
        "resource_code": w.resource_code,
        "provider_code": w.provider_code,
        "consumer_code": w.consumer_code,
        "grant_id": w.grant_id,
        "requested_by": w.requested_by,
        "made_at": w.made_at,
        "notice": w.notice,
        "consent_id": w.consent_id,
    }


def mark_of(doc: dict[str, Any]) -> Watermark:
    return Watermark(
        doc["_id"], doc["resource_code"], doc["provider_code"], doc["consumer_code"], doc["grant_id"],
        doc["requested_by"], doc["made_at"].replace(tzinfo=UTC), doc["notice"], doc.get("consent_id"),
    )  # fmt: skip


def download_doc(d: Download) -> dict[str, Any]:
    return {
        "_id": d.download_id,
        "watermark": mark_doc(d.watermark),
        "purpose": d.purpose,
        "format": d.file_format.value,
        "items": list(d.items),
        "subject_keys": list(d.subject_keys),
        "changed_since": d.changed_since,
        "status": d.status.value,
        "rows_total": d.rows_total,
        "rows_done": d.rows_done,
        "rows_written": d.rows_written,
        "size": d.size,
        "sha256": d.sha256,
        "error": d.error,
        "expires_at": d.expires_at,
        "alive_at": d.alive_at,
        "named": list(d.named),
    }


def download_of(doc: dict[str, Any]) -> Download:
    return Download(
        download_id=doc["_id"],
        watermark=mark_of(doc["watermark"]),
        purpose=doc["purpose"],
        file_format=FileFormat(doc["format"]),
        items=tuple(doc["items"]),
        subject_keys=tuple(doc["subject_keys"]),
        changed_since=_utc(doc.get("changed_since")),
        status=JobStatus(doc["status"]),
        rows_total=doc["rows_total"],
        rows_done=doc["rows_done"],
        rows_written=doc["rows_written"],
        size=doc["size"],
        sha256=doc["sha256"],
        error=doc.get("error"),
        expires_at=_utc(doc.get("expires_at")),
        alive_at=_utc(doc.get("alive_at")),
        named=tuple(doc.get("named") or ()),
    )


class MongoDownloads:
    def __init__(self, db: AsyncDatabase, uow: UnitOfWork) -> None:
        self.jobs = db[DOWNLOADS]
        self.marks = db[MARKS]
        self.uow = uow

    async def add(self, download: Download) -> None:
        await self.marks.insert_one(mark_doc(download.watermark))
        await self.jobs.insert_one(download_doc(download))

    async def download(self, download_id: str) -> Download | None:
        doc = await self.jobs.find_one({"_id": download_id})
        return download_of(doc) if doc else None

    async def downloads(self, consumer_code: str, offset: int, limit: int) -> list[Download]:
        cursor = self.jobs.find({"watermark.consumer_code": consumer_code}).sort("_id", DESCENDING)
        return [download_of(d) async for d in cursor.skip(offset).limit(limit)]

    async def progress(self, download_id: str, rows_done: int, rows_written: int, at: datetime) -> None:
        await self.jobs.update_one(
            {"_id": download_id}, {"$set": {"rows_done": rows_done, "rows_written": rows_written, "alive_at": at}}
        )

    async def alive(self, download_ids: list[str], at: datetime) -> None:
        await self.jobs.update_many(
            {"_id": {"$in": download_ids}, "status": JobStatus.RUNNING.value}, {"$set": {"alive_at": at}}
        )

    async def abandoned(self, before: datetime) -> list[Download]:
        query = {"status": JobStatus.RUNNING.value, "$or": [{"alive_at": {"$lt": before}}, {"alive_at": None}]}
        return [download_of(d) async for d in self.jobs.find(query).limit(1000)]

    async def finish(self, download: Download) -> None:
        await self.jobs.replace_one({"_id": download.download_id}, download_doc(download))

    async def expired(self, now: datetime) -> list[Download]:
        query = {"status": {"$in": ENDED}, "expires_at": {"$lte": now}}
        return [download_of(d) async for d in self.jobs.find(query).limit(1000)]

    async def next_expiry(self) -> datetime | None:
        doc = await self.jobs.find_one(
            {"status": {"$in": ENDED}}, sort=[("expires_at", ASCENDING)], projection={"expires_at": 1}
        )
        return _utc(doc["expires_at"]) if doc else None

    async def forget(self, download_id: str) -> None:
        await self.jobs.delete_one({"_id": download_id})

    async def tagged(self, tags: set[str]) -> list[Watermark]:
        found, ordered = [], sorted(tags)
        for start in range(0, len(ordered), TAGS_AT_ONCE):
            cursor = self.marks.find({"tag": {"$in": ordered[start : start + TAGS_AT_ONCE]}})
            found += [mark_of(d) async for d in cursor]
        return found

    async def record_count(self, resource_code: str) -> int:
        state = await self.uow.resource(resource_code)
        return state.records if state is not None else 0


# -- publication consents ----------------------------------------------------------------------------------


def consent_doc(c: PublicationConsent) -> dict[str, Any]:
    return {
        "_id": c.consent_id,
        "grant_id": c.grant_id,
        "resource_code": c.resource_code,
        "provider_code": c.provider_code,
        "consumer_code": c.consumer_code,
        "items": list(c.items),
        "audience": c.audience,
        "purpose": c.purpose,
        "requested_by": c.requested_by,
        "requested_on": _day(c.requested_on),
        "decide_by": _day(c.decide_by),
        "status": c.status.value,
        "reasons": c.reasons,
        "decided_by": c.decided_by,
        "decided_on": _day(c.decided_on),
        "late": c.late,
    }


def consent_of(doc: dict[str, Any]) -> PublicationConsent:
    return PublicationConsent(
        consent_id=doc["_id"],
        grant_id=doc["grant_id"],
        resource_code=doc["resource_code"],
        provider_code=doc["provider_code"],
        consumer_code=doc["consumer_code"],
        items=tuple(doc["items"]),
        audience=doc["audience"],
        purpose=doc["purpose"],
        requested_by=doc["requested_by"],
        requested_on=doc["requested_on"].date(),
        decide_by=doc["decide_by"].date(),
        status=ConsentStatus(doc["status"]),
        reasons=doc.get("reasons"),
        decided_by=doc.get("decided_by"),
        decided_on=_date(doc.get("decided_on")),
        late=bool(doc.get("late")),
    )


class BusConsentEvents:
    """The consents' events on exchange.share-events, keyed by the grant they come from."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    def consent_requested(self, c: PublicationConsent) -> None:
        payload = {
            "consent_id": c.consent_id,
            "grant_id": c.grant_id,
            "resource_code": c.resource_code,
            "provider_code": c.provider_code,
            "consumer_code": c.consumer_code,
            "audience": c.audience,
            "purpose": c.purpose,
            "requested_by": c.requested_by,
            "items": list(c.items),
            "requested_on": c.requested_on,
            "decide_by": c.decide_by,
        }
        self.tx.emit(SHARE_EVENTS, Event("PublicationConsentRequested", c.grant_id, payload, PRODUCER))

    def consent_decided(self, c: PublicationConsent) -> None:
        payload = {
            "consent_id": c.consent_id,
            "provider_code": c.provider_code,
            "consumer_code": c.consumer_code,
            "granted": c.status is ConsentStatus.APPROVED,
            "reasons": c.reasons or "",
            "decided_by": c.decided_by or "",
            "grant_id": c.grant_id,
            "resource_code": c.resource_code,
            "items": list(c.items),
            "audience": c.audience,
            "decided_on": c.decided_on,
            "late": c.late,
        }
        self.tx.emit(SHARE_EVENTS, Event("PublicationConsentDecided", c.grant_id, payload, PRODUCER))


class MongoConsentTransaction:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.events = BusConsentEvents(tx)

    async def grant(self, grant_id: str) -> Grant | None:
        doc = await self.tx.db[GRANTS].find_one({"_id": grant_id}, session=self.tx.session)
        return grant_of(doc) if doc else None

    async def consent(self, consent_id: str) -> PublicationConsent | None:
        doc = await self.tx.db[CONSENTS].find_one({"_id": consent_id}, session=self.tx.session)
        return consent_of(doc) if doc else None

    async def put(self, consent: PublicationConsent, new: bool) -> None:
        doc = consent_doc(consent)
        if new:
            await self.tx.db[CONSENTS].insert_one(doc, session=self.tx.session)
        else:  # decided only while pending: a concurrent decision makes this one write nothing, and fail
            result = await self.tx.db[CONSENTS].replace_one(
                {"_id": consent.consent_id, "status": ConsentStatus.PENDING.value}, doc, session=self.tx.session
            )
            if result.matched_count != 1:
                raise ConsentDecided("consent_id", "the consent was decided meanwhile; a decision is final")


class MongoConsents:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.collection = runtime.db[CONSENTS]

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoConsentTransaction]:
        async with self.runtime.transaction() as tx:
            yield MongoConsentTransaction(tx)

    async def consent(self, consent_id: str) -> PublicationConsent | None:
        doc = await self.collection.find_one({"_id": consent_id})
        return consent_of(doc) if doc else None

    async def consents(
        self, *, consumer_code: str | None, provider_code: str | None, offset: int, limit: int
    ) -> list[PublicationConsent]:
        query: dict[str, Any] = {}
        if consumer_code is not None:
            query["consumer_code"] = consumer_code
        if provider_code is not None:
            query["provider_code"] = provider_code
        cursor = self.collection.find(query).sort("_id", DESCENDING).skip(offset).limit(limit)
        return [consent_of(d) async for d in cursor]

    async def approved(self, resource_code: str, consumer_code: str) -> list[PublicationConsent]:
        query = {"resource_code": resource_code, "consumer_code": consumer_code, "status": "APPROVED"}
        return [consent_of(d) async for d in self.collection.find(query).sort("_id", DESCENDING).limit(100)]
