"""Every route of every service declares the access rule it obeys."""

import functools

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from common.guard import Guard
from services.auditor import main as auditor
from services.catalog import main as catalog
from services.directory import main as directory
from services.exchange import main as exchange
from services.notifier import main as notifier

SERVICES = {
    "catalog": (catalog.build, catalog.CatalogSettings),
    "exchange": (exchange.build, exchange.ExchangeSettings),
    "notifier": (notifier.build, notifier.NotifierSettings),
    "auditor": (auditor.build, auditor.AuditorSettings),
    "directory": (directory.build, directory.DirectorySettings),
}


def guards(dependant) -> list[Guard]:
    found = [dependant.call] if isinstance(dependant.call, Guard) else []
    for sub in dependant.dependencies:
        found += guards(sub)
    return found


@functools.cache  # building five apps per parametrised case took minutes
def routes(service: str) -> list[tuple[str, APIRoute]]:
    """(full path, route) of every API route, through included routers."""
    build, settings = SERVICES[service]
    app, _ = build(settings())
    contexts = iter_route_contexts(app.routes)
    return [(c.path, c.original_route) for c in contexts if isinstance(c.original_route, APIRoute)]


@functools.cache
def declared_rules() -> dict[tuple[str, str, str], str]:
    rules = {}
    for service in SERVICES:
        for path, route in routes(service):
            found = guards(route.dependant)
            assert len(found) == 1, f"{service} {route.methods} {path} declares {len(found)} access rules"
            for method in route.methods:
                rules[service, method, path] = found[0].rule.name
    return rules


def test_every_route_declares_exactly_one_rule() -> None:
    rules = declared_rules()
    assert len(rules) > 30
    public = {key for key, rule in rules.items() if rule == "public"}
    assert {(s, m, p) for s, m, p in public if p not in ("/token", "/.well-known/jwks.json")} == {
        (s, "GET", p)
        for s in SERVICES
        for p in ("/healthz", "/readyz", "/metrics", "/schemas", "/schemas/{event_type}", "/topics")
    } | {(s, "HEAD", "/metrics") for s in SERVICES} | {
        ("auditor", "GET", "/.well-known/trail-checkpoint-key"),
        ("exchange", "GET", "/.well-known/offline-package-keys"),
    }


@pytest.mark.parametrize(
    ("service", "method", "path", "rule"),
    [
        ("catalog", "POST", "/entries", "catalog.entry.draft"),
        ("exchange", "GET", "/resources/{resource_code:path}/records/{subject_key}", "exchange.record.read"),
        ("exchange", "GET", "/services/{resource_code:path}/records/{subject_key}", "exchange.share.read"),
        ("exchange", "POST", "/services/{resource_code:path}/records", "exchange.share.read"),
        ("exchange", "GET", "/services/{resource_code:path}/changes", "exchange.share.read"),
        ("exchange", "GET", "/services/{resource_code:path}/digest", "exchange.share.read"),
        ("exchange", "GET", "/resources/{resource_code:path}/openapi.json", "exchange.resource.read"),
        ("exchange", "POST", "/subscriptions", "exchange.subscribe"),
        ("exchange", "POST", "/requests", "exchange.request.file"),
        ("exchange", "GET", "/requests/{request_id}", "exchange.request.read"),
        ("exchange", "GET", "/requests/{request_id}/form.pdf", "exchange.request.read"),
        ("exchange", "POST", "/requests/{request_id}/decision", "exchange.request.decide"),
        ("exchange", "POST", "/requests/{request_id}/dispute", "exchange.request.dispute"),
        ("exchange", "POST", "/requests/{request_id}/dispute/ruling", "exchange.dispute.coordinate"),
        ("exchange", "POST", "/requests/{request_id}/dispute/escalation", "exchange.dispute.escalate"),
        ("exchange", "POST", "/requests/{request_id}/dispute/final-ruling", "exchange.dispute.final_ruling"),
        ("exchange", "GET", "/grants", "exchange.grant.read"),
        ("exchange", "POST", "/grants/{grant_id}/revoke", "exchange.grant.revoke"),
        ("notifier", "GET", "/inbox/{department_code}", "notifier.inbox.read"),
        ("notifier", "PUT", "/preferences/{department_code}", "notifier.preferences.manage"),
        ("auditor", "GET", "/trail", "auditor.trail.read"),
        ("auditor", "GET", "/trail/verify", "auditor.trail.read"),
        ("auditor", "GET", "/trail/proof", "auditor.trail.read"),
        ("auditor", "GET", "/trail/entries", "auditor.trail.entries.read"),
        ("auditor", "GET", "/trail/entries.csv", "auditor.trail.entries.read"),
        ("directory", "POST", "/machines", "directory.machine.manage"),
        ("directory", "POST", "/departments/{code}/data-administrator", "directory.data_administrator.appoint"),
    ],
)
def test_key_routes_obey_the_intended_rule(service: str, method: str, path: str, rule: str) -> None:
    assert declared_rules()[service, method, path] == rule


def test_a_resources_openapi_description_is_not_taken_for_a_resource_code() -> None:
    """/resources/<code>/openapi.json is matched before the catch-all /resources/<code>."""
    paths = [path for path, _ in routes("exchange")]
    assert paths.index("/resources/{resource_code:path}/openapi.json") < paths.index("/resources/{resource_code:path}")
