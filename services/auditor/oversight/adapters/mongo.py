"""The oversight projection and the findings in the auditor's database: catalog and decision facts one
document per event, the high-volume events as daily counts, the departments the directory announced, and
the findings; a batch's writes, the events it announces and the record of what it handled commit together."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

import bson
from bson.codec_options import CodecOptions
from prometheus_client import Counter
from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from common.mongo import PROCESSED, Transaction
from common.runtime import Runtime
from services.auditor.domain.activity import (
    DailyCount,
    DecisionFact,
    DecisionStep,
    DepartmentFact,
    EntryFact,
    EntryStep,
    Measure,
    Observed,
    UpdateCycle,
)
from services.auditor.domain.findings import (
    Answer,
    Category,
    ClosedBy,
    Finding,
    RectificationReport,
    Status,
    read_back,
)
from services.auditor.domain.scoring import DepartmentActivity
from services.auditor.domain.supply import Supply
from services.auditor.oversight.adapters.finding_events import BusFindingEvents

ENTRY_FACTS = "oversight_entry_facts"
DECISION_FACTS = "oversight_decision_facts"
DAILY = "oversight_daily_counts"
# Data used by other departments (the bulk of the events: every access) is counted in one document per provider
# and day, the uses of each resource by each consumer a field of it: a batch of thousands of accesses reads and
# writes one document per provider and day it names, where an update per resource and consumer cost the local
# server about a millisecond each (most of its work for the oversight). Uses counted before are in DAILY, and
# are read from there.
DAILY_USES = "oversight_daily_uses"
DEPARTMENTS = "oversight_departments"
FINDINGS = "oversight_findings"
SUPPLIES = "oversight_supplies"  # each resource's delivery per its update cycle
REQUESTS = "oversight_requests"  # the IT office's requests handled, each with the finding it raised or added to
# Per topic and partition, the offset of the last event projected and that event's id: what a redelivery is
# recognised by. One write per partition and batch replaced a record per event (processed_events), most of
# what the database did for the oversight. Only events read with a position carry one (observed_events gives
# it to the data accesses alone: a topic an outbox relays may hold the same event twice, at two offsets);
# every other event (or one of a partition without a mark yet) is looked up, and recorded, by its id. A mark
# whose offset holds another event than the one it names was left by an earlier log of the partition (the
# topic recreated: offsets restart at 0): it is replaced, not trusted.
POSITIONS = "oversight_positions"
GROUP = "auditor-oversight"  # the consumer group whose handled events are recorded in processed_events
BELOW_MARK = Counter(
    "datashare_oversight_events_below_mark_total",
    "Events not projected as at or below their partition's mark (a redelivery; counted per attempt)",
    ["topic"],
)

log = logging.getLogger(__name__)


def _dt(day: date | None) -> datetime | None:
    return datetime.combine(day, datetime.min.time()) if day is not None else None


def _d(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[ENTRY_FACTS].create_index([("provider_code", ASCENDING), ("day", ASCENDING)])
    await db[ENTRY_FACTS].create_index([("step", ASCENDING), ("day", ASCENDING)])  # the city's trend: monthly_totals
    await db[DECISION_FACTS].create_index([("provider_code", ASCENDING), ("day", ASCENDING)])
    await db[DAILY].create_index([("department_code", ASCENDING), ("day", ASCENDING)])
    await db[DAILY].create_index([("day", ASCENDING)])
    await db[DAILY_USES].create_index([("department_code", ASCENDING), ("day", ASCENDING)])
    await db[DAILY_USES].create_index([("day", ASCENDING)])  # the whole city's, for the ranking
    await db[FINDINGS].create_index([("department_code", ASCENDING), ("category", ASCENDING), ("matter", ASCENDING)])
    await db[FINDINGS].create_index([("status", ASCENDING), ("correct_by", ASCENDING)])
    # the IT office's queue (`awaiting`) is the held findings: see `list_findings`
    await db[FINDINGS].create_index([("held", ASCENDING), ("detected_on", ASCENDING)])
    await db[SUPPLIES].create_index([("in_force", ASCENDING), ("flagged", ASCENDING), ("deliver_by", ASCENDING)])


def _entry_doc(event_id: str, f: EntryFact) -> dict[str, Any]:
    return {
        "_id": event_id,
        "step": f.step.value,
        "resource_code": f.resource_code,
        "provider_code": f.provider_code,
        "day": _dt(f.day),
        "version": f.version,
        "update_cycle": f.update_cycle.value if f.update_cycle else None,
        "due_on": _dt(f.due_on),
        "overdue_kind": f.overdue_kind,
    }


def _entry_of(doc: dict[str, Any]) -> EntryFact:
    return EntryFact(
        EntryStep(doc["step"]),
        doc["resource_code"],
        doc["provider_code"],
        doc["day"].date(),
        doc.get("version"),
        UpdateCycle(doc["update_cycle"]) if doc.get("update_cycle") else None,
        _d(doc.get("due_on")),
        doc.get("overdue_kind"),
    )


def _decision_doc(event_id: str, f: DecisionFact) -> dict[str, Any]:
    return {
        "_id": event_id,
        "step": f.step.value,
        "request_id": f.request_id,
        "provider_code": f.provider_code,
        "day": _dt(f.day),
        "due_on": _dt(f.due_on),
        "late": f.late,
    }


def _decision_of(doc: dict[str, Any]) -> DecisionFact:
    return DecisionFact(
        DecisionStep(doc["step"]),
        doc["request_id"],
        doc["provider_code"],
        doc["day"].date(),
        _d(doc["due_on"]),
        doc["late"],
    )


def _count_of(doc: dict[str, Any]) -> DailyCount:
    return DailyCount(
        Measure(doc["measure"]),
        doc["department_code"],
        doc["day"].date(),
        doc["resource_code"],
        doc["other"],
        doc["count"],
    )


_ESCAPED = re.compile(r"%(25|2E|24|7C)")


def _escape(code: str) -> str:
    """A code as part of a field name: no dot, dollar sign or bar (the separator), reversibly."""
    return code.replace("%", "%25").replace(".", "%2E").replace("$", "%24").replace("|", "%7C")


def _unescape(text: str) -> str:
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def use_field(resource_code: str, consumer_code: str) -> str:
    """The field of a provider's day counting one resource's uses by one consumer."""
    return f"{_escape(resource_code)}|{_escape(consumer_code)}"


def use_of(field: str) -> tuple[str, str]:
    resource, consumer = field.split("|")
    return _unescape(resource), _unescape(consumer)


def day_of_uses(department_code: str, day: date, known: dict[str, int], counts: list[DailyCount]) -> dict[str, Any]:
    """A provider's document of uses on `day`: those `known` plus `counts`. Written whole (a replacement): the
    local server checks the paths of an update against each other, so an update of a thousand fields cost it
    more than the thousand updates it replaced."""
    uses = dict(known)
    for c in counts:
        field = use_field(c.resource_code, c.other)
        uses[field] = uses.get(field, 0) + c.count
    return {"_id": _day_id(department_code, day), "department_code": department_code, "day": _dt(day), "uses": uses}


def _day_id(department_code: str, day: date) -> str:
    return f"{department_code}|{day.isoformat()}"


def monthly_uses(docs: Iterable[dict[str, Any]]) -> list[DailyCount]:
    """The uses of provider-day documents summed per month, resource and consumer, each dated on its first day
    in the month (as the database sums the counts of the earlier layout, `per_month`)."""
    first: dict[tuple[str, int, int, str, str], date] = {}
    totals: dict[tuple[str, int, int, str, str], int] = {}
    for doc in docs:
        day = doc["day"].date()
        for field, count in (doc.get("uses") or {}).items():
            key = (doc["department_code"], day.year, day.month, *use_of(field))
            totals[key] = totals.get(key, 0) + count
            if key not in first or day < first[key]:
                first[key] = day
    return [DailyCount(Measure.USED, key[0], first[key], key[3], key[4], total) for key, total in totals.items()]


def finding_doc(f: Finding) -> dict[str, Any]:
    return {
        "_id": f.finding_id,
        "department_code": f.department_code,
        "category": f.category.value,
        "matter": f.matter,
        "description": f.description,
        "detected_on": _dt(f.detected_on),
        "correct_by": _dt(f.correct_by),
        "raised_by": f.raised_by,
        "evidence": list(f.evidence),
        "occurrences": f.occurrences,
        "status": f.status.value,
        "corrected_on": _dt(f.corrected_on),
        "proof": f.proof,
        "escalated_on": _dt(f.escalated_on),
        "revision": f.revision,
        "reports": [_report_doc(r) for r in f.reports],
        "held": f.held,  # what the deadline queries skip: a report in time awaits the IT office's answer
        "closed_by": f.closed_by.value if f.closed_by else None,
        "closed_by_person": f.closed_by_person,
        "later": list(f.later),
        "later_occurrences": f.later_occurrences,
        "later_since": _dt(f.later_since),
        "continued": f.continued,
    }


def _report_doc(r: RectificationReport) -> dict[str, Any]:
    return {
        "text": r.text,
        "reference": r.reference,
        "submitted_by": r.submitted_by,
        "submitted_on": _dt(r.submitted_on),
        "answer": r.answer.value,
        "answered_by": r.answered_by,
        "answered_on": _dt(r.answered_on),
        "reason": r.reason,
        "submitted_by_department": r.submitted_by_department,
        "on_behalf": r.on_behalf,
    }


def _report_of(doc: dict[str, Any]) -> RectificationReport:
    return RectificationReport(
        doc["text"],
        doc.get("reference"),
        doc["submitted_by"],
        doc["submitted_on"].date(),
        Answer(doc["answer"]),
        doc.get("answered_by"),
        _d(doc.get("answered_on")),
        doc.get("reason"),
        doc.get("submitted_by_department"),
        # kept before the filer's department was: not known whether the IT office filed it for the department
        doc.get("on_behalf") if "submitted_by_department" in doc else None,
    )


def finding_of(doc: dict[str, Any]) -> Finding:
    """The stored finding, documents kept by earlier versions included (`read_back`)."""
    return read_back(
        Finding(
            finding_id=doc["_id"],
            department_code=doc["department_code"],
            category=Category(doc["category"]),
            matter=doc["matter"],
            description=doc["description"],
            detected_on=doc["detected_on"].date(),
            correct_by=doc["correct_by"].date(),
            raised_by=doc["raised_by"],
            evidence=tuple(doc["evidence"]),
            occurrences=doc["occurrences"],
            status=Status(doc["status"]),
            corrected_on=_d(doc.get("corrected_on")),
            proof=doc.get("proof"),
            escalated_on=_d(doc.get("escalated_on")),
            revision=doc.get("revision", 0),
            reports=tuple(_report_of(r) for r in doc.get("reports", ())),
            closed_by=ClosedBy(doc["closed_by"]) if doc.get("closed_by") else None,
            closed_by_person=doc.get("closed_by_person"),
            later=tuple(doc.get("later", ())),
            later_occurrences=doc.get("later_occurrences", 0),
            later_since=_d(doc.get("later_since")),
            continued=doc.get("continued"),
        )
    )


def supply_doc(s: Supply) -> dict[str, Any]:
    return {
        "_id": s.resource_code,
        "provider_code": s.provider_code,
        "update_cycle": s.update_cycle.value if s.update_cycle else None,
        "in_force": s.in_force,
        "last_delivered": _dt(s.last_delivered),
        "deliver_by": _dt(s.deliver_by),
        "flagged": s.flagged,
    }


def supply_of(doc: dict[str, Any]) -> Supply:
    return Supply(
        doc["_id"],
        doc["provider_code"],
        UpdateCycle(doc["update_cycle"]) if doc.get("update_cycle") else None,
        doc["in_force"],
        _d(doc.get("last_delivered")),
        _d(doc.get("deliver_by")),
        doc["flagged"],
    )


def _partition(position: tuple[str, int, int]) -> str:
    return f"{position[0]}:{position[1]}"


# open findings the deadline watch minds: not those a report in time holds (documents stored before reports
# were kept have no `held`)
DUE: dict[str, Any] = {"status": "OPEN", "held": {"$ne": True}}
STALE_QUERY: dict[str, Any] = {"in_force": True, "flagged": False, "deliver_by": {"$ne": None}}


class MongoOversightTransaction:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self._events = BusFindingEvents(tx)

    @property
    def events(self) -> BusFindingEvents:
        return self._events

    async def unhandled(self, observed: list[Observed]) -> set[str]:
        partitions = sorted({_partition(o.position) for o in observed if o.position is not None})
        marks: dict[str, tuple[int, str | None]] = {}
        if partitions:
            cursor = self.tx.db[POSITIONS].find({"_id": {"$in": partitions}}, session=self.tx.session)
            marks = {doc["_id"]: (doc["offset"], doc.get("event_id")) async for doc in cursor}
        for o in observed:  # a mark naming another event than the one at its offset belongs to an earlier log
            if o.position is None or (mark := marks.get(_partition(o.position))) is None:
                continue
            if o.position[2] == mark[0] and mark[1] is not None and mark[1] != o.event_id:
                log.warning(
                    "the mark of %s at offset %d names event %s, the log holds %s there: the partition's log "
                    "was replaced, the mark is too",
                    _partition(o.position),
                    mark[0],
                    mark[1],
                    o.event_id,
                )
                del marks[_partition(o.position)]
        fresh, unmarked = set(), set()
        below: dict[str, list[int]] = {}
        for o in observed:
            mark = marks.get(_partition(o.position)) if o.position is not None else None
            if mark is None:
                unmarked.add(o.event_id)
            elif o.position is not None and o.position[2] > mark[0]:
                fresh.add(o.event_id)
            elif o.position is not None:
                below.setdefault(_partition(o.position), []).append(o.position[2])
        for where, offsets in below.items():
            skipped = sorted(set(offsets))
            BELOW_MARK.labels(where.rpartition(":")[0]).inc(len(skipped))
            log.info(
                "%d events of %s (offsets %d-%d) at or below its mark %d: not projected again",
                len(skipped),
                where,
                skipped[0],
                skipped[-1],
                marks[where][0],
            )
        if unmarked:
            cursor = self.tx.db[PROCESSED].find(
                {"_id": {"$in": [f"{GROUP}:{i}" for i in sorted(unmarked)]}}, {"event_id": 1}, session=self.tx.session
            )
            fresh |= unmarked - {doc["event_id"] async for doc in cursor}
        return fresh

    async def project(self, observed: list[Observed], counts: list[DailyCount], handled: list[Observed]) -> None:
        db, session = self.tx.db, self.tx.session
        entries = [_entry_doc(o.event_id, o.fact) for o in observed if isinstance(o.fact, EntryFact)]
        decisions = [_decision_doc(o.event_id, o.fact) for o in observed if isinstance(o.fact, DecisionFact)]
        departments = [o.fact for o in observed if isinstance(o.fact, DepartmentFact)]
        if entries:
            await db[ENTRY_FACTS].insert_many(entries, session=session)
        if decisions:
            await db[DECISION_FACTS].insert_many(decisions, session=session)
        for d in departments:
            known = {"evaluated": d.evaluated} if d.evaluated is not None else {}
            await db[DEPARTMENTS].update_one(
                {"_id": d.department_code},
                {"$set": {"name": d.name, "active": d.active, **known}}
                | ({} if known else {"$setOnInsert": {"evaluated": True}}),
                upsert=True,
                session=session,
            )
        uses: dict[tuple[str, date], list[DailyCount]] = {}
        for c in counts:
            if c.measure is Measure.USED:
                uses.setdefault((c.department_code, c.day), []).append(c)
        if uses:  # read and written in this transaction: a concurrent batch's write makes one of them retry
            ids = [_day_id(code, day) for code, day in sorted(uses)]
            cursor = db[DAILY_USES].find({"_id": {"$in": ids}}, {"uses": 1}, session=session)
            stored: dict[str, dict[str, int]] = {doc["_id"]: doc.get("uses") or {} async for doc in cursor}
            days = [
                day_of_uses(code, day, stored.get(_day_id(code, day), {}), of_day)
                for (code, day), of_day in sorted(uses.items())
            ]
            await db[DAILY_USES].bulk_write(
                [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in days], ordered=False, session=session
            )
        counts = [c for c in counts if c.measure is not Measure.USED]
        if counts:
            await db[DAILY].bulk_write(
                [
                    UpdateOne(
                        {
                            "_id": "|".join(
                                [c.measure.value, c.department_code, c.day.isoformat(), c.resource_code, c.other]
                            )
                        },
                        {
                            "$setOnInsert": {
                                "measure": c.measure.value,
                                "department_code": c.department_code,
                                "day": _dt(c.day),
                                "resource_code": c.resource_code,
                                "other": c.other,
                            },
                            "$inc": {"count": c.count},
                        },
                        upsert=True,
                    )
                    for c in counts
                ],
                ordered=False,
                session=session,
            )
        unplaced = sorted({o.event_id for o in handled if o.position is None})
        if unplaced:
            now = datetime.now().astimezone()
            await db[PROCESSED].insert_many(
                [{"_id": f"{GROUP}:{i}", "group": GROUP, "event_id": i, "at": now} for i in unplaced], session=session
            )
        # Each partition's last event projected becomes its mark, set (not raised: a replaced log's mark goes
        # down): `handled` holds only events above the mark read in this transaction (or all of a replaced
        # log's), and a concurrent batch's mark written since makes this one's write conflict and retry.
        last: dict[str, tuple[int, str]] = {}
        for o in handled:
            if o.position is not None:
                where = _partition(o.position)
                if where not in last or o.position[2] > last[where][0]:
                    last[where] = (o.position[2], o.event_id)
        if last:
            await db[POSITIONS].bulk_write(
                [
                    UpdateOne({"_id": where}, {"$set": {"offset": offset, "event_id": event_id}}, upsert=True)
                    for where, (offset, event_id) in last.items()
                ],
                ordered=False,
                session=session,
            )

    async def open_finding(self, department_code: str, category: Category, matter: str) -> Finding | None:
        doc = await self.tx.db[FINDINGS].find_one(
            {"department_code": department_code, "category": category.value, "matter": matter, "status": "OPEN"},
            session=self.tx.session,
        )
        return finding_of(doc) if doc else None

    async def finding(self, finding_id: str) -> Finding | None:
        doc = await self.tx.db[FINDINGS].find_one({"_id": finding_id}, session=self.tx.session)
        return finding_of(doc) if doc else None

    async def request_answered(self, request: str) -> str | None:
        doc = await self.tx.db[REQUESTS].find_one({"_id": request}, session=self.tx.session)
        return doc["finding_id"] if doc else None

    async def answer_request(self, request: str, finding_id: str) -> None:
        doc = {"_id": request, "finding_id": finding_id, "at": datetime.now().astimezone()}
        await self.tx.db[REQUESTS].insert_one(doc, session=self.tx.session)

    async def save_finding(self, finding: Finding) -> None:
        await self.tx.db[FINDINGS].replace_one(
            {"_id": finding.finding_id}, finding_doc(finding), upsert=True, session=self.tx.session
        )

    async def overdue_findings(self, today: date, limit: int) -> list[Finding]:
        cursor = (
            self.tx.db[FINDINGS]
            .find(DUE | {"correct_by": {"$lt": _dt(today)}}, session=self.tx.session)
            .sort([("correct_by", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [finding_of(doc) async for doc in cursor]

    async def department_name(self, department_code: str) -> str | None:
        doc = await self.tx.db[DEPARTMENTS].find_one({"_id": department_code}, session=self.tx.session)
        return doc["name"] if doc else None

    async def supplies_of(self, resource_codes: list[str]) -> dict[str, Supply]:
        cursor = self.tx.db[SUPPLIES].find({"_id": {"$in": resource_codes}}, session=self.tx.session)
        return {doc["_id"]: supply_of(doc) async for doc in cursor}

    async def save_supply(self, supply: Supply) -> None:
        await self.save_supplies([supply])

    async def save_supplies(self, supplies: list[Supply]) -> None:
        await self.tx.db[SUPPLIES].bulk_write(
            [ReplaceOne({"_id": s.resource_code}, supply_doc(s), upsert=True) for s in supplies],
            ordered=False,
            session=self.tx.session,
        )

    async def stale_supplies(self, today: date, limit: int) -> list[Supply]:
        query = STALE_QUERY | {"deliver_by": {"$lt": _dt(today)}}
        cursor = self.tx.db[SUPPLIES].find(query, session=self.tx.session).sort("deliver_by", ASCENDING).limit(limit)
        return [supply_of(doc) async for doc in cursor]


COUNT_FIELDS = {"measure": 1, "department_code": 1, "day": 1, "resource_code": 1, "other": 1, "count": 1}


def latest_delivery(match: dict[str, Any]) -> list[dict[str, Any]]:
    """Each resource's latest delivery: all a cycle's window reaching back before the period asks of them."""
    key = {"department_code": "$department_code", "resource_code": "$resource_code"}
    latest = {"day": {"$first": "$day"}, "count": {"$first": "$count"}}
    return [
        {"$match": match},
        {"$sort": {"day": -1}},
        {"$group": {"_id": key} | latest},
        _as_count({"$literal": Measure.DELIVERED.value}),
    ]


def per_month(match: dict[str, Any]) -> list[dict[str, Any]]:
    """Refusals and uses summed per month, resource and consumer, dated on their first day in the month."""
    key = {
        "measure": "$measure",
        "department_code": "$department_code",
        "resource_code": "$resource_code",
        "other": "$other",
        "month": {"$dateToString": {"format": "%Y-%m", "date": "$day"}},
    }
    summed = {"day": {"$min": "$day"}, "count": {"$sum": "$count"}}
    return [{"$match": match}, {"$group": {"_id": key} | summed}, _as_count("$_id.measure")]


def _as_count(measure: Any) -> dict[str, Any]:
    fields = {f: f"$_id.{f}" for f in ("department_code", "resource_code")}
    return {
        "$project": {
            "_id": 0,
            "measure": measure,
            "other": {"$ifNull": ["$_id.other", ""]},
            **fields,
            "day": 1,
            "count": 1,
        }
    }


async def _raw(cursor: Any) -> list[bytes]:
    return [batch async for batch in cursor]


def _activities(
    codes: list[str],
    with_facts: bool,
    entries: list[bytes],
    decisions: list[bytes],
    counts: list[bytes],
    uses: list[bytes],
    options: CodecOptions,
) -> list[DepartmentActivity]:
    """Decoded and grouped per department in one pass: the departments listed, and with `with_facts` those
    the facts name too."""
    found: dict[str, tuple[list[EntryFact], list[DecisionFact], list[DailyCount]]] = {c: ([], [], []) for c in codes}

    def of(code: str) -> tuple[list[EntryFact], list[DecisionFact], list[DailyCount]]:
        return found.setdefault(code, ([], [], [])) if with_facts else found[code]

    for doc in _decoded(entries, options):
        of(doc["provider_code"])[0].append(_entry_of(doc))
    for doc in _decoded(decisions, options):
        of(doc["provider_code"])[1].append(_decision_of(doc))
    for doc in _decoded(counts, options):
        of(doc["department_code"])[2].append(_count_of(doc))
    for count in monthly_uses(_decoded(uses, options)):
        of(count.department_code)[2].append(count)
    return [DepartmentActivity(c, tuple(e), tuple(d), tuple(n)) for c, (e, d, n) in sorted(found.items())]


def _decoded(batches: list[bytes], options: CodecOptions) -> Iterator[dict[str, Any]]:
    for batch in batches:
        yield from bson.decode_all(batch, options)


class MongoOversightStore:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def db(self) -> AsyncDatabase:
        return self.runtime.db

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoOversightTransaction]:
        async with self.runtime.transaction() as tx:
            yield MongoOversightTransaction(tx)

    async def activity(
        self, department_codes: list[str] | None, deliveries_since: date, start: date, until: date
    ) -> list[DepartmentActivity]:
        """Read as raw BSON on the event loop, summed by the database where the figures need no more, decoded and
        grouped per department in a thread: a city's year of counts must not stall the loop."""
        by_provider: dict[str, Any] = {} if department_codes is None else {"provider_code": {"$in": department_codes}}
        by_department: dict[str, Any] = (
            {} if department_codes is None else {"department_code": {"$in": department_codes}}
        )
        in_period = {"day": {"$gte": _dt(start), "$lte": _dt(until)}}
        delivered = {"measure": Measure.DELIVERED.value}
        entries = await _raw(self.db[ENTRY_FACTS].find_raw_batches(by_provider | {"day": {"$lte": _dt(until)}}))
        decisions = await _raw(self.db[DECISION_FACTS].find_raw_batches(by_provider | in_period))
        counts = await _raw(self.db[DAILY].find_raw_batches(by_department | delivered | in_period, COUNT_FIELDS))
        earlier = {"day": {"$gte": _dt(deliveries_since), "$lt": _dt(start)}}
        counts += await _raw(
            await self.db[DAILY].aggregate_raw_batches(latest_delivery(by_department | delivered | earlier))
        )
        others = by_department | {"measure": {"$ne": Measure.DELIVERED.value}} | in_period
        counts += await _raw(await self.db[DAILY].aggregate_raw_batches(per_month(others)))
        # a department at a time: the local server finds an equality and a range by the index, and scans the
        # collection for an $in and a range (explain)
        uses: list[bytes] = []
        for where in [{}] if department_codes is None else [{"department_code": c} for c in department_codes]:
            uses += await _raw(self.db[DAILY_USES].find_raw_batches(where | in_period))
        codes = department_codes
        if codes is None:
            codes = [d["_id"] async for d in self.db[DEPARTMENTS].find({"evaluated": True, "active": True}, {"_id": 1})]
        options = self.db.codec_options
        return await asyncio.to_thread(
            _activities, codes, department_codes is None, entries, decisions, counts, uses, options
        )

    async def departments(self) -> dict[str, DepartmentFact]:
        return {
            d["_id"]: DepartmentFact(d["_id"], d["name"], d["evaluated"], d["active"])
            async for d in self.db[DEPARTMENTS].find({})
        }

    async def findings(
        self, *, department_code: str | None, status: Status | None, awaiting: bool | None, offset: int, limit: int
    ) -> tuple[list[Finding], int]:
        query: dict[str, Any] = {}
        if department_code is not None:
            query["department_code"] = department_code
        if status is not None:
            query["status"] = status.value
        if awaiting is not None:
            # A finding awaits the IT office's answer exactly when it is held: open, its latest report unanswered,
            # and that report in time (one after the deadline is refused, so every awaited report is). `held` is
            # stored since reports were kept, with that meaning, by this code and the code before it (a closure
            # that left the report unanswered stored False): no field of its own to back-fill, and none an older
            # replica's write would drop during a rolling deploy. Documents from before reports have none.
            query["held"] = True if awaiting else {"$ne": True}
        total = await self.db[FINDINGS].count_documents(query)
        cursor = (
            self.db[FINDINGS]
            .find(query)
            .sort([("detected_on", ASCENDING), ("_id", ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [finding_of(d) async for d in cursor], total

    async def finding(self, finding_id: str) -> Finding | None:
        doc = await self.db[FINDINGS].find_one({"_id": finding_id})
        return finding_of(doc) if doc else None

    async def monthly_totals(self, start: date, until: date) -> dict[tuple[str, str], int]:
        in_span = {"day": {"$gte": _dt(start), "$lte": _dt(until)}}
        month = {"$dateToString": {"format": "%Y-%m", "date": "$day"}}
        counts: list[dict[str, Any]] = [
            {"$match": in_span | {"measure": {"$in": [Measure.USED.value, Measure.DELIVERED.value]}}},
            {"$group": {"_id": {"month": month, "what": "$measure"}, "n": {"$sum": "$count"}}},
        ]
        versions: list[dict[str, Any]] = [
            {"$match": in_span | {"step": EntryStep.PUBLISHED.value}},
            {"$group": {"_id": {"month": month, "what": "$step"}, "n": {"$sum": 1}}},
        ]
        uses: list[dict[str, Any]] = [  # each provider's day: the sum of its fields
            {"$match": in_span},
            {"$project": {"day": 1, "use": {"$objectToArray": "$uses"}}},
            {"$unwind": "$use"},
            {"$group": {"_id": {"month": month, "what": {"$literal": Measure.USED.value}}, "n": {"$sum": "$use.v"}}},
        ]
        found: dict[tuple[str, str], int] = {}
        for collection, pipeline in ((DAILY, counts), (ENTRY_FACTS, versions), (DAILY_USES, uses)):
            async for d in await self.db[collection].aggregate(pipeline):
                key = (d["_id"]["month"], d["_id"]["what"])
                found[key] = found.get(key, 0) + int(d["n"])
        return found

    async def open_findings(self) -> dict[Category, int]:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"status": Status.OPEN.value}},
            {"$group": {"_id": "$category", "n": {"$sum": 1}}},
        ]
        return {Category(d["_id"]): d["n"] async for d in await self.db[FINDINGS].aggregate(pipeline)}

    async def next_deadline(self) -> date | None:
        doc = await self.db[FINDINGS].find_one(DUE, sort=[("correct_by", ASCENDING)])
        return doc["correct_by"].date() if doc else None

    async def next_delivery_due(self) -> date | None:
        doc = await self.db[SUPPLIES].find_one(STALE_QUERY, sort=[("deliver_by", ASCENDING)])
        return doc["deliver_by"].date() if doc else None
