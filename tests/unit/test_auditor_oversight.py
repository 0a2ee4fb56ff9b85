"""The auditor's evaluation (Art. 23) and findings (Art. 24) without a broker: the scoring over a scripted
month with the National Day holiday, the ranking, the finding rules, and the handlers over an in-memory store."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime

import pytest

from common.calendar_source import build_calendar
from common.clock import CHINA, FixedDay, seconds_until_day_after
from services.auditor.domain.activity import (
    DailyCount,
    DecisionFact,
    DecisionStep,
    DepartmentFact,
    EntryFact,
    EntryStep,
    Measure,
    Observed,
    OutOfPurposeAccess,
    RefusedChange,
    UpdateCycle,
)
from services.auditor.domain.findings import (
    REPORTS_KEPT,
    Answer,
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
    overdue,
    raise_or_add,
    read_back,
    report_accepted,
    report_rejected,
    reported,
    signals_of,
)
from services.auditor.domain.scoring import (
    DepartmentActivity,
    Figures,
    Period,
    Scoring,
    evaluate,
    rank,
    within,
)
from services.auditor.domain.supply import Supply, delivery_due, stale, supply_after
from services.auditor.domain.trends import last_months, month_totals
from services.auditor.oversight import handlers
from services.auditor.oversight.handlers import Oversight

CAL = build_calendar()
P, C1, C2 = "P0000000000000001", "C1000000000000001", "C2000000000000001"
OCTOBER = Period.parse("2026-10")


def scripted_october() -> DepartmentActivity:
    """A provider's October 2026: the National Day holiday (1–7 Oct; Saturday 10 Oct a working day)."""
    entries = [
        EntryFact(EntryStep.PUBLISHED, "R1", P, date(2026, 9, 1), 1, UpdateCycle.DAILY),
        EntryFact(EntryStep.PUBLISHED, "R2", P, date(2026, 9, 15), 1, UpdateCycle.MONTHLY),
        # reported before the holiday: 5 working days end on 12 Oct, not 6 Oct
        EntryFact(
            EntryStep.CHANGE_REPORTED, "R1", P, date(2026, 9, 29), due_on=CAL.add_working_days(date(2026, 9, 29), 5)
        ),
        EntryFact(EntryStep.PUBLISHED, "R1", P, date(2026, 10, 12), 2, UpdateCycle.DAILY),
        EntryFact(EntryStep.CHANGE_REPORTED, "R2", P, date(2026, 10, 14), due_on=date(2026, 10, 21)),
        EntryFact(
            EntryStep.OVERDUE,
            "R2",
            P,
            date(2026, 10, 22),
            due_on=date(2026, 10, 21),
            overdue_kind="UPDATE_AFTER_CHANGE",
        ),
    ]
    working = [d for d in OCTOBER.days() if CAL.is_working_day(d)]
    missed = {date(2026, 10, 13), date(2026, 10, 27)}
    counts = [DailyCount(Measure.DELIVERED, P, d, "R1") for d in working if d not in missed]
    counts.append(DailyCount(Measure.DELIVERED, P, date(2026, 10, 3), "R1"))  # on a holiday: no window of its own
    counts.append(DailyCount(Measure.DELIVERED, P, date(2026, 10, 20), "R2"))
    counts.append(DailyCount(Measure.REJECTED, P, date(2026, 10, 20), "R1", count=3))
    counts += [
        DailyCount(Measure.USED, P, date(2026, 10, 15), "R1", C1, 3),
        DailyCount(Measure.USED, P, date(2026, 10, 16), "R2", C2),
        DailyCount(Measure.USED, P, date(2026, 10, 16), "R1", P),  # its own use is no use by others
        DailyCount(Measure.USED, P, date(2026, 9, 30), "R1", "C3"),  # September's
    ]
    decisions = [
        DecisionFact(DecisionStep.DECIDED, "A", P, date(2026, 10, 15), date(2026, 10, 22)),
        DecisionFact(DecisionStep.OVERDUE, "B", P, date(2026, 10, 23), date(2026, 10, 22)),
    ]
    return DepartmentActivity(P, tuple(entries), tuple(decisions), tuple(counts))


def counted(figures: Figures) -> dict[str, tuple[int, int]]:
    return {i.name: (i.counted, i.out_of) for i in figures.indicators}


def test_october_has_18_working_days_and_the_holiday_moves_the_deadline() -> None:
    assert sum(CAL.is_working_day(d) for d in OCTOBER.days()) == 18
    assert CAL.add_working_days(date(2026, 9, 29), 5) == date(2026, 10, 12)


def test_the_figures_of_a_scripted_month() -> None:
    figures = evaluate(scripted_october(), OCTOBER, Scoring(), CAL)
    assert counted(figures) == {
        "catalog_compiled": (1, 1),
        "catalog_current": (1, 2),  # R2 missed its update
        "updates_on_time": (1, 2),  # R1 on time thanks to the holiday; R2 late
        "maintenance_done": (2, 2),
        "delivered_per_cycle": (17, 19),  # R1: 16 of 18 working days; R2: its month
        "data_quality": (18, 21),  # 16 + 1 (the holiday's) + 1 stored, 3 refused
        "decisions_on_time": (1, 2),  # B still undecided after its deadline
        "data_used": (2, 3),  # C1 and C2 in October, of a target of 3
    }
    assert figures.uses == 4 and figures.consumers == (C1, C2)
    expected = 10 + 15 * 0.5 + 15 * 0.5 + 10 + 15 * 17 / 19 + 10 * 18 / 21 + 15 * 0.5 + 10 * 2 / 3
    assert figures.score == round(expected, 1) == 71.2
    shortfalls = figures.indicator("delivered_per_cycle").evidence
    assert shortfalls == ("R1 (DAILY): no data 2026-10-13–2026-10-13", "R1 (DAILY): no data 2026-10-27–2026-10-27")
    assert figures.indicator("updates_on_time").evidence == ("R2: not updated by 2026-10-21",)


def test_an_indicator_with_nothing_to_count_is_left_out_of_the_score() -> None:
    quiet = DepartmentActivity(P, (EntryFact(EntryStep.PUBLISHED, "R1", P, date(2026, 10, 30), 1, UpdateCycle.YEARLY),))
    figures = evaluate(quiet, OCTOBER, Scoring(), CAL)
    assert {i.name for i in figures.indicators if i.applies} == {
        "catalog_compiled",
        "catalog_current",
        "maintenance_done",
        "data_used",
    }
    # 10 + 15 + 10 of 45, data_used 0 of 10
    assert figures.score == round(100 * 35 / 45, 1)


def test_weights_change_the_score_and_unknown_weights_are_refused() -> None:
    only_usage = Scoring({"data_used": 1}, usage_target=2)
    assert evaluate(scripted_october(), OCTOBER, only_usage, CAL).score == 100.0
    with pytest.raises(ValueError, match="unknown indicators"):
        Scoring({"speed": 1})
    with pytest.raises(ValueError):
        Scoring({"data_used": 0})


def test_a_withdrawn_entry_is_not_counted_and_a_quarter_counts_its_monthly_windows() -> None:
    activity = dataclasses.replace(
        scripted_october(),
        entries=(*scripted_october().entries, EntryFact(EntryStep.WITHDRAWN, "R1", P, date(2026, 10, 31))),
    )
    quarter = Period.parse("2026-Q4")
    assert (quarter.start, quarter.end) == (date(2026, 10, 1), date(2026, 12, 31))
    figures = evaluate(activity, quarter, Scoring(), CAL)
    assert figures.entries_in_force == 1
    assert counted(figures)["delivered_per_cycle"] == (1, 3)  # R2: October yes, November and December no


def test_ranking_shares_ranks_for_equal_scores() -> None:
    def figures(code: str, used: int) -> Figures:
        counts = tuple(DailyCount(Measure.USED, code, date(2026, 10, 9), "R", f"X{i}") for i in range(used))
        return evaluate(DepartmentActivity(code, (), (), counts), OCTOBER, Scoring(), CAL)

    ranked = rank([figures("B", 1), figures("A", 1), figures("C", 3), figures("D", 0)])
    assert [(r.rank, r.figures.department_code) for r in ranked] == [(1, "C"), (2, "A"), (2, "B"), (4, "D")]


def test_a_quarter_s_facts_give_each_month_the_figures_of_its_own() -> None:
    """The quarterly report reads the quarter once; each month narrowed from it counts as the month alone."""
    october = scripted_october()
    november = [
        EntryFact(EntryStep.WITHDRAWN, "R2", P, date(2026, 11, 3)),
        DecisionFact(DecisionStep.DECIDED, "B", P, date(2026, 11, 2), date(2026, 10, 22), True),
        DailyCount(Measure.DELIVERED, P, date(2026, 11, 2), "R1"),
        DailyCount(Measure.REJECTED, P, date(2026, 11, 2), "R1", count=7),
        DailyCount(Measure.USED, P, date(2026, 11, 4), "R1", "C3", 9),
    ]
    quarter = DepartmentActivity(
        P,
        october.entries + tuple(f for f in november if isinstance(f, EntryFact)),
        october.decisions + tuple(f for f in november if isinstance(f, DecisionFact)),
        october.counts + tuple(f for f in november if isinstance(f, DailyCount)),
    )
    alone = evaluate(october, OCTOBER, Scoring(), CAL)
    assert evaluate(within(quarter, OCTOBER), OCTOBER, Scoring(), CAL) == alone and alone.score == 71.2
    in_november = within(quarter, Period.parse("2026-11"))
    assert in_november.decisions == (november[1],)  # October's decisions are not November's
    assert in_november.counts[-3:] == tuple(november[2:]) and len(in_november.entries) == len(quarter.entries)


def test_periods_are_months_or_quarters() -> None:
    assert Period.parse("2026-02").end == date(2026, 2, 28)
    for bad in ("2026-13", "2026-Q5", "1999-01", "2026-1", "x"):
        with pytest.raises(ValueError):
            Period.parse(bad)


# -- findings -----------------------------------------------------------------------------------------------


def suspicion(on: date = date(2026, 10, 22), source: str = "e1", evidence: str = "overdue") -> Suspicion:
    return Suspicion(P, Category.CATALOG_NOT_MAINTAINED, "entry:R2", "目录更新逾期", evidence, on, source)


def test_a_finding_gets_its_deadline_in_working_days_and_gathers_evidence() -> None:
    finding, new = raise_or_add(None, suspicion(date(2026, 9, 29)), Deadlines(catalog=5), CAL, "auditor")
    assert new and finding.correct_by == date(2026, 10, 12) and finding.status is Status.OPEN
    again, new = raise_or_add(finding, suspicion(source="e2", evidence="again"), Deadlines(), CAL, "auditor")
    assert not new and again.finding_id == finding.finding_id
    assert again.evidence == ("overdue", "again") and again.occurrences == 2 and again.correct_by == finding.correct_by


def test_a_finding_is_corrected_or_escalated_once_its_deadline_passed() -> None:
    finding, _ = raise_or_add(None, suspicion(), Deadlines(catalog=10), CAL, "auditor")
    assert finding.correct_by == date(2026, 11, 5)
    assert not overdue(finding, date(2026, 11, 5)) and overdue(finding, date(2026, 11, 6))
    with pytest.raises(ValueError):
        escalated(finding, date(2026, 11, 5))
    up = escalated(finding, date(2026, 11, 6))
    assert up.status is Status.ESCALATED and up.escalated_on == date(2026, 11, 6)
    with pytest.raises(ValueError):
        corrected(up, "too late", date(2026, 11, 7), ClosedBy.IT_OFFICE, "it-1")
    closed = corrected(finding, "version 2 published", date(2026, 11, 2), ClosedBy.EVENT)
    assert closed.status is Status.CORRECTED and not overdue(closed, date(2027, 1, 1))


def test_a_report_in_time_holds_the_escalation_until_the_it_office_answers_it() -> None:
    finding, _ = raise_or_add(None, suspicion(), Deadlines(catalog=10), CAL, "auditor")
    last_day, next_day = date(2026, 11, 5), date(2026, 11, 6)
    with pytest.raises(ReportRefused, match="too late"):
        reported(finding, "已更新", None, "a-admin", P, next_day)
    sent = reported(finding, "已更新目录", "吉市监〔2026〕1号", "a-admin", P, last_day)
    assert sent.held and sent.awaiting == sent.reports[-1] and sent.reports[-1].submitted_on == last_day
    assert not overdue(sent, next_day) and not overdue(sent, date(2027, 1, 1))  # however long the answer takes
    with pytest.raises(ValueError):
        escalated(sent, next_day)
    with pytest.raises(ReportRefused, match="awaits"):
        reported(sent, "再报", None, "a-admin", P, last_day)

    # rejected after the deadline: nothing holds it any more, it escalates at the next look
    back = report_rejected(sent, "未见更新记录", "it-1", next_day)
    assert back.status is Status.OPEN and not back.held and overdue(back, next_day)
    assert (back.reports[-1].answer, back.reports[-1].reason, back.reports[-1].answered_on) == (
        Answer.REJECTED,
        "未见更新记录",
        next_day,
    )
    with pytest.raises(ReportRefused, match="too late"):
        reported(back, "补报", None, "a-admin", P, next_day)
    with pytest.raises(ReportRefused, match="no report"):
        report_accepted(back, "it-1", next_day)

    # rejected in time: reported again, accepted: corrected with the report as its proof
    early = report_rejected(
        reported(finding, "第一次", None, "a-admin", P, date(2026, 11, 2)), "不充分", "it-1", last_day
    )
    assert not early.held and not overdue(early, last_day)
    again = reported(early, "已于11月4日发布第2版", "v2", "a-admin", P, last_day)
    done = report_accepted(again, "it-1", next_day)
    assert done.status is Status.CORRECTED and done.corrected_on == next_day
    assert done.proof is not None and "已于11月4日发布第2版" in done.proof and "v2" in done.proof
    assert [r.answer for r in done.reports] == [Answer.REJECTED, Answer.ACCEPTED]
    with pytest.raises(ReportRefused, match="corrected"):
        reported(done, "又一次", None, "a-admin", P, last_day)


def test_a_waiting_report_is_answered_not_bypassed_and_answers_only_what_came_before_it() -> None:
    finding, _ = raise_or_add(None, suspicion(), Deadlines(catalog=10), CAL, "auditor")
    day, answered_on = date(2026, 11, 2), date(2026, 11, 9)
    sent = reported(finding, "已更新目录", None, "it-1", "IT", day)
    assert sent.reports[-1].on_behalf and sent.reports[-1].submitted_by_department == "IT"
    assert not reported(finding, "已更新目录", None, "a-admin", P, day).reports[-1].on_behalf
    with pytest.raises(ReportRefused, match="awaits"):  # the IT office answers the report instead
        corrected(sent, "已核实", day, ClosedBy.IT_OFFICE, "it-1")

    # occurrences after the report are kept apart: accepting it closes the finding, they become another
    later, new = raise_or_add(sent, suspicion(date(2026, 11, 4), "e2", "again"), Deadlines(), CAL, "auditor")
    later, _ = raise_or_add(later, suspicion(date(2026, 11, 5), "e3", "again"), Deadlines(), CAL, "auditor")
    assert not new and (later.occurrences, later.later_occurrences, later.later) == (1, 2, ("again",))
    # one that happened before the report, or on its day, is what the report answers, however late it is handled
    for on, source in ((date(2026, 10, 30), "e4"), (day, "e5")):
        before, _ = raise_or_add(later, suspicion(on, source, f"before {on}"), Deadlines(), CAL, "auditor")
        assert (before.occurrences, before.later_occurrences, before.evidence[-1]) == (2, 2, f"before {on}")
        assert before.later_since == later.later_since
    done = report_accepted(later, "it-1", answered_on)
    assert (done.closed_by, done.closed_by_person, done.corrected_by_department) == (ClosedBy.REPORT, "it-1", True)
    split = continued(done, Deadlines(catalog=10), CAL, answered_on)
    assert split is not None
    closed, rest = split
    assert (closed.occurrences, closed.later_occurrences, closed.continued) == (1, 0, rest.finding_id)
    assert (rest.status, rest.occurrences, rest.evidence, rest.detected_on) == (
        Status.OPEN,
        2,
        ("again",),
        later.later_since,
    )
    assert rest.correct_by == CAL.add_working_days(answered_on, 10) and rest.finding_id != finding.finding_id
    assert continued(report_accepted(sent, "it-1", answered_on), Deadlines(), CAL, answered_on) is None

    # rejected: the later occurrences are the finding's again
    back = report_rejected(later, "不充分", "it-1", answered_on)
    assert (back.occurrences, back.later_occurrences, back.evidence) == (3, 0, ("overdue", "again"))

    # an event proving the matter made good closes it, covers the later ones and supersedes the report
    proven = corrected(later, "version 2 published", answered_on, ClosedBy.EVENT)
    assert proven.reports[-1].answer is Answer.SUPERSEDED and proven.awaiting is None
    assert (proven.closed_by, proven.closed_by_person, proven.occurrences) == (ClosedBy.EVENT, None, 3)
    assert not proven.corrected_by_department
    with pytest.raises(ReportRefused, match="empty"):
        reported(finding, " \n\t ", None, "a-admin", P, day)
    with pytest.raises(ReportRefused, match="empty"):
        report_rejected(sent, "   ", "it-1", day)


def test_a_closed_finding_awaits_no_answer_and_a_report_its_closure_left_waiting_reads_superseded() -> None:
    """Before a waiting report had to be answered first, the IT office's correction closed a finding and left
    its report AWAITED: such a finding awaits nothing, and reads back with the report superseded."""
    finding, _ = raise_or_add(None, suspicion(), Deadlines(catalog=10), CAL, "auditor")
    sent = reported(finding, "已更新目录", None, "a-admin", P, date(2026, 11, 2))
    left = dataclasses.replace(sent, status=Status.CORRECTED, corrected_on=date(2026, 11, 3), proof="已核实")
    assert left.reports[-1].answer is Answer.AWAITED and left.awaiting is None and not left.held
    assert read_back(left).reports[-1].answer is Answer.SUPERSEDED and read_back(left).awaiting is None
    assert read_back(sent) == sent and sent.awaiting is not None  # open: still waited on
    with pytest.raises(ReportRefused, match="corrected"):
        report_accepted(left, "it-1", date(2026, 11, 4))
    # kept before what closed a finding was: an accepted report closed it; otherwise nothing says what did
    assert left.closed_by is None and left.corrected_by_department is None
    kept = dataclasses.replace(report_accepted(sent, "it-1", date(2026, 11, 4)), closed_by=None, closed_by_person=None)
    assert (read_back(kept).closed_by, read_back(kept).closed_by_person) == (ClosedBy.REPORT, "it-1")
    assert read_back(kept).corrected_by_department is True and finding.corrected_by_department is False


def test_a_finding_keeps_its_latest_reports_only() -> None:
    finding, _ = raise_or_add(None, suspicion(), Deadlines(catalog=10), CAL, "auditor")
    for n in range(REPORTS_KEPT + 3):
        finding = report_rejected(
            reported(finding, f"报告{n}", None, "a", P, date(2026, 11, 2)), "否", "it", date(2026, 11, 2)
        )
    assert len(finding.reports) == REPORTS_KEPT and finding.reports[-1].text == f"报告{REPORTS_KEPT + 2}"


def test_the_deadline_watch_wakes_when_the_last_day_to_correct_is_over() -> None:
    evening = datetime(2026, 11, 5, 23, 0, tzinfo=CHINA)
    assert seconds_until_day_after(date(2026, 11, 5), evening) == 3605.0
    assert seconds_until_day_after(date(2026, 11, 4), evening) == 0.0
    assert seconds_until_day_after(date(2026, 11, 5), evening.astimezone(UTC)) == 3605.0  # whatever the zone
    assert FixedDay(date(2026, 11, 5)).seconds_until_day_after(date(2026, 11, 4)) == 0.0
    assert FixedDay(date(2026, 11, 5)).seconds_until_day_after(date(2026, 11, 5)) == math.inf  # never over


def test_which_facts_raise_and_which_correct_findings() -> None:
    day = date(2026, 10, 22)
    overdue_entry = EntryFact(EntryStep.OVERDUE, "R2", P, day, due_on=day, overdue_kind="YEARLY_MAINTENANCE")
    [raised] = signals_of("e", overdue_entry)
    assert isinstance(raised, Suspicion) and raised.category is Category.CATALOG_NOT_MAINTAINED
    [fixed] = signals_of("e", EntryFact(EntryStep.MAINTAINED, "R2", P, day))
    assert isinstance(fixed, Remedy) and fixed.matter == raised.matter
    [late] = signals_of("e", DecisionFact(DecisionStep.OVERDUE, "B", P, day, day))
    assert isinstance(late, Suspicion) and late.category is Category.DATA_NOT_PROVIDED_IN_TIME
    [given] = signals_of("e", DecisionFact(DecisionStep.DECIDED, "B", P, day))
    assert isinstance(given, Remedy) and given.matter == late.matter
    [bad] = signals_of("e", RefusedChange("c1", "R1", P, "items", "unknown field x", day))
    assert bad.category is Category.DATA_INCONSISTENT_OR_UNUSABLE and bad.department_code == P
    [misuse] = signals_of("e", OutOfPurposeAccess("a1", "R1", P, C1, "G1", "营销", day))
    assert misuse.category is Category.USE_OUTSIDE_PURPOSE and misuse.department_code == C1
    assert signals_of("e", DailyCount(Measure.DELIVERED, P, day, "R1")) == []


# -- handlers over an in-memory store ---------------------------------------------------------------------------


class FakeEvents:
    def __init__(self, log: list) -> None:
        self.log = log

    def raised(self, f: Finding, continues: str | None = None) -> None:
        self.log.append(("raised", f.finding_id))

    def corrected(self, f: Finding, by: str | None = None) -> None:
        self.log.append(("corrected", f.finding_id))

    def reported(self, f: Finding, by_department: str) -> None:
        self.log.append(("reported", f.finding_id, f.reports[-1].submitted_by, by_department))

    def report_rejected(self, f: Finding, by_department: str) -> None:
        self.log.append(("report_rejected", f.finding_id, f.reports[-1].reason))

    def escalated(self, f: Finding, notice: str) -> None:
        self.log.append(("escalated", f.finding_id, notice))


class FakeStore:
    def __init__(self) -> None:
        self.handled: set[str] = set()
        self.facts: list[Observed] = []
        self.counts: list[DailyCount] = []
        self.found: dict[str, Finding] = {}
        self.published: list = []
        self.supplies: dict[str, Supply] = {}
        self.supply_reads: list[list[str]] = []  # each read of supplies: the resources asked for
        self.requests: dict[str, str] = {}

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeStore]:
        yield self

    @property
    def events(self) -> FakeEvents:
        return FakeEvents(self.published)

    async def unhandled(self, observed: list[Observed]) -> set[str]:
        return {o.event_id for o in observed} - self.handled

    async def project(self, observed: list[Observed], counts: list[DailyCount], handled: list[Observed]) -> None:
        self.facts += observed
        self.counts += counts
        self.handled |= {o.event_id for o in handled}

    async def open_finding(self, department_code: str, category: Category, matter: str) -> Finding | None:
        return next(
            (
                f
                for f in self.found.values()
                if (f.department_code, f.category, f.matter, f.status)
                == (department_code, category, matter, Status.OPEN)
            ),
            None,
        )

    async def finding(self, finding_id: str) -> Finding | None:
        return self.found.get(finding_id)

    async def save_finding(self, finding: Finding) -> None:
        self.found[finding.finding_id] = finding

    async def request_answered(self, request: str) -> str | None:
        return self.requests.get(request)

    async def answer_request(self, request: str, finding_id: str) -> None:
        self.requests[request] = finding_id

    async def overdue_findings(self, today: date, limit: int) -> list[Finding]:
        due = [f for f in self.found.values() if f.status is Status.OPEN and not f.held and f.correct_by < today]
        return due[:limit]

    async def department_name(self, department_code: str) -> str | None:
        return {P: "市市场监督管理局"}.get(department_code)

    async def activity(
        self, codes: list[str] | None, deliveries_since: date, start: date, until: date
    ) -> list[DepartmentActivity]:
        entries = tuple(o.fact for o in self.facts if isinstance(o.fact, EntryFact))
        return [DepartmentActivity(c, entries, (), tuple(self.counts)) for c in (codes or [P])]

    async def departments(self) -> dict[str, DepartmentFact]:
        return {P: DepartmentFact(P, "市市场监督管理局", True)}

    async def findings(self, *, department_code, status, awaiting, offset, limit):  # type: ignore[no-untyped-def]
        found = [f for f in self.found.values() if status is None or f.status is status]
        found = [f for f in found if awaiting is None or (f.awaiting is not None) is awaiting]
        return found[offset : offset + limit], len(found)

    async def next_deadline(self) -> date | None:
        due = (f.correct_by for f in self.found.values() if f.status is Status.OPEN and not f.held)
        return min(due, default=None)

    async def supplies_of(self, resource_codes: list[str]) -> dict[str, Supply]:
        self.supply_reads.append(resource_codes)
        return {code: self.supplies[code] for code in resource_codes if code in self.supplies}

    async def save_supply(self, supply: Supply) -> None:
        self.supplies[supply.resource_code] = supply

    async def save_supplies(self, supplies: list[Supply]) -> None:
        self.supplies |= {s.resource_code: s for s in supplies}

    def _watched(self) -> list[Supply]:
        return [s for s in self.supplies.values() if s.in_force and not s.flagged and s.deliver_by]

    async def stale_supplies(self, today: date, limit: int) -> list[Supply]:
        return [s for s in self._watched() if s.deliver_by and s.deliver_by < today][:limit]

    async def next_delivery_due(self) -> date | None:
        return min((s.deliver_by for s in self._watched() if s.deliver_by), default=None)

    async def monthly_totals(self, start: date, until: date) -> dict[tuple[str, str], int]:
        found: dict[tuple[str, str], int] = {}
        trend = (Measure.USED, Measure.DELIVERED)
        counted = [(c.day, c.measure.value, c.count) for c in self.counts if c.measure in trend]
        published = [(o.fact.day, o.fact.step.value, 1) for o in self.facts if isinstance(o.fact, EntryFact)]
        for day, what, n in counted + [p for p in published if p[1] == EntryStep.PUBLISHED.value]:
            if start <= day <= until:
                key = (f"{day.year}-{day.month:02d}", what)
                found[key] = found.get(key, 0) + n
        return found


def oversight(store: FakeStore, today: date) -> Oversight:
    return Oversight(store=store, clock=FixedDay(today), calendar=CAL)  # type: ignore[arg-type]


async def test_a_batch_raises_findings_once_and_a_later_fact_corrects_one() -> None:
    store = FakeStore()
    day = date(2026, 10, 22)
    batch = [
        Observed("o1", EntryFact(EntryStep.OVERDUE, "R2", P, day, due_on=day, overdue_kind="UPDATE_AFTER_CHANGE")),
        Observed("d1", DailyCount(Measure.REJECTED, P, day, "R1")),
        Observed("d1", RefusedChange("c1", "R1", P, "items", "unknown field x", day)),
        Observed("d2", RefusedChange("c2", "R1", P, "items", "unknown field y", day)),
    ]
    await handlers.observe(batch, oversight(store, day))
    await handlers.observe(batch, oversight(store, day))  # redelivered: nothing new
    assert [e[0] for e in store.published] == ["raised", "raised"]
    assert len(store.counts) == 1
    refused = await store.open_finding(P, Category.DATA_INCONSISTENT_OR_UNUSABLE, "resource:R1")
    assert refused is not None and refused.occurrences == 2 and len(refused.evidence) == 2
    published = EntryFact(EntryStep.PUBLISHED, "R2", P, date(2026, 10, 26), 2, UpdateCycle.MONTHLY)
    await handlers.observe([Observed("p2", published)], oversight(store, day))
    closed = [f for f in store.found.values() if f.category is Category.CATALOG_NOT_MAINTAINED]
    assert closed[0].status is Status.CORRECTED and closed[0].proof == "version 2 published on 2026-10-26"
    assert store.published[-1] == ("corrected", closed[0].finding_id)


async def test_an_uncorrected_finding_escalates_to_a_notice_of_criticism() -> None:
    store = FakeStore()
    day = date(2026, 10, 23)
    await handlers.observe([Observed("b", DecisionFact(DecisionStep.OVERDUE, "B", P, day, day))], oversight(store, day))
    [finding] = store.found.values()
    assert finding.correct_by == date(2026, 10, 30)  # 5 working days
    assert await handlers.escalate_overdue(oversight(store, date(2026, 10, 30))) == 0
    assert await handlers.escalate_overdue(oversight(store, date(2026, 10, 31))) == 1
    kind, finding_id, notice = store.published[-1]
    assert kind == "escalated" and finding_id == finding.finding_id
    assert "市市场监督管理局" in notice and "通报批评" in notice and "逾期未整改" in notice
    assert store.found[finding_id].status is Status.ESCALATED
    assert await handlers.escalate_overdue(oversight(store, date(2026, 11, 30))) == 0  # once


async def test_the_it_office_raises_a_finding_once_per_request_and_closes_it_with_proof() -> None:
    from common.policy import AccessDenied, Principal, Role

    store = FakeStore()
    office = Principal("it-1", "IT", frozenset({Role.IT_OFFICE_OPERATOR}))
    kwargs = dict(
        department_code=P,
        category=Category.USE_OUTSIDE_PURPOSE,
        matter="grant:G1",
        description="用于营销",
        evidence="report of 2026-10-20",
        request_id="r-1",
    )
    first = await handlers.raise_finding(office, oversight=oversight(store, date(2026, 10, 21)), **kwargs)  # type: ignore[arg-type]
    second = await handlers.raise_finding(office, oversight=oversight(store, date(2026, 10, 21)), **kwargs)  # type: ignore[arg-type]
    assert second == first and first.raised_by == "it-1" and len(store.found) == 1  # a retry changes nothing
    assert first.occurrences == 1 and store.published == [("raised", first.finding_id)]
    again = kwargs | {"request_id": "r-2", "evidence": "report of 2026-10-21"}
    added = await handlers.raise_finding(office, oversight=oversight(store, date(2026, 10, 21)), **again)  # type: ignore[arg-type]
    retried = await handlers.raise_finding(office, oversight=oversight(store, date(2026, 10, 21)), **again)  # type: ignore[arg-type]
    assert added.finding_id == first.finding_id and added.occurrences == 2 and retried == added
    assert store.found[first.finding_id].evidence == ("report of 2026-10-20", "report of 2026-10-21")
    clerk = Principal("c-1", P, frozenset({Role.DATA_ADMINISTRATOR}))
    with pytest.raises(AccessDenied):
        await handlers.correct_finding(clerk, first.finding_id, "fixed", oversight(store, date(2026, 10, 22)))
    done = await handlers.correct_finding(office, first.finding_id, "用途已整改", oversight(store, date(2026, 10, 22)))
    assert done.status is Status.CORRECTED and done.corrected_on == date(2026, 10, 22)
    with pytest.raises(handlers.FindingClosed):
        await handlers.correct_finding(office, first.finding_id, "again", oversight(store, date(2026, 10, 23)))


async def test_the_department_reports_and_the_it_office_answers_while_the_escalation_waits() -> None:
    from common.policy import AccessDenied, Principal, Role

    store = FakeStore()
    day = date(2026, 10, 23)
    await handlers.observe([Observed("b", DecisionFact(DecisionStep.OVERDUE, "B", P, day, day))], oversight(store, day))
    [finding] = store.found.values()
    fid, last_day, later = finding.finding_id, date(2026, 10, 30), date(2026, 11, 3)
    office = Principal("it-1", "IT", frozenset({Role.IT_OFFICE_OPERATOR}))
    admin = Principal("p-admin", P, frozenset({Role.DATA_ADMINISTRATOR}))
    for refused in (
        Principal("p-compiler", P, frozenset({Role.CATALOG_COMPILER})),  # not the department's administrator
        Principal("auditor", "IT", frozenset({Role.AUDITOR})),
    ):
        with pytest.raises(AccessDenied):
            await handlers.report_finding(refused, fid, "已答复", None, oversight(store, last_day))
    # another department's finding is answered as one that does not exist
    stranger = Principal("c-admin", C1, frozenset({Role.DATA_ADMINISTRATOR}))
    for who, asked in ((stranger, fid), (admin, "FNONE"), (stranger, "FNONE")):
        with pytest.raises(handlers.FindingNotFound):
            await handlers.report_finding(who, asked, "已答复", None, oversight(store, last_day))
    with pytest.raises(AccessDenied):
        await handlers.accept_report(admin, fid, oversight(store, last_day))

    with pytest.raises(handlers.FindingClosed):  # nothing to answer yet
        await handlers.reject_report(office, fid, "无", oversight(store, last_day))
    sent = await handlers.report_finding(admin, fid, "已于10月30日答复申请", "B", oversight(store, last_day))
    assert store.published[-1] == ("reported", fid, "p-admin", P) and sent.held
    assert await handlers.next_due(oversight(store, last_day)) is None  # the watch does not wake for it
    assert await handlers.escalate_overdue(oversight(store, later)) == 0

    await handlers.reject_report(office, fid, "未见答复记录", oversight(store, later))
    assert store.published[-1] == ("report_rejected", fid, "未见答复记录")
    assert await handlers.escalate_overdue(oversight(store, later)) == 1  # past the deadline: at the next look
    assert store.found[fid].status is Status.ESCALATED

    # the IT office reports for a department, and accepts it: corrected
    other = await handlers.raise_finding(
        office,
        department_code=P,
        category=Category.USE_OUTSIDE_PURPOSE,
        matter="grant:G9",
        description="用于营销",
        evidence="举报",
        request_id="r-9",
        oversight=oversight(store, day),
    )
    await handlers.report_finding(office, other.finding_id, "已停用", None, oversight(store, day))
    assert store.published[-1] == ("reported", other.finding_id, "it-1", "IT")
    done = await handlers.accept_report(office, other.finding_id, oversight(store, day))
    assert done.status is Status.CORRECTED and done.proof is not None and "已停用" in done.proof
    assert store.published[-1] == ("corrected", other.finding_id)
    with pytest.raises(handlers.FindingClosed):
        await handlers.report_finding(office, other.finding_id, "再报", None, oversight(store, day))


async def test_a_department_sees_its_own_figures_only() -> None:
    from common.policy import AccessDenied, Principal, Role

    store = FakeStore()
    own = Principal("p-1", P, frozenset({Role.CATALOG_COMPILER}))
    other = Principal("o-1", C1, frozenset({Role.CATALOG_COMPILER}))
    figures = await handlers.department_figures(own, P, OCTOBER, oversight(store, date(2026, 11, 2)))
    assert figures.department_code == P
    with pytest.raises(AccessDenied):
        await handlers.department_figures(other, P, OCTOBER, oversight(store, date(2026, 11, 2)))


def test_a_delivery_is_due_one_update_cycle_later_plus_a_grace_of_working_days() -> None:
    assert delivery_due(UpdateCycle.DAILY, date(2026, 9, 30), 0, CAL) == date(2026, 10, 8)  # over the holiday
    assert delivery_due(UpdateCycle.DAILY, date(2026, 9, 30), 5, CAL) == date(2026, 10, 14)
    assert delivery_due(UpdateCycle.WEEKLY, date(2026, 9, 1), 5, CAL) == date(2026, 9, 15)
    assert delivery_due(UpdateCycle.MONTHLY, date(2026, 1, 31), 0, CAL) == date(2026, 2, 28)  # the month's last day
    assert delivery_due(UpdateCycle.YEARLY, date(2026, 11, 2), 0, CAL) == date(2027, 11, 2)


def test_a_resource_goes_stale_without_data_and_a_delivery_makes_it_current() -> None:
    published = EntryFact(EntryStep.PUBLISHED, "R3", P, date(2026, 9, 1), 1, UpdateCycle.WEEKLY)
    supply = supply_after(None, published, 5, CAL)
    assert supply is not None and supply.deliver_by == date(2026, 9, 15)
    assert not stale(supply, date(2026, 9, 15)) and stale(supply, date(2026, 9, 16))
    again = supply_after(supply, dataclasses.replace(published, version=2, day=date(2026, 9, 10)), 5, CAL)
    assert again is not None and again.deliver_by == date(2026, 9, 15)  # a new version does not restart it
    delivered = supply_after(supply, DailyCount(Measure.DELIVERED, P, date(2026, 9, 20), "R3"), 5, CAL)
    assert delivered is not None and delivered.last_delivered == date(2026, 9, 20)
    assert delivered.deliver_by == date(2026, 10, 9)  # 27 Sep + 5 working days, the holiday skipped
    withdrawn = supply_after(delivered, EntryFact(EntryStep.WITHDRAWN, "R3", P, date(2026, 10, 1)), 5, CAL)
    assert withdrawn is not None and not stale(withdrawn, date(2027, 1, 1))
    assert supply_after(None, DailyCount(Measure.USED, P, date(2026, 9, 20), "R3", "X"), 5, CAL) is None


async def test_a_stale_resource_is_found_once_and_its_data_closes_the_finding() -> None:
    store = FakeStore()
    published = EntryFact(EntryStep.PUBLISHED, "R3", P, date(2026, 9, 1), 1, UpdateCycle.WEEKLY)
    await handlers.observe([Observed("p", published)], oversight(store, date(2026, 9, 2)))
    assert await handlers.next_due(oversight(store, date(2026, 9, 2))) == date(2026, 9, 15)
    assert await handlers.flag_stale(oversight(store, date(2026, 9, 15))) == 0
    assert await handlers.flag_stale(oversight(store, date(2026, 9, 16))) == 1
    assert await handlers.flag_stale(oversight(store, date(2026, 9, 17))) == 0  # once
    [finding] = store.found.values()
    assert finding.category is Category.DATA_NOT_PROVIDED_IN_TIME and finding.matter == "resource:R3"
    assert await handlers.next_due(oversight(store, date(2026, 9, 17))) == finding.correct_by
    delivery = DailyCount(Measure.DELIVERED, P, date(2026, 9, 18), "R3")
    await handlers.observe([Observed("d", delivery)], oversight(store, date(2026, 9, 18)))
    assert store.found[finding.finding_id].status is Status.CORRECTED
    assert store.found[finding.finding_id].proof == "data delivered on 2026-09-18"
    assert store.published == [("raised", finding.finding_id), ("corrected", finding.finding_id)]
    assert await handlers.next_due(oversight(store, date(2026, 9, 18))) == date(2026, 10, 9)


def test_events_become_the_facts_the_oversight_counts() -> None:
    from common.events import Event
    from services.auditor.oversight.adapters.observed_events import facts_of

    at = datetime(2026, 10, 19, 17, 0, tzinfo=UTC)  # 20 October, 01:00 in the city
    access = {
        "access_id": "a1",
        "resource_code": "R1",
        "provider_code": P,
        "consumer_code": C1,
        "grant_id": "G1",
        "purpose": "营销 36010219900101001X",
        "accessed_at": at,
    }
    served = facts_of(Event("DataAccessed", "R1", access | {"result": "SERVED"}, "exchange"))
    assert served == [DailyCount(Measure.USED, P, date(2026, 10, 20), "R1", C1)]
    assert facts_of(Event("DataAccessed", "R1", access | {"consumer_code": P}, "exchange")) == []
    ended = access | {"result": "REFUSED", "reason": "the grant has ended"}
    assert facts_of(Event("DataAccessed", "R1", ended, "exchange")) == []
    wrong = access | {"result": "REFUSED", "reason": "the stated purpose is not the grant's"}
    [misuse] = facts_of(Event("DataAccessed", "R1", wrong, "exchange"))
    assert isinstance(misuse, OutOfPurposeAccess) and misuse.purpose == "营销 36**************1X"
    overdue = {
        "request_id": "B",
        "resource_code": "R1",
        "provider_code": P,
        "consumer_code": C1,
        "responsible_code": "IT",
        "due_on": date(2026, 10, 22),
        "detected_on": date(2026, 10, 23),
    }
    ruling = Event("ShareDecisionOverdue", "B", overdue | {"step": "IT_OFFICE_RULING"}, "exchange")
    assert facts_of(ruling) == []  # the IT office's ruling is not the provider's decision
    decision = Event("ShareDecisionOverdue", "B", overdue | {"step": "PROVIDER_DECISION", "responsible_code": P}, "x")
    assert facts_of(decision) == [DecisionFact(DecisionStep.OVERDUE, "B", P, date(2026, 10, 23), date(2026, 10, 22))]


async def test_a_batch_reads_the_supplies_of_its_deliveries_in_one_query_and_none_for_data_accesses() -> None:
    # Each data access of a batch read its resource's supply (hundreds of reads a batch in the auditor's
    # benchmark) though only publications, withdrawals and deliveries move a supply.
    store = FakeStore()
    day = date(2026, 9, 18)
    accesses = [Observed(f"a{n}", DailyCount(Measure.USED, P, day, f"R{n % 50}", "X")) for n in range(500)]
    await handlers.observe(accesses, oversight(store, day))
    assert store.supply_reads == [] and store.supplies == {}
    published = [
        Observed(f"p{n}", EntryFact(EntryStep.PUBLISHED, f"R{n}", P, date(2026, 9, 1), 1, UpdateCycle.WEEKLY))
        for n in range(3)
    ]
    delivered = [Observed(f"d{n}", DailyCount(Measure.DELIVERED, P, day, f"R{n}")) for n in range(2)]
    await handlers.observe([*published, *delivered, *accesses[:5]], oversight(store, day))
    assert store.supply_reads == [["R0", "R1", "R2"]]
    assert {code: s.last_delivered for code, s in store.supplies.items()} == {"R0": day, "R1": day, "R2": None}


async def test_an_event_dated_beyond_reach_is_refused_alone_and_the_rest_of_its_batch_counts() -> None:
    """A publication dated 9999 made the next delivery's day overflow the calendar: the whole batch failed,
    five times, then each of its events five times more. Refused at once now, with the reason."""
    from common.events import Event
    from services.auditor.oversight.adapters.observed_events import observe_batch

    store = FakeStore()
    entry = {"resource_code": "R9", "provider_code": P, "version": 1, "update_cycle": "MONTHLY"}
    far = Event("CatalogEntryPublished", "R9", entry | {"published_on": date(9999, 12, 20)}, "catalog")
    near = Event("CatalogEntryPublished", "R8", entry | {"resource_code": "R8", "published_on": date(2026, 9, 1)}, "c")
    refused = await observe_batch([far, near], oversight(store, date(2026, 9, 2)), None)  # type: ignore[arg-type]
    assert refused == {far.event_id: "ValueError: EntryFact.day: 9999-12-20 is outside 1900–2999"}
    assert set(store.supplies) == {"R8"}


async def test_the_trend_counts_the_last_months_to_the_auditor_s_today_and_nothing_before() -> None:
    store = FakeStore()
    await store.project(
        [
            Observed("e1", EntryFact(EntryStep.PUBLISHED, "R1", P, date(2026, 9, 30), version=1)),
            Observed("e2", EntryFact(EntryStep.PUBLISHED, "R1", P, date(2026, 10, 1), version=2)),
            Observed("e3", EntryFact(EntryStep.CHANGE_REPORTED, "R1", P, date(2026, 10, 1), version=3)),
        ],
        [
            DailyCount(Measure.USED, P, date(2026, 10, 31), "R1", C1, count=5),
            DailyCount(Measure.USED, P, date(2026, 11, 1), "R1", C1, count=2),
            DailyCount(Measure.DELIVERED, P, date(2026, 11, 2), "R1", count=3),
            DailyCount(Measure.USED, P, date(2026, 8, 31), "R1", C1, count=9),  # before the three months
        ],
        [],
    )
    found = await handlers.trends(3, oversight(store, date(2026, 11, 28)))
    assert [(m.month, m.accesses, m.changes_stored, m.entries_published) for m in found] == [
        ("2026-09", 0, 0, 1),
        ("2026-10", 5, 0, 1),
        ("2026-11", 2, 3, 0),
    ]
    with pytest.raises(ValueError):
        await handlers.trends(0, oversight(store, date(2026, 11, 28)))


def test_the_trend_s_months_reach_back_across_the_year_and_a_month_without_counts_is_zero() -> None:
    months = last_months(date(2026, 2, 14), 4)
    assert [m.label for m in months] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert (months[0].start, months[-1].end) == (date(2025, 11, 1), date(2026, 2, 28))
    totals = month_totals(months, {("2025-12", "used"): 7, ("2025-12", "published"): 2, ("2026-02", "delivered"): 3})
    assert [(t.month, t.accesses, t.changes_stored, t.entries_published) for t in totals] == [
        ("2025-11", 0, 0, 0),
        ("2025-12", 7, 0, 2),
        ("2026-01", 0, 0, 0),
        ("2026-02", 0, 3, 0),
    ]
    with pytest.raises(ValueError):
        last_months(date(2026, 2, 14), 25)
