"""Wires the working-day calendar to `chinese-calendar` and the operators' schedule folder."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import chinese_calendar

from common.metrics import CALENDAR_FALLBACK
from common.workdays import WorkingCalendar, load_schedule_dir

DEFAULT_SCHEDULE_DIR = Path(__file__).resolve().parent.parent / "data" / "calendar"


def chinese_calendar_lookup(day: date) -> bool | None:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # year outside the package's data
        return None


def build_calendar(schedule_dir: Path = DEFAULT_SCHEDULE_DIR) -> WorkingCalendar:
    return WorkingCalendar(
        builtin=chinese_calendar_lookup,
        schedules=load_schedule_dir(schedule_dir) if schedule_dir.is_dir() else {},
        on_unknown_year=lambda year: CALENDAR_FALLBACK.labels(year=str(year)).inc(),
    )
