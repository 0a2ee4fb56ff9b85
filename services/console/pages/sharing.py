"""The sharing pages: a consumer department applies for a conditional resource and follows its requests;
the provider's data administrator sees the incoming ones with their working-day deadline (overdue in red)
and decides — approve, possibly narrower, or deny, always with reasons. The exchange decides what is
allowed; these pages show its answers and refusals."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common import limits
from common.fields import Code, Position
from services.console import forms
from services.console.clients import Refused, segment
from services.console.web import CHINA, ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()
CHANNELS = ("API", "FILE_DOWNLOAD", "ONLINE_BROWSE", "OFFLINE")


def today() -> date:
    return datetime.now(CHINA).date()


def overdue(request: dict[str, Any], on: date) -> bool:
    """Still undecided after its deadline (or announced so by the exchange)."""
    if request.get("status") != "PENDING":
        return False
    return "PROVIDER_DECISION" in request.get("overdue", []) or str(request.get("decide_by", "9999")) < on.isoformat()


async def _page(
    console: ConsoleDep, person: PersonDep, params: dict[str, Any], offset: int
) -> tuple[list[dict[str, Any]], bool]:
    """One page of the exchange's requests (newest first) and whether more follow: one more than shown is asked."""
    limit = console.settings.page_size
    found = await console.services.call(
        "exchange", "GET", "/requests", person.token, params=params | {"offset": offset, "limit": limit + 1}
    )
    return found[:limit], len(found) > limit


@router.get("/requests")
async def requests(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    incoming_from: Annotated[Position, Query(le=100_000)] = 0,
    mine_from: Annotated[Position, Query(le=100_000)] = 0,
) -> Response:
    mine, more_mine = await _page(console, person, {"as": "applicant"}, mine_from)
    incoming: list[dict[str, Any]] = []
    more_incoming = False
    if person.has("data_administrator"):  # only what still awaits this department's decision, however old
        incoming, more_incoming = await _page(console, person, {"as": "provider", "status": "PENDING"}, incoming_from)
    on = today()
    return render(
        request,
        "requests.html",
        mine=mine,
        incoming=incoming,
        late={r["request_id"] for r in incoming if overdue(r, on)},
        limit=console.settings.page_size,
        incoming_from=incoming_from,
        mine_from=mine_from,
        more_incoming=more_incoming,
        more_mine=more_mine,
    )


def _application(form: forms.Form) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resource_code": forms.text(form, "resource_code", limits.CODE_LENGTH),
        "items": forms.names(forms.text(form, "items")),
        "regions": forms.codes(forms.text(form, "regions")),
        "purpose": forms.text(form, "purpose"),
        "channels": [c for c in form.getlist("channels") if c in CHANNELS],
        "valid_to": forms.text(form, "valid_to", 10),
    }
    if system := forms.text(form, "consumer_system", limits.CODE_LENGTH):
        body["consumer_system"] = system
    return body


@router.get("/requests/new")
async def new_request(
    request: Request, _person: PersonDep, resource: Annotated[Code | None, Query()] = None
) -> Response:
    return render(request, "request_form.html", values={"resource_code": resource or "", "items": "", "channels": []})


@router.post("/requests/new")
async def apply(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    body = _application(form)
    try:
        filed = await console.services.call("exchange", "POST", "/requests", person.token, json=body)
    except Refused as exc:
        if exc.status not in (404, 409, 422):
            raise
        values = body | {"items": "\n".join(body["items"]), "regions": " ".join(body["regions"])}
        return render(request, "request_form.html", exc.status, values=values, error=exc)
    return redirect(request, "/requests/view?" + urlencode({"id": filed["request_id"]}))


async def request_page(
    request: Request, console: ConsoleDep, person: PersonDep, request_id: str, error: Refused | None = None
) -> Response:
    shown = await console.services.call("exchange", "GET", f"/requests/{segment(request_id)}", person.token)
    deciding = (
        shown["status"] == "PENDING"
        and shown["provider_code"] == person.department_code
        and person.has("data_administrator")
    )
    return render(
        request,
        "request.html",
        200 if error is None else error.status,
        r=shown,
        late=overdue(shown, today()),
        deciding=deciding,
        error=error,
    )


@router.get("/requests/view")
async def view_request(
    request: Request, console: ConsoleDep, person: PersonDep, id: Annotated[Code, Query()]
) -> Response:
    return await request_page(request, console, person, id)


@router.post("/requests/decide")
async def decide(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    request_id = forms.text(form, "request_id", limits.CODE_LENGTH)
    body: dict[str, Any] = {"decision": forms.text(form, "decision", 10), "reasons": forms.text(form, "reasons")}
    if body["decision"] == "APPROVED":  # what is left blank stays as applied for
        if items := forms.names(forms.text(form, "items")):
            body["items"] = items
        if regions := forms.codes(forms.text(form, "regions")):
            body["regions"] = regions
        if valid_to := forms.text(form, "valid_to", 10):
            body["valid_to"] = valid_to
    try:
        await console.services.call(
            "exchange", "POST", f"/requests/{segment(request_id)}/decision", person.token, json=body
        )
    except Refused as exc:
        if exc.status not in (409, 422):
            raise
        return await request_page(request, console, person, request_id, exc)
    return redirect(request, "/requests/view?" + urlencode({"id": request_id}))
