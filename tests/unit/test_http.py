"""The REST surface every service shares (common.http): bounded request values, one error body, the
OpenAPI description clients rely on, body limits, metrics labels, 503 for an unavailable database."""

import json
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from fastapi.testclient import TestClient
from pymongo import _csot
from pymongo.errors import ServerSelectionTimeoutError

from common.http import FAIL_FAST_SECONDS
from common.limits import MAX_INT64
from common.policy import Role
from tests.tokens import JWKS_JSON, bearer
from tests.unit.test_routes import SERVICES

IT_OFFICE = "11360800MB1234567X"
EVERY_ROLE = bearer(IT_OFFICE, *Role)
# Routes others are changing: their parameters are bounded by the server's request-line limit meanwhile.
UNBOUNDED_FOR_NOW = {("exchange", "/resources/{resource_code}/uploads")}


def app_of(service: str) -> Any:
    build, settings = SERVICES[service]
    app, runtime = build(settings())
    runtime.keys.use(json.loads(JWKS_JSON))
    return app


@pytest.fixture(scope="module")
def apps() -> dict[str, Any]:
    return {service: app_of(service) for service in SERVICES}


def unbounded(schema: dict, components: dict, where: str, seen: frozenset = frozenset()) -> list[str]:
    """Strings without maxLength and integers without both bounds, anywhere in a request schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return [] if name in seen else unbounded(components[name], components, where, seen | {name})
    found = []
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            found += unbounded(option, components, where, seen)
    kind = schema.get("type")
    if kind == "string" and not {"enum", "const", "format", "contentMediaType"} & set(schema):  # files: body limit
        found += [] if "maxLength" in schema else [f"{where}: string without maxLength"]
    if kind == "integer" and not ({"maximum", "exclusiveMaximum"} & set(schema) and {"minimum"} & set(schema)):
        found.append(f"{where}: integer without bounds")
    for name, prop in schema.get("properties", {}).items():
        found += unbounded(prop, components, f"{where}.{name}", seen)
    if "items" in schema:
        found += unbounded(schema["items"], components, f"{where}[]", seen)
    return found


def test_every_request_string_and_integer_is_bounded(apps) -> None:
    problems = []
    for service, app in apps.items():
        document = app.openapi()
        components = document.get("components", {}).get("schemas", {})
        for path, operations in document["paths"].items():
            if (service, path) in UNBOUNDED_FOR_NOW:
                continue
            for method, operation in operations.items():
                where = f"{service} {method.upper()} {path}"
                for parameter in operation.get("parameters", []):
                    problems += unbounded(parameter["schema"], components, f"{where} {parameter['name']}")
                for content in operation.get("requestBody", {}).get("content", {}).values():
                    problems += unbounded(content["schema"], components, f"{where} body")
    assert not problems, "\n".join(problems)


def test_every_operation_has_an_id_of_its_own(apps) -> None:
    """OpenAPI requires operation ids to be unique: clients generated from a document name methods by them."""
    for service, app in apps.items():
        ids = [
            operation["operationId"]
            for operations in app.openapi()["paths"].values()
            for operation in operations.values()
            if "operationId" in operation
        ]
        assert len(ids) == len(set(ids)), (service, sorted({i for i in ids if ids.count(i) > 1}))


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("exchange", f"/resources/101001/000001/changes?since={MAX_INT64 + 1}"),
        ("auditor", "/trail?after_sequence=99999999999999999999999"),
        ("catalog", f"/entries/101001/000001/versions/{MAX_INT64 + 1}"),
        ("catalog", f"/entries/101001/000001/diff?from=1&to={MAX_INT64 + 1}"),
        ("exchange", "/resources/101001/000001/records?bucket=65536"),
        ("catalog", f"/search?q={'企' * 201}"),
    ],
)
def test_out_of_range_parameters_are_422_naming_the_field(apps, service: str, path: str) -> None:
    response = TestClient(apps[service]).get(path, headers=EVERY_ROLE)
    body = response.json()
    assert response.status_code == 422, body
    assert body["error"] == "RequestValidationError" and body["field"].split(".")[0] in ("query", "path")
    assert set(body) == {"detail", "error", "field", "rule", "code", "message"}  # code and message added
    assert body["code"] == "request.invalid" and body["message"].startswith("请求内容不符合要求：")


def test_an_overlong_body_field_is_422_without_echoing_it(apps) -> None:
    name = "名" * 100_000
    entry = {"name": name, "provider_code": IT_OFFICE, "share_type": "CONDITIONAL"}
    response = TestClient(apps["catalog"]).post("/entries", json=entry, headers=EVERY_ROLE)
    assert response.status_code == 422
    assert response.json()["field"] == "body.name" and name[:50] not in response.text


def test_a_lone_surrogate_is_422_not_a_server_error(apps) -> None:
    body = b'{"name": "\\ud800", "provider_code": "x"}'
    client = TestClient(apps["catalog"], raise_server_exceptions=False)
    response = client.post("/entries", content=body, headers={**EVERY_ROLE, "Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["field"] == "body.name"


def test_bodies_over_the_limit_are_413_and_files_may_be_larger(apps) -> None:
    big = b"{" + b" " * (2 << 20) + b"}"
    catalog = TestClient(apps["catalog"])
    assert catalog.post("/entries", content=big, headers={"Content-Type": "application/json"}).status_code == 413
    exchange = TestClient(apps["exchange"])
    upload = "/resources/101001/000001/uploads"
    assert exchange.post(upload, files={"file": ("r.csv", b"x" * (2 << 20))}).status_code == 401  # read, then refused
    assert exchange.post(upload, files={"file": ("r.csv", b"x" * (65 << 20))}).status_code == 413


def test_openapi_declares_security_and_the_error_bodies_sent(apps) -> None:
    for service, app in apps.items():
        document = app.openapi()
        schemes = document["components"]["securitySchemes"]
        assert schemes["bearer"]["scheme"] == "bearer"
        assert set(schemes["directory"]["flows"]) == {"password", "clientCredentials"}
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                where = f"{service} {method} {path}"
                responses = operation["responses"]
                guarded = path not in ("/healthz", "/readyz", "/metrics", "/schemas", "/topics", "/token")
                guarded = guarded and not path.startswith(("/schemas/", "/.well-known"))
                assert bool(operation.get("security")) == guarded, where
                for status in ("401", "403") if guarded else ():
                    assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorView")
                if guarded:
                    unavailable = responses["503"]["content"]["application/json"]["schema"]["$ref"]
                    assert unavailable.endswith("/UnavailableView"), where
                if "422" in responses:
                    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorView")
        assert "HTTPValidationError" not in document["components"]["schemas"], service


def test_the_role_gate_logs_whom_it_refused(apps, caplog) -> None:
    compiler = bearer(IT_OFFICE, Role.CATALOG_COMPILER, subject="a-compiler")
    assert TestClient(apps["auditor"]).get("/trail", headers=compiler).status_code == 403
    refusal = next(r for r in caplog.records if r.getMessage().startswith("access denied"))
    assert (refusal.subject, refusal.department, refusal.rule) == ("a-compiler", IT_OFFICE, "auditor.trail.read")


def test_docs_are_counted_under_their_route_and_metrics_answer_head(apps) -> None:
    client = TestClient(apps["notifier"])
    assert client.get("/openapi.json").status_code == 200 and client.get("/docs").status_code == 200
    assert client.head("/metrics").status_code == 200
    counted = client.get("/metrics").text
    for route in ("/openapi.json", "/docs"):
        assert f'method="GET",route="{route}",status="200"' in counted
    assert 'method="HEAD",route="/metrics",status="200"' in counted


def probed_app() -> tuple[Any, Any]:
    """A service's app with routes that fail as a route can, or say how long the database may take."""
    app = app_of("notifier")

    async def broken() -> None:
        raise RuntimeError("a bug")

    async def database_away() -> None:
        raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")

    async def database_wait() -> dict[str, float | None]:
        return {"timeout": _csot.get_timeout()}

    for path, endpoint in [("/broken", broken), ("/database-away", database_away), ("/database-wait", database_wait)]:
        app.add_api_route(path, endpoint, include_in_schema=False)
    return app, app.state.runtime


def test_a_request_that_fails_unhandled_is_counted_as_the_500_it_gets() -> None:
    app, _ = probed_app()
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/broken").status_code == 500
    assert client.get("/healthz").status_code == 200
    counted = client.get("/metrics").text
    assert 'method="GET",route="/broken",status="500"' in counted
    assert 'method="GET",route="/healthz",status="200"' in counted
    assert 'datashare_http_request_seconds_count{method="GET",route="/broken"}' in counted


def test_an_unavailable_database_is_503_with_retry_after_and_then_waited_for_briefly() -> None:
    app, runtime = probed_app()
    client = TestClient(app)
    assert client.get("/database-wait").json() == {"timeout": None}  # the driver's own timeouts while it answers
    refused = client.get("/database-away")
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0
    assert refused.json()["dependency"] == "mongo" and refused.json()["error"] == "ServiceUnavailable"
    assert runtime.dependencies["mongo"].failing_since is not None
    assert client.get("/database-wait").json() == {"timeout": FAIL_FAST_SECONDS}
    runtime.dependencies["mongo"].succeeded()
    assert client.get("/database-wait").json() == {"timeout": None}


def test_a_broker_that_does_not_acknowledge_is_503_naming_kafka_and_the_database_is_not_failed() -> None:
    app, runtime = probed_app()

    async def broker_slow() -> None:
        raise KafkaTimeoutError("the access was not acknowledged within 3.0s")

    app.add_api_route("/broker-slow", broker_slow, include_in_schema=False)
    refused = TestClient(app).get("/broker-slow")
    assert refused.status_code == 503 and refused.json()["dependency"] == "kafka"
    assert runtime.dependencies["mongo"].failing_since is None


def test_a_token_signed_with_a_key_the_directory_retired_is_401() -> None:
    from datetime import UTC, datetime

    from common.auth import RetiredKey, TokenIssuer, generate_signing_key, jwks, load_signing_key
    from common.policy import Principal
    from tests.tokens import KEY

    build, settings = SERVICES["catalog"]
    app, runtime = build(settings())
    new = load_signing_key(generate_signing_key())
    runtime.keys.use(jwks(new, RetiredKey(KEY.public_key(), datetime(2026, 1, 1, tzinfo=UTC))))
    client = TestClient(app)
    refused = client.post("/entries", json={}, headers=EVERY_ROLE)  # signed now with the retired key
    assert refused.status_code == 401 and "retired key" in refused.text
    token = TokenIssuer(new, "jian-datashare", "jian-datashare").issue(Principal("t", IT_OFFICE, frozenset(Role)))[0]
    assert client.post("/entries", json={}, headers={"Authorization": f"Bearer {token}"}).status_code == 422
