"""Reminders before working-day deadlines (Art. 11, 15): a request's decision, a catalog entry's update after
its data changed, its yearly maintenance. Each deadline has one reminder, sent `lead` working days before the
day it is due, at the start of the working day; it is dropped once the step is done. That a deadline passed
is told from the owning service's overdue event (ShareDecisionOverdue, CatalogEntryOverdue): it knows whether
the step was done, the notifier only what it heard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")
MAX_LEAD = 60  # working days; a bound on the setting, and on the walk back through the calendar


class WorkingDays(Protocol):
    def is_working_day(self, day: date) -> bool: ...


class Deadline(StrEnum):
    REQUEST_DECISION = "REQUEST_DECISION"
    CATALOG_UPDATE = "CATALOG_UPDATE"
    YEARLY_MAINTENANCE = "YEARLY_MAINTENANCE"
    FINDING_RECTIFICATION = "FINDING_RECTIFICATION"
    CONSENT_DECISION = "CONSENT_DECISION"
    REPORT_ANSWER = "REPORT_ANSWER"  # the IT office's answer to a rectification report (Art. 24)


DEADLINE_NAMES = {
    Deadline.REQUEST_DECISION: "共享申请答复",
    Deadline.CATALOG_UPDATE: "目录更新（数据或要素变化后 5 个工作日内）",
    Deadline.YEARLY_MAINTENANCE: "目录年度全面维护",
    Deadline.FINDING_RECTIFICATION: "审计发现问题整改（第二十四条）",
    Deadline.CONSENT_DECISION: "对外发布同意申请答复（第十八条）",
    Deadline.REPORT_ANSWER: "整改报告核实（第二十四条）",
}


@dataclass(frozen=True)
class Reminder:
    reminder_id: str  # one per deadline: scheduling it again replaces it
    deadline: Deadline
    recipient_code: str
    resource_code: str
    reference: str
    due_on: date
    remind_at: datetime  # aware, UTC
    # what waited, for a reminder once something has waited (`after_waiting`): the department it is about and
    # the day the wait began (None for a deadline's reminder, and for those scheduled before they were kept)
    about_code: str | None = None
    since: date | None = None


@dataclass(frozen=True)
class ReminderPolicy:
    """`lead` working days before the due day, at `at` o'clock Beijing time."""

    calendar: WorkingDays
    lead: int = 2
    at: time = time(9, 0)

    def remind_on(self, due_on: date) -> date:
        """The working day `lead` working days before `due_on` (holidays and 调休 counted as the State
        Council set them): due on Friday 9 October 2026 with a lead of 2 is Wednesday 30 September, the
        National Day holiday in between."""
        day, left = due_on, self.lead
        while left:
            day -= timedelta(days=1)
            if self.calendar.is_working_day(day):
                left -= 1
        return day

    def reminder(
        self,
        deadline: Deadline,
        *,
        recipient_code: str,
        resource_code: str,
        reference: str,
        due_on: date,
        now: datetime,
    ) -> Reminder | None:
        """The deadline's reminder; at once if its day has come, none once the deadline passed."""
        if now.astimezone(CHINA).date() > due_on:
            return None
        at = datetime.combine(self.remind_on(due_on), self.at, CHINA)
        reminder_id = reminder_key(deadline, reference, due_on)
        return Reminder(reminder_id, deadline, recipient_code, resource_code, reference, due_on, max(at, now))


def reminder_key(deadline: Deadline, reference: str, due_on: date) -> str:
    if deadline in (Deadline.REQUEST_DECISION, Deadline.CONSENT_DECISION):
        return f"{deadline.value}:{reference}"  # a request has one decision deadline
    return f"{deadline.value}:{reference}:{due_on.isoformat()}"


def one_year_after(day: date) -> date:
    """The yearly maintenance is due a year after the last publication or confirmation."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


def after_waiting(
    policy: ReminderPolicy,
    deadline: Deadline,
    *,
    recipient_code: str,
    resource_code: str,
    reference: str,
    since: date,
    working_days: int,
    now: datetime,
    about_code: str | None = None,
    grace: timedelta = timedelta(0),
) -> Reminder:
    """A reminder once something has waited `working_days` working days since `since` (a rectification report
    for the IT office's answer): due on that working day and sent at its start. Unlike a deadline's reminder, it
    still goes when that day is past: the step is still owed; but `grace` after `now`, not at once. Scheduled
    that late, it comes from an event handled late (the notifier replaying its topics, a consumer lagging), and
    what followed it on the same topic (the report answered, the finding closed) is handled within the grace
    and drops it, rather than the IT office being reminded of a report answered long ago."""
    day, left = since, working_days
    while left:
        day += timedelta(days=1)
        if policy.calendar.is_working_day(day):
            left -= 1
    at = datetime.combine(day, policy.at, CHINA)
    key = reminder_key(deadline, reference, day)
    remind_at = at if at >= now else now + grace
    return Reminder(key, deadline, recipient_code, resource_code, reference, day, remind_at, about_code, since)


def working_days_waited(calendar: WorkingDays, since: date, today: date) -> int:
    """The working days after `since` up to and including `today`: how long something has waited."""
    day, waited = since, 0
    while day < today:
        day += timedelta(days=1)
        waited += calendar.is_working_day(day)
    return waited
