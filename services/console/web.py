"""What every page shares: the signed-in person as a dependency, CSRF-checked forms, rendering with the
console's cookies settled, and the one place where a service's refusal or absence becomes a page."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from services.console import labels, refusals
from services.console.clients import CONSOLE_CODE, BadAnswer, Refused, Services, SignInNeeded, Unavailable, segment
from services.console.session import CSRF_FIELD, Cookies, CsrfRefused, Person, sign_in_url, signed_in
from services.console.settings import ConsoleSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
# a service's answers a form shows beside itself (with what was typed); a refusal (403) is a page of its own
SHOWN_AGAIN = (404, 409, 422)
# a service's document passed on (a report, a notice): its styles and inline charts, no script, form or frame
REPORT_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
CHINA = ZoneInfo("Asia/Shanghai")
TEMPLATES = Path(__file__).parent / "templates"
UNREAD_TIMEOUT_SECONDS = 2.0  # the menu's count waits no longer for the notifier than this
SERVICE_NAMES_ZH = {
    "directory": "目录与身份服务",
    "catalog": "资源目录服务",
    "exchange": "数据交换服务",
    "notifier": "通知服务",
    "auditor": "审计服务",
}


@dataclass
class Console:
    """What the pages need, built once by the bootstrap."""

    settings: ConsoleSettings
    services: Services
    cookies: Cookies
    templates: Jinja2Templates


def console_of(request: Request) -> Console:
    console: Console | None = getattr(request.app.state, "console", None)
    if console is None:
        raise RuntimeError("the console's pages are used without its bootstrap")
    return console


async def current_person(request: Request) -> Person:
    console = console_of(request)
    person = await signed_in(request, console.cookies, console.services)
    request.state.person = person
    if request.method == "GET":  # the menu shows the department's unread notices on every page
        request.state.unread = await unread_count(console, person)
    return person


async def checked_form(request: Request) -> FormData:
    """The form a page posted, refused unless it carries this browser's CSRF token."""
    form = await request.form()
    console_of(request).cookies.check_csrf(request, form.get(CSRF_FIELD))
    return form


ConsoleDep = Annotated[Console, Depends(console_of)]
PersonDep = Annotated[Person, Depends(current_person)]
FormDep = Annotated[FormData, Depends(checked_form)]


def local_time(value: str | datetime | None, with_time: bool = True) -> str:
    """A service's timestamp (UTC, ISO 8601) as Beijing time."""
    if not value:
        return ""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d")
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    env = templates.env
    env.filters["local_time"] = local_time
    env.filters["label"] = labels.label
    env.filters["ended_reason"] = refusals.ended_reason
    env.filters["reason_worded"] = refusals.reason_worded
    env.globals["labels"] = labels
    env.globals["field_name"] = labels.field_name
    return templates


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    console = console_of(request)
    context |= {
        "person": getattr(request.state, "person", None),
        "unread": getattr(request.state, "unread", None),
        "csrf_field": CSRF_FIELD,
        "csrf_token": console.cookies.csrf_token(request),
    }
    response = console.templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
    return console.cookies.settle(request, response)


async def attempt(call: Awaitable[T], shown: tuple[int, ...] = SHOWN_AGAIN) -> T | Refused:
    """A service's answer, or its refusal where the form shows it beside itself; any other refusal (a 403,
    an id the console would not send) becomes a page of its own."""
    try:
        return await call
    except Refused as exc:
        if exc.status not in shown or exc.code == CONSOLE_CODE:
            raise
        return exc


def passed_on(request: Request, content: bytes, format: Literal["html", "pdf"], filename: str) -> Response:
    """A document a service laid out (a report, a notice), passed on as it is: a PDF to download, or HTML
    sandboxed so that nothing in it runs or posts."""
    media_type = "application/pdf" if format == "pdf" else "text/html; charset=utf-8"
    response = Response(content, media_type=media_type)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if format == "pdf":
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}.pdf"'
    else:
        response.headers["Content-Security-Policy"] = REPORT_CSP
    return console_of(request).cookies.settle(request, response)


def redirect(request: Request, url: str) -> Response:
    """After a form: see the result by GET (303), with the cookies this request changed."""
    return console_of(request).cookies.settle(request, RedirectResponse(url, status_code=303))


async def unread_count(console: Console, person: Person) -> int | None:
    """The department's unread notices, for the menu; None when the notifier does not say."""
    try:
        page = await console.services.call(
            "notifier",
            "GET",
            f"/inbox/{segment(person.department_code)}",
            person.token,
            params={"unread": "true", "limit": 1},
            timeout=UNREAD_TIMEOUT_SECONDS,
        )
    except (Refused, Unavailable, SignInNeeded):  # the page itself says what matters
        return None
    return int(page["total"])


# -- errors as pages -------------------------------------------------------------------------------------


async def sign_in_needed(request: Request, exc: Exception) -> Response:
    reason = str(exc) if str(exc) in ("none", "expired") else "expired"
    response = RedirectResponse(sign_in_url(request, reason), status_code=303)
    console_of(request).cookies.forget(response)
    return response


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    title = "无权执行此操作" if exc.status == 403 else "未找到" if exc.status == 404 else "未能办理"
    said = refusals.explain(exc)
    return render(
        request,
        "error.html",
        exc.status,
        title=title,
        message=said.message,
        next_step=said.next_step,
        link=said.link,
        detail=said.detail,
        rule=exc.rule if exc.status == 403 else None,
        service=exc.service,
    )


async def unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Unavailable)
    log.warning("service unavailable: %s", exc)
    name = SERVICE_NAMES_ZH.get(exc.service, exc.service)
    if isinstance(exc, BadAnswer):  # nothing of it is shown: it may be another service's page
        message = f"{name}的答复无法识别，未予显示。请稍后再试；仍然如此时请告知运维人员。"
        return render(request, "error.html", 502, title="服务答复有误", message=message, service=exc.service)
    message = f"{name}暂时无法访问，请稍后再试。"
    response = render(request, "error.html", 503, title="服务暂时不可用", message=message, service=exc.service)
    response.headers["Retry-After"] = "5"
    return response


async def csrf_refused(request: Request, _exc: Exception) -> Response:
    message = "表单已失效或来源不明，未予办理。请返回上一页，刷新后重新提交。"
    return render(request, "error.html", 403, title="表单已失效", message=message, service="")


async def invalid_request(request: Request, _exc: Exception) -> Response:
    message = "请求的参数不符合要求，请返回重试。"
    return render(request, "error.html", 422, title="请求无效", message=message, service="")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 413:
        message = "提交的内容过大，未予接收。"
    elif exc.status_code == 404:
        message = "没有这个页面。"
    elif exc.status_code == 405:
        message = "不支持这种请求方式。"
    else:
        message = str(exc.detail)
    return render(request, "error.html", exc.status_code, title="无法显示", message=message, service="")


ERROR_PAGES = {
    SignInNeeded: sign_in_needed,
    Refused: refused,
    Unavailable: unavailable,
    CsrfRefused: csrf_refused,
    RequestValidationError: invalid_request,
    StarletteHTTPException: http_error,
}
