"""Subscriptions to unconditional resources (Art. 15): a consumer department's data administrator subscribes
from the entry's page — a grant at once, through the exchange's `POST /subscriptions`, with the purpose, the
channels and the period stated — and lists the department's subscriptions (its grants without a request).
The exchange decides what may be subscribed to; these pages show its answers and refusals."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common.fields import Code, Position
from services.console import forms
from services.console.clients import Refused, Unavailable, segment
from services.console.pages.shared import FORM_ID, form_id, made_once, use_terms
from services.console.refusals import explain
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()
SCANNED = 200  # the department's grants read per page of the list (the exchange's largest page)
RECENT = 50  # the department's newest grants looked through for a subscription a repeated form already made


@router.get("/subscriptions")
async def subscriptions(
    request: Request, console: ConsoleDep, person: PersonDep, offset: Annotated[Position, Query(le=100_000)] = 0
) -> Response:
    """The department's grants without a request (the exchange lists grants, subscriptions among them)."""
    params = {"as": "consumer", "offset": offset, "limit": SCANNED}
    held: list[dict[str, Any]] = await console.services.call("exchange", "GET", "/grants", person.token, params=params)
    shown = [g for g in held if g.get("request_id") is None]
    following = offset + SCANNED if len(held) == SCANNED else None
    return render(
        request, "subscriptions.html", rows=shown, offset=offset, following=following, scanned=SCANNED, read=len(held)
    )


def _subscription(form: forms.Form) -> dict[str, Any]:
    body = use_terms(form)
    if valid_from := forms.text(form, "valid_from", 10):
        body["valid_from"] = valid_from
    return body


async def _offered(console: ConsoleDep, person: PersonDep, resource: str) -> list[str]:
    """The channels the entry in force offers; none where the catalog does not show it (the form works
    without: the exchange checks the channels)."""
    try:
        found = await console.services.call("catalog", "GET", f"/entries/{segment(resource)}", person.token)
    except (Refused, Unavailable):
        return []
    in_force = found.get("in_force") or {}
    return list((in_force.get("content") or {}).get("share_methods", []))


@router.get("/subscriptions/new")
async def new_subscription(
    request: Request, console: ConsoleDep, person: PersonDep, resource: Annotated[Code | None, Query()] = None
) -> Response:
    offered = await _offered(console, person, resource) if resource else []
    values = {"resource_code": resource or "", "items": "", "channels": [c for c in ("API",) if c in offered]}
    return render(request, "subscription_form.html", values=values, once=form_id())


async def _made_already(console: ConsoleDep, person: PersonDep, body: dict[str, Any]) -> str | None:
    """A subscription of the same terms the department already holds, issued today: what a repeat of the form
    made (the exchange takes no idempotency key)."""
    params = {"as": "consumer", "offset": 0, "limit": RECENT}
    held = await console.services.call("exchange", "GET", "/grants", person.token, params=params)
    for g in held:
        same = (
            g.get("request_id") is None
            and g.get("status") == "ACTIVE"
            and g.get("resource_code") == body["resource_code"]
            and g.get("purpose") == body["purpose"].strip()
            and sorted(g.get("channels", [])) == sorted(body["channels"])
            and g.get("valid_to") == body["valid_to"]
            and g.get("valid_from") == body.get("valid_from", g.get("valid_from"))
            and g.get("consumer_system") == body.get("consumer_system")
            and (not body["items"] or list(g.get("items", [])) == body["items"])
        )
        if same:
            return str(g["grant_id"])
    return None


@router.post("/subscriptions/new")
async def subscribe(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    body = _subscription(form)

    async def make() -> str:
        grant = await console.services.call("exchange", "POST", "/subscriptions", person.token, json=body)
        return str(grant["grant_id"])

    try:
        made = await made_once(form, lambda: _made_already(console, person, body), make)
    except Refused as exc:
        if exc.status not in (404, 409, 422):
            raise
        values = body | {"items": "\n".join(body["items"])}
        said, once = explain(exc, resource=body["resource_code"]), forms.text(form, FORM_ID, 64)
        return render(request, "subscription_form.html", exc.status, values=values, error=said, once=once)
    return redirect(request, "/grants/view?" + urlencode({"id": made}))
