"""The department directory as the IT office keeps it: every department, one department's people and data
administrators, and what the directory's API lets the IT office change there — a department's name, a person
registered (the initial password shown once) or given a new password, deactivated (after a confirmation: the
directory ends the person's sign-ins and clears her roles, and a data administrator's department is left
without one) or reactivated (without roles: they are given again), the data administrator appointed (the
predecessor is replaced). Everyone reads; the directory shows logins only to those who administer people,
decides who may change what and refuses the rest, and its errors are shown beside the forms with what was
typed kept."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common import limits
from common.fields import Code
from services.console import forms
from services.console.clients import Refused, one_segment, segment
from services.console.session import ROLE_NAMES
from services.console.web import ConsoleDep, FormDep, PersonDep, attempt, redirect, render

router = APIRouter()
# the roles the directory assigns (a data administrator is appointed, not assigned)
ASSIGNED_ROLES = tuple(r for r in ROLE_NAMES if r != "data_administrator")


@router.get("/city/departments")
async def departments(request: Request, console: ConsoleDep, person: PersonDep) -> Response:
    found = await console.services.call("directory", "GET", "/departments", person.token)
    found.sort(key=lambda d: (d["level"], d["code"]))
    return render(request, "departments.html", departments=found)


def appointments_shown(appointments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest appointments first, each named by the person's name; the directory gives the logins only to
    those who administer people."""

    def who(name: str | None, login: str | None) -> dict[str, str | None] | None:
        return {"name": name, "login": login} if name or login else None

    return [
        {
            "since": a["since"],
            "person": who(a.get("person_name"), a.get("person_id")),
            "replaces": who(a.get("replaces_person_name"), a.get("replaces_person_id")),
        }
        for a in appointments[-5:][::-1]
    ]


async def _department_page(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    code: str,
    error: Refused | None = None,
    typed: dict[str, Any] | None = None,
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
    typed = typed or {}
    # a login the directory says is taken, held by someone of this department: she may get a new password
    taken = typed.get("person_id") if error is not None and error.status == 409 and typed.get("form") == "add" else None
    existing = next((p for p in people if taken and p.get("person_id") == taken), None)
    status = 200 if error is None else error.status
    return render(
        request,
        "department.html",
        status,
        d=shown,
        people=people,
        admins=admins,
        eligible=eligible,
        appointments=appointments_shown(appointments),
        role_names=ROLE_NAMES,
        assigned_roles=ASSIGNED_ROLES,
        error=error,
        typed=typed,
        existing=existing,
    )


@router.get("/city/department")
async def department(
    request: Request, console: ConsoleDep, person: PersonDep, code: Annotated[Code, Query()]
) -> Response:
    return await _department_page(request, console, person, code)


async def _change(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    code: str,
    method: str,
    path: str,
    body: Any,
    typed: dict[str, Any] | None = None,
) -> Response:
    """Send one change to the directory; back to the department's page, with the directory's error if any
    and what was typed."""
    answer = await attempt(console.services.call("directory", method, path, person.token, json=body))
    if isinstance(answer, Refused):
        return await _department_page(request, console, person, code, answer, typed)
    return redirect(request, "/city/department?" + urlencode({"code": code}))


def _code(form: FormDep) -> str:
    return forms.text(form, "department_code", limits.CODE_LENGTH)


def _person_id(form: FormDep) -> str:
    return forms.text(form, "person_id", limits.CODE_LENGTH)


def _seen(form: FormDep) -> tuple[str | None, bool] | None:
    """The parent and state the rename form showed; None from a form without them."""
    if form.get("seen_active") is None:
        return None
    return forms.text(form, "seen_parent_code", limits.CODE_LENGTH) or None, form.get("seen_active") == "true"


@router.post("/city/department/rename")
async def rename(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    """The directory changes name, parent and state at once and has no conditional update (no version to
    send back): the parent and state go back as they are now, and if they are no longer what the form showed
    (someone changed them meanwhile), nothing is sent and the page says so, the typed name kept. A change made
    between this read and the PUT (a few milliseconds) is still overwritten: docs/console.md."""
    code = _code(form)
    name = forms.text(form, "name", limits.NAME_LENGTH)
    typed = {"form": "rename", "name": name}
    path = f"/departments/{segment(code)}"
    current = await console.services.call("directory", "GET", path, person.token)
    seen = _seen(form)
    if seen is not None and seen != (current.get("parent_code"), current["active"]):
        changed = Refused(
            409,
            "名称未保存：打开页面后，这个部门的上级部门或状态已被他人修改（页面已显示修改后的情况）。请核对后重新保存。",
            "name",
            service="directory",
        )
        return await _department_page(request, console, person, code, changed, typed)
    body = {"name": name, "parent_code": current.get("parent_code"), "active": current["active"]}
    return await _change(request, console, person, code, "PUT", path, body, typed)


@router.post("/city/department/administrator")
async def appoint(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    code = _code(form)
    body = {"person_id": _person_id(form)}
    return await _change(
        request, console, person, code, "POST", f"/departments/{segment(code)}/data-administrator", body
    )


def _issued(
    request: Request, code: str, issued: dict[str, str], name: str, roles: list[str], reset: bool = False
) -> Response:
    """The directory's one-time password from its answer alone: no other read can lose it."""
    return render(
        request,
        "person_issued.html",
        code=code,
        issued=issued,
        person_name=name,
        roles=roles,
        reset=reset,
        role_names=ROLE_NAMES,
    )


@router.post("/city/people/add")
async def add_person(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    """A person registered: the directory's initial password is shown on a page of its own once, never in a
    link. Posted again (a double click), the directory answers that the login is taken: the department's page
    says so, and offers a new password where the login is this department's."""
    code = _code(form)
    roles = [r for r in form.getlist("roles") if isinstance(r, str) and r in ASSIGNED_ROLES]
    name = forms.text(form, "name", limits.NAME_LENGTH)
    body = {"person_id": _person_id(form), "name": name, "department_code": code, "roles": roles}
    issued = await attempt(console.services.call("directory", "POST", "/people", person.token, json=body))
    if isinstance(issued, Refused):
        return await _department_page(request, console, person, code, issued, {"form": "add"} | body)
    return _issued(request, code, issued, name, roles)


@router.post("/city/people/reset-password")
async def reset_password(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    """A new password for a person (one whose first was lost): the directory's, shown once; her sign-ins end."""
    code, person_id = _code(form), _person_id(form)
    path = f"/people/{one_segment(person_id)}/reset-password"
    issued = await attempt(console.services.call("directory", "POST", path, person.token))
    if isinstance(issued, Refused):
        return await _department_page(request, console, person, code, issued)
    return _issued(request, code, issued, forms.text(form, "name", limits.NAME_LENGTH), [], reset=True)


@router.post("/city/people/deactivate")
async def deactivate(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    """First a page saying what deactivating does, with a form to confirm; then the directory's route."""
    code, person_id = _code(form), _person_id(form)
    path = f"/people/{one_segment(person_id)}/deactivate"
    if form.get("confirmed") != "yes":
        people = await console.services.call("directory", "GET", f"/departments/{segment(code)}/people", person.token)
        found = next((p for p in people if p.get("person_id") == person_id), None)
        return render(
            request, "deactivate_confirm.html", code=code, person_id=person_id, p=found, role_names=ROLE_NAMES
        )
    return await _change(request, console, person, code, "POST", path, None)


@router.post("/city/people/reactivate")
async def reactivate(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    code, person_id = _code(form), _person_id(form)
    body = {"reason": forms.text(form, "reason")}
    typed = {"form": "reactivate", "person_id": person_id} | body
    path = f"/people/{one_segment(person_id)}/reactivate"
    return await _change(request, console, person, code, "POST", path, body, typed)
