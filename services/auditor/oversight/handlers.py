"""One handler per oversight event or command: the projection of a batch of events (with the findings it
raises or closes), a finding raised or corrected by the IT office, the escalation of overdue findings, and
the evaluation of a period."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, TypeVar

from common.errors import Conflict, NotFound
from common.policy import OVERSIGHT, AccessDenied, Principal, Target, authorize
from services.auditor.domain.activity import DailyCount, EntryFact, Measure, Observed, fold_counts
from services.auditor.domain.findings import (
    Category,
    ClosedBy,
    Deadlines,
    Finding,
    Remedy,
    ReportRefused,
    Status,
    Suspicion,
    continued,
    corrected,
    escalated,
    finding_id,
    notice_text,
    overdue,
    raise_or_add,
    report_accepted,
    report_rejected,
    reported,
    signals_of,
)
from services.auditor.domain.scoring import (
    EvaluationReport,
    Figures,
    Period,
    Ranked,
    Scoring,
    WorkingDays,
    deliveries_from,
    evaluate,
    months_of,
    rank,
    within,
)
from services.auditor.domain.supply import Supply, delivered_remedy, stale, stale_suspicion, supply_after
from services.auditor.domain.trends import MonthTotals, last_months, month_totals
from services.auditor.oversight.ports import Clock, OversightStore, OversightTransaction

AUDITOR = "auditor"
T = TypeVar("T")
ESCALATION_BATCH = 200


class FindingNotFound(NotFound):
    pass


class FindingClosed(Conflict):
    pass


async def _inline(job: Callable[[], T]) -> T:
    return job()


@dataclass(frozen=True)
class Oversight:
    """What the handlers need, built once by the auditor's bootstrap."""

    store: OversightStore
    clock: Clock
    calendar: WorkingDays
    scoring: Scoring = field(default_factory=Scoring)
    deadlines: Deadlines = field(default_factory=Deadlines)
    supply_grace: int = 5  # working days a resource's data may come after its update cycle before it is stale
    changed: Callable[[], None] = lambda: None  # wakes the deadline watch and the figures' refresh
    offload: Callable[[Callable[[], Any]], Awaitable[Any]] = field(default=_inline)  # CPU work off the event loop


async def observe(batch: list[Observed], oversight: Oversight) -> None:
    """Project a batch of events and apply the findings they suggest or prove corrected, in one transaction;
    events handled before (a redelivery) change nothing."""
    async with oversight.store() as tx:
        fresh = await tx.unhandled(batch)
        new = [o for o in batch if o.event_id in fresh]
        counts = fold_counts([o.fact for o in new if isinstance(o.fact, DailyCount)])
        await tx.project([o for o in new if not isinstance(o.fact, DailyCount)], counts, new)
        for o in new:
            for signal in signals_of(o.event_id, o.fact):
                await _apply(tx, signal, oversight, AUDITOR)
        await _follow_supply(tx, [o.fact for o in new if isinstance(o.fact, EntryFact)], counts, oversight)
    if new:
        oversight.changed()


async def _follow_supply(
    tx: OversightTransaction, entries: list[EntryFact], counts: list[DailyCount], oversight: Oversight
) -> None:
    """Each resource's next delivery due after the batch's publications, withdrawals and deliveries; data
    delivered for a stale resource closes its finding. Only those facts move a supply (data accesses, the
    bulk of the events, do not): their resources' supplies are read in one query and written in one."""
    facts: list[EntryFact | DailyCount] = [*entries, *(c for c in counts if c.measure is Measure.DELIVERED)]
    if not facts:
        return
    supplies: dict[str, Supply | None] = dict(await tx.supplies_of(sorted({f.resource_code for f in facts})))
    flagged = {code for code, known in supplies.items() if known is not None and known.flagged}
    changed: dict[str, Supply] = {}
    for fact in facts:
        after = supply_after(supplies.get(fact.resource_code), fact, oversight.supply_grace, oversight.calendar)
        if after is None:
            continue
        supplies[fact.resource_code] = changed[fact.resource_code] = after
        if isinstance(fact, DailyCount) and fact.resource_code in flagged:
            await _apply(tx, delivered_remedy(fact), oversight, AUDITOR)
            flagged.discard(fact.resource_code)
    if changed:
        await tx.save_supplies(list(changed.values()))


async def flag_stale(oversight: Oversight) -> int:
    """A finding for each resource in force whose data did not come per its update cycle; returns how many."""
    today, done = oversight.clock.today(), 0
    while True:
        async with oversight.store() as tx:
            due = [s for s in await tx.stale_supplies(today, ESCALATION_BATCH) if stale(s, today)]
            for supply in due:
                await _apply(tx, stale_suspicion(supply, today), oversight, AUDITOR)
                await tx.save_supply(replace(supply, flagged=True))
        done += len(due)
        if len(due) < ESCALATION_BATCH:
            return done


async def next_due(oversight: Oversight) -> date | None:
    """When the deadline watch must look again: the earliest deadline of an open finding or of a delivery."""
    due = [d for d in (await oversight.store.next_deadline(), await oversight.store.next_delivery_due()) if d]
    return min(due, default=None)


async def _apply(tx: OversightTransaction, signal: Suspicion | Remedy, oversight: Oversight, by: str) -> Finding | None:
    found = await tx.open_finding(signal.department_code, signal.category, signal.matter)
    if isinstance(signal, Remedy):
        if found is None:
            return None
        closed = corrected(found, signal.proof, signal.on, ClosedBy.EVENT)
        await tx.save_finding(closed)
        tx.events.corrected(closed)
        return closed
    finding, new = raise_or_add(found, signal, oversight.deadlines, oversight.calendar, by)
    if new and await tx.finding(finding.finding_id) is not None:
        return None  # raised before from the same source and closed since: a replay raises nothing again
    await tx.save_finding(finding)
    if new:
        tx.events.raised(finding)
    return finding


async def raise_finding(
    principal: Principal,
    *,
    department_code: str,
    category: Category,
    matter: str,
    description: str,
    evidence: str,
    request_id: str,
    oversight: Oversight,
) -> Finding:
    """The IT office raises a finding it found itself (Art. 24); `request_id` makes a retried call idempotent."""
    authorize(principal, "auditor.finding.raise")
    today = oversight.clock.today()
    suspicion = Suspicion(
        department_code, category, matter, description, evidence, today, f"{principal.subject}:{request_id}"
    )
    async with oversight.store() as tx:
        answered = await tx.request_answered(suspicion.source_id)
        if answered is not None:  # the same request again: the finding as it stands, unchanged
            finding = await tx.finding(answered)
        else:
            finding = await _apply(tx, suspicion, oversight, principal.subject)
            if finding is None:  # raised by this request before requests were recorded
                finding = await tx.finding(finding_id(suspicion.source_id))
            assert finding is not None
            await tx.answer_request(suspicion.source_id, finding.finding_id)
    oversight.changed()
    assert finding is not None
    return finding


async def correct_finding(principal: Principal, finding_id: str, proof: str, oversight: Oversight) -> Finding:
    """The IT office closes a finding the department corrected, recording the proof it saw; while the
    department's report awaits its answer, it answers the report instead (409)."""
    authorize(principal, "auditor.finding.correct")
    async with oversight.store() as tx:
        found = await _found(tx, finding_id)
        try:
            closed = corrected(found, proof, oversight.clock.today(), ClosedBy.IT_OFFICE, principal.subject)
        except ValueError as exc:  # closed, or a report awaits the answer (ReportRefused)
            raise FindingClosed("finding_id", str(exc)) from None
        await tx.save_finding(closed)
        tx.events.corrected(closed, principal.subject)
    oversight.changed()
    return closed


async def _found(tx: OversightTransaction, finding_id: str) -> Finding:
    found = await tx.finding(finding_id)
    if found is None:
        raise FindingNotFound("finding_id", f"no finding {finding_id}")
    return found


def _visible(principal: Principal, rule: str, found: Finding | None, finding_id: str) -> Finding:
    """The finding, if the principal may act on it by `rule`; another department's finding is answered as one
    that does not exist (404 both), so that asking tells nobody which findings there are. A role the rule
    does not name is refused (403) whatever the finding."""
    authorize(principal, rule)
    try:
        if found is not None:
            authorize(principal, rule, Target(department_code=found.department_code))
            return found
    except AccessDenied:
        pass
    raise FindingNotFound("finding_id", f"no finding {finding_id}")


async def report_finding(
    principal: Principal, finding_id: str, text: str, reference: str | None, oversight: Oversight
) -> Finding:
    """The department the finding is about hands in its rectification report (the IT office may, for it)."""
    async with oversight.store() as tx:
        found = _visible(principal, "auditor.finding.report", await tx.finding(finding_id), finding_id)
        try:
            today = oversight.clock.today()
            now = reported(found, text, reference, principal.subject, principal.department_code, today)
        except ReportRefused as exc:
            raise FindingClosed("finding_id", str(exc)) from None
        await tx.save_finding(now)
        tx.events.reported(now, principal.department_code)
    oversight.changed()  # a held finding leaves the deadline watch's sight
    return now


async def accept_report(principal: Principal, finding_id: str, oversight: Oversight) -> Finding:
    """The IT office accepts the awaited report: the finding is corrected, the report its proof. Occurrences
    of the matter since the report came are not what it answered: they become a finding of their own."""
    authorize(principal, "auditor.finding.correct")
    today = oversight.clock.today()
    async with oversight.store() as tx:
        found = await _found(tx, finding_id)
        try:
            closed = report_accepted(found, principal.subject, today)
        except (ReportRefused, ValueError) as exc:
            raise FindingClosed("finding_id", str(exc)) from None
        split = continued(closed, oversight.deadlines, oversight.calendar, today)
        if split is not None:
            closed, new = split
            await tx.save_finding(new)
            tx.events.raised(new, continues=closed.finding_id)
        await tx.save_finding(closed)
        tx.events.corrected(closed, principal.subject)
    oversight.changed()
    return closed


async def reject_report(principal: Principal, finding_id: str, reason: str, oversight: Oversight) -> Finding:
    """The IT office rejects the awaited report: the department is told why; past its deadline, the finding
    escalates at the deadline watch's next look, which this wakes."""
    authorize(principal, "auditor.finding.correct")
    async with oversight.store() as tx:
        found = await _found(tx, finding_id)
        try:
            now = report_rejected(found, reason, principal.subject, oversight.clock.today())
        except ReportRefused as exc:
            raise FindingClosed("finding_id", str(exc)) from None
        await tx.save_finding(now)
        tx.events.report_rejected(now, principal.department_code)
    oversight.changed()
    return now


async def escalate_overdue(oversight: Oversight) -> int:
    """Every open finding past its deadline becomes a notice of criticism; returns how many did."""
    today, done = oversight.clock.today(), 0
    while True:
        async with oversight.store() as tx:
            due = [f for f in await tx.overdue_findings(today, ESCALATION_BATCH) if overdue(f, today)]
            for finding in due:
                notice = notice_text(
                    finding, await tx.department_name(finding.department_code) or finding.department_code
                )
                up = escalated(finding, today)
                await tx.save_finding(up)
                tx.events.escalated(up, notice)
        done += len(due)
        if len(due) < ESCALATION_BATCH:
            return done


async def finding_for(principal: Principal, finding_id: str, oversight: Oversight) -> Finding:
    """A department sees its own findings (another's is answered 404, as one that does not exist); oversight
    sees all."""
    return _visible(principal, "auditor.finding.read", await oversight.store.finding(finding_id), finding_id)


async def findings_for(
    principal: Principal,
    *,
    department_code: str | None,
    status: Status | None,
    offset: int,
    limit: int,
    oversight: Oversight,
    awaiting: bool | None = None,
) -> tuple[list[Finding], int]:
    """Findings by department and status; `awaiting`: those with a report awaiting the IT office's answer
    (True) or without one (False)."""
    authorize(principal, "auditor.finding.read", Target(department_code=department_code or principal.department_code))
    if department_code is None and not _oversees(principal):
        department_code = principal.department_code
    return await oversight.store.findings(
        department_code=department_code, status=status, awaiting=awaiting, offset=offset, limit=limit
    )


def _oversees(principal: Principal) -> bool:
    return bool(principal.roles & OVERSIGHT)


# -- evaluation --------------------------------------------------------------------------------------------


async def department_figures(
    principal: Principal, department_code: str, period: Period, oversight: Oversight
) -> Figures:
    """A department's figures for a period and how each was counted: its own, or any for oversight."""
    authorize(principal, "auditor.evaluation.read", Target(department_code=department_code))
    found = await oversight.store.activity([department_code], deliveries_from(period), period.start, period.end)
    figures: Figures = await oversight.offload(
        lambda: evaluate(found[0], period, oversight.scoring, oversight.calendar)
    )
    return figures


async def ranking(period: Period, oversight: Oversight) -> list[Ranked]:
    """Every evaluated department's figures for the period, ranked."""
    [ranked] = await _rankings(period, [period], oversight)
    return ranked


async def _rankings(span: Period, periods: list[Period], oversight: Oversight) -> list[list[Ranked]]:
    """The rankings of periods within `span` (a quarter and its months), from one read of the span's facts;
    the evaluation runs off the event loop."""
    departments = await oversight.store.departments()
    everyone = await oversight.store.activity(None, deliveries_from(span), span.start, span.end)
    listed = {code for code, d in departments.items() if d.evaluated and d.active}
    not_evaluated = {code for code, d in departments.items() if not d.evaluated}

    def ranked(period: Period) -> list[Ranked]:
        seen = (within(a, period) for a in everyone if a.department_code not in not_evaluated)
        evaluated = (a for a in seen if a.department_code in listed or a.has_facts)
        return rank(evaluate(a, period, oversight.scoring, oversight.calendar) for a in evaluated)

    rankings: list[list[Ranked]] = await oversight.offload(lambda: [ranked(p) for p in periods])
    return rankings


async def trends(months: int, oversight: Oversight) -> list[MonthTotals]:
    """The city's accesses, stored changes and published versions per month, the last `months` to this one."""
    periods = last_months(oversight.clock.today(), months)
    return month_totals(periods, await oversight.store.monthly_totals(periods[0].start, periods[-1].end))


def current_month(oversight: Oversight) -> Period:
    return Period.month_of(oversight.clock.today())


async def evaluation_report(period: Period, oversight: Oversight) -> EvaluationReport:
    """The period's report: its ranking, and for a quarter each month's."""
    months = months_of(period)
    ranked, *monthly = await _rankings(period, [period, *months], oversight)
    departments = await oversight.store.departments()
    return EvaluationReport(
        period,
        tuple(ranked),
        tuple((m, tuple(r)) for m, r in zip(months, monthly, strict=True)),
        {code: d.name for code, d in departments.items()},
        dict(oversight.scoring.weights),
        oversight.clock.today(),
    )


async def notice_for(principal: Principal, finding_id: str, oversight: Oversight) -> tuple[Finding, str]:
    """An escalated finding and its department's name, for its notice of criticism."""
    found = await finding_for(principal, finding_id, oversight)
    if found.escalated_on is None:
        raise FindingNotFound("finding_id", f"finding {finding_id} was not escalated: it has no notice")
    departments = await oversight.store.departments()
    known = departments.get(found.department_code)
    return found, known.name if known else found.department_code


async def open_findings(oversight: Oversight) -> dict[Category, int]:
    """How many findings are open, per category."""
    return await oversight.store.open_findings()
