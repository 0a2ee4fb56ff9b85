"""Time as the city sees it: deadlines fall on Beijing calendar days, whatever the server's zone. The services'
clock adapters: the system's clock (optionally run on from another instant, for drills and tests) and a fixed
day (for drills and tests of date-bound rules)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")
DAY_OVER_MARGIN = time(0, 0, 5)  # a day counts as over a few seconds after midnight, safely past it


def today_in_china() -> date:
    return datetime.now(CHINA).date()


def seconds_until_day_after(day: date, now: datetime) -> float:
    """Seconds from `now` (aware) until `day` is over in the city; 0 when it is."""
    over = datetime.combine(day + timedelta(days=1), DAY_OVER_MARGIN, tzinfo=CHINA)
    return max(0.0, (over - now).total_seconds())


class SystemClock:
    """The system's time; given `start`, it runs on from that instant as the system clock does (drills and
    tests, never production)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.offset = start - datetime.now(UTC) if start is not None else timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def today(self) -> date:
        return self.now().astimezone(CHINA).date()

    def seconds_until_day_after(self, day: date) -> float:
        return seconds_until_day_after(day, self.now())


@dataclass(frozen=True)
class FixedDay:
    """A fixed date in the city, for drills and tests; the day never ends."""

    day: date

    def today(self) -> date:
        return self.day

    def seconds_until_day_after(self, day: date) -> float:
        return 0.0 if day < self.day else math.inf
