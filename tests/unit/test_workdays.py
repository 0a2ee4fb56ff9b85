import logging
from datetime import date
from pathlib import Path

import pytest

from common.calendar_source import build_calendar
from common.workdays import CalendarFileError, load_schedule_file

CAL = build_calendar()


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 2, 13), True),  # Friday before Spring Festival
        (date(2026, 2, 14), True),  # Saturday, adjusted workday
        (date(2026, 2, 15), False),
        (date(2026, 2, 17), False),  # 春节, a Tuesday
        (date(2026, 2, 23), False),  # last day off, a Monday
        (date(2026, 2, 24), True),
        (date(2026, 9, 20), True),  # Sunday, adjusted workday before National Day
        (date(2026, 9, 25), False),  # 中秋, a Friday
        (date(2026, 10, 1), False),
        (date(2026, 10, 7), False),
        (date(2026, 10, 8), True),
        (date(2026, 10, 10), True),  # Saturday, adjusted workday
        (date(2026, 10, 11), False),
    ],
)
def test_2026_holidays_and_adjusted_workdays(day: date, working: bool) -> None:
    assert CAL.is_working_day(day) is working


def test_five_working_days_across_spring_festival() -> None:
    # Thu 12 Feb: Fri 13, Sat 14 (调休), then the holiday, then Tue 24, Wed 25, Thu 26.
    assert CAL.add_working_days(date(2026, 2, 12), 5) == date(2026, 2, 26)
    assert CAL.working_days_between(date(2026, 2, 12), date(2026, 2, 26)) == 5
    assert CAL.working_days_between(date(2026, 2, 14), date(2026, 2, 23)) == 0


def test_ten_working_days_across_national_day() -> None:
    # Mon 28 Sep: 29, 30, then 8, 9, Sat 10 (调休), 12, 13, 14, 15, 16 October.
    assert CAL.add_working_days(date(2026, 9, 28), 10) == date(2026, 10, 16)
    assert CAL.working_days_between(date(2026, 10, 16), date(2026, 9, 28)) == -10


def test_overdue_only_after_the_deadline_day() -> None:
    start = date(2026, 2, 12)
    assert not CAL.is_overdue(start, 5, date(2026, 2, 26))
    assert CAL.is_overdue(start, 5, date(2026, 2, 27))
    assert not CAL.is_overdue(start, 5, date(2026, 2, 20))  # mid-holiday, nothing counted yet


def test_zero_days_is_the_start_and_negative_is_refused() -> None:
    assert CAL.add_working_days(date(2026, 2, 15), 0) == date(2026, 2, 15)
    with pytest.raises(ValueError, match="negative"):
        CAL.add_working_days(date(2026, 2, 15), -1)


def test_unknown_year_falls_back_to_weekends_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reported: list[int] = []
    calendar = build_calendar(tmp_path)
    calendar.on_unknown_year = reported.append
    with caplog.at_level(logging.WARNING):
        assert calendar.is_working_day(date(2031, 1, 1)) is True  # a Wednesday; no schedule known
        assert calendar.is_working_day(date(2031, 1, 4)) is False  # Saturday
    assert reported == [2031]
    assert "2031" in caplog.text


def test_operators_schedule_file_decides_for_its_year(tmp_path: Path) -> None:
    (tmp_path / "2031.toml").write_text("year = 2031\nholidays = [2031-01-01]\nworkdays = [2031-01-04]\n")
    calendar = build_calendar(tmp_path)
    assert calendar.is_working_day(date(2031, 1, 1)) is False
    assert calendar.is_working_day(date(2031, 1, 4)) is True
    assert calendar.add_working_days(date(2030, 12, 31), 1) == date(2031, 1, 2)


@pytest.mark.parametrize(
    "content",
    [
        "year = 2031\nholidays = [2030-01-01]\n",  # date outside its year
        "year = 2031\nholidays = [2031-01-01]\nworkdays = [2031-01-01]\n",  # both
        "holidays = [2031-01-01]\n",  # no year
        "year = 2031\nholidays = [",  # broken TOML
    ],
)
def test_bad_schedule_files_are_refused_with_their_path(tmp_path: Path, content: str) -> None:
    path = tmp_path / "2031.toml"
    path.write_text(content)
    with pytest.raises(CalendarFileError, match=r"2031\.toml"):
        load_schedule_file(path)
