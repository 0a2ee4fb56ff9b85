"""Wires the catalog service: the single place real adapters are built."""

from __future__ import annotations

from fastapi import FastAPI

from common.http import create_app, run_service
from common.runtime import Runtime
from services.catalog.adapters import http
from services.catalog.adapters.mongo import MongoUnitOfWork
from services.catalog.settings import CatalogSettings


def build(settings: CatalogSettings) -> tuple[FastAPI, Runtime]:
    runtime = Runtime.build("catalog", settings)
    app = create_app(
        runtime,
        title="Catalog",
        description="The city's shared data catalog (Art. 9–12): entries, their lifecycle and share demands.",
        routers=[http.router(MongoUnitOfWork(runtime))],
    )
    return app, runtime


def main() -> None:
    run_service("catalog", CatalogSettings, build)


if __name__ == "__main__":
    main()
