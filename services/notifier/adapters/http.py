"""Notifier REST routes: a department's inbox."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from common.fields import Code
from common.guard import Guard
from common.policy import Principal, Target, authorize
from services.notifier import handlers
from services.notifier.domain.notifications import NotificationKind
from services.notifier.ports import UnitOfWork

InboxReader = Annotated[Principal, Depends(Guard("notifier.inbox.read"))]


class NotificationView(BaseModel):
    notification_id: str
    recipient_code: str
    kind: NotificationKind
    title: str
    body: str
    reference: str | None
    due_on: date | None
    created_at: datetime
    read: bool


def router(uow: UnitOfWork) -> APIRouter:
    api = APIRouter(prefix="/inbox", tags=["inbox"])

    @api.get("/{department_code}", response_model=list[NotificationView], summary="A department's notifications")
    async def inbox(
        department_code: Code, principal: InboxReader, unread: bool = False, limit: int = Query(50, ge=1, le=500)
    ) -> list[NotificationView]:
        authorize(principal, "notifier.inbox.read", Target(department_code=department_code.upper()))
        found = await uow.inbox(department_code.upper(), unread_only=unread, limit=limit)
        return [NotificationView.model_validate(n, from_attributes=True) for n in found]

    @api.post("/{department_code}/{notification_id}/read", status_code=204, summary="Mark a notification read")
    async def read(department_code: Code, notification_id: Code, principal: InboxReader) -> None:
        authorize(principal, "notifier.inbox.read", Target(department_code=department_code.upper()))
        await handlers.mark_read(department_code.upper(), notification_id, uow)

    return api
