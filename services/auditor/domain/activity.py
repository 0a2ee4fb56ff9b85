"""What the auditor keeps of the events it consumes for evaluating departments (Art. 23) and finding
violations (Art. 24): typed facts, translated from the events by the inbound adapter. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum


class UpdateCycle(StrEnum):
    REAL_TIME = "REAL_TIME"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    HALF_YEARLY = "HALF_YEARLY"
    YEARLY = "YEARLY"


class EntryStep(StrEnum):
    """What happened to a catalog entry, as far as its department's evaluation cares."""

    PUBLISHED = "published"  # a version came into force (a first publication, an update, a maintenance)
    MAINTAINED = "maintained"  # the yearly maintenance found nothing to change
    WITHDRAWN = "withdrawn"
    CHANGE_REPORTED = "change_reported"  # the entry must be updated by `due_on`
    OVERDUE = "overdue"  # it missed an update deadline or its yearly maintenance


@dataclass(frozen=True)
class EntryFact:
    step: EntryStep
    resource_code: str
    provider_code: str
    day: date
    version: int | None = None
    update_cycle: UpdateCycle | None = None  # of a published version
    due_on: date | None = None  # of a change report or an overdue entry
    overdue_kind: str | None = None  # UPDATE_AFTER_CHANGE or YEARLY_MAINTENANCE


class DecisionStep(StrEnum):
    DECIDED = "decided"
    OVERDUE = "overdue"  # the provider's decision was not given by its deadline


@dataclass(frozen=True)
class DecisionFact:
    step: DecisionStep
    request_id: str
    provider_code: str
    day: date
    due_on: date | None = None
    late: bool = False  # a decision given after its deadline


class Measure(StrEnum):
    """Counted per department, day, resource (and consumer): the high-volume events fold into these."""

    DELIVERED = "delivered"  # a change the center stored (ResourceChanged), per provider
    REJECTED = "rejected"  # a change the center refused (DataRejected), per provider
    USED = "used"  # data served to another department (DataAccessed SERVED), per provider and consumer


@dataclass(frozen=True)
class DailyCount:
    measure: Measure
    department_code: str
    day: date
    resource_code: str
    other: str = ""  # the consumer department of a use
    count: int = 1

    @property
    def key(self) -> tuple[str, str, date, str, str]:
        return (self.measure, self.department_code, self.day, self.resource_code, self.other)


@dataclass(frozen=True)
class DepartmentFact:
    department_code: str
    name: str
    evaluated: bool | None  # city bureaus, counties and zones are, not the IT office or the leadership group;
    active: bool = True  # None: as announced before (a change does not repeat the level)


@dataclass(frozen=True)
class RefusedChange:
    """A data change the center refused: the provider sent data that disagrees with its catalog entry."""

    change_id: str
    resource_code: str
    provider_code: str
    rule: str
    detail: str
    day: date


@dataclass(frozen=True)
class OutOfPurposeAccess:
    """An access the exchange refused because the purpose stated was not the grant's."""

    access_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    grant_id: str | None
    purpose: str
    day: date


Fact = EntryFact | DecisionFact | DailyCount | DepartmentFact | RefusedChange | OutOfPurposeAccess


@dataclass(frozen=True)
class Observed:
    """A fact and the event it came from. Which events were projected is known by where the consumer read
    them (`position`: topic, partition, offset; one mark per partition) or, for an event read elsewhere, by
    its id (a record per event)."""

    event_id: str
    fact: Fact
    position: tuple[str, int, int] | None = None


def fold_counts(counts: list[DailyCount]) -> list[DailyCount]:
    """Counts of the same department, day, resource and consumer added up: one write each."""
    first: dict[tuple[str, str, date, str, str], DailyCount] = {}
    totals: dict[tuple[str, str, date, str, str], int] = {}
    for c in counts:  # thousands per batch: a sum per key, one count made per key at the end
        key = (c.measure, c.department_code, c.day, c.resource_code, c.other)
        first.setdefault(key, c)
        totals[key] = totals.get(key, 0) + c.count
    return [c if c.count == totals[key] else replace(c, count=totals[key]) for key, c in first.items()]
