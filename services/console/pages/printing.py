"""The printable application (需求申请表): the exchange lays it out as a PDF for whoever may read the request;
the console passes it on to the browser, shown in place to be printed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from common.fields import Code
from services.console.clients import segment
from services.console.web import ConsoleDep, PersonDep

router = APIRouter()


@router.get("/requests/form")
async def application_form(console: ConsoleDep, person: PersonDep, id: Annotated[Code, Query()]) -> Response:
    answer = await console.services.document("exchange", f"/requests/{segment(id)}/form.pdf", person.token)
    disposition = answer.headers.get("content-disposition", "").replace("attachment", "inline", 1)
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if disposition:
        headers["Content-Disposition"] = disposition
    return Response(answer.content, media_type="application/pdf", headers=headers)
