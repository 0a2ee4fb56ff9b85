"""The REST facade every service shares: health, readiness, metrics, the event schemas, request metrics,
one mapping of errors to HTTP status codes and one error body, request body limits, and the OpenAPI
description of all of it (security schemes, error responses)."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, UploadFile
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from pymongo import timeout as mongo_timeout
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common import guard, interpreter
from common.auth import Unauthenticated
from common.errors import Conflict, DomainError, Invalid, NotFound
from common.faults import is_transient
from common.fields import Code
from common.logs import configure_logging
from common.metrics import HTTP_REQUESTS, HTTP_SECONDS
from common.policy import AccessDenied
from common.runtime import Runtime
from common.settings import Networks, S, load_settings

log = logging.getLogger(__name__)
DOMAIN_ERRORS: dict[type[Exception], int] = {Invalid: 422, NotFound: 404, Conflict: 409}
RETRY_AFTER_SECONDS = 5
# While the database is known to be down, a request waits at most this long for it before its 503.
FAIL_FAST_SECONDS = 0.5


class ErrorView(BaseModel):
    """The body of every error response the services send."""

    detail: str = Field(description="what went wrong, for people")
    error: str = Field(
        description="the kind of error, e.g. Unauthenticated, AccessDenied, RequestValidationError, NotFound, "
        "Conflict, or the domain's own (InvalidEntry, EntryExists, SheetErrors …)"
    )
    field: str | None = Field(None, description="the field (or, for a table, the rows) to fix")
    rule: str | None = Field(None, description="the rule the request broke: the access rule for a 403")
    code: str | None = Field(None, description="the broken rule's machine-readable code, where the service has one")
    message: str | None = Field(None, description="what went wrong in Chinese, for people, where the service words it")


class UnavailableView(ErrorView):
    """The body of a 503: the broker or database is away; the Retry-After header says when to try again."""

    dependency: str = Field(description="what is unavailable: kafka, mongo, or uploads (every upload slot taken)")
    reason: str = Field(description="the driver's error")


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorView, "description": description}


UNAUTHENTICATED = _error("No, an invalid, expired or revoked access token (see WWW-Authenticate)")
FORBIDDEN = _error("The access rule refuses the caller's role or department; `rule` names it")
NOT_FOUND = _error("No such thing, or none the caller may know of")
CONFLICT = _error("Not possible in the current state, e.g. a stale revision")
UNPROCESSABLE = _error("The request or its content is invalid; `field` says what to fix")
UNAVAILABLE = {
    "model": UnavailableView,
    "description": "The broker or database is unavailable; retry after the Retry-After header's seconds",
}
TOO_LARGE = {
    "description": "The request body is over this route's size limit (HTTP_MAX_BODY_BYTES, HTTP_MAX_UPLOAD_BYTES "
    "for files); it was not read",
    "content": {"text/plain": {"schema": {"type": "string", "example": "Content Too Large"}}},
}
# Operations that need a token accept one from either scheme; OpenAPI lists alternatives as separate entries.
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"directory": []}]


def create_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    routers: list[APIRouter] = (),  # type: ignore[assignment]
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    settings = runtime.settings
    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=settings.http_max_body_bytes,
        # The services' metrics are Prometheus (Observe, below); without this FastAPI asks OpenTelemetry on
        # every request whether a provider was configured since, and none can be: no SDK is installed.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    for router in [platform_router(runtime), *routers]:
        for route in router.routes:
            if isinstance(route, APIRoute):
                _declare(route, settings.http_max_upload_bytes)
        app.include_router(router)
    app.add_exception_handler(Unauthenticated, guard.unauthenticated)
    app.add_exception_handler(AccessDenied, guard.denied)
    for error_type, status in DOMAIN_ERRORS.items():
        app.add_exception_handler(error_type, _domain_error(status))
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for infrastructure_error in (PyMongoError, KafkaError, ConnectionError, TimeoutError):
        app.add_exception_handler(infrastructure_error, _unavailable(runtime))
    # Pure ASGI middleware: Starlette's BaseHTTPMiddleware costs a task group and a stream per layer.
    app.add_middleware(FailFast, runtime=runtime)
    app.add_middleware(Observe)  # outermost: counts what the others answer too
    app.openapi = lambda: _openapi(app, settings.auth_token_url)  # type: ignore[method-assign]
    return app


def _unavailable(runtime: Runtime) -> Callable:
    """A broker or database that is away answers 503 with the reason and when to retry; anything else is a
    server error."""

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        if not is_transient(exc):
            log.error("request failed", exc_info=exc)
            return JSONResponse({"detail": "internal error", "error": "InternalError"}, status_code=500)
        dependency = "kafka" if type(exc).__module__.startswith("aiokafka") else "mongo"
        runtime.dependency_failed(dependency, exc)
        body = {
            "detail": f"the {'broker' if dependency == 'kafka' else 'database'} is unavailable; retry later",
            "error": "ServiceUnavailable",
            "dependency": dependency,
            "reason": f"{type(exc).__name__}: {exc}"[:300],
        }
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    return handle


class FailFast:
    """While the database is known to be down, requests that need it fail within FAIL_FAST_SECONDS instead
    of the driver's server-selection timeout; those that do not need it answer as usual."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.mongo = runtime.dependencies["mongo"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.mongo.failing_since:
            await self.app(scope, receive, send)
            return
        with mongo_timeout(FAIL_FAST_SECONDS):  # a context variable: the route runs in this same task
            await self.app(scope, receive, send)


def _has_parameters(dependant: Dependant) -> bool:
    """Query or path parameters of the route or of a dependency it uses (e.g. paging)."""
    own = dependant.query_params or dependant.path_params
    return bool(own) or any(_has_parameters(d) for d in dependant.dependencies)


def _declare(route: APIRoute, upload_limit: int) -> None:
    """What every route says of itself in OpenAPI — its security and the errors it can answer — and,
    for a route that takes a file, the larger body limit. Set before the route is included."""
    rule = guard.rule_of(route.dependant)
    responses: dict[int | str, dict[str, Any]] = {}
    if rule is not None and not rule.public:
        route.openapi_extra = {"security": SECURITY} | (route.openapi_extra or {})
        responses |= {401: UNAUTHENTICATED, 403: FORBIDDEN, 503: UNAVAILABLE}
    if route.dependant.path_params:
        responses[404] = NOT_FOUND
    if (route.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"} and not (rule and rule.public):
        responses[409] = CONFLICT
    if route.body_field is not None:
        responses[413] = TOO_LARGE
    if route.body_field is not None or _has_parameters(route.dependant):
        responses[422] = UNPROCESSABLE
    route.responses = responses | route.responses
    if any(field.field_info.annotation is UploadFile for field in route.dependant.body_params):
        route.max_body_size = min(route.max_body_size or upload_limit, upload_limit)  # a route's own limit stays


def _openapi(app: FastAPI, token_url: str) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": f"An access token from the directory's token endpoint ({token_url})",
        }
        schemes["directory"] = {
            "type": "oauth2",
            "description": "Sign in at the directory: people with a password, machines with client credentials",
            "flows": {
                "password": {"tokenUrl": token_url, "refreshUrl": token_url, "scopes": {}},
                "clientCredentials": {"tokenUrl": token_url, "scopes": {}},
            },
        }
        app.openapi_schema = schema
    return app.openapi_schema


def _domain_error(status: int) -> Callable:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        body = {"detail": str(exc), "error": type(exc).__name__}
        if isinstance(exc, DomainError):
            body |= {"field": exc.field, "rule": exc.rule}
            body |= {key: value for key, value in (("code", exc.code), ("message", exc.message)) if value is not None}
        return JSONResponse(body, status_code=status)

    return handle


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """A request that does not fit the route's parameters or body: the same body as a domain's Invalid.
    The offending input is not echoed: it may be huge, hold personal data or not be encodable."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    problems = [(".".join(str(p) for p in e["loc"]), str(e["msg"])) for e in errors] or [("request", "invalid")]
    worded = [f"{'.'.join(str(p) for p in e['loc'])}：{_in_chinese(e)}" for e in errors] or ["请求无效"]
    body = {
        "detail": "; ".join(f"{where}: {message}" for where, message in problems),
        "error": "RequestValidationError",
        "field": problems[0][0],
        "rule": problems[0][1],
        "code": "request.invalid",
        "message": "请求内容不符合要求：" + "；".join(worded),
    }
    return JSONResponse(body, status_code=422)


# What FastAPI's (pydantic's) own validation errors say, in Chinese, by the error's type.
VALIDATION_WORDS = {
    "missing": "缺少必填项",
    "string_too_long": "超过长度上限（{max_length}）",
    "string_too_short": "不能为空或过短",
    "too_long": "条目过多（最多 {max_length} 个）",
    "too_short": "条目过少",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "float_parsing": "应为数字",
    "bool_parsing": "应为是或否（true/false）",
    "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）",
    "date_parsing": "应为日期（YYYY-MM-DD）",
    "datetime_parsing": "应为日期时间",
    "greater_than_equal": "不能小于 {ge}",
    "less_than_equal": "不能大于 {le}",
    "greater_than": "应大于 {gt}",
    "less_than": "应小于 {lt}",
    "enum": "不是可选的值，可选：{expected}",
    "literal_error": "不是可选的值，可选：{expected}",
    "string_pattern_mismatch": "格式不正确",
    "json_invalid": "不是有效的 JSON",
    "model_attributes_type": "应为对象",
    "dict_type": "应为对象",
    "list_type": "应为列表",
    "string_type": "应为文本",
    "extra_forbidden": "不允许的字段",
}


def _in_chinese(error: Any) -> str:
    words = VALIDATION_WORDS.get(str(error.get("type")), "不符合要求")
    try:
        return words.format(**(error.get("ctx") or {}))
    except (KeyError, IndexError, ValueError):
        return words.split("（")[0].split("，")[0]


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Errors the framework raises itself (unknown path, wrong method, a body over the limit)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 413:  # as the framework answers a declared Content-Length over the limit
        return PlainTextResponse("Content Too Large", status_code=413)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    error = HTTPStatus(exc.status_code).phrase.title().replace(" ", "")
    return JSONResponse({"detail": str(exc.detail), "error": error}, status_code=exc.status_code, headers=exc.headers)


class Observe:
    """Counts every HTTP request by method, route and status, and times it. A request that fails with an
    exception nothing handled is counted as the 500 the server answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.counters: dict[tuple[str, str, int], Any] = {}
        self.timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            self.count(scope, status, time.perf_counter() - started)

    def count(self, scope: Scope, status: int, seconds: float) -> None:
        method, path = scope["method"], _route_path(scope)
        # prometheus_client takes a lock and builds the label tuple for each `labels()`: once per series here
        if (counter := self.counters.get((method, path, status))) is None:
            counter = self.counters[method, path, status] = HTTP_REQUESTS.labels(method, path, str(status))
        if (timer := self.timers.get((method, path))) is None:
            timer = self.timers[method, path] = HTTP_SECONDS.labels(method, path)
        counter.inc()
        timer.observe(seconds)


def _route_path(scope: Scope) -> str:
    route = scope.get("route")  # the router sets it in the scope it was given, which is this one
    if route is None:  # FastAPI's own pages (/openapi.json, /docs) are plain routes that do not say so
        plain = (r for r in scope["app"].routes if isinstance(r, Route) and not isinstance(r, APIRoute))
        route = next((r for r in plain if r.matches(scope)[0] is Match.FULL), None)
    return getattr(route, "path", "unmatched")


def platform_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["platform"], dependencies=[Depends(guard.Guard("public"))])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": runtime.name}

    @router.get("/readyz", summary="Broker and database reachable; 503 with the reasons when not")
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @router.head("/metrics", include_in_schema=False, response_class=Response)  # monitors that check it exists
    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/schemas", summary="Event types with their Avro schema fingerprints")
    async def schemas() -> dict[str, dict[str, str]]:
        return {
            t: {"fingerprint": runtime.codec.schema(t).fingerprint.hex(), "href": f"/schemas/{t}"}
            for t in runtime.codec.event_types
        }

    @router.get("/schemas/{event_type}", summary="One event's Avro schema (.avsc)")
    async def schema(event_type: Code) -> Response:
        if event_type not in runtime.codec.event_types:
            raise HTTPException(404, f"no event type {event_type!r}; GET /schemas lists them")
        raw = runtime.codec.schema(event_type).raw
        return Response(json.dumps(raw, ensure_ascii=False, indent=2), media_type="application/json")

    @router.get("/topics", summary="Declared Kafka topics and the events each carries")
    async def topics() -> list[dict[str, object]]:
        return [
            {"name": s.name, "partitions": s.partitions, "cleanup_policy": s.cleanup_policy, "events": list(s.events)}
            for s in runtime.publisher.topics.values()
        ]

    return router


def client_address(request: Request, trusted_proxies: Networks) -> str | None:
    """The address a request comes from: the peer's, or — when the peer is a trusted proxy (the ingress, the
    web console) — the last address of its `X-Forwarded-For`, the one that proxy saw. A proxy may append a header
    line of its own rather than extend the one it got, so the lines are read as one list. The header of any other
    peer, or one whose last entry is not an address, is ignored."""
    peer = request.client.host if request.client else None
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    if peer is None or not forwarded or not trusted_proxies:
        return peer
    try:
        if not any(ipaddress.ip_address(peer) in network for network in trusted_proxies):
            return peer
        return str(ipaddress.ip_address(forwarded[-64:].rsplit(",", 1)[-1].strip()))
    except ValueError:
        return peer


def run_service(name: str, settings_type: type[S], build: Callable[[S], tuple[FastAPI, Runtime]]) -> None:
    """A service's entry point: settings once (or a clear error), JSON logs, then the HTTP server."""
    settings = load_settings(settings_type)
    configure_logging(name, settings.log_level)
    serve(*build(settings))


def serve(app: FastAPI, runtime: Runtime) -> None:
    """Run the HTTP server; SIGTERM/SIGINT shut it down within a few seconds."""
    import uvicorn

    from common.server import QuietServer

    config = uvicorn.Config(
        app,
        host=runtime.settings.http_host,
        port=runtime.settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=3,
        access_log=False,
        # No forwarded header rewrites the peer's address (uvicorn would believe 127.0.0.1's): a service that
        # takes one says whose (the directory: DIRECTORY_TRUSTED_PROXIES).
        proxy_headers=False,
        loop="uvloop",  # libuv's event loop and a C HTTP parser: the pure-Python h11 was a quarter of a request
        http="httptools",
    )
    interpreter.settle()
    QuietServer(config).run()
