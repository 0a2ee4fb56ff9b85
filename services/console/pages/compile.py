"""The compiler's pages: the department's entries and overdue list, draft a new entry, edit the working
version (with the findings of a return beside it), submit for review. The catalog decides; a refusal is
shown on the form with the catalog's own words."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from common import limits
from common.fields import Code, Position
from services.console import forms
from services.console.clients import Refused, segment
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()


def _entry_form(
    request: Request,
    *,
    content: dict[str, Any] | None,
    code: str = "",
    revision: int = 0,
    findings: list[dict[str, str]] | None = None,
    error: Refused | None = None,
    classification: str = "",
) -> Response:
    return render(
        request,
        "entry_form.html",
        422 if error is not None and error.status == 422 else 409 if error is not None else 200,
        content=content or {},
        rows=forms.item_rows(content),
        code=code,
        revision=revision,
        findings=findings or [],
        error=error,
        classification=classification,
    )


@router.get("/compile")
async def workspace(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    offset: Annotated[Position, Query(le=1_000_000)] = 0,
) -> Response:
    limit = console.settings.page_size
    own = {"provider_code": person.department_code, "offset": offset, "limit": limit}
    entries = await console.services.call("catalog", "GET", "/entries", person.token, params=own)
    overdue = await console.services.call(
        "catalog", "GET", "/overdue", person.token, params={"provider_code": person.department_code, "limit": 100}
    )
    return render(request, "workspace.html", entries=entries, overdue=overdue, offset=offset, limit=limit)


@router.get("/compile/new")
async def new_entry(request: Request, _person: PersonDep) -> Response:
    return _entry_form(request, content=None)


@router.post("/compile/new")
async def draft(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    content = forms.content_of(form)
    classification = forms.text(form, "classification", limits.CODE_LENGTH)
    body = {"provider_code": person.department_code, "classification": classification or None, **content}
    try:
        created = await console.services.call("catalog", "POST", "/entries", person.token, json=body)
    except Refused as exc:
        if exc.status not in (409, 422):
            raise
        return _entry_form(request, content=content, error=exc, classification=classification)
    return redirect(request, "/catalog/entry?" + urlencode({"code": created["resource_code"]}))


@router.get("/compile/edit")
async def edit_entry(
    request: Request, console: ConsoleDep, person: PersonDep, code: Annotated[Code, Query()]
) -> Response:
    entry = await console.services.call("catalog", "GET", f"/entries/{segment(code)}", person.token)
    version = entry["working"] or entry["in_force"] or {}
    findings = version.get("findings") or [] if entry["working"] else []
    return _entry_form(
        request, content=version.get("content"), code=code, revision=entry["revision"], findings=findings
    )


@router.post("/compile/edit")
async def save(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    code, revision = forms.text(form, "code", limits.CODE_LENGTH), forms.revision_of(form)
    content = forms.content_of(form)
    try:
        await console.services.call(
            "catalog", "PUT", f"/entries/{segment(code)}/draft", person.token, json={"revision": revision, **content}
        )
    except Refused as exc:
        if exc.status not in (409, 422):
            raise
        return _entry_form(request, content=content, code=code, revision=revision, error=exc)
    return redirect(request, "/catalog/entry?" + urlencode({"code": code}))


@router.get("/compile/import")
async def import_page(request: Request, _person: PersonDep) -> Response:
    return render(request, "import.html", error=None, problems=[])


@router.post("/compile/import")
async def import_table(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    """A table in the 共享目录 layout: the catalog imports every row or none, and says which rows are wrong."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        error = Refused(422, "请选择要导入的 XLSX 或 CSV 文件。", "file")
        return render(request, "import.html", 422, error=error, problems=[])
    content = await upload.read()
    files = {"file": (upload.filename[:200], content, upload.content_type or "application/octet-stream")}
    try:
        created = await console.services.call("catalog", "POST", "/entries/import", person.token, files=files)
    except Refused as exc:
        if exc.status not in (409, 413, 422):
            raise
        return render(request, "import.html", exc.status, error=exc, problems=forms.row_problems(exc.message))
    return render(request, "import.html", 201, error=None, problems=[], created=created)


@router.post("/compile/submit")
async def submit(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    code, revision = forms.text(form, "code", limits.CODE_LENGTH), forms.revision_of(form)
    await console.services.call(
        "catalog", "POST", f"/entries/{segment(code)}/submit", person.token, json={"revision": revision}
    )
    return redirect(request, "/catalog/entry?" + urlencode({"code": code}))


@router.post("/compile/change")
async def report_change(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    """The resource's data or elements changed: the entry must follow within 5 working days (Art. 11)."""
    code = forms.text(form, "code", limits.CODE_LENGTH)
    body = {"reason": forms.text(form, "reason"), "changed_on": forms.text(form, "changed_on", 10) or None}
    await console.services.call("catalog", "POST", f"/entries/{segment(code)}/changes", person.token, json=body)
    return redirect(request, "/catalog/entry?" + urlencode({"code": code}))


@router.post("/compile/maintenance")
async def confirm_maintenance(request: Request, console: ConsoleDep, person: PersonDep, form: FormDep) -> Response:
    """The yearly full maintenance found nothing to change (Art. 11)."""
    code, revision = forms.text(form, "code", limits.CODE_LENGTH), forms.revision_of(form)
    body = {"revision": revision, "note": forms.text(form, "note")}
    await console.services.call("catalog", "POST", f"/entries/{segment(code)}/maintenance", person.token, json=body)
    return redirect(request, "/catalog/entry?" + urlencode({"code": code}))
