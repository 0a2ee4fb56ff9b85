"""The departments' evaluation (Art. 23): figures per department and period, the scoring formula and the
ranking. Pure functions over the facts the auditor projected from events; standard library only.

The formula (FORMULA below says it to the departments): each indicator is a rate between 0 and 1, counted
from the period's facts; an indicator with nothing to count in the period (no change report fell due, no
request was decided) is left out and the others' weights share its part. The score is

    score = 100 × Σ weight_i × rate_i / Σ weight_i   over the indicators that apply,

rounded to one decimal. Departments are ranked by score, highest first; equal scores share a rank.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Protocol

from services.auditor.domain.activity import (
    DailyCount,
    DecisionFact,
    DecisionStep,
    EntryFact,
    EntryStep,
    Measure,
    UpdateCycle,
)

EVIDENCE_SHOWN = 20  # items of evidence listed per indicator; the counts cover all

INDICATORS: dict[str, tuple[str, str]] = {
    "catalog_compiled": ("目录编制", "the department has at least one entry in force at the end of the period"),
    "catalog_current": (
        "目录更新",
        "entries in force at the end of the period with no missed update or maintenance still open, of all in force",
    ),
    "updates_on_time": (
        "按时更新",
        "change reports due in the period whose entry was updated by the deadline (5 working days), of all due",
    ),
    "maintenance_done": (
        "年度维护",
        "entries in force at the end of the period published or confirmed in the year before, of all in force",
    ),
    "delivered_per_cycle": (
        "按周期提供数据",
        "update-cycle windows ending in the period in which the center received data of the entry, of all such "
        "windows (real-time and daily entries: each working day; weekly: each week; monthly: each month; "
        "quarterly, half-yearly, yearly: the quarter, half or year)",
    ),
    "data_quality": (
        "数据质量",
        "changes the center stored, of all the department sent in the period (stored + refused)",
    ),
    "decisions_on_time": (
        "按时答复",
        "share decisions given in the period by their deadline (10 working days), of those given plus those "
        "announced overdue in the period and still not given",
    ),
    "data_used": (
        "数据被使用",
        "other departments served the department's data in the period, of the usage target (at most 1)",
    ),
}

DEFAULT_WEIGHTS: dict[str, float] = {
    "catalog_compiled": 10,
    "catalog_current": 15,
    "updates_on_time": 15,
    "maintenance_done": 10,
    "delivered_per_cycle": 15,
    "data_quality": 10,
    "decisions_on_time": 15,
    "data_used": 10,
}

FORMULA = (
    "score = 100 × Σ weight × rate / Σ weight, over the indicators that apply in the period (an indicator "
    "with nothing to count is left out); rates are counted from the events the auditor received; departments "
    "are ranked by score, highest first, equal scores sharing a rank"
)


class WorkingDays(Protocol):
    """What the auditor needs of the working-day calendar (common.workdays.WorkingCalendar)."""

    def is_working_day(self, day: date) -> bool: ...

    def add_working_days(self, start: date, days: int) -> date: ...


@dataclass(frozen=True)
class Scoring:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    usage_target: int = 3  # other departments served in a period for full marks on data_used

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(INDICATORS)
        if unknown:
            raise ValueError(f"unknown indicators {sorted(unknown)}; the indicators are {sorted(INDICATORS)}")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("weights must not be negative and must not all be zero")
        if self.usage_target < 1:
            raise ValueError("usage_target must be at least 1")


# -- periods --------------------------------------------------------------------------------------------

PERIOD = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")


@dataclass(frozen=True)
class Period:
    """A month (`2026-10`) or a quarter (`2026-Q4`)."""

    label: str
    start: date
    end: date  # inclusive

    @classmethod
    def parse(cls, label: str) -> Period:
        match = PERIOD.match(label)
        if match is None or not 2000 <= int(match[1]) <= 2100:
            raise ValueError(f"{label!r} is not a month (2026-10) or a quarter (2026-Q4) of 2000–2100")
        year = int(match[1])
        first, last = (int(match[2]),) * 2 if match[2] else ((int(match[3]) - 1) * 3 + 1, int(match[3]) * 3)
        return cls(label, date(year, first, 1), date(year, last, calendar.monthrange(year, last)[1]))

    @classmethod
    def month_of(cls, day: date) -> Period:
        return cls.parse(f"{day.year}-{day.month:02d}")

    @property
    def quarterly(self) -> bool:
        return "Q" in self.label

    def days(self) -> Iterable[date]:
        return (self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1))


# -- facts of one department ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepartmentActivity:
    """The facts of one department the evaluation of a period reads: its entries' history up to the end of the
    period, its deliveries from a year before the period (cycles reach back), its decisions and other counts
    of the period. Counts may come summed (a month's uses of a resource by a consumer, dated on the first
    day of it) and, before the period, only each resource's latest delivery: the figures read no more."""

    department_code: str
    entries: tuple[EntryFact, ...] = ()
    decisions: tuple[DecisionFact, ...] = ()
    counts: tuple[DailyCount, ...] = ()

    @property
    def has_facts(self) -> bool:
        return bool(self.entries or self.decisions or self.counts)


def deliveries_from(period: Period) -> date:
    """How far back a period's evaluation reads deliveries: a yearly cycle's window reaches back a year."""
    return period.start - timedelta(days=366)


def within(activity: DepartmentActivity, period: Period) -> DepartmentActivity:
    """What the activity read for a longer span (a quarter) holds for one of its periods (a month): entries to
    the period's end, deliveries from `deliveries_from(period)`, decisions and other counts of the period."""
    since, start, end = deliveries_from(period), period.start, period.end
    return replace(
        activity,
        entries=tuple(f for f in activity.entries if f.day <= end),
        decisions=tuple(f for f in activity.decisions if start <= f.day <= end),
        counts=tuple(
            c for c in activity.counts if (since if c.measure is Measure.DELIVERED else start) <= c.day <= end
        ),
    )


@dataclass(frozen=True)
class Indicator:
    name: str
    label: str
    meaning: str
    counted: int  # the numerator
    out_of: int  # the denominator; 0: nothing to count, the indicator does not apply
    weight: float
    evidence: tuple[str, ...] = ()  # what fell short, for the department to check

    @property
    def applies(self) -> bool:
        return self.out_of > 0 and self.weight > 0

    @property
    def rate(self) -> float | None:
        return min(1.0, self.counted / self.out_of) if self.out_of else None


@dataclass(frozen=True)
class Figures:
    department_code: str
    period: Period
    indicators: tuple[Indicator, ...]
    entries_in_force: int
    changes_stored: int
    changes_refused: int
    uses: int  # data accesses served to other departments
    consumers: tuple[str, ...]  # the departments served

    @property
    def score(self) -> float:
        applying = [i for i in self.indicators if i.applies]
        total = sum(i.weight for i in applying)
        if not total:
            return 0.0
        return round(100 * sum(i.weight * (i.rate or 0.0) for i in applying) / total, 1)

    def indicator(self, name: str) -> Indicator:
        return next(i for i in self.indicators if i.name == name)


@dataclass(frozen=True)
class EntryState:
    resource_code: str
    in_force: bool = False
    version: int = 0
    first_published: date | None = None
    update_cycle: UpdateCycle | None = None
    last_maintained: date | None = None
    overdue_since: date | None = None  # a missed deadline not yet made good


def entry_states(facts: Iterable[EntryFact], until: date) -> dict[str, EntryState]:
    """Each entry as it stood at the end of `until`, replaying its facts in order of day."""
    states: dict[str, EntryState] = {}
    for fact in sorted((f for f in facts if f.day <= until), key=lambda f: f.day):
        s = states.get(fact.resource_code) or EntryState(fact.resource_code)
        if fact.step is EntryStep.PUBLISHED:
            s = EntryState(
                s.resource_code,
                True,
                fact.version or s.version,
                s.first_published or fact.day,
                fact.update_cycle or s.update_cycle,
                fact.day,
                None,
            )
        elif fact.step is EntryStep.MAINTAINED:
            s = EntryState(s.resource_code, s.in_force, s.version, s.first_published, s.update_cycle, fact.day, None)
        elif fact.step is EntryStep.WITHDRAWN:
            s = EntryState(s.resource_code, False, s.version, s.first_published, s.update_cycle, s.last_maintained)
        elif fact.step is EntryStep.OVERDUE and s.in_force:
            since = s.overdue_since or fact.day
            s = EntryState(
                s.resource_code, True, s.version, s.first_published, s.update_cycle, s.last_maintained, since
            )
        states[fact.resource_code] = s
    return states


def _year_before(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def _windows(cycle: UpdateCycle, period: Period, calendar_: WorkingDays) -> list[tuple[date, date]]:
    """The cycle's windows (first and last day) that end within the period."""
    if cycle in (UpdateCycle.REAL_TIME, UpdateCycle.DAILY):
        return [(d, d) for d in period.days() if calendar_.is_working_day(d)]
    if cycle is UpdateCycle.WEEKLY:
        return [(d - timedelta(days=6), d) for d in period.days() if d.weekday() == 6]
    months = {UpdateCycle.MONTHLY: 1, UpdateCycle.QUARTERLY: 3, UpdateCycle.HALF_YEARLY: 6, UpdateCycle.YEARLY: 12}
    span = months[cycle]
    windows = []
    for d in period.days():
        last_day = calendar.monthrange(d.year, d.month)[1]
        if d.day == last_day and d.month % span == 0:
            first_month = d.month - span + 1
            windows.append((date(d.year, first_month, 1), d))
    return windows


def evaluate(activity: DepartmentActivity, period: Period, scoring: Scoring, calendar_: WorkingDays) -> Figures:
    """The department's figures for the period, each indicator with what it counted and what fell short."""
    w = scoring.weights
    states = entry_states(activity.entries, period.end)
    in_force = sorted((s for s in states.values() if s.in_force), key=lambda s: s.resource_code)
    indicators = [
        _indicator("catalog_compiled", int(bool(in_force)), 1, w, () if in_force else ("no entry in force",)),
        _indicator(
            "catalog_current",
            sum(s.overdue_since is None for s in in_force),
            len(in_force),
            w,
            tuple(f"{s.resource_code}: overdue since {s.overdue_since}" for s in in_force if s.overdue_since),
        ),
        _updates_on_time(activity.entries, period, w),
        _indicator(
            "maintenance_done",
            sum(1 for s in in_force if s.last_maintained and s.last_maintained > _year_before(period.end)),
            len(in_force),
            w,
            tuple(
                f"{s.resource_code}: last maintained {s.last_maintained}"
                for s in in_force
                if not (s.last_maintained and s.last_maintained > _year_before(period.end))
            ),
        ),
        _delivered_per_cycle(in_force, activity.counts, period, calendar_, w),
    ]
    in_period = [c for c in activity.counts if period.start <= c.day <= period.end]
    stored = sum(c.count for c in in_period if c.measure is Measure.DELIVERED)
    refused = sum(c.count for c in in_period if c.measure is Measure.REJECTED)
    refused_resources = sorted({c.resource_code for c in in_period if c.measure is Measure.REJECTED})
    indicators.append(
        _indicator(
            "data_quality", stored, stored + refused, w, tuple(f"{r}: changes refused" for r in refused_resources)
        )
    )
    indicators.append(_decisions_on_time(activity.decisions, period, w))
    uses = [c for c in in_period if c.measure is Measure.USED and c.other != activity.department_code]
    consumers = tuple(sorted({c.other for c in uses}))
    indicators.append(
        _indicator("data_used", min(len(consumers), scoring.usage_target), scoring.usage_target, w, consumers)
    )
    return Figures(
        activity.department_code,
        period,
        tuple(indicators),
        len(in_force),
        stored,
        refused,
        sum(c.count for c in uses),
        consumers,
    )


def _indicator(name: str, counted: int, out_of: int, weights: dict[str, float], evidence: Iterable[str]) -> Indicator:
    label, meaning = INDICATORS[name]
    shown = tuple(evidence)
    more = len(shown) - EVIDENCE_SHOWN
    shown = shown[:EVIDENCE_SHOWN] + ((f"… and {more} more",) if more > 0 else ())
    return Indicator(name, label, meaning, counted, out_of, weights.get(name, 0.0), shown)


def _updates_on_time(entries: tuple[EntryFact, ...], period: Period, w: dict[str, float]) -> Indicator:
    reports = [
        f
        for f in entries
        if f.step is EntryStep.CHANGE_REPORTED and f.due_on and period.start <= f.due_on <= period.end
    ]
    late = []
    for report in sorted(reports, key=lambda f: (f.due_on, f.resource_code)):
        assert report.due_on is not None
        updated = any(
            f.step is EntryStep.PUBLISHED
            and f.resource_code == report.resource_code
            and report.day <= f.day <= report.due_on
            for f in entries
        )
        if not updated:
            late.append(f"{report.resource_code}: not updated by {report.due_on}")
    return _indicator("updates_on_time", len(reports) - len(late), len(reports), w, late)


def _delivered_per_cycle(
    in_force: list[EntryState],
    counts: tuple[DailyCount, ...],
    period: Period,
    calendar_: WorkingDays,
    w: dict[str, float],
) -> Indicator:
    delivered_days: dict[str, set[date]] = {}
    for c in counts:
        if c.measure is Measure.DELIVERED:
            delivered_days.setdefault(c.resource_code, set()).add(c.day)
    expected = met = 0
    missing = []
    for state in in_force:
        if state.update_cycle is None or state.first_published is None:
            continue
        days = delivered_days.get(state.resource_code, set())
        for first, last in _windows(state.update_cycle, period, calendar_):
            if last < state.first_published:
                continue  # not in force yet
            expected += 1
            if any(first <= d <= last for d in days):
                met += 1
            else:
                missing.append(f"{state.resource_code} ({state.update_cycle.value}): no data {first}–{last}")
    return _indicator("delivered_per_cycle", met, expected, w, missing)


def _decisions_on_time(decisions: tuple[DecisionFact, ...], period: Period, w: dict[str, float]) -> Indicator:
    def within(f: DecisionFact) -> bool:
        return period.start <= f.day <= period.end

    decided = [f for f in decisions if f.step is DecisionStep.DECIDED and within(f)]
    decided_ids = {f.request_id for f in decisions if f.step is DecisionStep.DECIDED and f.day <= period.end}
    pending = [f for f in decisions if f.step is DecisionStep.OVERDUE and within(f) and f.request_id not in decided_ids]
    late = [f"{f.request_id}: decided {f.day}, due {f.due_on}" for f in decided if f.late]
    late += [f"{f.request_id}: not decided, due {f.due_on}" for f in pending]
    return _indicator(
        "decisions_on_time", len(decided) - sum(f.late for f in decided), len(decided) + len(pending), w, late
    )


@dataclass(frozen=True)
class Ranked:
    rank: int
    figures: Figures


def rank(figures: Iterable[Figures]) -> list[Ranked]:
    """Highest score first; equal scores share a rank (1, 2, 2, 4), listed by department code."""
    ordered = sorted(figures, key=lambda f: (-f.score, f.department_code))
    ranked: list[Ranked] = []
    for n, f in enumerate(ordered, start=1):
        same = ranked and ranked[-1].figures.score == f.score
        ranked.append(Ranked(ranked[-1].rank if same else n, f))
    return ranked


@dataclass(frozen=True)
class EvaluationReport:
    """What a monthly or quarterly report says: the ranking of the period and, for a quarter, each month's."""

    period: Period
    ranking: tuple[Ranked, ...]
    months: tuple[tuple[Period, tuple[Ranked, ...]], ...]  # a quarter's months; empty for a month
    names: dict[str, str]  # department names as the directory announced them
    weights: dict[str, float]
    issued_on: date

    def name(self, code: str) -> str:
        return self.names.get(code, code)


def months_of(period: Period) -> list[Period]:
    if not period.quarterly:
        return []
    return [Period.month_of(date(period.start.year, period.start.month + i, 1)) for i in range(3)]
