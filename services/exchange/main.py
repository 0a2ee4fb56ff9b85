"""Wires the exchange service: the single place real adapters are built."""

from __future__ import annotations

import asyncio
from functools import partial

from fastapi import FastAPI

from common.events import Event
from common.http import create_app, run_service
from common.kafka import KafkaPublisher
from common.metrics import EVENTS_PUBLISHED
from common.runtime import Runtime
from services.exchange import handlers
from services.exchange.adapters import http, mongo
from services.exchange.ports import CATALOG_ENTRY_EVENTS, CATALOG_PUBLISHED, DATA_CHANGES
from services.exchange.settings import ExchangeSettings

ACK_SECONDS = 10.0  # for each batch of an upload


class BusChangePublisher:
    """Uploaded records go onto the bus like an adapter's: the ingestion checks them the same way. An upload
    sends hundreds of thousands of them: they are encoded in a worker thread, and the event loop gets a turn
    between every few sends, so that probes and the consumers' heartbeats are answered meanwhile."""

    def __init__(self, publisher: KafkaPublisher) -> None:
        self.publisher = publisher

    def _encode(self, events: list[Event]) -> list[bytes]:
        return [self.publisher.encode(DATA_CHANGES, event) for event in events]

    async def publish_changes(self, events: list[Event], token: str) -> None:
        """The uploader waits for the answer: while the broker is away it gets a 503 within ACK_SECONDS."""
        values = await asyncio.to_thread(self._encode, events)
        messages = [(DATA_CHANGES, e.key, v, e.headers()) for e, v in zip(events, values, strict=True)]
        await self.publisher.send_all(messages, ACK_SECONDS)
        EVENTS_PUBLISHED.labels(DATA_CHANGES, "DataChanged").inc(len(events))


def build(settings: ExchangeSettings) -> tuple[FastAPI, Runtime]:
    runtime = Runtime.build("exchange", settings)
    uow = mongo.MongoUnitOfWork(runtime)
    runtime.setup.append(partial(mongo.ensure_indexes, runtime.db))
    runtime.setup.append(partial(mongo.count_records, runtime.db))
    runtime.consume(
        "exchange-ingest",
        [DATA_CHANGES],
        batch=partial(handlers.ingest_changes, uow=uow, credentials=runtime.keys),
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
    app = create_app(
        runtime,
        title="Exchange",
        description="Departments' data held by the center, and its sharing (Art. 8, 13–18, 20).",
        routers=http.routers(uow, BusChangePublisher(runtime.publisher)),
    )
    return app, runtime


def main() -> None:
    run_service("exchange", ExchangeSettings, build)


if __name__ == "__main__":
    main()
