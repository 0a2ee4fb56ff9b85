"""Wires the exchange service: the single place real adapters are built."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from common.http import create_app, run_service
from common.runtime import Runtime
from services.exchange import handlers
from services.exchange.adapters import http, mongo
from services.exchange.ports import DATA_CHANGES
from services.exchange.settings import ExchangeSettings


def build(settings: ExchangeSettings) -> tuple[FastAPI, Runtime]:
    runtime = Runtime.build("exchange", settings)
    uow = mongo.MongoUnitOfWork(runtime)
    runtime.setup.append(partial(mongo.ensure_indexes, runtime.db))
    runtime.consume(
        "exchange-ingest",
        [DATA_CHANGES],
        {"DataChanged": partial(handlers.ingest_change, uow=uow, credentials=runtime.keys)},
    )
    app = create_app(
        runtime,
        title="Exchange",
        description="Departments' data held by the center, and its sharing (Art. 8, 13–18, 20).",
        routers=[http.router(uow)],
    )
    return app, runtime


def main() -> None:
    run_service("exchange", ExchangeSettings, build)


if __name__ == "__main__":
    main()
