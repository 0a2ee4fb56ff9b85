"""Notifier REST routes: a department's inbox."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.notifier import handlers
from services.notifier.domain.notifications import NotificationKind
from services.notifier.ports import UnitOfWork


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
        department_code: str, unread: bool = False, limit: int = Query(50, ge=1, le=500)
    ) -> list[NotificationView]:
        found = await uow.inbox(department_code.upper(), unread_only=unread, limit=limit)
        return [NotificationView.model_validate(n, from_attributes=True) for n in found]

    @api.post("/{department_code}/{notification_id}/read", status_code=204, summary="Mark a notification read")
    async def read(department_code: str, notification_id: str) -> None:
        await handlers.mark_read(department_code.upper(), notification_id, uow)

    return api
