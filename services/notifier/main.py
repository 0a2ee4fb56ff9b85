"""Wires the notifier service: the single place real adapters are built."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from common.http import create_app, run_service
from common.runtime import Runtime
from services.notifier.adapters import events, http, mongo
from services.notifier.ports import SUBSCRIBED
from services.notifier.settings import NotifierSettings


def build(settings: NotifierSettings) -> tuple[FastAPI, Runtime]:
    runtime = Runtime.build("notifier", settings)
    uow = mongo.MongoUnitOfWork(runtime)
    runtime.setup.append(partial(mongo.ensure_indexes, runtime.db))
    runtime.consume("notifier", SUBSCRIBED, events.subscriptions(uow, settings.it_office_code))
    app = create_app(
        runtime,
        title="Notifier",
        description="Tells departments what concerns them (Art. 11, 15, 17): inbox over REST, events on Kafka.",
        routers=[http.router(uow)],
    )
    return app, runtime


def main() -> None:
    run_service("notifier", NotifierSettings, build)


if __name__ == "__main__":
    main()
