"""What the oversight handlers need from the outside world: the projection and findings store, the events
they announce on auditor.findings, the clock and the working-day calendar."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import date
from typing import Protocol

from services.auditor.domain.activity import DailyCount, DepartmentFact, Observed
from services.auditor.domain.findings import Category, Finding, Status
from services.auditor.domain.scoring import DepartmentActivity
from services.auditor.domain.supply import Supply

FINDINGS_TOPIC = "auditor.findings"
OBSERVED_TOPICS = [
    "directory.events",
    "catalog.entry-events",
    "exchange.resource-changes",
    "exchange.share-events",
    "exchange.data-accesses",
]


class Clock(Protocol):
    def today(self) -> date:
        """The date in the city (deadlines fall on Beijing calendar days)."""
        ...

    def seconds_until_day_after(self, day: date) -> float:
        """How long until `day` is over in the city; 0 when it is."""
        ...


class FindingEvents(Protocol):
    """What the findings announce on auditor.findings; the adapter owns payloads and the topic. Each is
    written with the state that caused it, or not at all."""

    def raised(self, finding: Finding, continues: str | None = None) -> None:
        """`continues`: the finding whose accepted report did not cover these occurrences (`continued`)."""
        ...

    def corrected(self, finding: Finding, by: str | None = None) -> None:
        """`by`: the IT office person who closed it; None when an event proved it corrected."""
        ...

    def escalated(self, finding: Finding, notice: str) -> None: ...

    def reported(self, finding: Finding, by_department: str) -> None:
        """The department's rectification report came (its latest report); `by_department` is the reporter's."""
        ...

    def report_rejected(self, finding: Finding, by_department: str) -> None:
        """The IT office rejected the latest report, with its reason."""
        ...


class OversightTransaction(Protocol):
    @property
    def events(self) -> FindingEvents: ...

    async def unhandled(self, observed: list[Observed]) -> set[str]:
        """The ids of the events not projected yet."""
        ...

    async def project(self, observed: list[Observed], counts: list[DailyCount], handled: list[Observed]) -> None:
        """Keep the facts, add the counts and remember the events of `handled` as projected."""
        ...

    async def open_finding(self, department_code: str, category: Category, matter: str) -> Finding | None: ...

    async def finding(self, finding_id: str) -> Finding | None: ...

    async def request_answered(self, request: str) -> str | None:
        """The finding a command with this request id raised or added to, when it was handled before."""
        ...

    async def answer_request(self, request: str, finding_id: str) -> None:
        """Remember that the request raised or added to the finding."""
        ...

    async def save_finding(self, finding: Finding) -> None:
        """Store a new or changed finding; a concurrent change of the same finding fails the transaction."""
        ...

    async def overdue_findings(self, today: date, limit: int) -> list[Finding]:
        """Open findings whose deadline is before `today`, but those a report in time holds."""
        ...

    async def department_name(self, department_code: str) -> str | None: ...

    async def supplies_of(self, resource_codes: list[str]) -> dict[str, Supply]:
        """The known supplies of these resources, by resource code."""
        ...

    async def save_supply(self, supply: Supply) -> None: ...

    async def save_supplies(self, supplies: list[Supply]) -> None: ...

    async def stale_supplies(self, today: date, limit: int) -> list[Supply]:
        """Resources in force, not flagged, whose next delivery was due before `today`."""
        ...


class OversightStore(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[OversightTransaction]: ...

    async def activity(
        self, department_codes: list[str] | None, deliveries_since: date, start: date, until: date
    ) -> list[DepartmentActivity]:
        """Each department's entry history to `until`, its deliveries from `start` and, from `deliveries_since`
        to `start`, each resource's latest, its decisions and other counts from `start` (counts may come summed
        per month), all to `until`: the departments named, or every department the directory lists as active
        and evaluated or the facts know."""
        ...

    async def departments(self) -> dict[str, DepartmentFact]: ...

    async def findings(
        self, *, department_code: str | None, status: Status | None, awaiting: bool | None, offset: int, limit: int
    ) -> tuple[list[Finding], int]:
        """`awaiting`: only findings whose report awaits the IT office's answer (True), or none does (False)."""
        ...

    async def finding(self, finding_id: str) -> Finding | None: ...

    async def monthly_totals(self, start: date, until: date) -> dict[tuple[str, str], int]:
        """Uses served, changes stored and versions published from `start` to `until`, summed by the database
        per (month label, measure or entry step)."""
        ...

    async def open_findings(self) -> dict[Category, int]:
        """How many findings are open, per category (counted by the database)."""
        ...

    async def next_deadline(self) -> date | None:
        """The earliest deadline of an open finding no report in time holds."""
        ...

    async def next_delivery_due(self) -> date | None:
        """The earliest day by which data of a resource in force (not flagged stale) must come."""
        ...
