"""One handler for every event that calls for a notification."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common.errors import NotFound
from common.events import Event
from services.notifier.domain.notifications import Notification
from services.notifier.ports import NOTIFICATIONS, UnitOfWork

PRODUCER = "notifier"


class NotificationNotFound(NotFound):
    pass


async def notify(event: Event, uow: UnitOfWork, rule: Callable[[str, dict[str, Any]], Notification]) -> None:
    """Put the notification in the recipient's inbox and announce it, once per event."""
    notification = rule(event.event_id, event.payload)
    async with uow() as tx:
        if await tx.exists(notification.notification_id):
            return
        await tx.add(notification)
        tx.emit(
            NOTIFICATIONS,
            Event("NotificationIssued", notification.recipient_code, notification.issued_payload(), PRODUCER),
        )


async def mark_read(department_code: str, notification_id: str, uow: UnitOfWork) -> None:
    if not await uow.mark_read(department_code, notification_id):
        raise NotificationNotFound("notification_id", f"no notification {notification_id} in this inbox")
