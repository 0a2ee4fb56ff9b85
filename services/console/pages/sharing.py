"""The sharing pages: a consumer department applies for a conditional resource and follows its requests;
the provider's data administrator sees the incoming ones with their working-day deadline (overdue in red)
and decides — approve, possibly narrower, or deny, always with reasons. The exchange decides what is
allowed; these pages show its answers and refusals."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
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


def overdue(request: dict[str, Any], on: date) -> bool:
    """Still undecided after its deadline (or announced so by the exchange)."""
    if request.get("status") != "PENDING":
        return False
    return "PROVIDER_DECISION" in request.get("overdue", []) or str(request.get("decide_by", "9999")) < on.isoformat()


PAGE = shared.DecisionPage(
    "request.html",
    "r",
    decided=lambda shown: (shown.get("decision") or {}).get("decision"),
    more=lambda shown: {"late": overdue(shown, shared.today())},
)


@router.get("/requests")
async def requests(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    incoming_from: Annotated[Position, Query(le=100_000)] = 0,
    mine_from: Annotated[Position, Query(le=100_000)] = 0,
) -> Response:
    mine, more_mine = await shared.one_page(console, person, "/requests", {"as": "applicant"}, mine_from)
    incoming: list[dict[str, Any]] = []
    more_incoming = False
    if person.has("data_administrator"):  # only what still awaits this department's decision, however old
        pending = {"as": "provider", "status": "PENDING"}
        incoming, more_incoming = await shared.one_page(console, person, "/requests", pending, incoming_from)
    on = shared.today()
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
    return shared.use_terms(form) | {"regions": forms.codes(forms.text(form, "regions"))}


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
        said = explain(exc, resource=body["resource_code"])
        return render(request, "request_form.html", exc.status, values=values, error=said)
    return redirect(request, "/requests/view?" + urlencode({"id": filed["request_id"]}))


@router.get("/requests/view")
async def view_request(
    request: Request, console: ConsoleDep, person: PersonDep, id: Annotated[Code, Query()]
) -> Response:
    return await shared.decision_page(request, console, person, f"/requests/{segment(id)}", PAGE)


@router.post("/requests/decide")
async def decide(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    request_id = forms.text(form, "request_id", limits.CODE_LENGTH)
    typed = {k: forms.text(form, k) for k in ("decision", "reasons", "items", "regions", "valid_to")}
    body: dict[str, Any] = {"decision": typed["decision"][:10], "reasons": typed["reasons"]}
    if body["decision"] == "APPROVED":  # what is left blank stays as applied for
        if items := forms.names(typed["items"]):
            body["items"] = items
        if regions := forms.codes(typed["regions"]):
            body["regions"] = regions
        if valid_to := typed["valid_to"][:10]:
            body["valid_to"] = valid_to
    path, shown_at = f"/requests/{segment(request_id)}", "/requests/view?" + urlencode({"id": request_id})
    return await shared.decide(request, console, person, path, body, PAGE, typed, shown_at)
