"""The work on the auditor's findings (Art. 24): the IT office raises one against a department, closes it with
the proof of the department's correction, or answers the department's rectification report (accepts it: the
finding is corrected; rejects it with a reason: it stays open); the department's data administrator hands in
that report; everyone concerned reads the notice of criticism (通报批评) of one that escalated. Every step is
the auditor's route with the person's token: the auditor computes the deadline, says who may do what and
refuses the rest."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common import limits
from common.fields import Code
from services.console import forms
from services.console.clients import Refused, segment
from services.console.pages.oversight import REPORT_CSP, department_names
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()
# Art. 24 (1)–(4), as the auditor's categories; the auditor answers each finding's article in full
CATEGORIES = {
    "CATALOG_NOT_MAINTAINED": "未按要求编制或更新政务信息资源目录",
    "DATA_NOT_PROVIDED_IN_TIME": "未按要求及时提供共享数据",
    "DATA_INCONSISTENT_OR_UNUSABLE": "提供的共享数据不一致或无法使用",
    "USE_OUTSIDE_PURPOSE": "将共享数据用于履行职责以外的用途",
}
SHOWN_AGAIN = (404, 409, 422)  # the auditor's answers a form shows beside itself; a refusal (403) is its own page


async def _finding_page(
    request: Request, console: ConsoleDep, person: PersonDep, finding_id: str, error: Refused | None = None
) -> Response:
    finding, names = await asyncio.gather(
        console.services.call("auditor", "GET", f"/findings/{segment(finding_id)}", person.token),
        department_names(console, person.token),
    )
    status = 200 if error is None else error.status
    return render(request, "finding.html", status, f=finding, names=names, error=error)


@router.get("/oversight/finding")
async def finding(request: Request, console: ConsoleDep, person: PersonDep, id: Annotated[Code, Query()]) -> Response:
    return await _finding_page(request, console, person, id)


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
    try:
        raised = await console.services.call("auditor", "POST", "/findings", person.token, json=body)
    except Refused as exc:
        if exc.status not in SHOWN_AGAIN:
            raise
        departments = await console.services.call("directory", "GET", "/departments", person.token)
        return _raise_form(request, departments, body, exc)
    return redirect(request, "/oversight/finding?" + urlencode({"id": raised["finding_id"]}))


@router.post("/oversight/findings/correct")
async def correct_finding(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    finding_id = forms.text(form, "finding_id", limits.CODE_LENGTH)
    return await _on_finding(request, console, person, finding_id, "/correction", {"proof": forms.text(form, "proof")})


async def _on_finding(
    request: Request, console: ConsoleDep, person: PersonDep, finding_id: str, path: str, body: dict[str, Any]
) -> Response:
    """One of the finding's own forms posted to the auditor: the finding again, or beside it the auditor's word."""
    try:
        await console.services.call(
            "auditor", "POST", f"/findings/{segment(finding_id)}{path}", person.token, json=body
        )
    except Refused as exc:
        if exc.status not in SHOWN_AGAIN or exc.code == "console.code":
            raise
        return await _finding_page(request, console, person, finding_id, exc)
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
    answer = await console.services.document("auditor", f"/findings/{segment(id)}/notice.{format}", person.token)
    media_type = "application/pdf" if format == "pdf" else "text/html; charset=utf-8"
    response = Response(answer.content, media_type=media_type)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if format == "pdf":
        response.headers["Content-Disposition"] = f'attachment; filename="notice-{id}.pdf"'
    else:
        response.headers["Content-Security-Policy"] = REPORT_CSP
    return console.cookies.settle(request, response)
