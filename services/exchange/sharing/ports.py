"""What the sharing lifecycle's handlers need from the outside world: its store, the events it announces,
the clock, the working-day calendar and the departments' names."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractAsyncContextManager
from datetime import date
from typing import Protocol

from common.errors import Conflict
from services.exchange.domain.resources import ResourceSchema
from services.exchange.sharing.commands import DepartmentNamed
from services.exchange.sharing.grants import Grant, GrantStatus
from services.exchange.sharing.requests import RequestTally, RulingLevel, ShareRequest, Step

SHARE_EVENTS = "exchange.share-events"
DIRECTORY_EVENTS = "directory.events"


class Clock(Protocol):
    def today(self) -> date:
        """The date in the city (deadlines fall on Beijing calendar days)."""
        ...


class WorkingDays(Protocol):
    def add_working_days(self, start: date, days: int) -> date: ...


class ShareEvents(Protocol):
    """What the lifecycle announces on exchange.share-events; the adapter owns payloads and the topic.
    Each is written with the state that caused it, or not at all."""

    def request_filed(self, request: ShareRequest) -> None: ...

    def request_refused(self, request: ShareRequest) -> None: ...

    def request_decided(self, request: ShareRequest) -> None: ...

    def step_overdue(self, request: ShareRequest, step: Step, due: date, today: date) -> None: ...

    def request_disputed(self, request: ShareRequest) -> None: ...

    def dispute_ruled(self, request: ShareRequest, level: RulingLevel) -> None: ...

    def dispute_escalated(self, request: ShareRequest) -> None: ...

    def grant_issued(self, grant: Grant) -> None: ...

    def grant_revoked(self, grant: Grant, revoked_by: str, today: date) -> None: ...

    def grant_ended(self, grant: Grant, cause: str, today: date) -> None: ...


class ChangedMeanwhile(Conflict):
    """A transaction lost to a concurrent one that wrote the same request or grant (a database write
    conflict, or a revision no longer the one read): nothing of it was stored."""


class SharingTransaction(Protocol):
    @property
    def events(self) -> ShareEvents:
        """Announces what the transaction changed, committed with it."""
        ...

    async def schema(self, resource_code: str) -> ResourceSchema | None: ...

    async def request(self, request_id: str) -> ShareRequest | None: ...

    async def add_request(self, request: ShareRequest) -> None: ...

    async def save_request(self, request: ShareRequest, read_revision: int) -> None:
        """Store a changed request; ChangedMeanwhile when it changed since it was read at `read_revision`."""
        ...

    async def grant(self, grant_id: str) -> Grant | None: ...

    async def put_grant(self, grant: Grant) -> None: ...

    async def active_grants(self, resource_code: str | None = None, valid_before: date | None = None) -> list[Grant]:
        """Active grants, of one resource or all, or only those whose period ended before `valid_before`."""
        ...

    async def awaiting_requests(self, due_before: date) -> list[ShareRequest]:
        """Requests awaiting a step whose deadline is before `due_before`, not yet announced overdue."""
        ...


class SharingStore(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[SharingTransaction]:
        """A transaction: its writes and events commit together, or it raises ChangedMeanwhile when a
        concurrent one wrote the same document first."""
        ...

    async def schema(self, resource_code: str) -> ResourceSchema | None: ...

    async def request(self, request_id: str) -> ShareRequest | None: ...

    async def requests(
        self,
        *,
        consumer_code: str | None,
        provider_code: str | None,
        status: str | None,
        offset: int,
        limit: int,
        awaiting: str | None = None,
    ) -> list[ShareRequest]:
        """Newest first; `awaiting` (a Step): only those whose dispute awaits that ruling."""
        ...

    async def request_tally(self, today: date) -> RequestTally:
        """Every department's requests by state, and the pending ones whose decision is overdue on `today`."""
        ...

    async def grant(self, grant_id: str) -> Grant | None: ...

    async def grants(
        self,
        *,
        consumer_code: str | None,
        provider_code: str | None,
        status: GrantStatus | None,
        offset: int,
        limit: int,
    ) -> list[Grant]: ...


class DepartmentNames(Protocol):
    """The departments' names as the directory announced them (signed events only), kept by the exchange
    for what it prints."""

    async def record(self, named: DepartmentNamed) -> bool:
        """Keep the name unless the directory said something later already (replayed or reordered events
        change nothing); False when it was not kept."""
        ...

    async def names(self, codes: Collection[str]) -> dict[str, str]:
        """The names known of `codes`; unknown codes are left out."""
        ...
