"""The five running services as an outside client meets them: oversized values and bodies are refused,
never a server error; what their OpenAPI promises (security, error bodies) holds; and a schemathesis run
over every service's OpenAPI, with a valid token, finds no server error."""

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from common.logs import mask_identifiers
from common.policy import Role
from devstack.processes import start_infra, stop
from services.catalog.adapters import sheets
from services.catalog.domain import sheet
from services.directory.demo_data import credit_code
from tests.integration.conftest import ServiceProcess
from tests.tokens import KEY, bearer, token

NAMES = ("directory", "catalog", "exchange", "notifier", "auditor")
IT, A = credit_code("360800", 9201), credit_code("360800", 9202)
OPERATOR = bearer(IT, Role.IT_OFFICE_OPERATOR, subject="it-operator")
EVERY_ROLE = f"Bearer {token(IT, *Role, subject='fuzzer')}"
# Bounds of the schemathesis run: examples per operation, and seconds per service (five run in turn).
EXAMPLES, SECONDS, PHASES = 5, 12, "coverage,fuzzing"


@pytest.fixture(scope="module")
async def platform(tmp_path_factory):
    # A broker and database of its own: requests time out at 10 s, and the shared ones may still be busy
    # with what earlier tests left them.
    folder = tmp_path_factory.mktemp("surface")
    infra = start_infra(folder / "infra")
    database = f"surface_{uuid.uuid4().hex[:8]}"
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    running: dict[str, ServiceProcess] = {}
    try:
        for name in NAMES:
            extra = {"signing_key": pem} if name == "directory" else {}
            if running:  # each knows the directory's address, as under `make up`; the keys stay inline
                extra["auth_jwks_url"] = f"{running['directory'].url}/.well-known/jwks.json"
            service = ServiceProcess(name, infra, folder, mongo_database=f"{database}_{name}", **extra)
            if name == "directory":
                service.env["DIRECTORY_AUTH_JWKS_URL"] = f"{service.url}/.well-known/jwks.json"
            running[name] = service.start()
        for service in running.values():
            await service.wait_ready()
        async with httpx.AsyncClient(base_url=running["directory"].url, headers=OPERATOR) as client:
            for code, level in [(IT, "IT_OFFICE"), (A, "CITY")]:
                registered = await client.post("/departments", json={"code": code, "name": code, "level": level})
                assert registered.status_code == 201, registered.text
        yield running
    finally:
        for service in running.values():
            service.stop()
        stop(infra.procs)


async def test_values_out_of_range_are_422_not_server_errors(platform) -> None:
    admin, auditor = bearer(A, Role.DATA_ADMINISTRATOR), bearer(IT, Role.AUDITOR)
    compiler = bearer(A, Role.CATALOG_COMPILER)
    async with httpx.AsyncClient(timeout=30) as client:
        since = await client.get(
            f"{platform['exchange'].url}/resources/101001/000001/changes?since=9223372036854775808", headers=admin
        )
        after = await client.get(
            f"{platform['auditor'].url}/trail?after_sequence=99999999999999999999999", headers=auditor
        )
        entry = {"name": "名" * 100_000, "provider_code": A, "share_type": "CONDITIONAL"}
        long_name = await client.post(f"{platform['catalog'].url}/entries", json=entry, headers=compiler)
        row = ["101001/000001", "企业登记", A, "", "摘" * 140_000] + [""] * (len(sheet.COLUMNS) - 5)
        table = sheets.to_csv([sheet.COLUMNS, row])
        imported = await client.post(
            f"{platform['catalog'].url}/entries/import", files={"file": ("t.csv", table)}, headers=compiler
        )
    for response, field in [(since, "query.since"), (after, "query.after_sequence"), (long_name, "body.name")]:
        assert response.status_code == 422 and response.json()["field"] == field, response.text[:300]
    assert imported.status_code == 422 and "row 2" in imported.json()["detail"], imported.text[:300]


async def declared_body_answer(url: str, path: str, length: int, content_type: str) -> bytes:
    """Send only the headers of a request whose body would be `length` bytes, and read what comes back."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    writer.write(head.encode() + b"{")
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(4096), 10)
    finally:
        writer.close()


async def test_bodies_over_the_limit_are_refused_before_they_are_read(platform) -> None:
    # 30 MiB of JSON for a route with the default limit (1 MiB), 65 MiB for an upload route (64 MiB):
    # the answer comes while the body has not been sent.
    for service, path, size, kind in [
        ("catalog", "/entries", 30 << 20, "application/json"),
        ("directory", "/token", 30 << 20, "application/x-www-form-urlencoded"),
        ("exchange", "/resources/101001/000001/uploads", 65 << 20, "multipart/form-data; boundary=x"),
    ]:
        answer = await declared_body_answer(platform[service].url, path, size, kind)
        assert answer.startswith(b"HTTP/1.1 413"), (service, answer[:200])


async def test_token_answers_are_not_cached(platform) -> None:
    async with httpx.AsyncClient(base_url=platform["directory"].url, headers=OPERATOR) as client:
        person = {"person_id": "surface-person", "name": "甲", "department_code": A, "roles": ["catalog_compiler"]}
        issued = (await client.post("/people", json=person)).json()
        grant = await client.post(
            "/token", data={"grant_type": "password", "username": issued["login"], "password": issued["secret"]}
        )
    assert grant.status_code == 200 and grant.headers["cache-control"] == "no-store"


async def test_openapi_docs_and_metrics_as_clients_see_them(platform) -> None:
    for name, service in platform.items():
        async with httpx.AsyncClient(base_url=service.url) as client:
            document = (await client.get("/openapi.json")).json()
            assert (await client.get("/docs")).status_code == 200
            assert (await client.head("/metrics")).status_code == 200
            metrics = (await client.get("/metrics")).text
        assert set(document["components"]["securitySchemes"]) == {"bearer", "directory"}, name
        assert 'route="/openapi.json",status="200"' in metrics and 'route="/docs",status="200"' in metrics, name
        assert 'route="unmatched"' not in metrics, name
    async with httpx.AsyncClient(base_url=platform["catalog"].url) as client:
        refused = await client.post("/entries", json={"name": 1}, headers=bearer(A, Role.CATALOG_COMPILER))
    documented = document["components"]["schemas"]["ErrorView"]
    assert refused.status_code == 422 and set(refused.json()) <= set(documented["properties"])
    assert set(documented["required"]) <= set(refused.json())


async def test_every_openapi_signs_in_at_the_directorys_token_endpoint(platform) -> None:
    token_url = f"{platform['directory'].url}/token"
    for name, service in platform.items():
        async with httpx.AsyncClient(base_url=service.url) as client:
            document = (await client.get("/openapi.json")).json()
        flows = document["components"]["securitySchemes"]["directory"]["flows"]
        assert flows["password"]["tokenUrl"] == flows["clientCredentials"]["tokenUrl"] == token_url, name
        paths = document["paths"]
        for public in ("/healthz", "/readyz", "/metrics"):
            assert "security" not in paths[public]["get"], (name, public)
        assert paths["/schemas/{event_type}"]["get"].get("security") is None, name
    directory, catalog = (await _openapi(platform, "directory")), (await _openapi(platform, "catalog"))
    assert "security" not in directory["paths"]["/token"]["post"]
    assert "security" not in directory["paths"]["/.well-known/jwks.json"]["get"]
    assert directory["paths"]["/people"]["post"]["security"] == [{"bearer": []}, {"directory": []}]
    assert catalog["paths"]["/search"]["get"]["security"] == [{"bearer": []}, {"directory": []}]


async def _openapi(platform, name: str) -> dict:
    async with httpx.AsyncClient(base_url=platform[name].url) as client:
        return (await client.get("/openapi.json")).json()


# What Swagger UI on the catalog's /docs (under `make up`) asks before it posts the sign-in form.
DOCS_ORIGIN, OTHER_ORIGIN = "http://127.0.0.1:8001", "http://pages.example.org"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,x-requested-with",
}


async def test_the_token_endpoint_answers_cors_for_the_services_docs_only(platform) -> None:
    async with httpx.AsyncClient(base_url=platform["directory"].url) as client:
        allowed = await client.options("/token", headers={"Origin": DOCS_ORIGIN, **PREFLIGHT})
        other = await client.options("/token", headers={"Origin": OTHER_ORIGIN, **PREFLIGHT})
        refused_post = {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}
        posted = await client.post("/token", data=refused_post, headers={"Origin": DOCS_ORIGIN})
        posted_other = await client.post("/token", data=refused_post, headers={"Origin": OTHER_ORIGIN})
        elsewhere = await client.options("/departments", headers={"Origin": DOCS_ORIGIN, **PREFLIGHT})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == DOCS_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert {"authorization", "x-requested-with"} <= set(
        allowed.headers["access-control-allow-headers"].lower().split(", ")
    )
    assert "access-control-allow-credentials" not in allowed.headers  # bearer tokens, no cookies
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    assert posted.status_code == 401 and posted.headers["access-control-allow-origin"] == DOCS_ORIGIN
    assert "access-control-allow-origin" not in posted_other.headers
    assert "access-control-allow-origin" not in elsewhere.headers  # only the token endpoint is open to pages


async def test_client_credentials_as_http_basic_give_a_token_other_services_accept(platform) -> None:
    async with httpx.AsyncClient(base_url=platform["directory"].url, headers=OPERATOR) as client:
        issued = (await client.post("/machines", json={"department_code": A, "kind": "consumer_system"})).json()
    client_id, secret = issued["login"], issued["secret"]
    basic = httpx.BasicAuth(client_id, secret)
    async with httpx.AsyncClient(base_url=platform["directory"].url, headers={"Origin": DOCS_ORIGIN}) as client:
        # as Swagger UI sends it: Basic, the grant and an empty scope in the form
        granted = await client.post("/token", data={"grant_type": "client_credentials", "scope": ""}, auth=basic)
        wrong_basic = await client.post(
            "/token", data={"grant_type": "client_credentials"}, auth=httpx.BasicAuth(client_id, secret + "x")
        )
        wrong_form = await client.post(
            "/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret + "x"}
        )
        both = await client.post(
            "/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
            auth=basic,
        )
        garbled = await client.post(
            "/token", data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic not-base64!"}
        )
    assert granted.status_code == 200, granted.text
    assert (
        granted.headers["cache-control"] == "no-store" and granted.headers["access-control-allow-origin"] == DOCS_ORIGIN
    )
    async with httpx.AsyncClient(base_url=platform["catalog"].url) as client:
        searched = await client.get("/search", headers={"Authorization": f"Bearer {granted.json()['access_token']}"})
        anonymous = await client.get("/search")
    assert searched.status_code == 200 and anonymous.status_code == 401
    assert wrong_basic.status_code == wrong_form.status_code == 401
    assert (
        wrong_basic.json() == wrong_form.json() == {"detail": "invalid client credentials", "error": "Unauthenticated"}
    )
    assert both.status_code == 401 and "once" in both.json()["detail"]
    assert garbled.status_code == 401 and garbled.json()["detail"] == "malformed Basic credentials"
    logged = platform["directory"].log.read_text()
    assert secret not in logged and secret + "x" not in logged


async def test_a_wrong_basic_secret_is_throttled_like_a_wrong_form_secret(platform) -> None:
    async with httpx.AsyncClient(base_url=platform["directory"].url, headers=OPERATOR) as client:
        issued = (await client.post("/machines", json={"department_code": A, "kind": "adapter"})).json()
    wrong = httpx.BasicAuth(issued["login"], "not-the-secret")
    async with httpx.AsyncClient(base_url=platform["directory"].url) as client:
        answers = [await client.post("/token", data={"grant_type": "client_credentials"}, auth=wrong) for _ in range(7)]
        right = await client.post(
            "/token", data={"grant_type": "client_credentials"}, auth=httpx.BasicAuth(issued["login"], issued["secret"])
        )
    statuses = [a.status_code for a in answers]
    assert statuses == [401] * 5 + [429] * 2, statuses
    assert right.status_code == 429 and int(right.headers["retry-after"]) >= 1  # the right secret waits too


async def test_the_password_flow_as_swagger_ui_sends_it(platform) -> None:
    async with httpx.AsyncClient(base_url=platform["directory"].url, headers=OPERATOR) as client:
        person = {"person_id": "swagger-person", "name": "乙", "department_code": A, "roles": ["catalog_compiler"]}
        issued = (await client.post("/people", json=person)).json()
    form = {"grant_type": "password", "username": issued["login"], "password": issued["secret"], "scope": ""}
    async with httpx.AsyncClient(base_url=platform["directory"].url) as client:
        # Swagger UI's default for the password flow: an empty client in a Basic header
        granted = await client.post("/token", data=form, headers={"Origin": DOCS_ORIGIN, "Authorization": "Basic Og=="})
    assert granted.status_code == 200 and granted.json()["refresh_token"], granted.text


async def test_refusals_at_the_role_gate_log_who_was_refused(platform) -> None:
    async with httpx.AsyncClient(base_url=platform["auditor"].url) as client:
        refused = await client.get("/trail", headers=bearer(A, Role.CATALOG_COMPILER, subject="nosy-compiler"))
    assert refused.status_code == 403
    await asyncio.sleep(0.2)
    lines = [json.loads(line) for line in platform["auditor"].log.read_text().splitlines() if line.startswith("{")]
    denied = [e for e in lines if e["message"].startswith("access denied")]
    assert denied and denied[-1]["subject"] == "nosy-compiler" and denied[-1]["department"] == mask_identifiers(A)


@pytest.mark.parametrize("name", NAMES)
def test_schemathesis_finds_no_server_error(platform, name: str, tmp_path: Path) -> None:
    service = platform[name]
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{service.url}/openapi.json"),
        *("--checks", "not_a_server_error", "--max-examples", str(EXAMPLES), "--max-time", str(SECONDS)),
        *("--seed", "20261"),
        *("--phases", PHASES, "--generation-database", "none", "--no-color"),
        *("--request-timeout", "10", "--header", f"Authorization: {EVERY_ROLE}"),
        *("--exclude-path", "/metrics", "--report", "junit", "--report-dir", str(tmp_path)),
    ]
    hung = SECONDS + 120  # only against a hang: a loaded machine takes long to start schemathesis and load the spec
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=hung, cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"schemathesis over {name} took over {hung}s: {str(exc.stdout)[-3000:]}")
    assert run.returncode == 0, f"{name}: {run.stdout[-6000:]}\n{run.stderr[-2000:]}"
