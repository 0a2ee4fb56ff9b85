"""What each of the auditor's roles runs: `trail` the REST facade and the trail's consumer, `oversight` the
oversight's consumer and the relay of the findings' events, `all` both (built without a broker or database)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.auditor import main
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
    # the deadline watch and the figures run wherever findings change: by events or over the API
    assert {"finding-deadlines", "evaluation-metrics"} <= set(runtime.periodic)
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
