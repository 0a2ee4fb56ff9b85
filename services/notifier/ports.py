"""What the notifier's handlers need from the outside world."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from common.events import Event
from services.notifier.domain.events import Dispute
from services.notifier.domain.notifications import Notification

NOTIFICATIONS = "notifier.notifications"
SUBSCRIBED = ["exchange.share-events", "catalog.entry-events"]


class NotifierTransaction(Protocol):
    async def exists(self, notification_id: str) -> bool: ...

    async def add(self, notification: Notification) -> None: ...

    def emit(self, topic: str, event: Event) -> None: ...

    async def remember_dispute(self, dispute: Dispute) -> None: ...

    async def dispute(self, dispute_id: str) -> Dispute | None: ...


class UnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[NotifierTransaction]: ...

    async def inbox(self, department_code: str, *, unread_only: bool, limit: int) -> list[Notification]: ...

    async def mark_read(self, department_code: str, notification_id: str) -> bool: ...
