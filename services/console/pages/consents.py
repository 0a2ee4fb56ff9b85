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
from services.console.pages.sharing import today
from services.console.refusals import explain
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()


async def _page(console: ConsoleDep, person: PersonDep, side: str, offset: int) -> tuple[list[dict[str, Any]], bool]:
    """One page of the department's consents on one side and whether more follow."""
    limit = console.settings.page_size
    params = {"as": side, "offset": offset, "limit": limit + 1}
    found = await console.services.call("exchange", "GET", "/consents", person.token, params=params)
    return found[:limit], len(found) > limit


@router.get("/consents")
async def consents(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    asked_from: Annotated[Position, Query(le=100_000)] = 0,
    incoming_from: Annotated[Position, Query(le=100_000)] = 0,
) -> Response:
    asked, more_asked = await _page(console, person, "consumer", asked_from)
    incoming, more_incoming = await _page(console, person, "provider", incoming_from)
    return render(
        request,
        "consents.html",
        asked=asked,
        incoming=incoming,
        more_asked=more_asked,
        more_incoming=more_incoming,
        asked_from=asked_from,
        incoming_from=incoming_from,
        limit=console.settings.page_size,
    )


@router.get("/consents/new")
async def new_consent(
    request: Request, console: ConsoleDep, person: PersonDep, grant: Annotated[Code, Query()]
) -> Response:
    terms = await console.services.call("exchange", "GET", f"/grants/{segment(grant)}", person.token)
    return render(request, "consent_form.html", g=terms, values={"items": ""})


@router.post("/consents/new")
async def ask(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    grant_id = forms.text(form, "grant_id", limits.CODE_LENGTH)
    body = {
        "grant_id": grant_id,
        "items": forms.names(forms.text(form, "items")),
        "audience": forms.text(form, "audience"),
        "purpose": forms.text(form, "purpose"),
    }
    try:
        asked = await console.services.call("exchange", "POST", "/consents", person.token, json=body)
    except Refused as exc:
        if exc.status not in (404, 409, 422):
            raise
        terms = await console.services.call("exchange", "GET", f"/grants/{segment(grant_id)}", person.token)
        values = body | {"items": "\n".join(body["items"])}
        return render(request, "consent_form.html", exc.status, g=terms, values=values, error=explain(exc))
    return redirect(request, "/consents/view?" + urlencode({"id": asked["consent_id"]}))


async def _consent_page(
    request: Request, console: ConsoleDep, person: PersonDep, consent_id: str, error: Refused | None = None
) -> Response:
    shown = await console.services.call("exchange", "GET", f"/consents/{segment(consent_id)}", person.token)
    deciding = (
        shown["status"] == "PENDING"
        and shown["provider_code"] == person.department_code
        and person.has("data_administrator")
    )
    said = explain(error) if error is not None else None
    return render(
        request,
        "consent.html",
        200 if error is None else error.status,
        c=shown,
        deciding=deciding,
        error=said,
        today=today().isoformat(),
    )


@router.get("/consents/view")
async def view_consent(
    request: Request, console: ConsoleDep, person: PersonDep, id: Annotated[Code, Query()]
) -> Response:
    return await _consent_page(request, console, person, id)


@router.post("/consents/decide")
async def decide(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    consent_id = forms.text(form, "consent_id", limits.CODE_LENGTH)
    body = {"decision": forms.text(form, "decision", 10), "reasons": forms.text(form, "reasons")}
    try:
        await console.services.call(
            "exchange", "POST", f"/consents/{segment(consent_id)}/decision", person.token, json=body
        )
    except Refused as exc:
        if exc.status not in (409, 422):
            raise
        return await _consent_page(request, console, person, consent_id, exc)
    return redirect(request, "/consents/view?" + urlencode({"id": consent_id}))
