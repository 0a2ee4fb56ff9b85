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

FIGURES_POLL_INTERVALS = 5  # the oversight apart from the routes: its gauges at most 5 minutes (default) behind


def build_oversight(
    settings: AuditorSettings, runtime: Runtime, *, consume: bool = True, serves_routes: bool = True
) -> Oversight:
    """The oversight with its background jobs; its consumer unless `consume` is off (a process of the
    auditor's `trail` role serves the routes while another consumes). The evaluation's gauges are published by
    the process that consumes (one source for the dashboards); where the routes run in another process, which
    changes findings too, it also recomputes them every `FIGURES_POLL_INTERVALS` × the metrics' interval."""
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
    if consume:
        poll = None if serves_routes else settings.evaluation_metrics_seconds * FIGURES_POLL_INTERVALS
        runtime.periodic["evaluation-metrics"] = partial(
            watch.refresh_figures, oversight, changes, settings.evaluation_metrics_seconds, poll
        )
    return oversight


def install(app: FastAPI, oversight: Oversight) -> None:
    app.state.oversight = oversight


ROUTERS: list[APIRouter] = routes.ROUTERS
