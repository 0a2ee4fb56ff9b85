"""The REST facade every service shares: health, readiness, metrics, the event schemas, request metrics,
and one mapping of domain errors to HTTP status codes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import timeout as mongo_timeout
from pymongo.errors import PyMongoError

from common import guard
from common.auth import Unauthenticated
from common.errors import Conflict, DomainError, Invalid, NotFound
from common.faults import is_transient
from common.logs import configure_logging
from common.metrics import HTTP_REQUESTS, HTTP_SECONDS
from common.policy import AccessDenied
from common.runtime import Runtime
from common.settings import S, load_settings

log = logging.getLogger(__name__)
DOMAIN_ERRORS: dict[type[Exception], int] = {Invalid: 422, NotFound: 404, Conflict: 409}
RETRY_AFTER_SECONDS = 5
# While the database is known to be down, a request waits at most this long for it before its 503.
FAIL_FAST_SECONDS = 0.5


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

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime
    app.include_router(platform_router(runtime))
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(Unauthenticated, guard.unauthenticated)
    app.add_exception_handler(AccessDenied, guard.denied)
    for error_type, status in DOMAIN_ERRORS.items():
        app.add_exception_handler(error_type, _domain_error(status))
    for infrastructure_error in (PyMongoError, KafkaError, ConnectionError, TimeoutError):
        app.add_exception_handler(infrastructure_error, _unavailable(runtime))
    app.middleware("http")(_fail_fast(runtime))
    app.middleware("http")(_observe)
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


def _fail_fast(runtime: Runtime) -> Callable:
    """While the database is known to be down, requests that need it fail within FAIL_FAST_SECONDS instead
    of the driver's server-selection timeout; those that do not need it answer as usual."""

    async def middleware(request: Request, call_next: Callable) -> Response:
        if not runtime.dependencies["mongo"].failing_since:
            return await call_next(request)
        with mongo_timeout(FAIL_FAST_SECONDS):
            return await call_next(request)

    return middleware


def _domain_error(status: int) -> Callable:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        body = {"detail": str(exc), "error": type(exc).__name__}
        if isinstance(exc, DomainError):
            body |= {"field": exc.field, "rule": exc.rule}
        return JSONResponse(body, status_code=status)

    return handle


async def _observe(request: Request, call_next: Callable) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    HTTP_REQUESTS.labels(request.method, path, str(response.status_code)).inc()
    HTTP_SECONDS.labels(request.method, path).observe(time.perf_counter() - started)
    return response


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
    async def schema(event_type: str) -> Response:
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


def run_service(name: str, settings_type: type[S], build: Callable[[S], tuple[FastAPI, Runtime]]) -> None:
    """A service's entry point: settings once (or a clear error), JSON logs, then the HTTP server."""
    settings = load_settings(settings_type)
    configure_logging(name, settings.log_level)
    serve(*build(settings))


def serve(app: FastAPI, runtime: Runtime) -> None:
    """Run the HTTP server; SIGTERM/SIGINT shut it down within a few seconds."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=runtime.settings.http_host,
        port=runtime.settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=3,
        access_log=False,
    )
    uvicorn.Server(config).run()
