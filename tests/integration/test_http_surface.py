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
            running[name] = ServiceProcess(name, infra, folder, mongo_database=f"{database}_{name}", **extra).start()
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
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS * 3, cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"schemathesis over {name} took over {SECONDS * 3}s: {str(exc.stdout)[-3000:]}")
    assert run.returncode == 0, f"{name}: {run.stdout[-6000:]}\n{run.stderr[-2000:]}"
