"""The city's activity month by month, for the dashboard's trends: data accesses served, data changes stored
and catalog versions published (approved) per month, over the last months. Standard library only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from services.auditor.domain.activity import EntryStep, Measure
from services.auditor.domain.scoring import Period

MAX_MONTHS = 24


@dataclass(frozen=True)
class MonthTotals:
    month: str  # 2026-10
    accesses: int  # data served to another department (DataAccessed SERVED)
    changes_stored: int  # data changes the center stored (ResourceChanged)
    entries_published: int  # catalog versions that came into force (a publication, an update, a maintenance)


def last_months(today: date, count: int) -> list[Period]:
    """The `count` months up to and including today's, oldest first."""
    if not 1 <= count <= MAX_MONTHS:
        raise ValueError(f"months: 1 to {MAX_MONTHS}, not {count}")
    index = today.year * 12 + today.month - 1
    return [Period.parse(f"{i // 12}-{i % 12 + 1:02d}") for i in range(index - count + 1, index + 1)]


def month_totals(months: list[Period], counted: Mapping[tuple[str, str], int]) -> list[MonthTotals]:
    """Each month's totals from the counts per (month label, what was counted); a month without any is 0s."""
    return [
        MonthTotals(
            m.label,
            counted.get((m.label, Measure.USED.value), 0),
            counted.get((m.label, Measure.DELIVERED.value), 0),
            counted.get((m.label, EntryStep.PUBLISHED.value), 0),
        )
        for m in months
    ]
