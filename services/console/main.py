"""Wires the web console: the single place its parts are built. It keeps no data and consumes no events:
each page calls the services' REST APIs with the signed-in person's token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from common.http import Observe
from common.logs import configure_logging
from common.settings import load_settings
from services.console.clients import Services
from services.console.pages import (
    auth,
    browse,
    catalog,
    city,
    compile,
    consents,
    departments,
    disputes,
    findings,
    grants,
    inbox,
    oversight,
    printing,
    review,
    sharing,
    subscriptions,
)
from services.console.session import Cookies
from services.console.settings import SERVICE_NAMES, ConsoleSettings
from services.console.web import ERROR_PAGES, Console, make_templates

STATIC = Path(__file__).parent / "static"


def platform_router(services: Services) -> APIRouter:
    router = APIRouter(tags=["platform"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": "console"}

    @router.get("/readyz", summary="The directory answers (people can sign in); the other services reported")
    async def readyz() -> JSONResponse:
        answers = await asyncio.gather(*(services.alive(name) for name in SERVICE_NAMES))
        checks = dict(zip(SERVICE_NAMES, answers, strict=True))
        ready = checks["directory"] == "ok"
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @router.head("/metrics", include_in_schema=False, response_class=Response)
    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def build(settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    services = Services(settings, transport)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="Console",
        description="The platform's web console (in Chinese): sign-in, inbox, catalog search, compilation and review.",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=settings.http_max_body_bytes,
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.console = Console(settings, services, Cookies(settings), make_templates())
    for route in compile.router.routes:  # a table to import may be larger than a form (like the catalog's own limit)
        if isinstance(route, APIRoute) and route.path == "/compile/import":
            route.max_body_size = settings.http_max_upload_bytes
    for router in (
        platform_router(services),
        auth.router,
        inbox.router,
        catalog.router,
        compile.router,
        review.router,
        sharing.router,
        disputes.router,
        printing.router,
        grants.router,
        browse.router,
        subscriptions.router,
        consents.router,
        city.router,
        oversight.router,
        departments.router,
        findings.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for error_type, page in ERROR_PAGES.items():
        app.add_exception_handler(error_type, page)
    app.add_middleware(Observe)
    return app


def serve(app: FastAPI, settings: ConsoleSettings) -> None:
    """Run the HTTP server as the other services do; SIGTERM/SIGINT stop it within a few seconds."""
    import uvicorn

    from common import interpreter
    from common.server import QuietServer

    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=3,
        access_log=False,
        proxy_headers=False,  # the browser's address: only CONSOLE_TRUSTED_PROXIES' X-Forwarded-For names another
        loop="uvloop",
        http="httptools",
    )
    interpreter.settle()
    QuietServer(config).run()


def main() -> None:
    settings = load_settings(ConsoleSettings)
    configure_logging("console", settings.log_level)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
