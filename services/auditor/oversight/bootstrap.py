"""Wires the oversight into the auditor: its consumer, its background jobs and its routes."""

from __future__ import annotations

import asyncio
from functools import partial

from fastapi import APIRouter, FastAPI

from common.clock import FixedDay, SystemClock
from common.runtime import Runtime
from services.auditor.domain.findings import Deadlines
from services.auditor.domain.scoring import Scoring
from services.auditor.oversight.adapters import mongo, observed_events, routes, watch
from services.auditor.oversight.handlers import Oversight
from services.auditor.oversight.ports import OBSERVED_TOPICS
from services.auditor.settings import AuditorSettings


def build_oversight(settings: AuditorSettings, runtime: Runtime, *, consume: bool = True) -> Oversight:
    """The oversight with its background jobs; its consumer unless `consume` is off (a process of the
    auditor's `trail` role serves the routes while another consumes)."""
    changes = watch.Changes()
    oversight = Oversight(
        store=mongo.MongoOversightStore(runtime),
        clock=FixedDay(settings.today) if settings.today else SystemClock(),
        calendar=runtime.calendar,
        scoring=Scoring(dict(settings.evaluation_weights), settings.evaluation_usage_target),
        deadlines=Deadlines(
            settings.finding_catalog_days,
            settings.finding_provision_days,
            settings.finding_consistency_days,
            settings.finding_purpose_days,
        ),
        supply_grace=settings.stale_grace_days,
        changed=changes,
        offload=asyncio.to_thread,
    )
    runtime.setup.append(partial(mongo.ensure_indexes, runtime.db))
    if consume:
        runtime.consume(
            "auditor-oversight",
            OBSERVED_TOPICS,
            batch=observed_events.batch_handler(oversight, runtime.keys),
            batch_size=settings.oversight_batch_size,
        )
    runtime.periodic["finding-deadlines"] = partial(watch.watch_deadlines, oversight, changes)
    runtime.periodic["evaluation-metrics"] = partial(
        watch.refresh_figures, oversight, changes, settings.evaluation_metrics_seconds
    )
    return oversight


def install(app: FastAPI, oversight: Oversight) -> None:
    app.state.oversight = oversight


ROUTERS: list[APIRouter] = routes.ROUTERS
