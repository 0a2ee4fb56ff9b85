"""The one clock every service uses: the system's time in the city's calendar, run on from another instant
for drills, or a fixed day."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from common.clock import CHINA, FixedDay, SystemClock


def test_the_system_clock_runs_on_from_a_start_and_dates_days_in_beijing() -> None:
    start = datetime(2026, 9, 30, 16, 30, tzinfo=UTC)  # 00:30 on 1 October in Beijing
    clock = SystemClock(start)
    now = clock.now()
    assert now.tzinfo is not None and timedelta(0) <= now - start < timedelta(seconds=5)
    assert clock.today() == date(2026, 10, 1)
    assert abs(clock.seconds_until_day_after(date(2026, 10, 1)) - (23.5 * 3600 + 5)) < 5
    assert clock.seconds_until_day_after(date(2026, 9, 30)) == 0.0
    unshifted = SystemClock()
    assert abs((unshifted.now() - datetime.now(UTC)).total_seconds()) < 1
    assert unshifted.today() == datetime.now(CHINA).date()


def test_a_fixed_day_never_ends() -> None:
    clock = FixedDay(date(2026, 11, 5))
    assert clock.today() == date(2026, 11, 5)
    assert clock.seconds_until_day_after(date(2026, 11, 4)) == 0.0
    assert clock.seconds_until_day_after(date(2026, 11, 5)) == math.inf
