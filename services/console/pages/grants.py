"""The grants pages: the grants a department holds (consumer) and those it gave (provider), a grant's terms,
and the provider's data administrator revoking one with a reason. The exchange decides who may see or revoke
a grant; these pages show its answers and refusals."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common import limits
from common.fields import Code, Position
from services.console import forms
from services.console.clients import Refused, segment
from services.console.pages import shared
from services.console.refusals import explain
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()


@router.get("/grants")
async def grants(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    held_from: Annotated[Position, Query(le=100_000)] = 0,
    given_from: Annotated[Position, Query(le=100_000)] = 0,
) -> Response:
    sides = [("held", "consumer", held_from), ("given", "provider", given_from)]
    return await shared.both_sides(request, console, person, "/grants", "grants.html", *sides)


async def _grant_page(
    request: Request, console: ConsoleDep, person: PersonDep, grant_id: str, error: Refused | None = None
) -> Response:
    grant = await console.services.call("exchange", "GET", f"/grants/{segment(grant_id)}", person.token)
    active = grant["status"] == "ACTIVE"
    return render(
        request,
        "grant.html",
        200 if error is None else error.status,
        g=grant,
        revoking=active and grant["provider_code"] == person.department_code and person.has("data_administrator"),
        browsing=active and grant["consumer_code"] == person.department_code and "ONLINE_BROWSE" in grant["channels"],
        error=explain(error) if error is not None else None,
    )


@router.get("/grants/view")
async def view_grant(
    request: Request, console: ConsoleDep, person: PersonDep, id: Annotated[Code, Query()]
) -> Response:
    return await _grant_page(request, console, person, id)


@router.post("/grants/revoke")
async def revoke(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    grant_id = forms.text(form, "grant_id", limits.CODE_LENGTH)
    body = {"reason": forms.text(form, "reason")}
    try:
        await console.services.call("exchange", "POST", f"/grants/{segment(grant_id)}/revoke", person.token, json=body)
    except Refused as exc:
        if exc.status not in (409, 422):
            raise
        return await _grant_page(request, console, person, grant_id, exc)
    return redirect(request, "/grants/view?" + urlencode({"id": grant_id}))
