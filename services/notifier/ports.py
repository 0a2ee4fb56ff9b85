"""What the notifier's handlers need from the outside world."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from common.events import Event
from common.policy import Role
from services.notifier.domain.changes import ChangeBatch, Ranges
from services.notifier.domain.events import Dispute
from services.notifier.domain.holdings import EntryTerms, Holding
from services.notifier.domain.notifications import Audience, Notification, NotificationKind
from services.notifier.domain.preferences import Preferences
from services.notifier.domain.reminders import Deadline, Reminder
from services.notifier.domain.webhooks import Delivery, DeliveryState, Endpoint, Outcome

NOTIFICATIONS = "notifier.notifications"  # every notice, for the platform's services (the auditor)
RESOURCE_CHANGES = "exchange.resource-changes"
SUBSCRIBED = ["exchange.share-events", "catalog.entry-events", "catalog.demand-events", "auditor.findings"]
DIRECTORY_EVENTS = "directory.events"


class Clock(Protocol):
    def now(self) -> datetime: ...  # aware


class DepartmentTopics(Protocol):
    """Each department's own Kafka topic: its adapters read their department's notices and no other's."""

    def topic(self, department_code: str) -> str: ...

    async def open(self, department_codes: Collection[str]) -> None: ...  # make those the cluster lacks


class Wakeable(Protocol):
    def wake(self) -> None: ...


class WebhookQueue(Protocol):
    """Deliveries queued in the transaction that stores their notices: both are kept, or neither."""

    async def endpoints_of(self, department_codes: Collection[str]) -> list[Endpoint]: ...

    async def queue(self, deliveries: list[Delivery]) -> None: ...


class NotifierTransaction(Protocol):
    @property
    def webhooks(self) -> WebhookQueue: ...

    async def existing(self, notification_ids: Collection[str]) -> set[str]: ...

    async def add_all(self, notifications: list[Notification]) -> None: ...

    def emit(self, topic: str, event: Event) -> None: ...

    async def preferences(self, department_codes: Collection[str]) -> dict[str, Preferences]: ...

    async def remember_dispute(self, dispute: Dispute) -> None: ...

    async def dispute(self, dispute_id: str) -> Dispute | None: ...

    async def hold(self, holding: Holding) -> None: ...

    async def end_holding(self, grant_id: str) -> None: ...

    async def holdings(self, resource_code: str) -> list[Holding]: ...

    async def entry_terms(self, resource_code: str) -> EntryTerms | None: ...

    async def keep_entry_terms(self, terms: EntryTerms) -> None: ...

    async def change_batches(self, resource_codes: Collection[str]) -> dict[str, tuple[ChangeBatch | None, Ranges]]: ...

    async def keep_change_batch(self, batch: ChangeBatch) -> None: ...

    async def due_change_batch(self, now: datetime) -> ChangeBatch | None: ...

    async def batch_told(self, batch: ChangeBatch) -> None: ...

    async def schedule(self, reminder: Reminder) -> None: ...

    async def cancel_reminders(self, deadline: Deadline, reference: str) -> None: ...

    async def due_reminders(self, now: datetime, limit: int) -> list[Reminder]: ...

    async def reminder_sent(self, reminder_id: str) -> None: ...

    async def set_preferences(self, preferences: Preferences) -> None: ...

    async def schedule_digest(self, department_code: str, at: datetime | None) -> None: ...  # None: no more

    async def due_digest(self, now: datetime) -> tuple[str, datetime] | None: ...

    async def digest_audiences(self, department_code: str) -> list[Audience]: ...  # of the notices waiting

    async def awaiting_digest(
        self, department_code: str, audience: Audience, limit: int
    ) -> tuple[list[Notification], int]: ...  # those for exactly `audience`, oldest first

    async def digested(self, department_code: str) -> None: ...


@dataclass(frozen=True)
class InboxQuery:
    department_code: str | None  # None: every department's (the IT office)
    unread_only: bool = False
    kind: NotificationKind | None = None
    resource_code: str | None = None
    offset: int = 0
    limit: int = 100
    # Whose notices: those for one of these roles and the department-wide ones (a person's inbox); None: all
    # (a machine, or the IT office reading another department's)
    roles: frozenset[Role] | None = None
    # With department_code None (the IT office's oversight): the department whose notices `roles` filter (the
    # reader's own, where she reads as in her own inbox); every other department's are shown whole
    own_code: str | None = None
    reader: str | None = None  # whose read state `unread_only` means (handlers.reader_of); None: the legacy flag

    def __post_init__(self) -> None:
        # every department's notices filtered by roles, with no department of the reader's to filter: no inbox
        # reads so (the IT office's oversight names her own), and the stores would disagree on what it means
        if self.department_code is None and self.own_code is None and self.roles is not None:
            raise ValueError("every department's notices by roles: own_code names the reader's department")


class UnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[NotifierTransaction]: ...

    async def inbox(self, query: InboxQuery) -> tuple[list[Notification], int]: ...

    async def mark_read(
        self, department_code: str | None, notification_id: str, reader: str, roles: frozenset[Role] | None = None
    ) -> bool: ...

    async def preferences_of(self, department_code: str) -> Preferences | None: ...

    async def next_due(self) -> datetime | None: ...

    # the department's own, and the reminders of `followed` deadlines scheduled for any department (the IT
    # office's operators are reminded of them too)
    async def reminders_of(self, department_code: str, followed: Collection[Deadline] = ()) -> list[Reminder]: ...


class WebhookStore(Protocol):
    """Endpoints and deliveries outside a notice's transaction: the REST routes and the delivery worker."""

    async def add_endpoint(self, endpoint: Endpoint) -> None: ...

    async def endpoint(self, endpoint_id: str) -> Endpoint | None: ...

    async def endpoints(self, department_code: str) -> list[Endpoint]: ...

    async def save_secrets(self, endpoint: Endpoint) -> None: ...

    async def remove_endpoint(self, endpoint_id: str) -> bool: ...

    async def deliveries(
        self,
        *,
        department_code: str | None,
        state: DeliveryState | None,
        endpoint_id: str | None,
        offset: int,
        limit: int,
    ) -> tuple[list[Delivery], int]: ...

    async def delivery(self, delivery_id: str) -> Delivery | None: ...

    async def replay(self, delivery_ids: list[str], now: datetime) -> int: ...

    async def endpoints_by_id(self, endpoint_ids: Collection[str]) -> dict[str, Endpoint]: ...

    async def claim_due(
        self, now: datetime, limit: int, lease_until: datetime, delivered: Mapping[str, Collection[int]] | None = None
    ) -> list[Delivery]:
        """Up to `limit` due deliveries, each the first open one of its chain, claimed until `lease_until`;
        `delivered` (chain: `seq`s) are open ones this process delivered, whose outcome is not written yet:
        they hold nothing back."""
        ...

    async def take(
        self, deliveries: list[Delivery], now: datetime, delivered: Mapping[str, Collection[int]] | None = None
    ) -> list[Delivery]:
        """Of deliveries this process queued and holds, those first open in their chain (`delivered` aside, as
        in claim_due); the others wait."""
        ...

    async def next_due(self) -> datetime | None: ...

    async def record(self, outcomes: list[Outcome], now: datetime) -> None:
        """Store what the attempts did; the next delivery of each finished one's chain is due at once."""
        ...

    async def write_outcomes(self, outcomes: list[Outcome]) -> dict[str, int]:
        """record's write alone: the chains whose open delivery finished (chain: highest `seq` finished)."""
        ...

    async def wake_next(self, finished: dict[str, int], now: datetime) -> None:
        """record's wake alone: the next delivery of each chain in `finished` is due now."""
        ...
