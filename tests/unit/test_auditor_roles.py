"""What each of the auditor's roles runs: `trail` the REST facade and the trail's consumer, `oversight` the
oversight's consumer and the relay of the findings' events, `all` both (built without a broker or database)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from pydantic import ValidationError

from services.auditor import main
from services.auditor.oversight.adapters import watch
from services.auditor.settings import AuditorSettings


def _paths(app) -> set[str]:
    return set(app.openapi()["paths"])


@pytest.mark.parametrize(
    ("role", "groups", "relays", "routes"),
    [
        ("all", {"auditor-trail", "auditor-oversight"}, True, True),
        ("trail", {"auditor-trail"}, False, True),
        ("oversight", {"auditor-oversight"}, True, False),
    ],
)
def test_each_role_consumes_its_groups_and_only_the_oversight_relays_beside_the_trail(
    role: str, groups: set[str], relays: bool, routes: bool
) -> None:
    app, runtime = main.build(AuditorSettings(role=role))
    assert {c.group for c in runtime.consumers} == groups
    assert runtime.settings.outbox_relay_enabled is relays
    # the deadline watch runs wherever findings change (by events or over the API); the evaluation's gauges
    # only where the events are consumed, so no process publishes figures nothing wakes to recompute
    assert "finding-deadlines" in runtime.periodic
    assert ("evaluation-metrics" in runtime.periodic) is (role != "trail")
    paths = _paths(app)
    assert {"/healthz", "/readyz", "/metrics"} <= paths
    served = {"/trail/entries", "/findings", "/evaluation/formula"} & paths
    assert served == ({"/trail/entries", "/findings", "/evaluation/formula"} if routes else set())


def test_production_needs_the_trail_s_keys_only_where_the_trail_is_kept() -> None:
    production = {"environment": "production", "mongo_uri": "mongodb://mongo-0:27017/?replicaSet=rs0"}
    with pytest.raises(ValidationError, match="checkpoint_key"):
        AuditorSettings(**production, role="trail")
    with pytest.raises(ValidationError, match="checkpoint_key"):
        AuditorSettings(**production)
    assert AuditorSettings(**production, role="oversight").checkpoint_key is None


async def test_the_oversight_apart_from_the_routes_recomputes_its_gauges_by_itself(monkeypatch) -> None:
    """Findings raised or answered over a `trail` process's API change the figures an `oversight` process
    publishes: that one recomputes them every `poll` seconds even when nothing of its own woke it."""
    shown: list[int] = []

    async def ranking(period, oversight):
        return []

    async def open_findings(oversight):
        return []

    monkeypatch.setattr(watch.handlers, "ranking", ranking)
    monkeypatch.setattr(watch.handlers, "open_findings", open_findings)
    monkeypatch.setattr(watch.handlers, "current_month", lambda oversight: None)
    monkeypatch.setattr(watch.metrics, "show", lambda ranked, findings: shown.append(1))
    for poll, least, most in ((0.05, 3, 20), (None, 1, 1)):
        shown.clear()
        job = asyncio.create_task(watch.refresh_figures(None, watch.Changes(), 0.01, poll))  # type: ignore[arg-type]
        await asyncio.sleep(0.4)
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
        assert least <= len(shown) <= most, (poll, len(shown))
