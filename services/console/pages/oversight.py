"""The IT office's work lists and the oversight pages: duplicate-source flags (Art. 12), unmet demands and their
matching; the auditor's findings (Art. 24) and the evaluation ranking with the monthly report (the directory's
pages are in departments.py, the work on a finding in findings.py). A department sees its own figures and
findings. The services decide who may see and do what; these pages show their answers and refusals."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common import limits
from common.fields import Code, Position
from services.console import forms
from services.console.clients import Refused, segment
from services.console.web import CHINA, ConsoleDep, FormDep, PersonDep, attempt, passed_on, redirect, render

router = APIRouter()
PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2]|Q[1-4])")
PeriodLabel = Annotated[str | None, Query(max_length=7, description="a month (2026-10) or a quarter (2026-Q4)")]
DEMAND_STATUSES = ("OPEN", "MATCHED", "CANCELLED", "UNMEETABLE")
FINDING_STATUSES = ("OPEN", "CORRECTED", "ESCALATED")
CANDIDATES = 10


def last_month(today: date) -> str:
    """The month the latest monthly report covers."""
    return f"{today.year - 1}-12" if today.month == 1 else f"{today.year}-{today.month - 1:02d}"


def period_or_last_month(period: str | None) -> str:
    if period and PERIOD.fullmatch(period):
        return period
    return last_month(datetime.now(CHINA).date())


def pager(total: int, offset: int, limit: int) -> dict[str, int | None]:
    """The offsets of the previous and next pages (None where there is none)."""
    return {
        "offset": offset,
        "previous": max(offset - limit, 0) if offset > 0 else None,
        "next": offset + limit if offset + limit < total else None,
    }


async def department_names(console: ConsoleDep, token: str) -> dict[str, str]:
    departments = await console.services.call("directory", "GET", "/departments", token)
    return {d["code"]: d["name"] for d in departments}


# -- the IT office's work lists ------------------------------------------------------------------------------


@router.get("/city/duplicates")
async def duplicates(
    request: Request, console: ConsoleDep, person: PersonDep, offset: Annotated[Position, Query(le=100_000)] = 0
) -> Response:
    limit = console.settings.page_size
    page, names = await asyncio.gather(
        console.services.call(
            "catalog", "GET", "/duplicate-sources", person.token, params={"offset": offset, "limit": limit}
        ),
        department_names(console, person.token),
    )
    return render(request, "duplicates.html", page=page, names=names, paging=pager(page["total"], offset, limit))


@router.get("/city/demands")
async def demands(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    status: Annotated[Literal["OPEN", "MATCHED", "CANCELLED", "UNMEETABLE"], Query()] = "OPEN",
    offset: Annotated[Position, Query(le=100_000)] = 0,
) -> Response:
    limit = console.settings.page_size
    params = {"status": status, "offset": offset, "limit": limit}
    page, names = await asyncio.gather(
        console.services.call("catalog", "GET", "/demands", person.token, params=params),
        department_names(console, person.token),
    )
    return render(
        request,
        "demands.html",
        page=page,
        names=names,
        chosen=status,
        statuses=DEMAND_STATUSES,
        paging=pager(page["total"], offset, limit),
    )


async def _demand_page(
    request: Request, console: ConsoleDep, person: PersonDep, demand_id: str, error: Refused | None = None
) -> Response:
    path = f"/demands/{segment(demand_id)}"
    demand, names = await asyncio.gather(
        console.services.call("catalog", "GET", path, person.token), department_names(console, person.token)
    )
    candidates: dict[str, Any] = {"items": [], "total": 0}
    if demand["status"] == "OPEN":
        candidates = await console.services.call(
            "catalog", "GET", path + "/candidates", person.token, params={"limit": CANDIDATES}
        )
    status = 200 if error is None else error.status
    return render(request, "demand.html", status, d=demand, candidates=candidates, names=names, error=error)


@router.get("/city/demand")
async def demand(request: Request, console: ConsoleDep, person: PersonDep, id: Annotated[Code, Query()]) -> Response:
    return await _demand_page(request, console, person, id)


async def _settle(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep, action: str) -> Response:
    demand_id = forms.text(form, "demand_id", limits.CODE_LENGTH)
    body: dict[str, Any] = {"reason": forms.text(form, "reason")}
    if action == "match":
        body["resource_code"] = forms.text(form, "resource_code", limits.CODE_LENGTH)
    path = f"/demands/{segment(demand_id)}/{action}"
    answer = await attempt(console.services.call("catalog", "POST", path, person.token, json=body))
    if isinstance(answer, Refused):
        return await _demand_page(request, console, person, demand_id, answer)
    return redirect(request, "/city/demand?" + urlencode({"id": demand_id}))


@router.post("/city/demands/match")
async def match(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    return await _settle(request, console, person, form, "match")


@router.post("/city/demands/unmatch")
async def unmatch(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    return await _settle(request, console, person, form, "unmatch")


# -- the auditor's findings, figures and ranking ------------------------------------------------------------


@router.get("/oversight/findings")
async def findings(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    department: Annotated[Code | None, Query()] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,  # the form's 全部 sends it empty
    awaiting: Annotated[bool, Query(description="only those whose report awaits the IT office's answer")] = False,
    offset: Annotated[Position, Query(le=100_000)] = 0,
) -> Response:
    limit = console.settings.page_size
    status = status if status in FINDING_STATUSES else None
    params: dict[str, Any] = {"offset": offset, "limit": limit}
    if department:
        params["department_code"] = department
    if status:
        params["status"] = status
    if awaiting:  # the IT office's queue: 待审核整改报告
        params["awaiting"] = "true"
    page, names = await asyncio.gather(
        console.services.call("auditor", "GET", "/findings", person.token, params=params),
        department_names(console, person.token),
    )
    return render(
        request,
        "findings.html",
        page=page,
        names=names,
        department=department or "",
        chosen=status or "",
        awaiting=awaiting,
        statuses=FINDING_STATUSES,
        paging=pager(page["total"], offset, limit),
    )


@router.get("/oversight/figures")
async def figures(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    period: PeriodLabel = None,
    department: Annotated[Code | None, Query()] = None,
) -> Response:
    label = period_or_last_month(period)
    code = department or person.department_code
    path = f"/evaluation/periods/{segment(label)}/departments/{segment(code)}"
    shown, names = await asyncio.gather(
        console.services.call("auditor", "GET", path, person.token), department_names(console, person.token)
    )
    return render(request, "figures.html", f=shown, department_name=names.get(code, ""), period=label)


@router.get("/oversight/ranking")
async def ranking(request: Request, console: ConsoleDep, person: PersonDep, period: PeriodLabel = None) -> Response:
    label = period_or_last_month(period)
    ranked, formula, names = await asyncio.gather(
        console.services.call("auditor", "GET", f"/evaluation/periods/{segment(label)}/ranking", person.token),
        console.services.call("auditor", "GET", "/evaluation/formula", person.token),
        department_names(console, person.token),
    )
    return render(request, "ranking.html", ranked=ranked, formula=formula, names=names, period=label)


@router.get("/oversight/report")
async def report(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    period: PeriodLabel = None,
    format: Annotated[Literal["html", "pdf"], Query()] = "html",
) -> Response:
    """The auditor's evaluation report, fetched with the person's token (a link cannot carry it)."""
    label = period_or_last_month(period)
    path = f"/evaluation/periods/{segment(label)}/report.{format}"
    answer = await console.services.document("auditor", path, person.token)
    return passed_on(request, answer.content, format, f"evaluation-{label}")
