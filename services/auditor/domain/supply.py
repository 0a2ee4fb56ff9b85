"""Whether a department delivers the data of its entries in force per their declared update cycle (Art. 24(2)):
each resource's next delivery is due one cycle after the last (or after its publication), plus a grace of
working days; a resource still without data then is stale, and a finding is raised once until data comes.
Standard library only."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import date, timedelta

from services.auditor.domain.activity import DailyCount, EntryFact, EntryStep, Measure, UpdateCycle
from services.auditor.domain.findings import Category, Remedy, Suspicion
from services.auditor.domain.scoring import WorkingDays

MONTHS = {UpdateCycle.MONTHLY: 1, UpdateCycle.QUARTERLY: 3, UpdateCycle.HALF_YEARLY: 6, UpdateCycle.YEARLY: 12}


@dataclass(frozen=True)
class Supply:
    resource_code: str
    provider_code: str
    update_cycle: UpdateCycle | None = None
    in_force: bool = False
    last_delivered: date | None = None
    deliver_by: date | None = None  # the last day data may come before the resource is stale
    flagged: bool = False  # a finding was raised; not again until data comes


def _months_later(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def delivery_due(cycle: UpdateCycle, since: date, grace: int, calendar_: WorkingDays) -> date:
    """The last day the next delivery may come: one cycle after `since`, then `grace` working days."""
    if cycle in (UpdateCycle.REAL_TIME, UpdateCycle.DAILY):
        return calendar_.add_working_days(since, 1 + grace)
    if cycle is UpdateCycle.WEEKLY:
        return calendar_.add_working_days(since + timedelta(days=7), grace)
    return calendar_.add_working_days(_months_later(since, MONTHS[cycle]), grace)


def supply_after(
    supply: Supply | None, fact: EntryFact | DailyCount, grace: int, calendar_: WorkingDays
) -> Supply | None:
    """The resource's supply after a publication, a withdrawal or a delivery; None when the fact says nothing
    of it."""
    if isinstance(fact, DailyCount):
        if fact.measure is not Measure.DELIVERED:
            return None
        known = supply or Supply(fact.resource_code, fact.department_code)
        last = max(fact.day, known.last_delivered or fact.day)
        due = delivery_due(known.update_cycle, last, grace, calendar_) if known.update_cycle else None
        return replace(known, last_delivered=last, deliver_by=due, flagged=False)
    if fact.step is EntryStep.PUBLISHED and fact.update_cycle is not None:
        known = supply or Supply(fact.resource_code, fact.provider_code)
        since = max(fact.day, known.last_delivered) if known.last_delivered else fact.day
        due = delivery_due(fact.update_cycle, since, grace, calendar_)
        if known.in_force and known.deliver_by and known.update_cycle is fact.update_cycle:
            due = known.deliver_by  # a new version of the entry does not restart its data's cycle
        return replace(
            known, provider_code=fact.provider_code, update_cycle=fact.update_cycle, in_force=True, deliver_by=due
        )
    if fact.step is EntryStep.WITHDRAWN and supply is not None:
        return replace(supply, in_force=False)
    return None


def stale(supply: Supply, today: date) -> bool:
    return supply.in_force and not supply.flagged and supply.deliver_by is not None and today > supply.deliver_by


def stale_suspicion(supply: Supply, today: date) -> Suspicion:
    assert supply.update_cycle is not None
    last = supply.last_delivered.isoformat() if supply.last_delivered else "never"
    return Suspicion(
        supply.provider_code,
        Category.DATA_NOT_PROVIDED_IN_TIME,
        f"resource:{supply.resource_code}",
        f"资源 {supply.resource_code} 未按更新周期（{supply.update_cycle.value}）提供数据",
        f"last data {last}; next was due by {supply.deliver_by}",
        today,
        f"stale:{supply.resource_code}:{supply.deliver_by}",
    )


def delivered_remedy(count: DailyCount) -> Remedy:
    return Remedy(
        count.department_code,
        Category.DATA_NOT_PROVIDED_IN_TIME,
        f"resource:{count.resource_code}",
        f"data delivered on {count.day}",
        count.day,
    )
