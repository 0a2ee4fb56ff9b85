"""One handler for every event that calls for a notification. Events arrive typed (adapters/events.py)."""

from __future__ import annotations

from typing import Any

from common.errors import NotFound
from common.events import Event
from services.notifier.domain import notifications
from services.notifier.domain.events import Dispute, DisputeRuled, ShareDisputed
from services.notifier.domain.notifications import Notification, Rule
from services.notifier.ports import NOTIFICATIONS, NotifierTransaction, UnitOfWork

PRODUCER = "notifier"


class NotificationNotFound(NotFound):
    pass


class DisputeNotHeard(Exception):
    """A ruling on a dispute whose ShareDisputed has not been handled: retried (it may still be on its way on
    another partition), then dead-lettered with this reason, to be replayed once the dispute is in."""


async def notify(event_id: str, event: Any, uow: UnitOfWork, rule: Rule) -> None:
    """Put each notice the rule gives in its recipient's inbox and announce it, once per event."""
    async with uow() as tx:
        await _issue(tx, rule(event_id, event))


async def dispute_raised(event_id: str, disputed: ShareDisputed, uow: UnitOfWork, it_office_code: str) -> None:
    """Tell the IT office, which coordinates, and keep the parties: its ruling will name only the dispute."""
    async with uow() as tx:
        await tx.remember_dispute(
            Dispute(disputed.dispute_id, disputed.request_id, disputed.consumer_code, disputed.provider_code)
        )
        await _issue(tx, notifications.dispute_raised(event_id, disputed, it_office_code))


async def dispute_ruled(event_id: str, ruled: DisputeRuled, uow: UnitOfWork) -> None:
    async with uow() as tx:
        dispute = await tx.dispute(ruled.dispute_id)
        if dispute is None:
            raise DisputeNotHeard(f"dispute_id: no ShareDisputed {ruled.dispute_id} was heard before its ruling")
        await _issue(tx, notifications.dispute_ruled(event_id, ruled, dispute))


async def _issue(tx: NotifierTransaction, notices: list[Notification]) -> None:
    for notice in notices:
        if await tx.exists(notice.notification_id):
            continue
        await tx.add(notice)
        tx.emit(NOTIFICATIONS, Event("NotificationIssued", notice.recipient_code, notice.issued_payload(), PRODUCER))


async def mark_read(department_code: str, notification_id: str, uow: UnitOfWork) -> None:
    if not await uow.mark_read(department_code, notification_id):
        raise NotificationNotFound("notification_id", f"no notification {notification_id} in this inbox")
