"""Subscriptions to unconditional resources (Art. 15): a consumer department's data administrator subscribes
from the entry's page — a grant at once, through the exchange's `POST /subscriptions`, with the purpose, the
channels and the period stated — and lists the department's subscriptions (its grants without a request).
The exchange decides what may be subscribed to; these pages show its answers and refusals."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common import limits
from common.fields import Code, Position
from services.console import forms
from services.console.clients import Refused
from services.console.pages.sharing import CHANNELS
from services.console.refusals import explain
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()
SCANNED = 200  # the department's grants read per page of the list (the exchange's largest page)


@router.get("/subscriptions")
async def subscriptions(
    request: Request, console: ConsoleDep, person: PersonDep, offset: Annotated[Position, Query(le=100_000)] = 0
) -> Response:
    """The department's grants without a request (the exchange lists grants, subscriptions among them)."""
    params = {"as": "consumer", "offset": offset, "limit": SCANNED}
    held: list[dict[str, Any]] = await console.services.call("exchange", "GET", "/grants", person.token, params=params)
    shown = [g for g in held if g.get("request_id") is None]
    following = offset + SCANNED if len(held) == SCANNED else None
    return render(request, "subscriptions.html", rows=shown, offset=offset, following=following, scanned=SCANNED)


def _subscription(form: forms.Form) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resource_code": forms.text(form, "resource_code", limits.CODE_LENGTH),
        "items": forms.names(forms.text(form, "items")),
        "purpose": forms.text(form, "purpose"),
        "channels": [c for c in form.getlist("channels") if c in CHANNELS],
        "valid_to": forms.text(form, "valid_to", 10),
    }
    if valid_from := forms.text(form, "valid_from", 10):
        body["valid_from"] = valid_from
    if system := forms.text(form, "consumer_system", limits.CODE_LENGTH):
        body["consumer_system"] = system
    return body


@router.get("/subscriptions/new")
async def new_subscription(
    request: Request, _person: PersonDep, resource: Annotated[Code | None, Query()] = None
) -> Response:
    values = {"resource_code": resource or "", "items": "", "channels": ["API"]}
    return render(request, "subscription_form.html", values=values)


@router.post("/subscriptions/new")
async def subscribe(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    body = _subscription(form)
    try:
        grant = await console.services.call("exchange", "POST", "/subscriptions", person.token, json=body)
    except Refused as exc:
        if exc.status not in (404, 409, 422):
            raise
        values = body | {"items": "\n".join(body["items"])}
        return render(request, "subscription_form.html", exc.status, values=values, error=explain(exc))
    return redirect(request, "/grants/view?" + urlencode({"id": grant["grant_id"]}))
