"""The console with the services it shows, for integration and browser tests: the directory, catalog and
notifier as `make run` runs them, the console in front, a department with a compiler and a reviewer."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization

from common.policy import Role
from devstack.processes import Infra
from services.directory.demo_data import credit_code
from services.notifier.ports import RESOURCE_CHANGES, SUBSCRIBED
from tests.integration.conftest import ServiceProcess, skip_backlog
from tests.tokens import KEY, bearer

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Platform:
    directory: ServiceProcess
    catalog: ServiceProcess
    notifier: ServiceProcess
    console: ServiceProcess
    department: str
    logins: dict[str, str]  # login by name
    passwords: dict[str, str]  # password by name


@asynccontextmanager
async def console_platform(infra: Infra, folder: Path) -> AsyncIterator[Platform]:
    database = f"console_{uuid.uuid4().hex[:8]}"
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    directory = ServiceProcess(
        "directory", infra, folder, mongo_database=f"{database}_d", signing_key=pem, trusted_proxies="127.0.0.1"
    )
    catalog = ServiceProcess("catalog", infra, folder, mongo_database=f"{database}_c")
    notifier = ServiceProcess("notifier", infra, folder, mongo_database=f"{database}_n")
    urls = {f"{s.name}_url": s.url for s in (directory, catalog, notifier)}
    console = ServiceProcess("console", infra, folder, **urls)
    # the notifier hears only of this platform's events, not the backlog earlier tests left on the shared broker
    for group, topics in {"notifier": SUBSCRIBED, "notifier-changes": [RESOURCE_CHANGES]}.items():
        for topic in topics:
            await skip_backlog(infra, notifier.group_prefix + group, topic)
    running = [directory.start(), catalog.start(), notifier.start(), console.start()]
    try:
        for service in running:
            await service.wait_ready()
        department = credit_code("360800", 700000 + uuid.uuid4().int % 99999)
        operator = bearer(credit_code("360800", 9003), Role.IT_OFFICE_OPERATOR, subject="it-operator")
        logins, passwords = {}, {}
        async with httpx.AsyncClient(base_url=directory.url, headers=operator) as client:
            body = {"code": department, "name": "测试局", "level": "CITY"}
            assert (await client.post("/departments", json=body)).status_code == 201
            for name, role in (("t-compiler", Role.CATALOG_COMPILER), ("t-reviewer", Role.CATALOG_REVIEWER)):
                person = {
                    "person_id": f"{name}-{database}",
                    "name": name,
                    "department_code": department,
                    "roles": [role],
                }
                issued = await client.post("/people", json=person)
                assert issued.status_code == 201, issued.text
                logins[name], passwords[name] = issued.json()["login"], issued.json()["secret"]
        yield Platform(directory, catalog, notifier, console, department, logins, passwords)
    finally:
        for service in running:
            service.stop()


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, f"no CSRF token on {page.url}: {page.text[:300]}"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, login: str, password: str) -> None:
    page = await client.get("/login")
    signed = await client.post("/login", data={"username": login, "password": password, "csrf_token": csrf_of(page)})
    assert signed.status_code == 303 and signed.headers["location"] == "/", signed.text[-500:]
