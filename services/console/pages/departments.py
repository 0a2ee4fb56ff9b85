"""The department directory as the IT office keeps it: every department, one department's people and data
administrators, and what the directory's API lets the IT office change there — a department's name, a person
registered (the initial password shown once), deactivated or reactivated, the data administrator appointed
(the predecessor is replaced; the directory has no way to leave a department without one). Everyone reads;
the directory decides who may change what and refuses the rest, and its errors are shown beside the forms."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common import limits
from common.fields import Code
from services.console import forms
from services.console.clients import Refused, segment
from services.console.session import ROLE_NAMES
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()
# the roles the directory assigns (a data administrator is appointed, not assigned)
ASSIGNED_ROLES = tuple(r for r in ROLE_NAMES if r != "data_administrator")
SHOWN_AGAIN = (404, 409, 422)  # the directory's answers a form shows beside itself; a refusal (403) is its own page


@router.get("/city/departments")
async def departments(request: Request, console: ConsoleDep, person: PersonDep) -> Response:
    found = await console.services.call("directory", "GET", "/departments", person.token)
    found.sort(key=lambda d: (d["level"], d["code"]))
    return render(request, "departments.html", departments=found)


async def _department_page(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    code: str,
    error: Refused | None = None,
    issued: dict[str, str] | None = None,
) -> Response:
    path = f"/departments/{segment(code)}"
    shown, people, appointments = await asyncio.gather(
        console.services.call("directory", "GET", path, person.token),
        console.services.call("directory", "GET", path + "/people", person.token),
        console.services.call("directory", "GET", path + "/data-administrators", person.token),
    )
    admins = [p for p in people if "data_administrator" in p["roles"]]
    # whom the IT office may appoint: the department's active people (logins are shown to it only)
    eligible = [p for p in people if p["active"] and p.get("person_id") and p not in admins]
    status = 200 if error is None else error.status
    return render(
        request,
        "department.html",
        status,
        d=shown,
        people=people,
        admins=admins,
        eligible=eligible,
        appointments=appointments[-5:][::-1],  # the latest first
        role_names=ROLE_NAMES,
        assigned_roles=ASSIGNED_ROLES,
        error=error,
        issued=issued,
    )


@router.get("/city/department")
async def department(
    request: Request, console: ConsoleDep, person: PersonDep, code: Annotated[Code, Query()]
) -> Response:
    return await _department_page(request, console, person, code)


async def _change(
    request: Request, console: ConsoleDep, person: PersonDep, code: str, method: str, path: str, body: Any
) -> Response:
    """Send one change to the directory; back to the department's page, with the directory's error if any."""
    try:
        await console.services.call("directory", method, path, person.token, json=body)
    except Refused as exc:
        if exc.status not in SHOWN_AGAIN or exc.code == "console.code":
            raise
        return await _department_page(request, console, person, code, exc)
    return redirect(request, "/city/department?" + urlencode({"code": code}))


def _code(form: FormDep) -> str:
    return forms.text(form, "department_code", limits.CODE_LENGTH)


@router.post("/city/department/rename")
async def rename(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    """The directory changes name, parent and state at once: the parent and state go back as they are."""
    code = _code(form)
    path = f"/departments/{segment(code)}"
    current = await console.services.call("directory", "GET", path, person.token)
    body = {
        "name": forms.text(form, "name", limits.NAME_LENGTH),
        "parent_code": current.get("parent_code"),
        "active": current["active"],
    }
    return await _change(request, console, person, code, "PUT", path, body)


@router.post("/city/department/administrator")
async def appoint(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    code = _code(form)
    body = {"person_id": forms.text(form, "person_id", limits.CODE_LENGTH)}
    return await _change(
        request, console, person, code, "POST", f"/departments/{segment(code)}/data-administrator", body
    )


@router.post("/city/people/add")
async def add_person(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    """A person registered: the directory's initial password is shown on this page once, never in a link."""
    code = _code(form)
    roles = [r for r in form.getlist("roles") if isinstance(r, str) and r in ASSIGNED_ROLES]
    body = {
        "person_id": forms.text(form, "person_id", limits.CODE_LENGTH),
        "name": forms.text(form, "name", limits.NAME_LENGTH),
        "department_code": code,
        "roles": roles,
    }
    try:
        issued = await console.services.call("directory", "POST", "/people", person.token, json=body)
    except Refused as exc:
        if exc.status not in SHOWN_AGAIN:
            raise
        return await _department_page(request, console, person, code, exc)
    return await _department_page(request, console, person, code, issued=issued)


@router.post("/city/people/deactivate")
async def deactivate(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    code, person_id = _code(form), forms.text(form, "person_id", limits.CODE_LENGTH)
    return await _change(request, console, person, code, "POST", f"/people/{segment(person_id)}/deactivate", None)


@router.post("/city/people/reactivate")
async def reactivate(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    code, person_id = _code(form), forms.text(form, "person_id", limits.CODE_LENGTH)
    body = {"reason": forms.text(form, "reason")}
    return await _change(request, console, person, code, "POST", f"/people/{segment(person_id)}/reactivate", body)
