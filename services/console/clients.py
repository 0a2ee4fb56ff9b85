"""The services' REST APIs as the console calls them: always with the signed-in person's token, never with
a credential of its own. A service's answer becomes a value, or one of three errors a page knows how to show:
sign in again, refused (with the service's own words), or unavailable."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from starlette.requests import Request

from common.http import client_address
from services.console.metrics import SERVICE_CALLS
from services.console.settings import SERVICE_NAMES, ConsoleSettings

# A path segment the console puts into a service's URL: what the services' codes are made of, never "..".
SAFE_CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_\-.:]{0,127}(/[0-9A-Za-z][0-9A-Za-z_\-.:]{0,63}){0,3}")


class SignInNeeded(Exception):
    """The token is missing, expired or revoked: the person signs in again."""


@dataclass
class Refused(Exception):
    """A service answered 4xx: its Chinese `message` where it has one, else its `detail`."""

    status: int
    message: str
    field: str | None = None
    code: str | None = None
    service: str = ""
    rule: str | None = None  # the access rule a 403 applied; the rule a domain error (404, 409, 422) broke
    detail: str = ""  # the service's reason in its own (English) words
    on: str | None = None  # the day the refused thing happened, where a page found it (a grant's revocation)

    def __str__(self) -> str:
        return f"{self.service} {self.status}: {self.message}"


@dataclass
class Unavailable(Exception):
    """A service did not answer, or answered 5xx."""

    service: str
    reason: str

    def __str__(self) -> str:
        return f"{self.service}: {self.reason}"


class BadAnswer(Unavailable):
    """A service answered something other than the JSON the console asked for (a proxy's page, a document
    reached by a wrong path): shown as a bad gateway, never passed on."""


@dataclass(frozen=True)
class Grant:
    access_token: str
    expires_in: int
    refresh_token: str | None


OUTCOMES: dict[type, str] = {
    SignInNeeded: "sign_in",
    Refused: "refused",
    Unavailable: "unavailable",
    BadAnswer: "bad_answer",
}
CONSOLE_CODE = "console.code"  # a Refused the console raised itself, before anything was sent


def segment(code: str) -> str:
    """A code for a service's URL path (a resource code has its '/'); anything else is refused before it is
    sent."""
    if not SAFE_CODE.fullmatch(code) or ".." in code:
        raise Refused(404, "没有这一项：编号格式不正确", code=CONSOLE_CODE)
    return quote(code, safe="/")


def one_segment(code: str) -> str:
    """An id that is one path segment (a finding's, a person's login): a '/' in it would reach another of the
    service's routes (a finding's notice), so it is refused before anything is sent."""
    safe = segment(code)
    if "/" in code:
        raise Refused(422, "编号格式不正确：编号中不能含有“/”", "id", code=CONSOLE_CODE)
    return safe


def _refused(service: str, response: httpx.Response) -> Refused:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = body.get("message") or body.get("detail") or f"请求未被接受（HTTP {response.status_code}）"
    rule, detail = body.get("rule"), body.get("detail")
    return Refused(
        response.status_code,
        str(message),
        body.get("field"),
        body.get("code"),
        service,
        str(rule) if rule else None,
        str(detail) if isinstance(detail, str) else "",
    )


class Services:
    """One HTTP client for every service the console shows; built once at start, closed at stop."""

    def __init__(self, settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.urls = {name: settings.url_of(name) for name in SERVICE_NAMES}
        self.trusted_proxies = settings.trusted_proxies
        self.client = httpx.AsyncClient(timeout=settings.service_timeout_seconds, transport=transport)

    async def close(self) -> None:
        await self.client.aclose()

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        token: str,
        *,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        json: object = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The JSON a service answers (None for 204), as the signed-in person."""
        response = await self._send(service, method, path, token, params, json, files, timeout, headers)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            SERVICE_CALLS.labels(service, OUTCOMES[BadAnswer]).inc()
            kind = response.headers.get("content-type", "no content type")[:60]
            raise BadAnswer(service, f"HTTP {response.status_code} answered {kind}, not JSON") from None

    async def document(self, service: str, path: str, token: str) -> httpx.Response:
        """A file a service answers (a PDF), as the signed-in person: the response, checked as `call` checks."""
        return await self._send(service, "GET", path, token, accept="*/*")

    async def _send(
        self,
        service: str,
        method: str,
        path: str,
        token: str,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        json: object = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
        accept: str = "application/json",
    ) -> httpx.Response:
        try:
            response = await self._request(service, method, path, token, params, json, files, timeout, headers, accept)
        except Exception as exc:
            SERVICE_CALLS.labels(service, OUTCOMES.get(type(exc), "failed")).inc()
            raise
        SERVICE_CALLS.labels(service, "answered").inc()
        return response

    async def _request(
        self,
        service: str,
        method: str,
        path: str,
        token: str,
        params: dict[str, Any] | list[tuple[str, Any]] | None,
        json: object,
        files: dict[str, tuple[str, bytes, str]] | None,
        timeout: float | None,
        headers: dict[str, str] | None,
        accept: str,
    ) -> httpx.Response:
        try:
            response = await self.client.request(
                method,
                self.urls[service] + path,
                params=params,
                json=json,
                files=files,
                timeout=timeout if timeout is not None else self.client.timeout,
                headers=(headers or {}) | {"Authorization": f"Bearer {token}", "Accept": accept},
            )
        except httpx.HTTPError as exc:
            raise Unavailable(service, f"{type(exc).__name__}: {exc}"[:200]) from None
        if response.status_code == 401:
            raise SignInNeeded(service)
        if response.status_code >= 500:
            raise Unavailable(service, f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise _refused(service, response)
        return response

    async def token(self, form: dict[str, str], request: Request) -> Grant:
        """The directory's OAuth2 token endpoint: a password or a refresh-token grant, with the browser's
        address in `X-Forwarded-For` (the directory believes it from the addresses it trusts as proxies and
        then throttles failed sign-ins per browser, not all of them as the console's)."""
        browser = client_address(request, self.trusted_proxies)
        headers = {"X-Forwarded-For": browser} if browser else {}
        try:
            response = await self.client.post(self.urls["directory"] + "/token", data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise Unavailable("directory", f"{type(exc).__name__}: {exc}"[:200]) from None
        if response.status_code >= 500:
            raise Unavailable("directory", f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise _refused("directory", response)
        body = response.json()
        return Grant(body["access_token"], int(body["expires_in"]), body.get("refresh_token"))

    async def alive(self, service: str) -> str:
        """'ok', or why the service's /healthz did not answer."""
        try:
            response = await self.client.get(self.urls[service] + "/healthz", timeout=2.5)
        except httpx.HTTPError as exc:
            return f"unreachable: {type(exc).__name__}"
        return "ok" if response.status_code == 200 else f"HTTP {response.status_code}"
