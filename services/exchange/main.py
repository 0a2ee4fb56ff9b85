"""Wires the exchange service: the single place real adapters are built."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from common.auth import development_key, load_signing_key
from common.http import create_app, run_service
from common.runtime import Runtime
from services.exchange import handlers
from services.exchange.adapters import http, mongo
from services.exchange.adapters.senders import BusChangePublisher, SignedSenders
from services.exchange.ports import CATALOG_ENTRY_EVENTS, CATALOG_PUBLISHED, DATA_CHANGES
from services.exchange.settings import DEV_KEY_FILE, ExchangeSettings
from services.exchange.sharing import handlers as sharing_handlers
from services.exchange.sharing.adapters import mongo as sharing_mongo
from services.exchange.sharing.adapters import routes as sharing_routes
from services.exchange.sharing.adapters.catalog_events import catalog_handlers
from services.exchange.sharing.adapters.clock import CityClock, FixedClock
from services.exchange.sharing.handlers import Sharing
from services.exchange.sharing.requests import Deadlines


def signing_key(settings: ExchangeSettings) -> str:
    """The configured key; in development a key kept in .var/ (production requires one, see the settings)."""
    if settings.signing_key is not None:
        return settings.signing_key.get_secret_value()
    return development_key(DEV_KEY_FILE)


def build(settings: ExchangeSettings) -> tuple[FastAPI, Runtime]:
    runtime = Runtime.build("exchange", settings)
    own_key = load_signing_key(signing_key(settings))
    uow = mongo.MongoUnitOfWork(runtime)
    runtime.setup.append(partial(mongo.ensure_indexes, runtime.db))
    runtime.setup.append(partial(mongo.count_records, runtime.db))
    runtime.consume(
        "exchange-ingest",
        [DATA_CHANGES],
        batch=partial(
            handlers.ingest_changes, uow=uow, senders=SignedSenders(runtime.revocations.adapter_keys, own_key)
        ),
        batch_size=settings.ingest_batch_size,
    )
    runtime.consume(
        "exchange-catalog",
        [CATALOG_PUBLISHED, CATALOG_ENTRY_EVENTS],
        {
            "CatalogEntryPublished": partial(handlers.catalog_entry_published, uow=uow),
            "CatalogEntryWithdrawn": partial(handlers.catalog_entry_withdrawn, uow=uow),
        },
    )
    sharing = build_sharing(settings, runtime)
    runtime.setup.append(partial(sharing_mongo.ensure_indexes, runtime.db))
    runtime.consume("exchange-sharing", [CATALOG_PUBLISHED, CATALOG_ENTRY_EVENTS], catalog_handlers(sharing))
    runtime.every("sharing-sweep", settings.sharing_sweep_seconds, partial(sharing_handlers.sweep, sharing))
    app = create_app(
        runtime,
        title="Exchange",
        description="Departments' data held by the center, and its sharing (Art. 8, 13–18, 20).",
        routers=[*http.routers(uow, BusChangePublisher(runtime.publisher, own_key)), *sharing_routes.ROUTERS],
    )
    app.dependency_overrides[sharing_routes.provided_sharing] = lambda: sharing
    return app, runtime


def build_sharing(settings: ExchangeSettings, runtime: Runtime) -> Sharing:
    """The sharing lifecycle's store, clock, calendar and deadlines."""
    return Sharing(
        store=sharing_mongo.MongoSharingStore(runtime),
        clock=FixedClock(settings.sharing_today) if settings.sharing_today else CityClock(),
        calendar=runtime.calendar,
        deadlines=Deadlines(
            settings.sharing_decision_days, settings.sharing_ruling_days, settings.sharing_final_ruling_days
        ),
    )


def main() -> None:
    run_service("exchange", ExchangeSettings, build)


if __name__ == "__main__":
    main()
