"""Who is signed in, kept in the browser: the directory's access token (and its refresh token) in httpOnly,
SameSite=Strict cookies, Secure and `__Host-` named in production; and a CSRF token that every form sends
back beside its cookie (double submit; SameSite=Strict already keeps other sites' requests cookie-less).

The console reads the token's claims only to show who is signed in and to renew the token before it
expires; it decides nothing with them. Every service checks the token itself on every call."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
from starlette.requests import Request
from starlette.responses import Response

from services.console.clients import Grant, Refused, Services, SignInNeeded
from services.console.settings import ConsoleSettings

CSRF_FIELD = "csrf_token"
RENEW_BEFORE_SECONDS = 30  # an access token this close to its expiry is renewed before the page's calls
ROLE_NAMES = {
    "catalog_compiler": "目录编制人",
    "catalog_reviewer": "目录审核人",
    "data_administrator": "数据管理员",
    "it_office_operator": "信息化工作办公室",
    "leadership_member": "领导小组成员",
    "auditor": "审计人员",
}


class CsrfRefused(Exception):
    """A form came back without the token of the browser that was shown it."""


@dataclass(frozen=True)
class Person:
    token: str
    subject: str
    department_code: str
    roles: frozenset[str]
    expires_at: float

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def role_names(self) -> list[str]:
        return [ROLE_NAMES.get(r, r) for r in sorted(self.roles)]


def person_of(token: str) -> Person | None:
    """The claims of a token the directory gave this browser; None for anything that is not one."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        return Person(
            token=token,
            subject=str(claims["sub"]),
            department_code=str(claims["dept"]),
            roles=frozenset(str(r) for r in claims.get("roles", [])),
            expires_at=float(claims["exp"]),
        )
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return None


class Cookies:
    """Names and attributes of the console's cookies."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.secure = settings.cookies_secure
        prefix = "__Host-" if self.secure else ""
        self.session = f"{prefix}console-session"
        self.refresh = f"{prefix}console-refresh"
        self.csrf = f"{prefix}console-csrf"
        self.max_age = settings.session_hours * 3600

    def _set(self, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name, value, max_age=self.max_age, path="/", secure=self.secure, httponly=True, samesite="strict"
        )

    def keep(self, response: Response, grant: Grant) -> None:
        self._set(response, self.session, grant.access_token)
        if grant.refresh_token:
            self._set(response, self.refresh, grant.refresh_token)

    def forget(self, response: Response) -> None:
        for name in (self.session, self.refresh):
            response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="strict")

    def csrf_token(self, request: Request) -> str:
        """This browser's CSRF token; a new one (set on the response by `settle`) if it has none yet."""
        token = request.cookies.get(self.csrf) or getattr(request.state, "new_csrf", None)
        if not token or len(token) > 100:
            token = request.state.new_csrf = secrets.token_urlsafe(32)
        return token

    def renew_csrf(self, request: Request) -> None:
        """A new CSRF token at sign-in: one a page showed before it is not the signed-in person's."""
        request.state.new_csrf = secrets.token_urlsafe(32)
        request.state.csrf_renewed = True

    def check_csrf(self, request: Request, sent: object) -> None:
        expected = request.cookies.get(self.csrf, "")
        if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected.encode(), sent.encode()):
            raise CsrfRefused()

    def settle(self, request: Request, response: Response) -> Response:
        """Put on the response what this request changed: a renewed token, a new CSRF token."""
        if (grant := getattr(request.state, "renewed", None)) is not None:
            self.keep(response, grant)
        if getattr(request.state, "signed_out", False):
            self.forget(response)
        new_csrf = getattr(request.state, "new_csrf", None)
        if new_csrf and (getattr(request.state, "csrf_renewed", False) or not request.cookies.get(self.csrf)):
            self._set(response, self.csrf, new_csrf)
        return response


async def signed_in(request: Request, cookies: Cookies, services: Services) -> Person:
    """The person of this browser, the access token renewed with the refresh token when it is about to
    expire; SignInNeeded when there is none (or neither token works any more)."""
    token = request.cookies.get(cookies.session)
    person = person_of(token) if token and len(token) < 4096 else None
    if person is not None and person.expires_at - RENEW_BEFORE_SECONDS > time.time():
        return person
    refresh = request.cookies.get(cookies.refresh)
    if not refresh or len(refresh) > 512:
        raise SignInNeeded("expired" if token else "none")
    try:
        grant = await services.token({"grant_type": "refresh_token", "refresh_token": refresh}, request)
    except Refused:  # the refresh token expired or was revoked; an unavailable directory is said as such
        raise SignInNeeded("expired") from None
    renewed = person_of(grant.access_token)
    if renewed is None:
        raise SignInNeeded("expired")
    request.state.renewed = grant
    return renewed


def sign_in_url(request: Request, reason: str) -> str:
    """Where a request that needs a person goes: the sign-in page, and back here afterwards (GET only)."""
    query = {"reason": reason}
    if request.method == "GET":
        query["next"] = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?" + urlencode(query)


def local_path(target: str | None) -> str:
    """A place to go after sign-in: a path on this console, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 1000:
        return "/"
    return target
