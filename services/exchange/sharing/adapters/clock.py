"""Clocks for the sharing lifecycle: the city's date, or a fixed one for drills and tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from common.clock import today_in_china


class CityClock:
    def today(self) -> date:
        return today_in_china()


@dataclass(frozen=True)
class FixedClock:
    day: date

    def today(self) -> date:
        return self.day
