"""Dates as the city sees them: deadlines fall on Beijing calendar days, whatever the server's zone."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def today_in_china() -> date:
    return datetime.now(CHINA).date()
