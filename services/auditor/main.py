"""Wires the auditor service: the single place real adapters are built."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from common.http import create_app, run_service
from common.runtime import Runtime
from services.auditor import handlers
from services.auditor.adapters import http, mongo
from services.auditor.oversight import bootstrap as oversight
from services.auditor.ports import AUDITED_TOPICS
from services.auditor.settings import AuditorSettings


def build(settings: AuditorSettings) -> tuple[FastAPI, Runtime]:
    runtime = Runtime.build("auditor", settings)
    uow = mongo.MongoUnitOfWork(runtime)
    runtime.setup.append(partial(mongo.ensure_indexes, runtime.db))
    record = partial(handlers.record_in_trail, uow=uow)
    audited = {t for spec in runtime.publisher.topics.values() if spec.name in AUDITED_TOPICS for t in spec.events}
    runtime.consume("auditor-trail", AUDITED_TOPICS, dict.fromkeys(sorted(audited), record))
    watching = oversight.build_oversight(settings, runtime)
    app = create_app(
        runtime,
        title="Auditor",
        description="The tamper-evident access trail (Art. 19), evaluation (Art. 23) and findings (Art. 24).",
        routers=[http.router(uow), *oversight.ROUTERS],
    )
    oversight.install(app, watching)
    return app, runtime


def main() -> None:
    run_service("auditor", AuditorSettings, build)


if __name__ == "__main__":
    main()
