"""Catalog REST routes: translate HTTP to commands and results back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from common.guard import Guard
from common.policy import Principal
from services.catalog import handlers
from services.catalog.domain.entries import CatalogEntry, DraftEntry, EntryStatus, ShareType
from services.catalog.ports import UnitOfWork


class DraftEntryBody(BaseModel):
    resource_code: str = Field(examples=["101001/000001"])
    name: str = Field(examples=["企业登记基本信息"])
    provider_code: str = Field(description="Unified social credit code of the provider department")
    share_type: ShareType
    not_shared_basis: str | None = None


class EntryView(BaseModel):
    resource_code: str
    name: str
    provider_code: str
    share_type: ShareType
    status: EntryStatus
    version: int
    compiled_by: str
    not_shared_basis: str | None
    created_at: datetime

    @classmethod
    def of(cls, entry: CatalogEntry) -> EntryView:
        return cls.model_validate(entry, from_attributes=True)


Drafter = Annotated[Principal, Depends(Guard("catalog.entry.draft"))]
Reader = Annotated[Principal, Depends(Guard("catalog.entry.read"))]


def router(uow: UnitOfWork) -> APIRouter:
    api = APIRouter(prefix="/entries", tags=["catalog entries"])

    @api.post("", status_code=201, response_model=EntryView, summary="Save a new catalog entry as a draft")
    async def draft(body: DraftEntryBody, principal: Drafter) -> EntryView:
        command = DraftEntry(**body.model_dump(), compiled_by=principal.subject)
        return EntryView.of(await handlers.draft_entry(command, principal, uow))

    @api.get("/{resource_code:path}", response_model=EntryView, summary="One catalog entry")
    async def get(resource_code: str, _: Reader) -> EntryView:
        return EntryView.of(await handlers.get_entry(resource_code, uow))

    return api
