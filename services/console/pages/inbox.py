"""The department's inbox (the notifier's REST inbox): unread count, the notices newest first, mark read."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common.fields import Code, Position
from services.console.clients import segment
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()


@router.get("/inbox")
async def inbox(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    unread: bool = False,
    offset: Annotated[Position, Query(le=1_000_000)] = 0,
    resource: Annotated[Code | None, Query()] = None,
) -> Response:
    limit = console.settings.page_size
    params = {"unread": str(unread).lower(), "offset": offset, "limit": limit}
    if resource:  # one resource's notices (a notice's resource links here)
        params["resource"] = resource
    page = await console.services.call(
        "notifier", "GET", f"/inbox/{segment(person.department_code)}", person.token, params=params
    )
    kept = ([("unread", "true")] if unread else []) + ([("resource", resource)] if resource else [])
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
    back = "/inbox?unread=true" if form.get("unread_only") == "true" else "/inbox"
    return redirect(request, back)
