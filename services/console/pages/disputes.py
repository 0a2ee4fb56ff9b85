"""Disputes over a decision (Art. 15): the applicant's data administrator disputes a denial or a narrowing,
the IT office rules (upholds or overturns, with reasons, possibly granting less than applied for), either side
escalates the ruling, and the leadership group gives the final one. The forms are on the request's page; the
exchange decides who may do what and when, and its refusals come back on that page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from common import limits
from services.console import forms
from services.console.clients import Refused, segment
from services.console.pages.sharing import request_page
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect

router = APIRouter()
OUTCOMES = ("DECISION_UPHELD", "DECISION_OVERTURNED")


def ruling_of(form: forms.Form) -> dict[str, Any]:
    """A ruling from its form: the outcome and reasons; overturning, what is left blank stays as applied for."""
    body: dict[str, Any] = {"outcome": forms.text(form, "outcome", 20), "reasons": forms.text(form, "reasons")}
    if body["outcome"] == "DECISION_OVERTURNED":
        if items := forms.names(forms.text(form, "items")):
            body["items"] = items
        if regions := forms.codes(forms.text(form, "regions")):
            body["regions"] = regions
        if valid_to := forms.text(form, "valid_to", 10):
            body["valid_to"] = valid_to
    return body


async def _step(
    request: Request, console: ConsoleDep, person: PersonDep, form: FormDep, step: str, body: dict[str, Any]
) -> Response:
    """Post one step of the dispute to the exchange; back to the request's page, with its refusal if any."""
    request_id = forms.text(form, "request_id", limits.CODE_LENGTH)
    path = f"/requests/{segment(request_id)}/{step}"
    try:
        await console.services.call("exchange", "POST", path, person.token, json=body)
    except Refused as exc:
        if exc.status not in (409, 422):
            raise
        return await request_page(request, console, person, request_id, exc)
    return redirect(request, "/requests/view?" + urlencode({"id": request_id}))


@router.post("/requests/dispute")
async def dispute(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    return await _step(request, console, person, form, "dispute", {"grounds": forms.text(form, "grounds")})


@router.post("/requests/ruling")
async def rule(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    return await _step(request, console, person, form, "dispute/ruling", ruling_of(form))


@router.post("/requests/escalation")
async def escalate(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    return await _step(request, console, person, form, "dispute/escalation", {"grounds": forms.text(form, "grounds")})


@router.post("/requests/final-ruling")
async def final_ruling(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    return await _step(request, console, person, form, "dispute/final-ruling", ruling_of(form))
