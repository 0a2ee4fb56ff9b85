"""Auditor REST routes: read the trail and check its integrity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from common.fields import Code, Position
from common.guard import Guard
from services.auditor import handlers
from services.auditor.ports import UnitOfWork


class TrailEntryView(BaseModel):
    sequence: int
    event_id: str
    event_type: str
    key: str
    producer: str
    occurred_at: str
    payload: dict[str, Any]
    previous_hash: str
    hash: str


class ChainReportView(BaseModel):
    intact: bool
    entries: int
    first_broken_sequence: int | None
    problem: str | None


def router(uow: UnitOfWork) -> APIRouter:
    api = APIRouter(tags=["access trail"], dependencies=[Depends(Guard("auditor.trail.read"))])

    @api.get("/trail", response_model=list[TrailEntryView], summary="Trail entries in order, paged by sequence")
    async def entries(
        after_sequence: Position = 0, limit: int = Query(100, ge=1, le=1000), event_type: Code | None = None
    ) -> list[TrailEntryView]:
        found = await uow.entries(after_sequence=after_sequence, limit=limit, event_type=event_type)
        return [TrailEntryView.model_validate(e, from_attributes=True) for e in found]

    @api.get("/trail/verify", response_model=ChainReportView, summary="Recompute the hash chain of the whole trail")
    async def verify() -> ChainReportView:
        return ChainReportView.model_validate(await handlers.verify_trail(uow), from_attributes=True)

    @api.get(
        "/evaluation/data-accesses",
        summary="Data accesses per consumer department (counted by the auditor's stream worker)",
        tags=["evaluation"],
    )
    async def data_accesses() -> dict[str, int]:
        return await uow.data_access_counts()

    return api
