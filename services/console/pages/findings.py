"""The work on the auditor's findings (Art. 24): the IT office raises one against a department, closes it with
the proof of the department's correction, or answers the department's rectification report (accepts it: the
finding is corrected; rejects it with a reason: it stays open); the department's data administrator hands in
that report; everyone concerned reads the notice of criticism (通报批评) of one that escalated. Every step is
the auditor's route with the person's token: the auditor computes the deadline, says who may do what and
refuses the rest."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common import limits
from common.fields import Code
from services.console import forms, labels
from services.console.clients import Refused, Unavailable, one_segment
from services.console.pages.oversight import department_names
from services.console.web import CHINA, ConsoleDep, FormDep, PersonDep, attempt, passed_on, redirect, render

router = APIRouter()
CATEGORIES = labels.LABELS["finding_category"]
RAISE_TRIES = 3  # a raise is sent at most this often: safe, since the auditor answers a request_id once


async def _finding_page(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    finding_id: str,
    error: Refused | None = None,
    typed: dict[str, Any] | None = None,
    merged: bool = False,
) -> Response:
    finding, names = await asyncio.gather(
        console.services.call("auditor", "GET", f"/findings/{one_segment(finding_id)}", person.token),
        department_names(console, person.token),
    )
    status = 200 if error is None else error.status
    today = datetime.now(CHINA).date().isoformat()  # a deadline is a Beijing day: overdue from the day after
    return render(
        request,
        "finding.html",
        status,
        f=finding,
        names=names,
        error=error,
        typed=typed or {},
        merged=merged,
        today=today,
    )


@router.get("/oversight/finding")
async def finding(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    id: Annotated[Code, Query()],
    merged: Annotated[bool, Query(description="the finding a raise was merged into")] = False,
) -> Response:
    return await _finding_page(request, console, person, id, merged=merged)


def _raise_form(
    request: Request, departments: list[dict[str, Any]], values: dict[str, str], error: Refused | None = None
) -> Response:
    status = 200 if error is None else error.status
    chosen = sorted((d for d in departments if d["active"]), key=lambda d: (d["level"], d["code"]))
    return render(request, "finding_new.html", status, departments=chosen, categories=CATEGORIES, v=values, error=error)


@router.get("/oversight/findings/new")
async def new_finding(
    request: Request, console: ConsoleDep, person: PersonDep, department: Annotated[Code | None, Query()] = None
) -> Response:
    departments = await console.services.call("directory", "GET", "/departments", person.token)
    # the form's own request id: a form posted twice (a retry, a double click) raises one finding
    values = {"department_code": department or "", "request_id": uuid.uuid4().hex}
    return _raise_form(request, departments, values)


async def _raise(console: ConsoleDep, person: PersonDep, body: dict[str, str]) -> Any:
    """The auditor answers a request_id it answered before with the same finding, so the raise may be sent
    again: two clicks landing at once conflict in its database and one of them is answered 503 (try again);
    sent again, it gets the other's answer instead of a page saying the auditor is away."""
    for tried in range(1, RAISE_TRIES + 1):
        try:
            return await console.services.call("auditor", "POST", "/findings", person.token, json=body)
        except Unavailable:
            if tried == RAISE_TRIES:
                raise
            await asyncio.sleep(0.2 * tried)
    raise AssertionError("unreachable")


@router.post("/oversight/findings/raise")
async def raise_finding(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    body = {
        "department_code": forms.text(form, "department_code", limits.CODE_LENGTH),
        "category": forms.text(form, "category", 40),
        "matter": forms.text(form, "matter", limits.NAME_LENGTH),
        "description": forms.text(form, "description"),
        "evidence": forms.text(form, "evidence"),
        "request_id": forms.text(form, "request_id", limits.CODE_LENGTH) or uuid.uuid4().hex,
    }
    raised = await attempt(_raise(console, person, body))
    if isinstance(raised, Refused):
        departments = await console.services.call("directory", "GET", "/departments", person.token)
        return _raise_form(request, departments, body, raised)
    # The auditor adds a matter's evidence to the department's open finding on it rather than raising another:
    # to what it counts, or apart from what a waiting report answers (`later_occurrences`). A request sent again
    # is answered with the finding it went to, which may since have been closed (a fresh one is open, once).
    again = raised["occurrences"] > 1 or raised.get("later_occurrences", 0) > 0 or raised["status"] != "OPEN"
    merged = {"merged": "true"} if again else {}
    return redirect(request, "/oversight/finding?" + urlencode({"id": raised["finding_id"]} | merged))


@router.post("/oversight/findings/correct")
async def correct_finding(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    finding_id = forms.text(form, "finding_id", limits.CODE_LENGTH)
    return await _on_finding(request, console, person, finding_id, "/correction", {"proof": forms.text(form, "proof")})


async def _on_finding(
    request: Request, console: ConsoleDep, person: PersonDep, finding_id: str, path: str, body: dict[str, Any]
) -> Response:
    """One of the finding's own forms posted to the auditor: the finding again, or beside it the auditor's word
    with what was typed."""
    path = f"/findings/{one_segment(finding_id)}{path}"
    answer = await attempt(console.services.call("auditor", "POST", path, person.token, json=body))
    if isinstance(answer, Refused):
        return await _finding_page(request, console, person, finding_id, answer, typed=body)
    return redirect(request, "/oversight/finding?" + urlencode({"id": finding_id}))


@router.post("/oversight/findings/report")
async def report(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    """The department's rectification report, for the IT office to accept or reject."""
    body = {"text": forms.text(form, "text"), "reference": forms.text(form, "reference", limits.NAME_LENGTH) or None}
    return await _on_finding(
        request, console, person, forms.text(form, "finding_id", limits.CODE_LENGTH), "/report", body
    )


@router.post("/oversight/findings/report/accept")
async def accept_report(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    finding_id = forms.text(form, "finding_id", limits.CODE_LENGTH)
    return await _on_finding(request, console, person, finding_id, "/report/acceptance", {})


@router.post("/oversight/findings/report/reject")
async def reject_report(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    finding_id = forms.text(form, "finding_id", limits.CODE_LENGTH)
    body = {"reason": forms.text(form, "reason")}
    return await _on_finding(request, console, person, finding_id, "/report/rejection", body)


@router.get("/oversight/finding/notice")
async def notice(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    id: Annotated[Code, Query()],
    format: Annotated[Literal["html", "pdf"], Query()] = "html",
) -> Response:
    """The notice of criticism the auditor lays out, fetched with the person's token (a link cannot carry it)."""
    answer = await console.services.document("auditor", f"/findings/{one_segment(id)}/notice.{format}", person.token)
    return passed_on(request, answer.content, format, f"notice-{id}")
