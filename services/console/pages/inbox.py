"""The department's inbox (the notifier's REST inbox): unread count, the notices newest first, mark read."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common import limits
from common.fields import Code, Position
from services.console import forms
from services.console.clients import SAFE_CODE, segment
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()


MAX_OFFSET = 1_000_000


def _filters(unread: bool, resource: str | None) -> list[tuple[str, str]]:
    return ([("unread", "true")] if unread else []) + ([("resource", resource)] if resource else [])


@router.get("/inbox")
async def inbox(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    unread: bool = False,
    offset: Annotated[Position, Query(le=MAX_OFFSET)] = 0,
    resource: Annotated[Code | None, Query()] = None,
) -> Response:
    limit = console.settings.page_size
    params = {"unread": str(unread).lower(), "offset": offset, "limit": limit}
    if resource:  # one resource's notices (a notice's resource links here)
        params["resource"] = resource
    page = await console.services.call(
        "notifier", "GET", f"/inbox/{segment(person.department_code)}", person.token, params=params
    )
    kept = _filters(unread, resource)
    return render(
        request,
        "inbox.html",
        page=page,
        unread_only=unread,
        offset=offset,
        limit=limit,
        resource=resource,
        base="/inbox?" + urlencode(kept) + ("&" if kept else ""),
    )


@router.post("/inbox/read")
async def mark_read(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    notification_id = str(form.get("notification_id") or "")
    await console.services.call(
        "notifier",
        "POST",
        f"/inbox/{segment(person.department_code)}/{segment(notification_id)}/read",
        person.token,
    )
    # back to the page the notice was on: its filters and its place in the list
    resource = forms.text(form, "resource", limits.CODE_LENGTH)
    offset = forms.text(form, "offset", 7)
    kept = _filters(form.get("unread_only") == "true", resource if resource and SAFE_CODE.fullmatch(resource) else None)
    if offset.isdigit() and 0 < int(offset) <= MAX_OFFSET:
        kept.append(("offset", str(int(offset))))
    return redirect(request, "/inbox" + ("?" + urlencode(kept) if kept else ""))
