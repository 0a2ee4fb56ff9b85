"""The reviewer's pages: the queue of entries submitted for review, one entry with approve or return with
findings per field. The catalog refuses a reviewer who edited the entry; the page shows its reason."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common import limits
from common.fields import Code
from services.console import forms
from services.console.clients import Refused, segment
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()
QUEUE_LIMIT = 100


@router.get("/review")
async def queue(request: Request, console: ConsoleDep, person: PersonDep) -> Response:
    params = {"status": "SUBMITTED", "limit": QUEUE_LIMIT}
    result = await console.services.call("catalog", "GET", "/search", person.token, params=params)
    return render(request, "review_queue.html", result=result)


async def _review_page(
    request: Request, console: ConsoleDep, person: PersonDep, code: str, error: Refused | None = None
) -> Response:
    entry = await console.services.call("catalog", "GET", f"/entries/{segment(code)}", person.token)
    working = entry["working"] or {}
    status = 200 if error is None else error.status
    return render(
        request,
        "review_entry.html",
        status,
        entry=entry,
        working=working,
        fields=forms.finding_fields(working.get("content")),
        rows=range(5),
        error=error,
    )


@router.get("/review/entry")
async def review_entry(
    request: Request, console: ConsoleDep, person: PersonDep, code: Annotated[Code, Query()]
) -> Response:
    return await _review_page(request, console, person, code)


@router.post("/review/approve")
async def approve(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    code, revision = forms.text(form, "code", limits.CODE_LENGTH), forms.revision_of(form)
    try:
        await console.services.call(
            "catalog", "POST", f"/entries/{segment(code)}/approve", person.token, json={"revision": revision}
        )
    except Refused as exc:
        if exc.status not in (409, 422):
            raise
        return await _review_page(request, console, person, code, exc)
    return redirect(request, "/catalog/entry?" + urlencode({"code": code}))


@router.post("/review/return")
async def give_back(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    code, revision = forms.text(form, "code", limits.CODE_LENGTH), forms.revision_of(form)
    body = {"revision": revision, "findings": forms.findings_of(form)}
    try:
        await console.services.call("catalog", "POST", f"/entries/{segment(code)}/return", person.token, json=body)
    except Refused as exc:
        if exc.status not in (409, 422):
            raise
        return await _review_page(request, console, person, code, exc)
    return redirect(request, "/catalog/entry?" + urlencode({"code": code}))
