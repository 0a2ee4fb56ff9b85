"""Publication consents (Art. 18): data obtained through the center is for use inside government; to publish
some of it outside, the consumer department's data administrator asks the provider's consent under the grant
it holds (which items, where, why), and the provider's data administrator consents or refuses, with reasons,
within working days. Every step is the exchange's (`/consents`); these pages show its answers and refusals."""

from __future__ import annotations

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
PAGE = shared.DecisionPage("consent.html", "c", decided=lambda shown: shown.get("status"))


@router.get("/consents")
async def consents(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    asked_from: Annotated[Position, Query(le=100_000)] = 0,
    incoming_from: Annotated[Position, Query(le=100_000)] = 0,
) -> Response:
    sides = [("asked", "consumer", asked_from), ("incoming", "provider", incoming_from)]
    return await shared.both_sides(request, console, person, "/consents", "consents.html", *sides)


@router.get("/consents/new")
async def new_consent(
    request: Request, console: ConsoleDep, person: PersonDep, grant: Annotated[Code, Query()]
) -> Response:
    terms = await console.services.call("exchange", "GET", f"/grants/{segment(grant)}", person.token)
    return render(request, "consent_form.html", g=terms, values={"items": ""}, once=shared.form_id())


async def _asked_already(console: ConsoleDep, person: PersonDep, body: dict[str, Any]) -> str | None:
    """A consent of the same terms the department asked and that still awaits the provider: what a repeat of
    the form made (the exchange takes no idempotency key)."""
    asked, _ = await shared.one_page(console, person, "/consents", {"as": "consumer"}, 0)
    for c in asked:
        same = (c.get("status"), c.get("grant_id"), c.get("audience"), c.get("purpose")) == (
            "PENDING",
            body["grant_id"],
            body["audience"],
            body["purpose"],
        )
        if same and (not body["items"] or list(c.get("items", [])) == body["items"]):
            return str(c["consent_id"])
    return None


@router.post("/consents/new")
async def ask(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    grant_id = forms.text(form, "grant_id", limits.CODE_LENGTH)
    body = {
        "grant_id": grant_id,
        "items": forms.names(forms.text(form, "items")),
        "audience": forms.text(form, "audience"),
        "purpose": forms.text(form, "purpose"),
    }

    async def make() -> str:
        asked = await console.services.call("exchange", "POST", "/consents", person.token, json=body)
        return str(asked["consent_id"])

    try:
        made = await shared.made_once(form, lambda: _asked_already(console, person, body), make)
    except Refused as exc:
        if exc.status not in (404, 409, 422):
            raise
        terms = await console.services.call("exchange", "GET", f"/grants/{segment(grant_id)}", person.token)
        values = body | {"items": "\n".join(body["items"])}
        once = forms.text(form, shared.FORM_ID, 64)
        return render(request, "consent_form.html", exc.status, g=terms, values=values, error=explain(exc), once=once)
    return redirect(request, "/consents/view?" + urlencode({"id": made}))


@router.get("/consents/view")
async def view_consent(
    request: Request, console: ConsoleDep, person: PersonDep, id: Annotated[Code, Query()]
) -> Response:
    return await shared.decision_page(request, console, person, f"/consents/{segment(id)}", PAGE)


@router.post("/consents/decide")
async def decide(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    consent_id = forms.text(form, "consent_id", limits.CODE_LENGTH)
    typed = {"decision": forms.text(form, "decision", 10), "reasons": forms.text(form, "reasons")}
    path, shown_at = f"/consents/{segment(consent_id)}", "/consents/view?" + urlencode({"id": consent_id})
    return await shared.decide(request, console, person, path, dict(typed), PAGE, typed, shown_at)
