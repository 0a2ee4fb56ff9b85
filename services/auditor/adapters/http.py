"""Auditor REST routes of the evaluation (the trail's are in trail_http)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from common.guard import Guard
from services.auditor.ports import EvaluationFigures


def router(figures: EvaluationFigures) -> APIRouter:
    api = APIRouter(tags=["evaluation"], dependencies=[Depends(Guard("auditor.trail.read"))])

    @api.get(
        "/evaluation/data-accesses",
        summary="Data accesses per consumer department (counted by the auditor's stream worker)",
    )
    async def data_accesses() -> dict[str, int]:
        return await figures.data_access_counts()

    return api
