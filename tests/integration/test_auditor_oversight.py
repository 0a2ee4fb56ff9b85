"""The auditor's oversight against the real broker and database: a scripted October 2026 (with the National
Day holiday) fed through Kafka becomes a department's evaluation figures, a monthly report rendered to PDF
(read back with pypdf), metrics, and findings (Art. 24) on auditor.findings: raised, corrected by a later
event, and escalated to a notice of criticism once their deadline passed."""

from __future__ import annotations

import asyncio
import io
import random
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

import httpx
import pypdf
import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from common.calendar_source import build_calendar
from common.clock import FixedDay
from common.codec import EventCodec
from common.events import Event
from common.kafka import KafkaPublisher
from common.mongo import PROCESSED
from common.policy import MachineKind, Principal, Role
from common.runtime import Runtime
from common.topics import load_topics
from devstack.samples import catalog_published
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
    fold_counts,
)
from services.auditor.domain.findings import Answer, Category, Finding, RectificationReport, Status
from services.auditor.domain.scoring import DepartmentActivity, Period, Ranked, Scoring, evaluate, months_of, rank
from services.auditor.oversight import handlers
from services.auditor.oversight.adapters import observed_events
from services.auditor.oversight.adapters.mongo import (
    DAILY,
    DAILY_USES,
    DUE,
    ENTRY_FACTS,
    FINDINGS,
    GROUP,
    POSITIONS,
    MongoOversightStore,
    ensure_indexes,
    finding_doc,
    use_of,
)
from services.auditor.oversight.adapters.observed_events import observe_batch
from services.auditor.oversight.handlers import Oversight
from services.auditor.oversight.ports import OBSERVED_TOPICS
from services.auditor.ports import AUDITED_TOPICS
from tests.adapter_keys import directory_says
from tests.integration.conftest import ServiceProcess, headers_of, read_topic, settings_for, skip_backlog
from tests.sizes import FULL_SIZE
from tests.tokens import bearer

CAL = build_calendar()
TODAY = date(2026, 11, 2)  # the auditor's fixed date: October is over


def at(day: date, hour: int = 10) -> datetime:
    """`hour` o'clock in Beijing on `day`."""
    return datetime.combine(day, time(hour - 8), UTC)


def published(code: str, provider: str, version: int, cycle: str, day: date) -> Event:
    e = catalog_published(code, provider, [{"name": "名称", "type": "string", "length": None}], cycle, at(day), version)
    return Event(e.event_type, e.key, e.payload | {"published_on": day}, "catalog", occurred_at=at(day))


def entry_event(event_type: str, code: str, provider: str, day: date, **fields: object) -> Event:
    payload = {"resource_code": code, "provider_code": provider} | fields
    return Event(event_type, code, payload, "catalog", occurred_at=at(day))


def stored(code: str, provider: str, day: date) -> Event:
    payload = {
        "resource_code": code,
        "provider_code": provider,
        "sequence": 1,
        "change_id": uuid.uuid4().hex,
        "operation": "UPSERT",
        "changed_at": at(day),
    }
    return Event("ResourceChanged", code, payload, "exchange", occurred_at=at(day))


def refused(code: str, provider: str, day: date) -> Event:
    payload = {
        "change_id": uuid.uuid4().hex,
        "resource_code": code,
        "provider_code": provider,
        "rule": "items",
        "detail": "invalid citizen ID 36010219900101001X: check character",
    }
    return Event("DataRejected", code, payload, "exchange", occurred_at=at(day))


def access(
    code: str, provider: str, consumer: str, day: date, result: str = "SERVED", reason: str | None = None
) -> Event:
    payload = {
        "access_id": uuid.uuid4().hex,
        "resource_code": code,
        "provider_code": provider,
        "consumer_code": consumer,
        "grant_id": "G-1",
        "channel": "API",
        "purpose": "企业开办",
        "record_count": 1,
        "accessed_by": "officer",
        "accessed_at": at(day),
        "accessor_kind": "person",
        "operation": "record",
        "items": ["名称"],
        "subjects_requested": 1,
        "subject_hashes": [],
        "result": result,
        "reason": reason,
    }
    return Event("DataAccessed", code, payload, "exchange", occurred_at=at(day))


def decided(request_id: str, code: str, provider: str, consumer: str, day: date, due: date) -> Event:
    payload = {
        "request_id": request_id,
        "resource_code": code,
        "provider_code": provider,
        "consumer_code": consumer,
        "decision": "APPROVED",
        "reasons": "符合条件",
        "decided_by": "admin",
        "decided_on": day,
        "data_items": ["名称"],
        "scope": "all",
        "valid_from": day,
        "valid_to": day + timedelta(days=365),
        "narrowed": False,
        "decide_by": due,
        "overdue": day > due,
    }
    return Event("ShareDecided", request_id, payload, "exchange", occurred_at=at(day))


def decision_overdue(request_id: str, code: str, provider: str, consumer: str, day: date, due: date) -> Event:
    payload = {
        "request_id": request_id,
        "resource_code": code,
        "provider_code": provider,
        "consumer_code": consumer,
        "step": "PROVIDER_DECISION",
        "responsible_code": provider,
        "due_on": due,
        "detected_on": day,
    }
    return Event("ShareDecisionOverdue", request_id, payload, "exchange", occurred_at=at(day))


async def test_a_scripted_month_becomes_figures_a_report_and_findings(infra, topics, services, tmp_path) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    p, p2, c1, c2 = f"P{tag}", f"Q{tag}", f"C1{tag}", f"C2{tag}"
    r1, r2, r3 = f"101{tag[:3]}/{tag}1", f"101{tag[:3]}/{tag}2", f"102{tag[:3]}/{tag}3"
    settings = settings_for(infra)
    auditor = ServiceProcess(
        "auditor",
        infra,
        tmp_path,
        mongo_database=settings.mongo_database,
        today=TODAY.isoformat(),
        evaluation_metrics_seconds="1",
    )
    for group, names in (("auditor-oversight", OBSERVED_TOPICS), ("auditor-trail", AUDITED_TOPICS)):
        for topic in names:
            await skip_backlog(infra, f"{auditor.group_prefix}{group}", topic)
    services.append(auditor.start())

    october = [date(2026, 10, 1) + timedelta(days=i) for i in range(31)]
    working = [d for d in october if CAL.is_working_day(d)]
    assert len(working) == 18
    r1_due = CAL.add_working_days(date(2026, 9, 29), 5)  # 12 October: the holiday is not counted
    catalog = [
        published(r1, p, 1, "DAILY", date(2026, 9, 1)),
        published(r2, p, 1, "MONTHLY", date(2026, 9, 15)),
        published(r3, p2, 1, "WEEKLY", date(2026, 9, 1)),  # no data ever: stale since 15 September
        entry_event(
            "CatalogEntryChangeReported",
            r1,
            p,
            date(2026, 9, 29),
            reported_on=date(2026, 9, 29),
            due_on=r1_due,
            reason="字段变化",
            changed_on=date(2026, 9, 29),
        ),
        published(r1, p, 2, "DAILY", date(2026, 10, 12)),
        entry_event(
            "CatalogEntryChangeReported",
            r2,
            p,
            date(2026, 10, 14),
            reported_on=date(2026, 10, 14),
            due_on=date(2026, 10, 21),
            reason="数据变化",
            changed_on=date(2026, 10, 14),
        ),
        entry_event(
            "CatalogEntryOverdue",
            r2,
            p,
            date(2026, 10, 22),
            kind="UPDATE_AFTER_CHANGE",
            due_on=date(2026, 10, 21),
            detected_on=date(2026, 10, 22),
        ),
    ]
    # a publication dated in year 9999 (its next delivery would overflow the calendar): refused at once
    far = published(f"103{tag[:3]}/{tag}9", f"Z{tag}", 1, "MONTHLY", date(9999, 12, 20))
    catalog.insert(0, far)
    missed = {date(2026, 10, 13), date(2026, 10, 27)}
    changes = [stored(r1, p, d) for d in working if d not in missed]
    changes += [stored(r1, p, date(2026, 10, 3)), stored(r2, p, date(2026, 10, 20))]
    changes += [refused(r1, p, date(2026, 10, 20)) for _ in range(3)]
    shares = [
        decided(f"A{tag}", r1, p, c1, date(2026, 10, 15), date(2026, 10, 22)),
        decision_overdue(f"B{tag}", r1, p, c2, date(2026, 10, 23), date(2026, 10, 22)),
    ]
    accesses = [access(r1, p, c1, date(2026, 10, 15)) for _ in range(3)]
    accesses += [access(r2, p, c2, date(2026, 10, 16)), access(r1, p, p, date(2026, 10, 16))]
    accesses += [access(r1, p, c2, date(2026, 10, 19), "REFUSED", "the grant has ended")]  # no use, no finding
    accesses += [access(r1, p, c1, date(2026, 10, 26), "REFUSED", "the stated purpose is not the grant's")]

    name, office_code = f"吉安市测试局{tag}", f"IT{tag}"
    await directory_says(
        infra,
        ("DepartmentRegistered", p, {"department_code": p, "name": name, "level": "CITY", "parent_code": None}),
        (
            "DepartmentRegistered",
            office_code,
            {"department_code": office_code, "name": "市信息化工作办公室", "level": "IT_OFFICE", "parent_code": None},
        ),
    )
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        forged = {"department_code": p, "name": "伪造的名称", "parent_code": None, "active": True}
        await publisher.publish("directory.events", Event("DepartmentChanged", p, forged, "directory"))
        await publisher.publish_many("catalog.entry-events", catalog)
        await publisher.publish_many("exchange.resource-changes", changes)
        await publisher.publish_many("exchange.share-events", shares)
        await publisher.publish_many("exchange.data-accesses", accesses)
        await auditor.wait_ready()
        office = bearer("IT", Role.IT_OFFICE_OPERATOR, subject="it-office")
        own = bearer(p, Role.DATA_ADMINISTRATOR, subject="p-admin")
        async with httpx.AsyncClient(base_url=auditor.url, timeout=60) as client:
            path = f"/evaluation/periods/2026-10/departments/{p}"
            figures: dict = {}
            for _ in range(150):
                figures = (await client.get(path, headers=own)).json()
                counts = {i["name"]: (i["counted"], i["out_of"]) for i in figures.get("indicators", [])}
                if (
                    counts.get("data_used") == (2, 3)
                    and counts.get("data_quality") == (18, 21)
                    and counts.get("decisions_on_time") == (1, 2)
                    and counts.get("updates_on_time") == (1, 2)
                ):
                    break
                await asyncio.sleep(0.2)
            assert counts == {
                "catalog_compiled": (1, 1),
                "catalog_current": (1, 2),
                "updates_on_time": (1, 2),
                "maintenance_done": (2, 2),
                "delivered_per_cycle": (17, 19),
                "data_quality": (18, 21),
                "decisions_on_time": (1, 2),
                "data_used": (2, 3),
            }, (figures, auditor.log.read_text()[-3000:])
            assert figures["score"] == 71.2 and figures["consumers"] == sorted([c1, c2]) and figures["uses"] == 4
            assert "Σ weight" in figures["formula"]
            [dead] = await read_topic(
                infra.bootstrap,
                "catalog.entry-events.dlq",
                1,
                where=lambda r: (
                    headers_of(r)["event_id"] == far.event_id
                    and headers_of(r)["dlq.group"] == f"{auditor.group_prefix}auditor-oversight"
                ),
            )
            assert headers_of(dead)["dlq.attempts"] == "1"
            assert (
                headers_of(dead)["dlq.reason"] == "rejected: ValueError: EntryFact.day: 9999-12-20 is outside 1900–2999"
            )
            # a department sees its own figures only; the ranking and reports are the IT office's
            other = bearer(c1, Role.DATA_ADMINISTRATOR, subject="c1-admin")
            assert (await client.get(path, headers=other)).status_code == 403
            assert (await client.get("/evaluation/periods/2026-10/ranking", headers=own)).status_code == 403
            ranking = (await client.get("/evaluation/periods/2026-10/ranking", headers=office)).json()
            scores = {r["department_code"]: r["score"] for r in ranking}
            assert scores[p] == 71.2 and office_code not in scores  # the IT office is not evaluated

            pdf = await client.get("/evaluation/periods/2026-10/report.pdf", headers=office)
            assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
            text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
            assert "吉安市政务数据共享工作月度考核报告" in text and p in text and "71.2" in text, text[:2000]
            assert name in text.replace("\n", "") and "伪造" not in text
            assert f"{r1} (DAILY): no data 2026-10-13" in text.replace("\n", "")
            html = await client.get("/evaluation/periods/2026-Q4/report.html", headers=office)
            assert html.status_code == 200 and "季度考核报告" in html.text and "<svg" in html.text

            # findings: raised from the events; the undecided request's deadline (5 working days from
            # 23 October: 30 October) passed before the auditor's today, so it escalated
            def of_p(record) -> bool:
                return record.key == p.encode()

            found = await read_topic(infra.bootstrap, "auditor.findings", 4, where=of_p)
            kinds = sorted(headers_of(r)["event_type"] for r in found)
            assert kinds == ["AuditFindingEscalated", "AuditFindingRaised", "AuditFindingRaised", "AuditFindingRaised"]
            listed = (await client.get("/findings", headers=own)).json()
            by_category = {f["category"]: f for f in listed["items"]}
            assert listed["total"] == 3 and set(by_category) == {
                "CATALOG_NOT_MAINTAINED",
                "DATA_NOT_PROVIDED_IN_TIME",
                "DATA_INCONSISTENT_OR_UNUSABLE",
            }
            late = by_category["DATA_NOT_PROVIDED_IN_TIME"]
            assert (late["detected_on"], late["correct_by"], late["status"]) == (
                "2026-10-23",
                "2026-10-30",
                "ESCALATED",
            )
            inconsistent = by_category["DATA_INCONSISTENT_OR_UNUSABLE"]
            assert inconsistent["occurrences"] == 3 and inconsistent["status"] == "OPEN"
            assert "36010219900101001X" not in str(inconsistent) and "36**************1X" in str(inconsistent)
            assert inconsistent["correct_by"] == CAL.add_working_days(date(2026, 10, 20), 10).isoformat()
            catalog_finding = by_category["CATALOG_NOT_MAINTAINED"]
            assert catalog_finding["correct_by"] == "2026-11-05" and catalog_finding["status"] == "OPEN"
            misuse = (await client.get("/findings", headers=other)).json()["items"]
            assert [f["category"] for f in misuse] == ["USE_OUTSIDE_PURPOSE"]

            notice = await client.get(f"/findings/{late['finding_id']}/notice.pdf", headers=own)
            assert notice.status_code == 200
            words = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(notice.content)).pages)
            assert "通报批评" in words and late["finding_id"] in words and "逾期未整改" in words

            # the entry updated: its finding is closed with the proof
            await publisher.publish("catalog.entry-events", published(r2, p, 2, "MONTHLY", TODAY))
            corrected = await read_topic(
                infra.bootstrap,
                "auditor.findings",
                1,
                where=lambda r: of_p(r) and headers_of(r)["event_type"] == "AuditFindingCorrected",
            )
            assert corrected, auditor.log.read_text()[-3000:]
            closed = (await client.get(f"/findings/{catalog_finding['finding_id']}", headers=own)).json()
            assert closed["status"] == "CORRECTED" and closed["proof"] == "version 2 published on 2026-11-02"

            # a resource without data per its update cycle: found stale, closed by its data
            def of_p2(record) -> bool:
                return record.key == p2.encode()

            [stale] = await read_topic(infra.bootstrap, "auditor.findings", 1, where=of_p2)
            assert headers_of(stale)["event_type"] == "AuditFindingRaised"
            [stale_finding] = (await client.get("/findings", headers=office, params={"department_code": p2})).json()[
                "items"
            ]
            assert (
                stale_finding["matter"] == f"resource:{r3}" and stale_finding["category"] == "DATA_NOT_PROVIDED_IN_TIME"
            )
            assert stale_finding["evidence"] == ["last data never; next was due by 2026-09-15"]
            await publisher.publish("exchange.resource-changes", stored(r3, p2, TODAY))
            events = await read_topic(infra.bootstrap, "auditor.findings", 2, where=of_p2)
            assert [headers_of(r)["event_type"] for r in events] == ["AuditFindingRaised", "AuditFindingCorrected"]

            metrics = (await client.get("/metrics")).text
            assert f'datashare_evaluation_score{{department="{p}"}}' in metrics
            assert 'datashare_findings_open{category="DATA_INCONSISTENT_OR_UNUSABLE"}' in metrics
    finally:
        await publisher.stop()


# -- the evaluation at scale -------------------------------------------------------------------------------

QUARTER = Period.parse("2026-Q4")
CYCLES = [UpdateCycle.DAILY] * 3 + [UpdateCycle.WEEKLY] * 2 + [UpdateCycle.MONTHLY] * 2
CYCLES += [UpdateCycle.QUARTERLY, UpdateCycle.HALF_YEARLY, UpdateCycle.YEARLY]


@dataclass
class Volume:
    """A city's worth of projected facts: departments, their entries' history, decisions, daily counts and
    findings, drawn from a seeded random generator."""

    departments: list[DepartmentFact]
    observed: list[Observed]
    counts: list[DailyCount]
    findings: list[Finding]


def volume(departments: int = 40, since: date = date(2025, 10, 1), until: date = date(2026, 12, 31)) -> Volume:
    rnd = random.Random(20261127)
    codes = [f"D{n:02d}{'0' * 15}" for n in range(departments)]
    days = [since + timedelta(days=i) for i in range((until - since).days + 1)]
    working = [d for d in days if CAL.is_working_day(d)]
    observed: list[Observed] = []
    counts: list[DailyCount] = []
    findings: list[Finding] = []

    def fact(f: object) -> None:
        observed.append(Observed(uuid.UUID(int=rnd.getrandbits(128)).hex, f))  # type: ignore[arg-type]

    for n, code in enumerate(codes):
        for k, cycle in enumerate(CYCLES):
            resource = f"{101 + k % 3}{n:03d}/{k:06d}"
            first = since + timedelta(days=rnd.randrange(0, 300))
            fact(EntryFact(EntryStep.PUBLISHED, resource, code, first, 1, cycle))
            version = 1
            for _ in range(rnd.randrange(0, 3)):
                reported = rnd.choice([d for d in working if d > first])
                due = CAL.add_working_days(reported, 5)
                fact(EntryFact(EntryStep.CHANGE_REPORTED, resource, code, reported, due_on=due))
                if rnd.random() < 0.2:
                    fact(
                        EntryFact(
                            EntryStep.OVERDUE,
                            resource,
                            code,
                            due + timedelta(days=1),
                            due_on=due,
                            overdue_kind="UPDATE_AFTER_CHANGE",
                        )
                    )
                version += 1
                fact(
                    EntryFact(
                        EntryStep.PUBLISHED,
                        resource,
                        code,
                        reported + timedelta(days=rnd.randrange(0, 12)),
                        version,
                        cycle,
                    )
                )
            if rnd.random() < 0.3:
                fact(EntryFact(EntryStep.MAINTAINED, resource, code, rnd.choice(days)))
            if rnd.random() < 0.05:
                fact(EntryFact(EntryStep.WITHDRAWN, resource, code, rnd.choice(days[-80:])))
            span = {UpdateCycle.DAILY: 1, UpdateCycle.WEEKLY: 7, UpdateCycle.MONTHLY: 30}.get(cycle, 90)
            for d in days[(first - since).days :: span]:
                if cycle is UpdateCycle.DAILY and not CAL.is_working_day(d):
                    continue
                if rnd.random() < 0.9:
                    day = min(until, d + timedelta(days=rnd.randrange(0, span)))
                    counts.append(DailyCount(Measure.DELIVERED, code, day, resource, count=rnd.randrange(1, 50)))
                if cycle is UpdateCycle.DAILY and rnd.random() < 0.05:
                    counts.append(DailyCount(Measure.REJECTED, code, d, resource, count=rnd.randrange(1, 5)))
        for d in working:
            if rnd.random() < 0.3:
                consumer, k = rnd.choice(codes), rnd.randrange(len(CYCLES))
                resource = f"{101 + k % 3}{n:03d}/{k:06d}"
                counts.append(DailyCount(Measure.USED, code, d, resource, consumer, rnd.randrange(1, 20)))
        for r in range(20):
            asked = rnd.choice(days[-120:])
            due = CAL.add_working_days(asked, 10)
            request = f"S{n:02d}{r:03d}"
            if rnd.random() < 0.2:
                fact(DecisionFact(DecisionStep.OVERDUE, request, code, due + timedelta(days=1), due))
            if rnd.random() < 0.8:
                day = asked + timedelta(days=rnd.randrange(0, 20))
                fact(DecisionFact(DecisionStep.DECIDED, request, code, day, due, day > due))
        for f in range(60):
            detected = rnd.choice(days[-90:])
            findings.append(
                Finding(
                    f"F{n:02d}{f:04d}",
                    code,
                    rnd.choice(list(Category)),
                    f"entry:{f}",
                    "x",
                    detected,
                    CAL.add_working_days(detected, 10),
                    "auditor",
                    ("x",),
                    status=Status.OPEN if rnd.random() < 0.7 else Status.CORRECTED,
                )
            )
    named = [DepartmentFact(c, f"部门{c[:3]}", True) for c in codes[:-2]]  # the last two only by their facts
    named.append(DepartmentFact("IT" + "0" * 16, "市信息化工作办公室", False))
    return Volume(named, observed, fold_counts(counts), findings)


def as_once_read(v: Volume, period: Period) -> list[Ranked]:
    """The ranking as the auditor first counted it: every fact each department had in the period (deliveries
    from a year before), evaluated one department at a time."""
    since, start, until = period.start - timedelta(days=366), period.start, period.end
    entries = [o.fact for o in v.observed if isinstance(o.fact, EntryFact) and o.fact.day <= until]
    decisions = [o.fact for o in v.observed if isinstance(o.fact, DecisionFact) and start <= o.fact.day <= until]
    counts = [c for c in v.counts if (since if c.measure is Measure.DELIVERED else start) <= c.day <= until]
    codes = {d.department_code for d in v.departments if d.evaluated}
    codes |= {f.provider_code for f in entries} | {f.provider_code for f in decisions}
    codes |= {c.department_code for c in counts}
    activities = [
        DepartmentActivity(
            code,
            tuple(f for f in entries if f.provider_code == code),
            tuple(f for f in decisions if f.provider_code == code),
            tuple(c for c in counts if c.department_code == code),
        )
        for code in sorted(codes)
        if code != "IT" + "0" * 16
    ]
    return rank(evaluate(a, period, Scoring(), CAL) for a in activities)


async def project_volume(v: Volume, runtime: Runtime) -> None:
    """The facts written as the consumer writes them, a batch at a time; the findings as the handlers save them."""
    store = MongoOversightStore(runtime)
    await ensure_indexes(runtime.db)
    departments = [Observed(f"dep-{d.department_code}", d) for d in v.departments]
    async with store() as tx:
        await tx.project(departments + v.observed, [], [])
    for i in range(0, len(v.counts), 5000):
        async with store() as tx:
            await tx.project([], v.counts[i : i + 5000], [])
    await runtime.db[FINDINGS].insert_many([finding_doc(f) for f in v.findings])


@pytest.mark.full_size
async def test_a_city_of_facts_is_ranked_as_counted_one_department_at_a_time(infra) -> None:
    """40 departments (`make test`: 8), their entries' history and ten months of daily counts: the ranking of a
    month and of a quarter, a quarter's report with its months, a department's figures and the open findings per
    category come out as evaluating each department over all its facts does."""
    runtime = Runtime.build("auditor", settings_for(infra))
    departments = 40 if FULL_SIZE else 8
    v = volume(departments, since=date(2026, 3, 1))
    assert len(v.counts) > 380 * departments and len(v.observed) > 38 * departments
    await project_volume(v, runtime)
    oversight = Oversight(store=MongoOversightStore(runtime), clock=FixedDay(date(2027, 1, 4)), calendar=CAL)
    try:
        november = Period.parse("2026-11")
        assert await handlers.ranking(november, oversight) == as_once_read(v, november)
        report = await handlers.evaluation_report(QUARTER, oversight)
        assert list(report.ranking) == as_once_read(v, QUARTER) and len(report.ranking) == departments
        assert [(p.label, list(r)) for p, r in report.months] == [
            (m.label, as_once_read(v, m)) for m in months_of(QUARTER)
        ]
        office = Principal("it", "IT", frozenset({Role.IT_OFFICE_OPERATOR}))
        [one] = [r.figures for r in as_once_read(v, november) if r.figures.department_code == "D07" + "0" * 15]
        assert await handlers.department_figures(office, one.department_code, november, oversight) == one
        assert await handlers.open_findings(oversight) == Counter(
            f.category for f in v.findings if f.status is Status.OPEN
        )
    finally:
        await runtime.client.aclose()


async def test_a_finding_and_its_notices_are_its_department_s_and_oversight_s_only(infra, topics, services, tmp_path):
    """A finding against one department, escalated to a notice of criticism, and one the IT office raised: the
    department's people and oversight read them and the notices; another department's people get 404 (as for a
    finding that does not exist), machines 403. A retried POST /findings returns the finding unchanged."""
    tag = uuid.uuid4().hex[:6].upper()
    a, b, code = f"A{tag}", f"B{tag}", f"104{tag[:3]}/{tag}"
    settings = settings_for(infra)
    auditor = ServiceProcess("auditor", infra, tmp_path, mongo_database=settings.mongo_database, today="2026-11-02")
    for group, names in (("auditor-oversight", OBSERVED_TOPICS), ("auditor-trail", AUDITED_TOPICS)):
        for topic in names:
            await skip_backlog(infra, f"{auditor.group_prefix}{group}", topic)
    services.append(auditor.start())
    await auditor.wait_ready()
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        late = decision_overdue(f"R{tag}", code, a, b, date(2026, 10, 23), date(2026, 10, 22))
        await publisher.publish("exchange.share-events", late)
    finally:
        await publisher.stop()
    events = await read_topic(infra.bootstrap, "auditor.findings", 2, where=lambda r: r.key == a.encode())
    assert [headers_of(r)["event_type"] for r in events] == ["AuditFindingRaised", "AuditFindingEscalated"]

    operator = bearer("IT", Role.IT_OFFICE_OPERATOR, subject="it-operator")
    own = {
        "compiler_A": bearer(a, Role.CATALOG_COMPILER, subject="a-compiler"),
        "admin_A": bearer(a, Role.DATA_ADMINISTRATOR, subject="a-admin"),
    }
    oversight = {
        "operator": operator,
        "auditor": bearer("IT", Role.AUDITOR, subject="auditor"),
        "leader": bearer("LG", Role.LEADERSHIP_MEMBER, subject="leader"),
    }
    others = {
        "admin_B": bearer(b, Role.DATA_ADMINISTRATOR, subject="b-admin"),
        "compiler_B": bearer(b, Role.CATALOG_COMPILER, subject="b-compiler"),
        "reviewer_B": bearer(b, Role.CATALOG_REVIEWER, subject="b-reviewer"),
        "adapter_A": bearer(a, subject="adapter-a", machine=MachineKind.ADAPTER),
        "consumer_B": bearer(b, subject="consumer-b", machine=MachineKind.CONSUMER_SYSTEM),
    }
    async with httpx.AsyncClient(base_url=auditor.url, timeout=60) as client:
        [escalated] = (await client.get("/findings", headers=own["admin_A"])).json()["items"]
        assert escalated["status"] == "ESCALATED"
        body = {
            "department_code": a,
            "category": "USE_OUTSIDE_PURPOSE",
            "matter": f"grant:G{tag}",
            "description": "用于营销",
            "evidence": "举报材料 2026-10-30",
            "request_id": f"req-{tag}",
        }
        raised = await client.post("/findings", json=body, headers=operator)
        retried = await client.post("/findings", json=body, headers=operator)
        assert raised.status_code == retried.status_code == 201 and retried.json() == raised.json()
        assert raised.json()["occurrences"] == 1
        more = body | {"request_id": f"req2-{tag}", "evidence": "举报材料 2026-10-31"}
        added = (await client.post("/findings", json=more, headers=operator)).json()
        assert (added["finding_id"], added["occurrences"]) == (raised.json()["finding_id"], 2)
        assert (await client.post("/findings", json=more, headers=operator)).json() == added
        open_id = added["finding_id"]

        wrong = []
        for who, headers in (own | oversight | others).items():
            allowed = who not in others
            paths = [f"/findings/{open_id}", f"/findings/{escalated['finding_id']}"]
            paths += [f"/findings/{escalated['finding_id']}/notice.html"]
            if who in {"admin_A", "auditor"} or not allowed:  # PDFs take a while to lay out: two readers suffice
                paths.append(f"/findings/{escalated['finding_id']}/notice.pdf")
            for path in paths:
                response = await client.get(path, headers=headers)
                pdf = response.headers.get("content-type") == "application/pdf"
                shown = pdf or a in response.text  # the department the finding is against
                refused = 403 if who in {"adapter_A", "consumer_B"} else 404
                if response.status_code != (200 if allowed else refused) or shown != allowed:
                    wrong.append(f"{who} GET {path} -> {response.status_code} {response.text[:100]}")
        assert not wrong, "\n".join(wrong)
        pdf = await client.get(f"/findings/{escalated['finding_id']}/notice.pdf", headers=own["compiler_A"])
        words = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
        assert "通报批评" in words and a in words

        correction = {"proof": "已整改"}
        for who, headers in (others | {"admin_A": own["admin_A"], "auditor": oversight["auditor"]}).items():
            refused = await client.post(f"/findings/{open_id}/correction", json=correction, headers=headers)
            assert refused.status_code == 403, (who, refused.text)
        assert (await client.get(f"/findings/{open_id}", headers=operator)).json()["status"] == "OPEN"
        done = await client.post(f"/findings/{open_id}/correction", json=correction, headers=operator)
        assert done.status_code == 200 and done.json()["status"] == "CORRECTED"


async def test_a_redelivered_batch_is_projected_once_by_where_it_was_read(infra) -> None:
    """Events the consumer read carry their topic, partition and offset: the oversight keeps one mark per
    partition instead of a record per event, and a redelivered batch, or the part of a later one it overlaps,
    counts nothing twice. Events projected before marks were kept (recorded by id) are recognised when read
    again from a partition without a mark."""
    runtime = Runtime.build("auditor", settings_for(infra))
    await ensure_indexes(runtime.db)
    oversight = Oversight(store=MongoOversightStore(runtime), clock=FixedDay(TODAY), calendar=CAL)
    provider, consumer, topic = "D01" + "0" * 15, "D02" + "0" * 15, "exchange.data-accesses"
    day = date(2026, 10, 20)
    read = [replace(access("R1", provider, consumer, day), position=(topic, 0, n)) for n in range(10)]
    earlier = [access("R1", provider, consumer, day) for _ in range(3)]  # handed over without a position
    try:
        for batch in (earlier, read[:6], read[:6], read[4:]):
            assert await observe_batch(batch, oversight, runtime.keys) == {}
        again = [replace(e, position=(topic, 1, 20 + n)) for n, e in enumerate(earlier)]
        assert await observe_batch(again, oversight, runtime.keys) == {}
        assert await _used(runtime) == 13
        assert await runtime.db[PROCESSED].count_documents({"group": GROUP}) == 3  # the earlier ones only
        assert {doc["_id"]: doc["offset"] async for doc in runtime.db[POSITIONS].find()} == {f"{topic}:0": 9}
    finally:
        await runtime.client.aclose()


async def _used(runtime: Runtime) -> int:
    """The uses counted, in either layout (one document per provider and day, or per resource and consumer)."""
    per_day = [sum(doc["uses"].values()) async for doc in runtime.db[DAILY_USES].find()]
    return sum(per_day) + sum([doc["count"] async for doc in runtime.db[DAILY].find({"measure": Measure.USED.value})])


async def test_a_batch_of_uses_is_one_update_per_provider_and_day_and_uses_counted_before_still_count(infra) -> None:
    """Data accesses fold into one document per provider and day, a field per resource and consumer (codes
    with dots, dollar signs or bars included), added to by each batch; the evaluation reads them with the uses
    counted in the earlier layout (one document per resource, consumer and day), summed per month."""
    runtime = Runtime.build("auditor", settings_for(infra))
    await ensure_indexes(runtime.db)
    oversight = Oversight(store=MongoOversightStore(runtime), clock=FixedDay(TODAY), calendar=CAL)
    p, q = "D01" + "0" * 15, "D02" + "0" * 15
    c1, c2 = "D03" + "0" * 15, "D04" + "0" * 15
    odd = "R.1$|x"  # a code no field name may hold as it is
    oct20, oct21 = date(2026, 10, 20), date(2026, 10, 21)
    batch = [access("R1", p, c1, oct20) for _ in range(3)] + [access(odd, p, c2, oct20), access("R1", p, c1, oct21)]
    batch += [access("R2", q, c1, oct20), access("R1", p, p, oct20)]  # the last: its own data, not a use
    earlier = {  # a use counted by the earlier layout, on the 19th
        "_id": f"used|{p}|2026-10-19|R1|{c1}",
        "measure": "used",
        "department_code": p,
        "day": datetime(2026, 10, 19),
        "resource_code": "R1",
        "other": c1,
        "count": 2,
    }
    try:
        await runtime.db[DAILY].insert_one(earlier)
        assert await observe_batch(batch, oversight, runtime.keys) == {}
        assert await observe_batch([access("R1", p, c1, oct20)], oversight, runtime.keys) == {}
        docs = {doc["_id"]: doc async for doc in runtime.db[DAILY_USES].find()}
        assert sorted(docs) == [f"{p}|2026-10-20", f"{p}|2026-10-21", f"{q}|2026-10-20"]
        oct20_of_p = {use_of(field): n for field, n in docs[f"{p}|2026-10-20"]["uses"].items()}
        assert oct20_of_p == {("R1", c1): 4, (odd, c2): 1}
        assert await runtime.db[DAILY].count_documents({"measure": "used"}) == 1  # nothing added there
        activity = await MongoOversightStore(runtime).activity([p], date(2026, 9, 1), date(2026, 10, 1), TODAY)
        uses = sorted((c.resource_code, c.other, c.count, c.day) for c in activity[0].counts)
        assert uses == sorted([("R1", c1, 2, date(2026, 10, 19)), ("R1", c1, 5, oct20), (odd, c2, 1, oct20)])
    finally:
        await runtime.client.aclose()


async def test_two_writers_on_one_provider_s_day_lose_no_use(infra) -> None:
    """Two oversight writers (two consumers' batches) count uses of the same provider on the same day at once:
    each reads the provider-day document and writes it whole in its transaction, so the database must make
    one of two overlapping writes fail (a write conflict) rather than let it replace the other's count. The
    loser is retried, as the consumer retries a failed batch; every use is counted, once."""
    runtime = Runtime.build("auditor", settings_for(infra))
    await ensure_indexes(runtime.db)
    oversight = Oversight(store=MongoOversightStore(runtime), clock=FixedDay(TODAY), calendar=CAL)
    tag = uuid.uuid4().hex[:6].upper()
    provider, day = f"P{tag}" + "0" * 11, date(2026, 10, 20)
    consumers = [f"C{n}{tag}" + "0" * 10 for n in range(2)]
    rounds, per_batch, conflicts = 12, 25, Counter[str]()

    async def writer(consumer: str) -> None:
        for _ in range(rounds):
            batch = [access("R1", provider, consumer, day) for _ in range(per_batch)]
            for _ in range(50):
                try:
                    assert await observe_batch(batch, oversight, runtime.keys) == {}
                    break
                except PyMongoError as exc:  # the transaction lost to the other writer's: the batch again
                    if not exc.has_error_label("TransientTransactionError"):
                        raise
                    conflicts[consumer] += 1
                    await asyncio.sleep(random.random() * 0.01)
            else:
                raise AssertionError("a batch kept conflicting")

    try:
        await asyncio.gather(*(writer(c) for c in consumers))
        doc = await runtime.db[DAILY_USES].find_one({"_id": f"{provider}|{day.isoformat()}"})
        assert doc is not None
        counted = {use_of(field)[1]: n for field, n in doc["uses"].items()}
        assert counted == {c: rounds * per_batch for c in consumers}, (counted, conflicts)

        # the overlap made certain: the second writer reads the document while the first's write is not
        # committed; one of the two transactions fails (when it writes, or when it commits), never both succeed
        later = date(2026, 10, 21)
        one, other = (DailyCount(Measure.USED, provider, later, "R1", c, 1) for c in consumers)
        failed: list[str] = []
        try:
            async with oversight.store() as first:
                await first.project([], [one], [])
                try:
                    async with oversight.store() as second:
                        await second.project([], [other], [])
                except PyMongoError as exc:
                    assert exc.has_error_label("TransientTransactionError"), exc
                    failed.append("second")
        except PyMongoError as exc:
            assert exc.has_error_label("TransientTransactionError"), exc
            failed.append("first")
        assert len(failed) == 1, failed
        async with oversight.store() as again:  # the loser retried
            await again.project([], [one if failed == ["first"] else other], [])
        doc = await runtime.db[DAILY_USES].find_one({"_id": f"{provider}|{later.isoformat()}"})
        assert doc is not None and sorted(doc["uses"].values()) == [1, 1], doc
    finally:
        await runtime.client.aclose()


async def test_an_event_relayed_twice_from_an_outbox_is_projected_once(infra) -> None:
    """An outbox relay sends at least once: the same event (same id) may stand at two offsets of its topic.
    Only the data accesses (sent once each, by the idempotent producer) are known by their partition's mark;
    a catalog or exchange event read again at a new offset (in a later batch or the same) is recognised by its
    id, counted and kept once."""
    runtime = Runtime.build("auditor", settings_for(infra))
    await ensure_indexes(runtime.db)
    oversight = Oversight(store=MongoOversightStore(runtime), clock=FixedDay(TODAY), calendar=CAL)
    provider, day = "D01" + "0" * 15, date(2026, 10, 20)
    change, entry = stored("R1", provider, day), published("R1", provider, 1, "DAILY", day)
    try:
        for offset in (0, 1):  # the same event again, at the next offset
            for topic, e in (("exchange.resource-changes", change), ("catalog.entry-events", entry)):
                assert await observe_batch([replace(e, position=(topic, 0, offset))], oversight, runtime.keys) == {}
        change2, entry2 = stored("R2", provider, day), published("R2", provider, 1, "DAILY", day)
        both = [replace(change2, position=("exchange.resource-changes", 0, n)) for n in (2, 3)]
        both += [replace(entry2, position=("catalog.entry-events", 0, n)) for n in (2, 3)]
        assert await observe_batch(both, oversight, runtime.keys) == {}  # both copies read in one batch
        delivered = [doc async for doc in runtime.db[DAILY].find({"measure": Measure.DELIVERED.value})]
        assert sorted((doc["resource_code"], doc["count"]) for doc in delivered) == [("R1", 1), ("R2", 1)]
        assert await runtime.db[ENTRY_FACTS].count_documents({}) == 2
        recorded = {doc["event_id"] async for doc in runtime.db[PROCESSED].find({"group": GROUP})}
        assert recorded == {change.event_id, entry.event_id, change2.event_id, entry2.event_id}
        assert await runtime.db[POSITIONS].count_documents({}) == 0
    finally:
        await runtime.client.aclose()


async def test_a_mark_left_by_a_replaced_log_is_replaced_and_its_events_projected(infra) -> None:
    """A recreated topic starts its offsets at 0 again: the mark of the old log names another event than the
    new log holds at its offset, so it is set anew (lowered) and the new events are projected; an event
    skipped as at or below a mark is counted (and logged)."""
    runtime = Runtime.build("auditor", settings_for(infra))
    await ensure_indexes(runtime.db)
    oversight = Oversight(store=MongoOversightStore(runtime), clock=FixedDay(TODAY), calendar=CAL)
    provider, consumer, topic = "D01" + "0" * 15, "D02" + "0" * 15, "exchange.data-accesses"
    day = date(2026, 10, 20)
    labels = {"topic": topic}
    try:
        old = [replace(access("R1", provider, consumer, day), position=(topic, 3, n)) for n in range(5)]
        assert await observe_batch(old, oversight, runtime.keys) == {}
        skipped_before = REGISTRY.get_sample_value("datashare_oversight_events_below_mark_total", labels) or 0
        assert await observe_batch(old[2:], oversight, runtime.keys) == {}  # redelivered: at or below the mark
        skipped = REGISTRY.get_sample_value("datashare_oversight_events_below_mark_total", labels)
        assert skipped == skipped_before + 3
        assert await _used(runtime) == 5
        new = [replace(access("R1", provider, consumer, day), position=(topic, 3, n)) for n in range(8)]
        assert await observe_batch(new[:6], oversight, runtime.keys) == {}  # holds offset 4 under another id
        assert await _used(runtime) == 11
        mark = await runtime.db[POSITIONS].find_one({"_id": f"{topic}:3"})
        assert mark is not None and (mark["offset"], mark["event_id"]) == (5, new[5].event_id)
        assert await observe_batch(new[4:], oversight, runtime.keys) == {}  # the new log's next batch
        assert await _used(runtime) == 13
        mark = await runtime.db[POSITIONS].find_one({"_id": f"{topic}:3"})
        assert mark is not None and (mark["offset"], mark["event_id"]) == (7, new[7].event_id)
    finally:
        await runtime.client.aclose()


async def test_the_oversight_consumer_marks_the_accesses_it_read_and_records_the_rest_by_id(infra, topics) -> None:
    """Through the broker and the oversight's own consumer: the data accesses leave their partition's mark (the
    offset and id of the last one read) and no record each; a resource change the relay wrote twice is
    counted once and recorded by its id."""
    settings = settings_for(infra, consumer_group_prefix=f"m{uuid.uuid4().hex[:6]}-")
    for topic in OBSERVED_TOPICS:
        await skip_backlog(infra, settings.consumer_group_prefix + GROUP, topic)
    runtime = Runtime.build("auditor", settings)
    await ensure_indexes(runtime.db)
    oversight = Oversight(store=MongoOversightStore(runtime), clock=FixedDay(TODAY), calendar=CAL)
    consumer = runtime.consume(GROUP, OBSERVED_TOPICS, batch=observed_events.batch_handler(oversight, runtime.keys))
    provider, day = "D9" + uuid.uuid4().hex[:16].upper(), date(2026, 10, 20)
    accesses = [access(f"R{n}", provider, "D02" + "0" * 15, day) for n in range(6)]
    change, later_change = stored("R1", provider, day), stored("R1", provider, day + timedelta(days=1))
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    await runtime.publisher.start()
    task = asyncio.create_task(consumer.run())
    try:
        last: dict[int, tuple[int, str]] = {}
        for e in accesses:
            sent = await publisher.publish("exchange.data-accesses", e)
            last[sent.partition] = max(last.get(sent.partition, (-1, "")), (sent.offset, e.event_id))
        for e in (change, change, later_change):  # the same key: one partition, read in this order
            await publisher.publish("exchange.resource-changes", e)
        delivered: list[dict] = []
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            delivered = [doc async for doc in runtime.db[DAILY].find({"department_code": provider})]
            used = await _used(runtime)
            days = {d["day"].date() for d in delivered if d["measure"] == Measure.DELIVERED.value}
            if used == len(accesses) and day + timedelta(days=1) in days:
                break
            await asyncio.sleep(0.2)
        assert await _used(runtime) == len(accesses)
        assert sum(d["count"] for d in delivered if d["measure"] == Measure.DELIVERED.value) == 2
        marks = {doc["_id"]: (doc["offset"], doc["event_id"]) async for doc in runtime.db[POSITIONS].find()}
        assert marks == {f"exchange.data-accesses:{p}": at for p, at in last.items()}
        recorded = {doc["event_id"] async for doc in runtime.db[PROCESSED].find({"group": GROUP})}
        assert recorded == {change.event_id, later_change.event_id}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await publisher.stop()
        await runtime.publisher.stop()
        await runtime.client.aclose()


async def test_the_city_s_last_months_count_accesses_stored_changes_and_published_versions(infra) -> None:
    """The trend the city's dashboard draws: the last twelve months to the auditor's today, oldest first, each
    with the data served to other departments, the changes stored and the catalog versions published, summed by
    the database; a refused access and what came before the twelve months are not counted, a quiet month is 0s."""
    runtime = Runtime.build("auditor", settings_for(infra))
    await ensure_indexes(runtime.db)
    oversight = Oversight(store=MongoOversightStore(runtime), clock=FixedDay(TODAY), calendar=CAL)
    provider, consumer, code = "D01" + "0" * 15, "D02" + "0" * 15, "101001/000001"
    events = [
        published(code, provider, 1, "DAILY", date(2026, 9, 10)),
        published(code, provider, 2, "DAILY", date(2026, 10, 20)),
        stored(code, provider, date(2026, 10, 21)),
        *(access(code, provider, consumer, date(2026, 10, day)) for day in (22, 23, 31)),
        access(code, provider, consumer, date(2026, 11, 1)),
        access(code, provider, consumer, date(2026, 11, 1), result="REFUSED", reason="purpose"),
        access(code, provider, consumer, date(2025, 11, 28)),  # a year before: outside the twelve months
    ]
    earlier = {  # uses counted in the layout of one document per resource, consumer and day
        "_id": f"used|{provider}|2026-08-03|{code}|{consumer}",
        "measure": Measure.USED.value,
        "department_code": provider,
        "day": datetime(2026, 8, 3),
        "resource_code": code,
        "other": consumer,
        "count": 2,
    }
    try:
        await runtime.db[DAILY].insert_one(earlier)
        assert await observe_batch(events, oversight, runtime.keys) == {}
        found = await handlers.trends(12, oversight)
    finally:
        await runtime.client.aclose()
    assert [m.month for m in found] == ["2025-12", *(f"2026-{n:02d}" for n in range(1, 12))]
    counted = {m.month: (m.accesses, m.changes_stored, m.entries_published) for m in found}
    assert counted.pop("2026-08") == (2, 0, 0)
    assert counted.pop("2026-09") == (0, 0, 1)
    assert counted.pop("2026-10") == (3, 1, 1)
    assert counted.pop("2026-11") == (1, 0, 0)
    assert set(counted.values()) == {(0, 0, 0)}


async def test_findings_escalate_once_their_deadline_passed_unless_a_report_in_time_awaits_its_answer(
    infra, topics, services, tmp_path
) -> None:
    """A finding raised from an event, and three the IT office raised, while their deadlines are ahead. The
    department's data administrator hands in a rectification report; another department's people, and its own
    compiler, are refused. The IT office rejects it (the finding stays open), the department reports again and
    the IT office accepts: corrected, the report its proof. The auditor started again after the deadlines (its
    date moved on) escalates the findings without a report at once and announces the notices of criticism, but
    not the one whose report came in time and awaits the answer; rejected then, it escalates at once. Each step
    is an event on auditor.findings."""
    tag = uuid.uuid4().hex[:6].upper()
    a, b = f"A{tag}", f"B{tag}"
    settings = settings_for(infra)
    codec = EventCodec.from_folder()

    async def auditor_on(day: date) -> ServiceProcess:
        auditor = ServiceProcess(
            "auditor", infra, tmp_path, mongo_database=settings.mongo_database, today=day.isoformat()
        )
        for group, names in (("auditor-oversight", OBSERVED_TOPICS), ("auditor-trail", AUDITED_TOPICS)):
            for topic in names:
                await skip_backlog(infra, f"{auditor.group_prefix}{group}", topic)
        services.append(auditor.start())
        await auditor.wait_ready()
        return auditor

    async def events_of(finding_id: str, count: int) -> list[str]:
        """The types of the finding's events on auditor.findings, in their order (once each)."""
        found = await read_topic(
            infra.bootstrap,
            "auditor.findings",
            count,
            timeout=30,
            where=lambda r: r.key == a.encode() and codec.decode(r.value)[1]["finding_id"] == finding_id,
        )
        seen: dict[str, str] = {}
        for record in found:
            seen.setdefault(headers_of(record)["event_id"], headers_of(record)["event_type"])
        return list(seen.values())

    operator = bearer("IT", Role.IT_OFFICE_OPERATOR, subject="it-operator")
    admin_a = bearer(a, Role.DATA_ADMINISTRATOR, subject="a-admin")
    refused = {
        "compiler_A": bearer(a, Role.CATALOG_COMPILER, subject="a-compiler"),
        "auditor": bearer("IT", Role.AUDITOR, subject="auditor"),
    }
    first = await auditor_on(date(2026, 10, 26))
    publisher = KafkaPublisher(settings, codec, load_topics())
    await publisher.start()
    try:
        overdue = decision_overdue(f"B{tag}", f"103{tag[:3]}/{tag}", a, b, date(2026, 10, 23), date(2026, 10, 22))
        await publisher.publish("exchange.share-events", overdue)
    finally:
        await publisher.stop()
    [raised_event] = await read_topic(
        infra.bootstrap,
        "auditor.findings",
        1,
        where=lambda r: (
            headers_of(r)["event_type"] == "AuditFindingRaised"
            and r.key == a.encode()
            and codec.decode(r.value)[1]["reference"] == f"request:B{tag}"
        ),
    )
    from_event = codec.decode(raised_event.value)[1]["finding_id"]
    async with httpx.AsyncClient(base_url=first.url, timeout=60) as client:
        found = (await client.get(f"/findings/{from_event}", headers=operator)).json()
        assert (found["status"], found["correct_by"]) == ("OPEN", "2026-10-30")
        ids = []
        for n in range(3):
            body = {
                "department_code": a,
                "category": "USE_OUTSIDE_PURPOSE",
                "matter": f"grant:G{tag}{n}",
                "description": "用于营销",
                "evidence": "举报材料",
                "request_id": f"req-{tag}-{n}",
            }
            raised = await client.post("/findings", json=body, headers=operator)
            assert raised.status_code == 201, raised.text
            ids.append(raised.json()["finding_id"])
        rejected_then_accepted, held, unreported = ids
        assert raised.json()["correct_by"] == "2026-11-02"  # 5 working days

        path = f"/findings/{rejected_then_accepted}/report"
        report = {"text": "已停止该用途并删除数据", "reference": "吉A〔2026〕3号"}
        for who, headers in refused.items():
            answer = await client.post(path, json=report, headers=headers)
            assert answer.status_code == 403, (who, answer.text)
        other = await client.post(path, json=report, headers=bearer(b, Role.DATA_ADMINISTRATOR, subject="b-admin"))
        assert other.status_code == 404, other.text  # another department's: as if it did not exist
        too_long = await client.post(path, json={"text": "长" * 4001}, headers=admin_a)
        assert too_long.status_code == 422
        sent = await client.post(path, json=report, headers=admin_a)
        assert sent.status_code == 200, sent.text
        [shown] = sent.json()["reports"]
        assert (shown["text"], shown["reference"], shown["submitted_by"], shown["submitted_on"], shown["answer"]) == (
            "已停止该用途并删除数据",
            "吉A〔2026〕3号",
            "a-admin",
            "2026-10-26",
            "AWAITED",
        )
        assert sent.json()["held"] and sent.json()["status"] == "OPEN"
        assert (await client.post(path, json=report, headers=admin_a)).status_code == 409  # one at a time
        assert (await client.post(path + "/rejection", json={"reason": "x"}, headers=admin_a)).status_code == 403
        back = await client.post(path + "/rejection", json={"reason": "未见删除记录"}, headers=operator)
        assert back.status_code == 200, back.text
        assert (back.json()["status"], back.json()["reports"][-1]["answer"], back.json()["held"]) == (
            "OPEN",
            "REJECTED",
            False,
        )
        assert back.json()["reports"][-1]["reason"] == "未见删除记录"
        again = await client.post(path, json={"text": "附删除日志"}, headers=admin_a)
        assert again.status_code == 200 and len(again.json()["reports"]) == 2
        done = await client.post(path + "/acceptance", headers=operator)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "CORRECTED" and "附删除日志" in done.json()["proof"]
        assert (await client.post(path + "/acceptance", headers=operator)).status_code == 409

        sent = await client.post(f"/findings/{held}/report", json={"text": "已整改"}, headers=admin_a)
        assert sent.status_code == 200 and sent.json()["held"]
    # what the deadline watch asks the database: the held finding is not due (else it would wake at once, again)
    mongo = AsyncMongoClient(infra.mongo_uri)
    try:
        stored = mongo[settings.mongo_database][FINDINGS]
        assert await stored.find_one(DUE | {"_id": held}) is None
        assert await stored.find_one(DUE | {"_id": unreported}) is not None
    finally:
        await mongo.close()
    assert await events_of(rejected_then_accepted, 5) == [
        "AuditFindingRaised",
        "AuditFindingReported",
        "AuditFindingReportRejected",
        "AuditFindingReported",
        "AuditFindingCorrected",
    ]
    first.stop()

    # the day after the deadline: the finding without a report escalates, the one whose report awaits does not
    later = await auditor_on(date(2026, 11, 4))
    assert await events_of(unreported, 2) == ["AuditFindingRaised", "AuditFindingEscalated"]
    assert await events_of(from_event, 2) == ["AuditFindingRaised", "AuditFindingEscalated"]
    async with httpx.AsyncClient(base_url=later.url, timeout=60) as client:
        after = (await client.get(f"/findings/{from_event}", headers=operator)).json()
        assert (after["status"], after["escalated_on"]) == ("ESCALATED", "2026-11-04")
        notice = await client.get(f"/findings/{from_event}/notice.html", headers=operator)
        assert notice.status_code == 200 and "通报批评" in notice.text and "2026-10-30" in notice.text
        waiting = (await client.get(f"/findings/{held}", headers=operator)).json()
        assert (waiting["status"], waiting["held"]) == ("OPEN", True)
        late = await client.post(f"/findings/{unreported}/report", json={"text": "补报"}, headers=admin_a)
        assert late.status_code == 409  # escalated: nothing to report
        back = await client.post(f"/findings/{held}/report/rejection", json={"reason": "不充分"}, headers=operator)
        assert back.status_code == 200
        # rejected after the deadline: escalated at the watch's next look, which the rejection wakes
        assert await events_of(held, 4) == [
            "AuditFindingRaised",
            "AuditFindingReported",
            "AuditFindingReportRejected",
            "AuditFindingEscalated",
        ]
        after = (await client.get(f"/findings/{held}", headers=admin_a)).json()
        assert (after["status"], after["escalated_on"]) == ("ESCALATED", "2026-11-04")


async def test_the_trend_counts_an_access_in_the_month_of_its_beijing_day(infra) -> None:
    """An access at 07:00 Beijing on 1 November is 23:00 UTC on 31 October: the city counts it in November, as
    the evaluation does (a day is a Beijing day), not in the month of its UTC time."""
    runtime = Runtime.build("auditor", settings_for(infra))
    await ensure_indexes(runtime.db)
    oversight = Oversight(store=MongoOversightStore(runtime), clock=FixedDay(TODAY), calendar=CAL)
    provider, consumer, code = "D03" + "0" * 15, "D04" + "0" * 15, "101001/000002"
    seven_in_beijing = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    served = access(code, provider, consumer, date(2026, 11, 1))
    served = replace(served, payload=served.payload | {"accessed_at": seven_in_beijing}, occurred_at=seven_in_beijing)
    try:
        assert await observe_batch([served], oversight, runtime.keys) == {}
        found = {m.month: m.accesses for m in await handlers.trends(2, oversight)}
    finally:
        await runtime.client.aclose()
    assert found == {"2026-10": 0, "2026-11": 1}


async def test_a_waiting_report_is_listed_answered_not_bypassed_and_answers_only_what_came_before_it(
    infra, topics, services, tmp_path
) -> None:
    """Through the running auditor: the IT office lists the findings whose report awaits its answer
    (`awaiting`); it may not close such a finding beside the report (409), and a report it files for the
    department says so. A new occurrence of the matter while the report waits is kept apart, and accepting the
    report closes only what came before it: the later occurrence becomes a finding of its own. An event proving
    the matter made good supersedes the waiting report. Each closed finding says what closed it. Another
    department gets the same 404 for a finding that exists and one that does not, and text of white space
    only is refused (422)."""
    tag = uuid.uuid4().hex[:6].upper()
    a, b, request = f"A{tag}", f"B{tag}", f"Q{tag}"
    settings = settings_for(infra)
    codec = EventCodec.from_folder()
    auditor = ServiceProcess("auditor", infra, tmp_path, mongo_database=settings.mongo_database, today="2026-10-26")
    for group, names in (("auditor-oversight", OBSERVED_TOPICS), ("auditor-trail", AUDITED_TOPICS)):
        for topic in names:
            await skip_backlog(infra, f"{auditor.group_prefix}{group}", topic)
    services.append(auditor.start())
    await auditor.wait_ready()
    operator = bearer("IT", Role.IT_OFFICE_OPERATOR, subject="it-operator")
    admin_a = bearer(a, Role.DATA_ADMINISTRATOR, subject="a-admin")
    admin_b = bearer(b, Role.DATA_ADMINISTRATOR, subject="b-admin")
    publisher = KafkaPublisher(settings, codec, load_topics())
    await publisher.start()
    try:
        code = f"105{tag[:3]}/{tag}"
        await publisher.publish(
            "exchange.share-events", decision_overdue(request, code, a, b, date(2026, 10, 23), date(2026, 10, 22))
        )
        [raised_event] = await read_topic(
            infra.bootstrap,
            "auditor.findings",
            1,
            where=lambda r: r.key == a.encode() and codec.decode(r.value)[1]["reference"] == f"request:{request}",
        )
        from_event = codec.decode(raised_event.value)[1]["finding_id"]
        async with httpx.AsyncClient(base_url=auditor.url, timeout=60) as client:

            async def raised(matter: str, n: int, evidence: str = "举报材料") -> dict:
                body = {
                    "department_code": a,
                    "category": "USE_OUTSIDE_PURPOSE",
                    "matter": matter,
                    "description": "用于营销",
                    "evidence": evidence,
                    "request_id": f"req-{tag}-{n}",
                }
                answer = await client.post("/findings", json=body, headers=operator)
                assert answer.status_code == 201, answer.text
                return answer.json()

            # the first on the grant an out-of-purpose access names (`access`): events add to it below
            matters = ("grant:G-1", f"grant:G{tag}1", f"grant:G{tag}2")
            reported, by_office, untouched = [await raised(matter, n) for n, matter in enumerate(matters)]
            rid, oid = reported["finding_id"], by_office["finding_id"]

            # white space only is no text; nor is one beyond its bound
            blank = {"description": " \n\t ", "evidence": "  "}
            for field, value in blank.items():
                body = {
                    "department_code": a,
                    "category": "USE_OUTSIDE_PURPOSE",
                    "matter": f"grant:W{tag}",
                    "description": "用于营销",
                    "evidence": "举报",
                    "request_id": f"blank-{tag}-{field}",
                } | {field: value}
                assert (await client.post("/findings", json=body, headers=operator)).status_code == 422, field
            for path, body, who in (
                (f"/findings/{rid}/report", {"text": "   "}, admin_a),
                (f"/findings/{rid}/report", {"text": "长" * 4001}, admin_a),
                (f"/findings/{rid}/correction", {"proof": "\n"}, operator),
            ):
                answer = await client.post(path, json=body, headers=who)
                assert answer.status_code == 422, (path, body, answer.text)

            # the department reports; the IT office files one on another finding for the department
            sent = await client.post(f"/findings/{rid}/report", json={"text": "已停止该用途"}, headers=admin_a)
            assert sent.status_code == 200, sent.text
            mine = sent.json()["reports"][-1]
            assert (mine["submitted_by"], mine["submitted_by_department"], mine["on_behalf"]) == ("a-admin", a, False)
            filed = await client.post(f"/findings/{oid}/report", json={"text": "代为报送：已停用"}, headers=operator)
            assert filed.status_code == 200, filed.text
            theirs = filed.json()["reports"][-1]
            assert (theirs["submitted_by"], theirs["submitted_by_department"], theirs["on_behalf"]) == (
                "it-operator",
                "IT",
                True,
            )
            ev = await client.post(f"/findings/{from_event}/report", json={"text": "已答复申请"}, headers=admin_a)
            assert ev.status_code == 200 and ev.json()["awaiting"]
            blank_reason = await client.post(
                f"/findings/{rid}/report/rejection", json={"reason": " "}, headers=operator
            )
            assert blank_reason.status_code == 422

            # what awaits the IT office's answer, and what does not
            async def listed(**params: object) -> set[str]:
                page = await client.get("/findings", params={"department_code": a, **params}, headers=operator)
                assert page.status_code == 200, page.text
                return {f["finding_id"] for f in page.json()["items"]}

            assert await listed(awaiting="true") == {rid, oid, from_event}
            assert await listed(awaiting="false") == {untouched["finding_id"]}
            own = await client.get("/findings", params={"awaiting": "true"}, headers=admin_a)
            assert {f["finding_id"] for f in own.json()["items"]} == {rid, oid, from_event}
            assert (await client.get("/findings", params={"awaiting": "maybe"}, headers=operator)).status_code == 422

            # not closed beside the waiting report: the IT office answers the report
            bypass = await client.post(f"/findings/{rid}/correction", json={"proof": "已核实"}, headers=operator)
            assert bypass.status_code == 409 and "awaits" in bypass.text
            assert (await client.get(f"/findings/{rid}", headers=operator)).json()["status"] == "OPEN"

            # the same matter again while the report waits (it came 10-26): an access of 10-23 handled only now,
            # and the IT office's own of the day, are what the report answers; one of 10-27 is kept apart, then
            # a finding of its own
            def out_of_purpose(day: date) -> Event:
                return access(code, b, a, day, "REFUSED", "the stated purpose is not the grant's")

            async def seen(occurrences: int, later: int) -> dict:
                for _ in range(100):
                    now = (await client.get(f"/findings/{rid}", headers=operator)).json()
                    if (now["occurrences"], now["later_occurrences"]) == (occurrences, later):
                        return now
                    await asyncio.sleep(0.2)
                raise AssertionError(now)

            await publisher.publish("exchange.data-accesses", out_of_purpose(date(2026, 10, 23)))
            await seen(2, 0)
            again = await raised("grant:G-1", 10, evidence="再次举报 2026-10-26")
            assert (again["finding_id"], again["occurrences"], again["later_occurrences"]) == (rid, 3, 0)
            after = out_of_purpose(date(2026, 10, 27))
            await publisher.publish("exchange.data-accesses", after)
            later_one = await seen(3, 1)
            [later_evidence] = later_one["later_evidence"]
            assert after.payload["access_id"] in later_evidence
            done = await client.post(f"/findings/{rid}/report/acceptance", headers=operator)
            assert done.status_code == 200, done.text
            closed = done.json()
            assert (closed["status"], closed["closed_by"], closed["corrected_by_department"]) == (
                "CORRECTED",
                "REPORT",
                True,
            )
            assert closed["closed_by_person"] == "it-operator" and closed["occurrences"] == 3
            assert closed["continued"] and closed["later_occurrences"] == 0
            rest = (await client.get(f"/findings/{closed['continued']}", headers=admin_a)).json()
            assert (rest["status"], rest["occurrences"], rest["evidence"], rest["matter"], rest["detected_on"]) == (
                "OPEN",
                1,
                [later_evidence],
                "grant:G-1",
                "2026-10-27",
            )
            assert rest["correct_by"] == "2026-11-02" and not rest["reports"]  # 5 working days from the acceptance

            # the IT office's own correction of a finding without a waiting report
            fixed = await client.post(
                f"/findings/{untouched['finding_id']}/correction", json={"proof": "已核实停用"}, headers=operator
            )
            assert (fixed.json()["closed_by"], fixed.json()["corrected_by_department"]) == ("IT_OFFICE", False)

            # an event proves the decision given: the waiting report is superseded
            await publisher.publish(
                "exchange.share-events", decided(request, code, a, b, date(2026, 10, 26), date(2026, 10, 22))
            )
            for _ in range(100):
                proven = (await client.get(f"/findings/{from_event}", headers=admin_a)).json()
                if proven["status"] != "OPEN":
                    break
                await asyncio.sleep(0.2)
            assert (proven["status"], proven["closed_by"], proven["closed_by_person"]) == ("CORRECTED", "EVENT", None)
            assert proven["reports"][-1]["answer"] == "SUPERSEDED" and not proven["awaiting"]
            assert await listed(awaiting="true") == {oid}

            # another department: the same answer whether the finding exists or not
            for method, suffix, body in (("GET", "", None), ("POST", "/report", {"text": "代为报送"})):
                there = await client.request(method, f"/findings/{oid}{suffix}", json=body, headers=admin_b)
                nowhere = await client.request(method, f"/findings/FNONE{tag}{suffix}", json=body, headers=admin_b)
                assert there.status_code == nowhere.status_code == 404, (there.text, nowhere.text)
                assert there.text.replace(oid, "X") == nowhere.text.replace(f"FNONE{tag}", "X")
            notice = await client.get(f"/findings/{oid}/notice.html", headers=admin_b)
            assert notice.status_code == 404

        # the events say what closed each finding, which report an event superseded, what a finding continues
        async def event_of(event_type: str, finding: str) -> dict:
            [record] = await read_topic(
                infra.bootstrap,
                "auditor.findings",
                1,
                where=lambda r: (
                    r.key == a.encode()
                    and codec.decode(r.value)[0] == event_type
                    and codec.decode(r.value)[1]["finding_id"] == finding
                ),
            )
            return codec.decode(record.value)[1]

        accepted = await event_of("AuditFindingCorrected", rid)
        assert (accepted["closed_by"], accepted["corrected_by"], accepted["superseded_report_on"]) == (
            "REPORT",
            "it-operator",
            None,
        )
        assert (await event_of("AuditFindingRaised", closed["continued"]))["continues"] == rid
        assert (await event_of("AuditFindingRaised", rid))["continues"] is None
        proved = await event_of("AuditFindingCorrected", from_event)
        assert (proved["closed_by"], proved["corrected_by"], proved["superseded_report_on"]) == (
            "EVENT",
            None,
            date(2026, 10, 26),
        )
        own_correction = await event_of("AuditFindingCorrected", untouched["finding_id"])
        assert (own_correction["closed_by"], own_correction["superseded_report_on"]) == ("IT_OFFICE", None)
    finally:
        await publisher.stop()


def stored_before_answers_came_first(f: Finding) -> dict:
    """The document code from before a waiting report had to be answered first kept of `f`: no closure, no
    filer's department, no later occurrences, and `held` as that code computed it (its own rule, the same)."""
    doc = finding_doc(f)
    for field in ("closed_by", "closed_by_person", "later", "later_occurrences", "later_since", "continued"):
        del doc[field]
    for report in doc["reports"]:
        del report["submitted_by_department"], report["on_behalf"]
    return doc


async def test_findings_stored_by_the_code_before_are_read_as_this_code_keeps_them(
    infra, topics, services, tmp_path
) -> None:
    """Findings kept before a waiting report had to be answered first: one closed by the IT office's
    correction left its report AWAITED. Through the running auditor (which ensures its indexes as it starts),
    only the open finding whose report waits is in the IT office's queue; the closed one says its report was
    superseded and awaits nothing, and stays out of the queue after another start. They were kept before what
    closed a finding and who filed a report were: one closed with an accepted report was closed by it; of the
    others, and of who filed, nothing is known, and the answer says so (null), not "not the department"."""
    tag = uuid.uuid4().hex[:6].upper()
    a = f"A{tag}"
    settings = settings_for(infra)
    day, answer_day = date(2026, 10, 20), date(2026, 10, 22)
    report = RectificationReport("已整改", None, "a-admin", day)

    def finding(n: int, **changes: object) -> Finding:
        base = Finding(
            finding_id=f"FOLD{tag}{n}",
            department_code=a,
            category=Category.USE_OUTSIDE_PURPOSE,
            matter=f"grant:G{tag}{n}",
            description="用于营销",
            detected_on=date(2026, 10, 19),
            correct_by=date(2026, 10, 26),
            raised_by="it-operator",
            evidence=("举报材料",),
        )
        return replace(base, **changes)

    waiting = finding(1, reports=(report,))
    closed_beside = finding(2, reports=(report,), status=Status.CORRECTED, corrected_on=answer_day, proof="已核实")
    accepted = replace(report, answer=Answer.ACCEPTED, answered_by="it-operator", answered_on=answer_day)
    by_report = finding(3, reports=(accepted,), status=Status.CORRECTED, corrected_on=answer_day, proof="报告")
    unsaid = finding(4, status=Status.CORRECTED, corrected_on=answer_day, proof="version 2 published")
    assert waiting.held and not closed_beside.held
    olds = (waiting, closed_beside, by_report, unsaid)
    mongo = AsyncMongoClient(infra.mongo_uri)
    try:
        stored = mongo[settings.mongo_database][FINDINGS]
        await stored.insert_many([stored_before_answers_came_first(f) for f in olds])
    finally:
        await mongo.close()
    operator = bearer("IT", Role.IT_OFFICE_OPERATOR, subject="it-operator")

    async def look() -> None:
        auditor = ServiceProcess("auditor", infra, tmp_path, mongo_database=settings.mongo_database, today="2026-10-23")
        for group, names in (("auditor-oversight", OBSERVED_TOPICS), ("auditor-trail", AUDITED_TOPICS)):
            for name in names:
                await skip_backlog(infra, f"{auditor.group_prefix}{group}", name)
        services.append(auditor.start())
        await auditor.wait_ready()
        async with httpx.AsyncClient(base_url=auditor.url, timeout=60) as client:

            async def listed(**params: object) -> set[str]:
                page = await client.get("/findings", params={"department_code": a, **params}, headers=operator)
                assert page.status_code == 200, page.text
                return {f["finding_id"] for f in page.json()["items"]}

            assert await listed(awaiting="true") == {waiting.finding_id}
            assert await listed(awaiting="false") == {f.finding_id for f in olds[1:]}
            shown = (await client.get(f"/findings/{closed_beside.finding_id}", headers=operator)).json()
            assert (shown["status"], shown["awaiting"], shown["held"]) == ("CORRECTED", False, False)
            assert shown["reports"][-1]["answer"] == "SUPERSEDED"
            open_one = (await client.get(f"/findings/{waiting.finding_id}", headers=operator)).json()
            assert (open_one["awaiting"], open_one["reports"][-1]["answer"]) == (True, "AWAITED")
            # what closed it: the accepted report did; of the others nothing says (not "not the department")
            closure = {}
            for f in olds:
                got = (await client.get(f"/findings/{f.finding_id}", headers=operator)).json()
                closure[f.finding_id] = (got["closed_by"], got["closed_by_person"], got["corrected_by_department"])
                # who filed a report kept before the filer's department was is not known (the IT office could)
                assert all((r["submitted_by_department"], r["on_behalf"]) == (None, None) for r in got["reports"])
            assert closure == {
                waiting.finding_id: (None, None, False),
                closed_beside.finding_id: (None, None, None),
                by_report.finding_id: ("REPORT", "it-operator", True),
                unsaid.finding_id: (None, None, None),
            }
        services.pop().stop()

    await look()
    await look()  # a second start changes nothing
