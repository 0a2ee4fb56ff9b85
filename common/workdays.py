"""Working days of the Chinese calendar, with the State Council's holidays and adjusted workdays (调休).

Years that `chinese-calendar` knows come from it; later years come from `<year>.toml` files in a folder
that operators update without a code change. A year known to neither falls back to weekends-only and
reports it through `on_unknown_year`, once per year.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class YearSchedule:
    year: int
    holidays: frozenset[date] = frozenset()
    adjusted_workdays: frozenset[date] = frozenset()  # weekend days that are working days

    def is_working_day(self, day: date) -> bool:
        if day in self.adjusted_workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5


class CalendarFileError(ValueError):
    pass


def load_schedule_file(path: Path) -> YearSchedule:
    """Read one `<year>.toml`: `year = 2027`, `holidays = [dates]`, `workdays = [dates]` (adjusted workdays)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        year = int(data["year"])
        holidays = frozenset(data.get("holidays", []))
        workdays = frozenset(data.get("workdays", []))
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise CalendarFileError(f"{path}: {exc}") from exc
    for day in holidays | workdays:
        if not isinstance(day, date) or day.year != year:
            raise CalendarFileError(f"{path}: {day!r} is not a date in {year}")
    if holidays & workdays:
        raise CalendarFileError(f"{path}: {sorted(holidays & workdays)} listed both as holiday and workday")
    return YearSchedule(year, holidays, workdays)


def load_schedule_dir(folder: Path) -> dict[int, YearSchedule]:
    schedules = {}
    for path in sorted(folder.glob("*.toml")):
        schedule = load_schedule_file(path)
        schedules[schedule.year] = schedule
    return schedules


@dataclass
class WorkingCalendar:
    """`builtin` answers for the years it knows (returns None otherwise); `schedules` override it."""

    builtin: Callable[[date], bool | None] = lambda _day: None
    schedules: dict[int, YearSchedule] = field(default_factory=dict)
    on_unknown_year: Callable[[int], None] = lambda _year: None
    _warned: set[int] = field(default_factory=set)

    def is_working_day(self, day: date) -> bool:
        schedule = self.schedules.get(day.year)
        if schedule is not None:
            return schedule.is_working_day(day)
        known = self.builtin(day)
        if known is not None:
            return known
        if day.year not in self._warned:
            self._warned.add(day.year)
            log.warning("no holiday schedule for %s: counting weekends only", day.year)
            self.on_unknown_year(day.year)
        return day.weekday() < 5

    def add_working_days(self, start: date, days: int) -> date:
        """The date `days` working days after `start` (start itself not counted)."""
        if days < 0:
            raise ValueError("days must not be negative")
        current = start
        while days:
            current += timedelta(days=1)
            if self.is_working_day(current):
                days -= 1
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        return sum(self.is_working_day(start + timedelta(days=i)) for i in range(1, (end - start).days + 1))

    def is_overdue(self, start: date, working_days: int, today: date) -> bool:
        """True once `today` is past the deadline of `working_days` counted from `start`."""
        return today > self.add_working_days(start, working_days)
