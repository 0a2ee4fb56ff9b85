"""Violations (Art. 24): findings against a department, with their evidence and a deadline to correct in
working days. A corrected finding is closed with its proof; one still open after its deadline escalates to a
notice of criticism (通报批评) for the city government. Standard library only.

The department hands in its rectification report (整改报告) on an open finding, on or before its deadline;
the IT office accepts it (the finding is corrected, the report its proof) or rejects it with a reason (the
finding stays open and the department may report again). A report awaiting the IT office's answer holds the
escalation, however long the answer takes; a rejected one holds nothing: past the deadline, the finding
escalates at the watch's next look (which the rejection itself wakes). While a report awaits its answer, the
IT office does not close the finding another way (it answers the report); an event proving the matter made
good closes it and supersedes the report. New occurrences of the matter while a report awaits, dated after the
day it came, are kept apart (`later`): the report speaks for what came before it (and on its day), so
accepting it closes the finding and the later occurrences become a finding of their own (`continued`);
rejecting it folds them in.

Which event suggests which finding, and which event proves it corrected, is said once, in `signals_of_*`
below (the inbound adapter translates events into the facts these read)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from services.auditor.domain.activity import (
    DecisionFact,
    DecisionStep,
    EntryFact,
    EntryStep,
    Fact,
    OutOfPurposeAccess,
    RefusedChange,
)
from services.auditor.domain.scoring import WorkingDays

EVIDENCE_KEPT = 20  # evidence lines kept per finding; `occurrences` counts them all


class Category(StrEnum):
    """Art. 24 (1)–(4)."""

    CATALOG_NOT_MAINTAINED = "CATALOG_NOT_MAINTAINED"
    DATA_NOT_PROVIDED_IN_TIME = "DATA_NOT_PROVIDED_IN_TIME"
    DATA_INCONSISTENT_OR_UNUSABLE = "DATA_INCONSISTENT_OR_UNUSABLE"
    USE_OUTSIDE_PURPOSE = "USE_OUTSIDE_PURPOSE"


ARTICLE: dict[Category, str] = {
    Category.CATALOG_NOT_MAINTAINED: "第二十四条（一）未按要求编制或更新政务信息资源目录",
    Category.DATA_NOT_PROVIDED_IN_TIME: "第二十四条（二）未按要求及时提供共享数据",
    Category.DATA_INCONSISTENT_OR_UNUSABLE: "第二十四条（三）提供的共享数据不一致或无法使用",
    Category.USE_OUTSIDE_PURPOSE: "第二十四条（四）将共享数据用于履行职责以外的用途",
}


REPORTS_KEPT = 10  # rectification reports kept per finding, the latest last (each answered but the latest)
REPORT_LENGTH = 4000  # characters of a report's text, of a reason, of a proof


class Status(StrEnum):
    OPEN = "OPEN"
    CORRECTED = "CORRECTED"
    ESCALATED = "ESCALATED"  # a notice of criticism was issued


@dataclass(frozen=True)
class Suspicion:
    """Something that is a violation unless it is made good: raises a finding, or adds evidence to the one
    already open on the same matter."""

    department_code: str
    category: Category
    matter: str  # what the finding is about, e.g. `entry:101001/000001`, `request:<id>`
    description: str
    evidence: str
    on: date
    source_id: str  # the event (or command) it came from: the finding's id is derived from it


@dataclass(frozen=True)
class Remedy:
    """Proof that the matter of an open finding was made good."""

    department_code: str
    category: Category
    matter: str
    proof: str
    on: date


class Answer(StrEnum):
    """The IT office's answer to a rectification report."""

    AWAITED = "AWAITED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    SUPERSEDED = "SUPERSEDED"  # an event proved the matter made good before the IT office answered


class ClosedBy(StrEnum):
    """What closed a corrected finding."""

    REPORT = "REPORT"  # the department's rectification report, accepted by the IT office
    IT_OFFICE = "IT_OFFICE"  # the IT office's own correction, with the proof it saw
    EVENT = "EVENT"  # a later event proved it (the entry updated, the decision given, data delivered)


@dataclass(frozen=True)
class RectificationReport:
    """What the department says it did to correct the finding (整改报告), and the IT office's answer."""

    text: str
    reference: str | None  # a document number, a file or a record the IT office can check
    submitted_by: str
    submitted_on: date  # the city's day it came: the deadline rule reads it
    answer: Answer = Answer.AWAITED
    answered_by: str | None = None
    answered_on: date | None = None
    reason: str | None = None  # why it was rejected
    submitted_by_department: str | None = None  # the filer's department (None: reports kept before it was)
    # filed by the IT office for the department the finding is about; None: not known (a report kept before the
    # filer's department was, and the IT office could file one then too)
    on_behalf: bool | None = False

    @property
    def as_proof(self) -> str:
        ref = f"（{self.reference}）" if self.reference else ""
        return f"{self.submitted_on.isoformat()} 整改报告{ref}：{self.text}"[:REPORT_LENGTH]


class ReportRefused(ValueError):
    """A report or an answer the finding's state does not allow; the message says why."""


@dataclass(frozen=True)
class Finding:
    finding_id: str
    department_code: str
    category: Category
    matter: str
    description: str
    detected_on: date
    correct_by: date
    raised_by: str  # `auditor` when found from events, else the IT office person who raised it
    evidence: tuple[str, ...] = ()
    occurrences: int = 1
    status: Status = Status.OPEN
    corrected_on: date | None = None
    proof: str | None = None
    escalated_on: date | None = None
    revision: int = 0
    reports: tuple[RectificationReport, ...] = ()
    closed_by: ClosedBy | None = None
    closed_by_person: str | None = None  # the IT office person who closed it; None when an event proved it
    later: tuple[str, ...] = ()  # evidence of occurrences since the awaited report came, kept apart
    later_occurrences: int = 0
    later_since: date | None = None
    continued: str | None = None  # the finding the later occurrences became when the report was accepted

    @property
    def corrected_by_department(self) -> bool | None:
        """Closed by the department's own report (accepted), not by the IT office or an event; None when a
        corrected finding does not say what closed it (closed before that was kept, not by an accepted report)."""
        if self.status is Status.CORRECTED and self.closed_by is None:
            return None
        return self.closed_by is ClosedBy.REPORT

    @property
    def article(self) -> str:
        return ARTICLE[self.category]

    @property
    def awaiting(self) -> RectificationReport | None:
        """The report the IT office has not answered yet, if any: only an open finding's latest report awaits
        (a closed finding's is answered, superseded, or was left so by a closure before reports were answered
        first, and is no longer waited on)."""
        latest = self.reports[-1] if self.reports else None
        awaited = latest is not None and latest.answer is Answer.AWAITED
        return latest if awaited and self.status is Status.OPEN else None

    @property
    def held(self) -> bool:
        """A report that came on or before the deadline awaits the IT office's answer: no escalation meanwhile."""
        report = self.awaiting
        return self.status is Status.OPEN and report is not None and report.submitted_on <= self.correct_by


@dataclass(frozen=True)
class Deadlines:
    """Working days a department has to correct a finding, per category."""

    catalog: int = 10
    provision: int = 5
    consistency: int = 10
    purpose: int = 5

    def of(self, category: Category) -> int:
        return {
            Category.CATALOG_NOT_MAINTAINED: self.catalog,
            Category.DATA_NOT_PROVIDED_IN_TIME: self.provision,
            Category.DATA_INCONSISTENT_OR_UNUSABLE: self.consistency,
            Category.USE_OUTSIDE_PURPOSE: self.purpose,
        }[category]


def finding_id(source_id: str) -> str:
    """The same source always raises the same finding: a redelivered event raises nothing new."""
    return "F" + hashlib.sha256(source_id.encode()).hexdigest()[:20].upper()


def raise_or_add(
    open_finding: Finding | None, suspicion: Suspicion, deadlines: Deadlines, calendar: WorkingDays, raised_by: str
) -> tuple[Finding, bool]:
    """The finding on the suspicion's matter: the open one with the evidence added, or a new one with its
    deadline counted in working days from the day it was found. True when it is new. While a report awaits
    the IT office's answer, an occurrence after the day the report came is kept apart (`later`): the report
    does not speak for it. One on or before that day (an event handled late, a consumer lagging) is what the
    report answers, and is the finding's evidence like any other: when it happened decides, not when it was
    handled."""
    report = open_finding.awaiting if open_finding is not None else None
    if open_finding is not None and report is not None and suspicion.on > report.submitted_on:
        later = open_finding.later
        if len(later) < EVIDENCE_KEPT and suspicion.evidence not in later:
            later = (*later, suspicion.evidence)
        since = min(open_finding.later_since or suspicion.on, suspicion.on)
        return replace(
            open_finding, later=later, later_occurrences=open_finding.later_occurrences + 1, later_since=since
        ), False
    if open_finding is not None:
        evidence = open_finding.evidence
        if len(evidence) < EVIDENCE_KEPT and suspicion.evidence not in evidence:
            evidence = (*evidence, suspicion.evidence)
        return replace(open_finding, evidence=evidence, occurrences=open_finding.occurrences + 1), False
    new = Finding(
        finding_id=finding_id(suspicion.source_id),
        department_code=suspicion.department_code,
        category=suspicion.category,
        matter=suspicion.matter,
        description=suspicion.description,
        detected_on=suspicion.on,
        correct_by=calendar.add_working_days(suspicion.on, deadlines.of(suspicion.category)),
        raised_by=raised_by,
        evidence=(suspicion.evidence,),
    )
    return new, True


def _folded(finding: Finding) -> Finding:
    """The occurrences kept apart while a report awaited, folded into the finding."""
    if not finding.later_occurrences:
        return finding
    evidence = (*finding.evidence, *(e for e in finding.later if e not in finding.evidence))[:EVIDENCE_KEPT]
    occurrences = finding.occurrences + finding.later_occurrences
    return replace(finding, evidence=evidence, occurrences=occurrences, later=(), later_occurrences=0, later_since=None)


def corrected(finding: Finding, proof: str, on: date, closed_by: ClosedBy, by: str | None = None) -> Finding:
    """The finding closed with its proof. The IT office answers an awaited report rather than closing the
    finding beside it; an event proving the matter made good closes it and supersedes the report (and covers
    the occurrences since)."""
    if finding.status is not Status.OPEN:
        raise ValueError(f"finding {finding.finding_id} is {finding.status.value.lower()}, not open")
    report = finding.awaiting
    if report is not None and closed_by is ClosedBy.IT_OFFICE:
        raise ReportRefused(
            f"the report of {report.submitted_on.isoformat()} awaits the IT office's answer: accept it to close "
            "the finding, or reject it"
        )
    if report is not None and closed_by is ClosedBy.EVENT:
        superseded = replace(report, answer=Answer.SUPERSEDED, answered_on=on)
        finding = _folded(replace(finding, reports=(*finding.reports[:-1], superseded)))
    return replace(
        finding, status=Status.CORRECTED, corrected_on=on, proof=proof, closed_by=closed_by, closed_by_person=by
    )


def read_back(finding: Finding) -> Finding:
    """A stored finding as this code keeps it. Before a waiting report was answered first, the IT office's
    correction or an event closed a finding and left its report AWAITED: that report is no longer waited on,
    it was superseded by the closure. Before what closed a finding was kept, one whose latest report is accepted
    was closed by it (accepting a report is what closes a finding with it); any other says nothing of it
    (`closed_by` None: the IT office's correction and an event left the same document)."""
    if finding.status is Status.OPEN:
        return finding
    if any(r.answer is Answer.AWAITED for r in finding.reports):
        reports = tuple(
            replace(r, answer=Answer.SUPERSEDED) if r.answer is Answer.AWAITED else r for r in finding.reports
        )
        finding = replace(finding, reports=reports)
    last = finding.reports[-1] if finding.reports else None
    if finding.status is Status.CORRECTED and finding.closed_by is None and last and last.answer is Answer.ACCEPTED:
        finding = replace(finding, closed_by=ClosedBy.REPORT, closed_by_person=last.answered_by)
    return finding


def overdue(finding: Finding, today: date) -> bool:
    """Still open after the last day it had to be corrected, and no report in time awaits an answer."""
    return finding.status is Status.OPEN and today > finding.correct_by and not finding.held


def reported(finding: Finding, text: str, reference: str | None, by: str, by_department: str, on: date) -> Finding:
    """The department's rectification report, handed in on an open finding on or before its deadline, one at
    a time: while one awaits the IT office's answer, another is refused. Filed by someone of another
    department (the IT office), it is on the department's behalf, and says so."""
    if not text.strip():
        raise ReportRefused("a report says what was done: its text is empty")
    if finding.status is not Status.OPEN:
        raise ReportRefused(f"finding {finding.finding_id} is {finding.status.value.lower()}: nothing to report")
    if on > finding.correct_by:
        raise ReportRefused(
            f"finding {finding.finding_id} had to be corrected by {finding.correct_by.isoformat()}: "
            "a report comes too late, the finding escalates to a notice of criticism"
        )
    if finding.awaiting is not None:
        raise ReportRefused(
            f"the report of {finding.awaiting.submitted_on.isoformat()} awaits the IT office's answer: "
            "report again once it is rejected"
        )
    on_behalf = by_department != finding.department_code
    report = RectificationReport(
        text[:REPORT_LENGTH], reference, by, on, submitted_by_department=by_department, on_behalf=on_behalf
    )
    return replace(finding, reports=(*finding.reports, report)[-REPORTS_KEPT:])


def _answered(finding: Finding, answer: Answer, by: str, on: date, reason: str | None) -> RectificationReport:
    report = finding.awaiting
    if finding.status is not Status.OPEN:
        raise ReportRefused(f"finding {finding.finding_id} is {finding.status.value.lower()}, not open")
    if report is None:
        raise ReportRefused(f"finding {finding.finding_id} has no report awaiting an answer")
    return replace(report, answer=answer, answered_by=by, answered_on=on, reason=reason)


def report_accepted(finding: Finding, by: str, on: date) -> Finding:
    """The IT office accepts the awaited report: the finding is corrected, with the report as its proof. The
    occurrences since the report came stay apart (`later`): `continued` makes them a finding of their own."""
    report = _answered(finding, Answer.ACCEPTED, by, on, None)
    answered = replace(finding, reports=(*finding.reports[:-1], report))
    return corrected(answered, report.as_proof, on, ClosedBy.REPORT, by)


def continued(closed: Finding, deadlines: Deadlines, calendar: WorkingDays, on: date) -> tuple[Finding, Finding] | None:
    """The occurrences that came after an accepted report, as a finding of their own (the report did not
    speak for them), its deadline counted from `on` (the day the IT office set them apart), and the closed
    finding naming it; None when there were none."""
    if closed.status is not Status.CORRECTED or not closed.later_occurrences:
        return None
    assert closed.later_since is not None
    new = Finding(
        finding_id=finding_id(f"{closed.finding_id}:after-report"),
        department_code=closed.department_code,
        category=closed.category,
        matter=closed.matter,
        description=closed.description,
        detected_on=closed.later_since,
        correct_by=calendar.add_working_days(on, deadlines.of(closed.category)),
        raised_by=closed.raised_by,
        evidence=closed.later,
        occurrences=closed.later_occurrences,
    )
    return replace(closed, later=(), later_occurrences=0, later_since=None, continued=new.finding_id), new


def report_rejected(finding: Finding, reason: str, by: str, on: date) -> Finding:
    """The IT office rejects the awaited report with its reason: the finding stays open (and, its deadline
    passed, escalates at the next look), and the department may report again while the deadline lasts; the
    occurrences since the report came are the finding's again."""
    if not reason.strip():
        raise ReportRefused("a rejection says why: its reason is empty")
    report = _answered(finding, Answer.REJECTED, by, on, reason[:REPORT_LENGTH])
    return _folded(replace(finding, reports=(*finding.reports[:-1], report)))


def escalated(finding: Finding, today: date) -> Finding:
    if not overdue(finding, today):
        raise ValueError(f"finding {finding.finding_id} is not overdue")
    return replace(finding, status=Status.ESCALATED, escalated_on=today)


def notice_text(finding: Finding, department_name: str) -> str:
    """The notice of criticism (通报批评) the IT office sends the city government, in plain text; the
    document (HTML, PDF) lays out the same."""
    evidence = "；".join(finding.evidence[:5]) + ("等" if len(finding.evidence) > 5 else "")
    return (
        f"关于对{department_name}的通报批评（{finding.finding_id}）。"
        f"经市信息化工作办公室核查，{department_name}（统一社会信用代码 {finding.department_code}）"
        f"存在{finding.article}的情形：{finding.description}。"
        f"证据：{evidence}（共{finding.occurrences}次）。"
        f"该问题于{finding.detected_on.isoformat()}发现，限期于{finding.correct_by.isoformat()}前整改，逾期未整改。"
        f"根据《吉安市政务数据共享管理暂行办法》第二十四条，予以通报批评，报市人民政府。"
    )


def signals_of(event_id: str, fact: Fact) -> list[Suspicion | Remedy]:
    """Which facts suggest a violation (Art. 24) and which prove one made good."""
    match fact:
        case EntryFact(step=EntryStep.OVERDUE):
            what = "年度维护" if fact.overdue_kind == "YEARLY_MAINTENANCE" else "数据或要素变化后的目录更新"
            return [
                Suspicion(
                    fact.provider_code,
                    Category.CATALOG_NOT_MAINTAINED,
                    f"entry:{fact.resource_code}",
                    f"目录 {fact.resource_code} 的{what}逾期未完成",
                    f"{fact.overdue_kind} due {fact.due_on}, found overdue {fact.day}",
                    fact.day,
                    event_id,
                )
            ]
        case EntryFact(step=EntryStep.PUBLISHED | EntryStep.MAINTAINED):
            how = f"version {fact.version} published" if fact.step is EntryStep.PUBLISHED else "maintenance confirmed"
            return [
                Remedy(
                    fact.provider_code,
                    Category.CATALOG_NOT_MAINTAINED,
                    f"entry:{fact.resource_code}",
                    f"{how} on {fact.day}",
                    fact.day,
                )
            ]
        case DecisionFact(step=DecisionStep.OVERDUE):
            return [
                Suspicion(
                    fact.provider_code,
                    Category.DATA_NOT_PROVIDED_IN_TIME,
                    f"request:{fact.request_id}",
                    f"共享申请 {fact.request_id} 未在规定时限内答复",
                    f"decision due {fact.due_on}, not given by {fact.day}",
                    fact.day,
                    event_id,
                )
            ]
        case DecisionFact(step=DecisionStep.DECIDED):
            return [
                Remedy(
                    fact.provider_code,
                    Category.DATA_NOT_PROVIDED_IN_TIME,
                    f"request:{fact.request_id}",
                    f"decided on {fact.day}",
                    fact.day,
                )
            ]
        case RefusedChange():
            return [
                Suspicion(
                    fact.provider_code,
                    Category.DATA_INCONSISTENT_OR_UNUSABLE,
                    f"resource:{fact.resource_code}",
                    f"资源 {fact.resource_code} 提供的数据与目录不一致或无法使用",
                    f"change {fact.change_id} refused on {fact.day}: {fact.rule}: {fact.detail}"[:500],
                    fact.day,
                    event_id,
                )
            ]
        case OutOfPurposeAccess():
            return [
                Suspicion(
                    fact.consumer_code,
                    Category.USE_OUTSIDE_PURPOSE,
                    f"grant:{fact.grant_id or fact.resource_code}",
                    f"以授权用途以外的用途调用资源 {fact.resource_code}",
                    f"access {fact.access_id} on {fact.day} stated purpose {fact.purpose[:100]!r}, not the grant's",
                    fact.day,
                    event_id,
                )
            ]
    return []
