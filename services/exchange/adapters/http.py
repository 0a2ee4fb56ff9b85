"""Exchange REST routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from services.exchange import handlers
from services.exchange.ports import UnitOfWork


class RecordView(BaseModel):
    resource_code: str
    subject_key: str
    subject_kind: str
    fields: dict[str, Any]
    source_version: int
    changed_at: datetime | None


def router(uow: UnitOfWork) -> APIRouter:
    api = APIRouter(prefix="/resources", tags=["records"])

    @api.get(
        "/{resource_code:path}/records/{subject_key}", response_model=RecordView, summary="A subject's current record"
    )
    async def record(resource_code: str, subject_key: str) -> RecordView:
        found = await handlers.current_record(resource_code, subject_key, uow)
        return RecordView.model_validate(found, from_attributes=True)

    @api.get("/{resource_code:path}/records/{subject_key}/history", summary="Every change the center received")
    async def history(resource_code: str, subject_key: str) -> list[dict[str, Any]]:
        return await uow.history(resource_code, subject_key.upper())

    return api
