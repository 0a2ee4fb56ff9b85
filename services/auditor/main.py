"""Wires the auditor service: the single place real adapters are built."""

from __future__ import annotations

import secrets
from functools import partial

from fastapi import FastAPI

from common.auth import development_key
from common.clock import SystemClock
from common.http import create_app, run_service
from common.runtime import Runtime
from services.auditor import handlers
from services.auditor.adapters import http, mongo, trail_http, trail_metrics, trail_mongo
from services.auditor.adapters.checkpoints import CheckpointSigner
from services.auditor.oversight import bootstrap as oversight
from services.auditor.ports import AUDITED_TOPICS
from services.auditor.settings import DEV_CHECKPOINT_KEY_FILE, DEV_SUBJECT_SECRET_FILE, AuditorSettings


def checkpoint_signer(settings: AuditorSettings) -> CheckpointSigner:
    """The configured key; in development a key kept in .var/ (production requires one, see the settings)."""
    if settings.checkpoint_key is not None:
        return CheckpointSigner.from_private_pem(settings.checkpoint_key.get_secret_value())
    return CheckpointSigner.from_private_pem(development_key(DEV_CHECKPOINT_KEY_FILE))


def subject_secret(settings: AuditorSettings) -> bytes:
    """The key identifiers in the trail are hashed with; in development one kept in .var/."""
    if settings.subject_secret is not None:
        return settings.subject_secret.get_secret_value().encode()
    if not DEV_SUBJECT_SECRET_FILE.exists():
        DEV_SUBJECT_SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
        DEV_SUBJECT_SECRET_FILE.write_text(secrets.token_hex(32))
        DEV_SUBJECT_SECRET_FILE.chmod(0o600)
    return DEV_SUBJECT_SECRET_FILE.read_text().strip().encode()


def build(settings: AuditorSettings) -> tuple[FastAPI, Runtime]:
    if settings.role == "trail":
        # auditor.findings are relayed by the `oversight` processes (their outbox is this one's): one writer
        settings = settings.model_copy(update={"outbox_relay_enabled": False})
    runtime = Runtime.build("auditor", settings)
    if settings.role == "oversight":
        watching = oversight.build_oversight(settings, runtime, serves_routes=False)
        title, description = (
            "Auditor oversight",
            "Evaluation counts and findings from events (Art. 23, 24); health and metrics only.",
        )
        app = create_app(runtime, title=title, description=description, routers=[])
        oversight.install(app, watching)
        return app, runtime
    trail = trail_mongo.MongoTrail(
        runtime.db, runtime.transaction, settings.trail_block_entries, committed=trail_metrics.appended
    )
    signer = checkpoint_signer(settings)
    runtime.setup.append(partial(trail_mongo.ensure_indexes, runtime.db))
    runtime.setup.append(partial(trail_metrics.show_last_checkpoint, trail))
    keys = handlers.TrailKeys(
        signer=signer,
        secret=subject_secret(settings),
        clock=SystemClock(),
        every_entries=settings.checkpoint_every_entries,
        every_seconds=settings.checkpoint_every_seconds,
    )
    runtime.consume(
        "auditor-trail",
        AUDITED_TOPICS,
        batch=partial(handlers.record_in_trail, trail=trail, keys=keys),
        batch_size=settings.trail_batch_size,
    )
    # `trail`: the routes and the deadline watch (findings raised, answered, held here) without the consumer
    watching = oversight.build_oversight(settings, runtime, consume=settings.role == "all")
    app = create_app(
        runtime,
        title="Auditor",
        description="The tamper-evident access trail (Art. 19), evaluation (Art. 23) and findings (Art. 24).",
        routers=[trail_http.router, http.router(mongo.MongoEvaluation(runtime.db)), *oversight.ROUTERS],
    )
    app.state.trail = trail_http.TrailApi(trail, signer)
    oversight.install(app, watching)
    return app, runtime


def main() -> None:
    run_service("auditor", AuditorSettings, build)


if __name__ == "__main__":
    main()
