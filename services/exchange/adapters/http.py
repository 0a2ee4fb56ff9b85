"""Exchange REST routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from common.guard import Guard
from common.policy import Principal
from services.exchange import handlers
from services.exchange.ports import UnitOfWork

RecordReader = Annotated[Principal, Depends(Guard("exchange.record.read"))]


class RecordView(BaseModel):
    resource_code: str
    provider_code: str
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
    async def record(resource_code: str, subject_key: str, principal: RecordReader) -> RecordView:
        found = await handlers.current_record(resource_code, subject_key, principal, uow)
        return RecordView.model_validate(found, from_attributes=True)

    @api.get("/{resource_code:path}/records/{subject_key}/history", summary="Every change the center received")
    async def history(resource_code: str, subject_key: str, principal: RecordReader) -> list[dict[str, Any]]:
        return await handlers.record_history(resource_code, subject_key, principal, uow)

    return api
