"""REST routes of the data-element dictionary (数据元): everyone reads it, the IT office keeps it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response, UploadFile
from pydantic import BaseModel, Field

from common.fields import Code, Name, Position, Text
from common.guard import Guard
from common.limits import MAX_ITEMS
from common.policy import Principal
from services.catalog import dictionary
from services.catalog.adapters import sheets
from services.catalog.adapters.retry import retried
from services.catalog.domain.dictionary import DataElement, ElementVersion
from services.catalog.domain.entries import ItemType
from services.catalog.ports import FindingsCache, UnitOfWork

Editor = Annotated[Principal, Depends(Guard("catalog.dictionary.edit"))]
Reader = Annotated[Principal, Depends(Guard("catalog.entry.read"))]


class ElementView(BaseModel):
    identifier: str = Field(examples=["DE0001"])
    name: str = Field(examples=["公民身份号码"], description="the standard name")
    aliases: list[str] = Field([], examples=[["身份证号", "身份证号码"]])
    definition: str = ""
    type: ItemType = ItemType.STRING
    source_code: str = Field("", description="the authoritative source department's credit code; empty: unassigned")
    version: int = 1

    @classmethod
    def of(cls, e: DataElement) -> ElementView:
        return cls.model_validate({**vars(e), "aliases": list(e.aliases)})


class ElementBody(BaseModel):
    identifier: Code = Field(examples=["DE0001"])
    name: Name = Field(examples=["公民身份号码"])
    aliases: list[Name] = Field([], max_length=MAX_ITEMS)
    definition: Text = ""
    type: ItemType = ItemType.STRING
    source_code: Code = ""

    def element(self) -> DataElement:
        return DataElement.define(
            self.identifier, self.name, self.aliases, self.definition, self.type, self.source_code
        )


class ElementChangeBody(ElementBody):
    version: Position = Field(description="the version you read; a concurrent change makes this a 409")


class ElementVersionView(BaseModel):
    element: ElementView
    changed_by: str
    removed: bool
    changed_at: datetime | None

    @classmethod
    def of(cls, v: ElementVersion) -> ElementVersionView:
        return cls(
            element=ElementView.of(v.element), changed_by=v.changed_by, removed=v.removed, changed_at=v.changed_at
        )


def router(uow: UnitOfWork, findings: FindingsCache) -> APIRouter:
    """`findings` are stale after any change of the dictionary."""
    api = APIRouter(tags=["data-element dictionary"])

    @api.get("/elements", response_model=list[ElementView], summary="The data-element dictionary (数据元)")
    async def elements(_: Reader) -> list[ElementView]:
        found = (await uow.dictionary()).elements
        return [ElementView.of(e) for e in sorted(found, key=lambda e: e.identifier)]

    @api.post("/elements", status_code=201, response_model=ElementView, summary="The IT office defines an element")
    async def define(body: ElementBody, principal: Editor) -> ElementView:
        defined = await retried(lambda: dictionary.define_element(body.element(), principal, uow))
        findings.invalidate()
        return ElementView.of(defined)

    @api.post(
        "/elements/import",
        response_model=list[ElementView],
        summary="The IT office defines or changes elements from an XLSX or CSV table: all rows or none",
    )
    async def import_table(file: UploadFile, principal: Editor) -> list[ElementView]:
        table = await asyncio.to_thread(sheets.read_table, await file.read(), file.filename or "")
        imported = await retried(lambda: dictionary.import_elements(table, principal, uow))
        findings.invalidate()
        return [ElementView.of(e) for e in imported]

    @api.get("/elements/{identifier}", response_model=ElementView, summary="One element")
    async def element(identifier: Code, _: Reader) -> ElementView:
        return ElementView.of(await dictionary.get_element(identifier, uow))

    @api.put(
        "/elements/{identifier}",
        response_model=ElementView,
        summary="The IT office changes an element: names, definition, type or its authoritative source",
    )
    async def change(identifier: Code, body: ElementChangeBody, principal: Editor) -> ElementView:
        changed = DataElement.define(identifier, body.name, body.aliases, body.definition, body.type, body.source_code)
        stored = await retried(lambda: dictionary.change_element(changed, body.version, principal, uow))
        findings.invalidate()
        return ElementView.of(stored)

    @api.delete("/elements/{identifier}", status_code=204, summary="The IT office removes an element no entry sources")
    async def remove(identifier: Code, principal: Editor) -> Response:
        await retried(lambda: dictionary.remove_element(identifier, principal, uow))
        findings.invalidate()
        return Response(status_code=204)

    @api.get(
        "/elements/{identifier}/versions",
        response_model=list[ElementVersionView],
        summary="Every recorded version of an element, who changed it and when",
    )
    async def versions(identifier: Code, _: Reader) -> list[ElementVersionView]:
        return [ElementVersionView.of(v) for v in await dictionary.element_history(identifier, uow)]

    @api.get("/dictionary.xlsx", summary="The dictionary as a workbook (the import's layout)", response_class=Response)
    async def workbook(_: Reader) -> Response:
        return Response(
            sheets.to_xlsx(await dictionary.export_dictionary(uow)),
            media_type=sheets.XLSX,
            headers={"Content-Disposition": 'attachment; filename="dictionary.xlsx"'},
        )

    return api
