"""Disputes over a decision (Art. 15): the applicant's data administrator disputes a denial or a narrowing,
the IT office rules (upholds or overturns, with reasons, possibly granting less than applied for), either side
escalates the ruling, and the leadership group gives the final one. The forms are on the request's page; the
exchange decides who may do what and when, and its refusals come back on that page."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common import limits
from common.fields import Position
from services.console import forms
from services.console.clients import Refused, segment
from services.console.pages import shared
from services.console.pages.sharing import PAGE
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()
# the rulings a role gives, and the exchange's name of the step that awaits it
AWAITED = {"it_office_operator": "IT_OFFICE_RULING", "leadership_member": "LEADERSHIP_RULING"}


@router.get("/disputes")
async def disputes(
    request: Request, console: ConsoleDep, person: PersonDep, start: Annotated[Position, Query(le=100_000)] = 0
) -> Response:
    """The disputes of every department awaiting this person's ruling: the IT office's, or the leadership
    group's once escalated (the exchange lists them for oversight only)."""
    step = next((s for role, s in AWAITED.items() if person.has(role)), "IT_OFFICE_RULING")
    limit = console.settings.page_size
    params = {"awaiting": step, "offset": start, "limit": limit + 1}
    found = await console.services.call("exchange", "GET", "/requests", person.token, params=params)
    on = shared.today().isoformat()
    return render(
        request,
        "disputes.html",
        rows=found[:limit],
        more=len(found) > limit,
        start=start,
        limit=limit,
        step=step,
        late={r["request_id"] for r in found if step in r.get("overdue", []) or _due(r, step) < on},
    )


def _due(request: dict[str, Any], step: str) -> str:
    """The awaited ruling's deadline, as the exchange set it."""
    dispute = request.get("dispute") or {}
    if step == "LEADERSHIP_RULING":
        return str((dispute.get("escalation") or {}).get("rule_by", "9999"))
    return str(dispute.get("rule_by", "9999"))


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
        return await shared.decision_page(request, console, person, f"/requests/{segment(request_id)}", PAGE, exc)
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
