"""Sign-in with the directory's OAuth2 password flow, sign-out, and the home page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from common.fields import Code, Secret
from services.console.clients import Refused
from services.console.session import local_path
from services.console.web import ConsoleDep, FormDep, PersonDep, redirect, render

router = APIRouter()
REASONS = {
    "expired": "登录已过期，请重新登录。",
    "none": "请先登录。",
    "out": "您已退出登录。",
}


@router.get("/login")
async def login_page(
    request: Request,
    reason: Annotated[str, Query(max_length=20)] = "",
    next: Annotated[str, Query(max_length=1000)] = "/",
) -> Response:
    return render(request, "login.html", notice=REASONS.get(reason, ""), next=local_path(next), error="")


@router.post("/login")
async def login(
    request: Request,
    console: ConsoleDep,
    _form: FormDep,
    username: Annotated[Code, Form()],
    password: Annotated[Secret, Form()],
    next: Annotated[str, Form(max_length=1000)] = "/",
) -> Response:
    try:
        form = {"grant_type": "password", "username": username, "password": password}
        grant = await console.services.token(form, request)
    except Refused as exc:
        error = {401: "登录名或密码不正确。", 429: "登录失败次数过多，请稍候再试。"}.get(exc.status, exc.message)
        return render(request, "login.html", 401, notice="", next=local_path(next), error=error, username=username)
    console.cookies.renew_csrf(request)
    request.state.renewed = grant
    return redirect(request, local_path(next))


@router.post("/logout")
async def logout(request: Request, _form: FormDep) -> Response:
    request.state.signed_out = True
    return redirect(request, "/login?reason=out")


@router.get("/")
async def home(request: Request, _person: PersonDep) -> Response:
    return render(request, "home.html")
