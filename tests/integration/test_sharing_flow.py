"""Sharing end to end, through public interfaces only: the directory issues the consumer system, the catalog
publishes the entries, the provider's adapter syncs its data, the sharing lifecycle grants, and the consumer
system reads through the API channel exactly what its grant opens — until the grant is revoked or the
catalog tightens. Every call is a DataAccessed event; the auditor counts only served ones."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from datashare_adapter import Adapter, PlatformConfig
from datashare_adapter.identifiers import credit_code_check_character
from datashare_adapter.signing import public_pem

from common.codec import EventCodec
from common.policy import Role
from devstack.processes import ROOT, free_port
from services.directory.demo_data import credit_code
from services.exchange.sharing.grants import MASK
from tests.adapter_keys import adapter_key, key_file
from tests.integration.conftest import ServiceProcess, read_topic
from tests.tokens import KEY, bearer

MARKET, APPROVAL = credit_code("360800", 8101), credit_code("360800", 8102)
IT = credit_code("360800", 8103)
OPERATOR = bearer(IT, Role.IT_OFFICE_OPERATOR, subject="it-operator")
AUDITOR = bearer(IT, Role.AUDITOR, subject="it-auditor")
COMPILER = bearer(MARKET, Role.CATALOG_COMPILER, subject="market-compiler")
REVIEWER = bearer(MARKET, Role.CATALOG_REVIEWER, subject="market-reviewer")
MARKET_ADMIN = bearer(MARKET, Role.DATA_ADMINISTRATOR, subject="market-admin")
APPROVAL_ADMIN = bearer(APPROVAL, Role.DATA_ADMINISTRATOR, subject="approval-admin")
REVIEW = {"reviewed_by": "market-admin", "reviewed_on": "2026-11-01", "conclusion": "不涉密"}
CODE, NAME, LEGAL, PHONE, CAPITAL = "统一社会信用代码", "企业名称", "法定代表人", "联系电话", "注册资本"
NAMES = {
    "resource_code": None,
    "abstract": "企业登记信息",
    "category": "BASE",
    "format": "数据库",
    "update_cycle": "DAILY",
    "confidentiality_review": REVIEW,
}
OPEN_ITEMS = [{"name": CODE, "type": "string", "length": 18}, {"name": NAME, "type": "string", "length": 100}]
REGISTER_ITEMS = [
    *OPEN_ITEMS,
    {"name": LEGAL, "type": "string", "length": 50, "sensitive": True},
    {"name": PHONE, "type": "string", "length": 20, "sensitive": True},
    {"name": CAPITAL, "type": "decimal"},
]
PURPOSE = "企业开办审批核验"


def enterprise(district: str, n: int) -> str:
    body = f"91{district}MA{n:07d}"
    return body + credit_code_check_character(body)


HERE, THERE, ABSENT = enterprise("360802", 1), enterprise("360803", 2), enterprise("360802", 3)  # 吉州区, 青原区


async def until(probe: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def ok(response: Awaitable[httpx.Response], status: int = 200) -> dict:
    answer = await response
    assert answer.status_code == status, answer.text
    return answer.json()


async def published(catalog: httpx.AsyncClient, name: str, share_type: str, items: list[dict], **more: Any) -> str:
    """An entry compiled, submitted and approved through the catalog's REST API."""
    content = NAMES | {"name": name, "share_type": share_type, "share_methods": ["API"], "data_items": items}
    content |= {"provider_code": MARKET, "classification": "101001"} | more
    content.pop("resource_code")
    drafted = await ok(catalog.post("/entries", json=content, headers=COMPILER), 201)
    return await approved(catalog, drafted["resource_code"], drafted["revision"])


async def approved(catalog: httpx.AsyncClient, code: str, revision: int) -> str:
    submitted = await ok(catalog.post(f"/entries/{code}/submit", json={"revision": revision}, headers=COMPILER))
    await ok(catalog.post(f"/entries/{code}/approve", json={"revision": submitted["revision"]}, headers=REVIEWER))
    return code


def directory_process(infra, tmp_path: Path) -> ServiceProcess:
    """The directory signs with the key the other services' test JWKS trusts: its tokens and the test's
    people's tokens verify alike."""
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return ServiceProcess("directory", infra, tmp_path, mongo_database="flow_directory", signing_key=pem)


def stream_worker(infra, tmp_path: Path, database: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "AUDITOR_KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap,
        "AUDITOR_MONGO_URI": infra.mongo_uri,
        "AUDITOR_MONGO_DATABASE": database,
        "AUDITOR_STREAM_WEB_PORT": str(free_port()),
    }
    with open(tmp_path / "auditor-stream.log", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.auditor.stream"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture
def services() -> Iterator[list[ServiceProcess]]:
    """The services a test starts, stopped afterwards (on the test's own broker: no session one)."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        service.stop()


async def test_a_consumer_system_reads_what_the_lifecycle_granted_until_it_ends(own_infra, services, tmp_path) -> None:
    infra = own_infra  # the flow's accesses and share events are the only ones on its topics
    directory = directory_process(infra, tmp_path).start()
    catalog = ServiceProcess("catalog", infra, tmp_path, mongo_database="flow_catalog").start()
    exchange = ServiceProcess("exchange", infra, tmp_path, mongo_database="flow_exchange").start()
    auditor = ServiceProcess("auditor", infra, tmp_path, mongo_database="flow_auditor").start()
    services.extend([directory, catalog, exchange, auditor])
    worker = stream_worker(infra, tmp_path, "flow_auditor")
    try:
        for service in (directory, catalog, exchange, auditor):
            await service.wait_ready()
        await _flow(infra, directory, catalog, exchange, auditor, tmp_path)
    finally:
        worker.terminate()
        worker.wait(15)


async def _flow(infra, directory, catalog_service, exchange, auditor, tmp_path: Path) -> None:
    # the directory: both departments, the market regulator's adapter (and its key), the bureau's system
    async with httpx.AsyncClient(base_url=directory.url, headers=OPERATOR) as client:
        for code, name in [(MARKET, "吉安市市场监督管理局"), (APPROVAL, "吉安市行政审批局")]:
            await ok(client.post("/departments", json={"code": code, "name": name, "level": "CITY"}), 201)
        adapter = await ok(client.post("/machines", json={"department_code": MARKET, "kind": "adapter"}), 201)
        system = await ok(client.post("/machines", json={"department_code": APPROVAL, "kind": "consumer_system"}), 201)
        key = {"public_key": public_pem(adapter_key(adapter["login"]).public_key())}
        await ok(client.post(f"/machines/{adapter['login']}/keys", json=key), 201)
        credentials = {"client_id": system["login"], "client_secret": system["secret"]}
        signed_in = await ok(client.post("/token", data={"grant_type": "client_credentials"} | credentials))
    consumer_system = system["login"]  # the machine identity's subject, as its tokens carry it
    as_system = {"Authorization": f"Bearer {signed_in['access_token']}"}

    # the catalog: an unconditional entry and a conditional one with sensitive items, both shared by API
    async with httpx.AsyncClient(base_url=catalog_service.url) as catalog:
        open_code = await published(catalog, "企业名称公示信息", "UNCONDITIONAL", OPEN_ITEMS)
        register = await published(
            catalog, "企业登记基本信息", "CONDITIONAL", REGISTER_ITEMS, share_conditions="用于行政审批"
        )
        for code in (open_code, register):
            await exchange.wait_status(f"/resources/{code}", 200, timeout=30, headers=MARKET_ADMIN)

        # the provider's adapter syncs its data, signed with the key its department registered
        config = PlatformConfig(
            directory.url, exchange.url, infra.bootstrap, adapter["login"], adapter["secret"], MARKET,
            signing_key_file=str(key_file(adapter["login"], tmp_path)),
        )  # fmt: skip
        rows = {HERE: ("吉安甲公司", "张三", "13800000001"), THERE: ("吉安乙公司", "李四", "13800000002")}
        async with Adapter(config) as kit:
            for key_, (name, legal, phone) in rows.items():
                await kit.upsert(open_code, key_, {CODE: key_, NAME: name}, 1)
                fields = {CODE: key_, NAME: name, LEGAL: legal, PHONE: phone, CAPITAL: 500.0}
                await kit.upsert(register, key_, fields, 1)
        async with httpx.AsyncClient(base_url=exchange.url, headers=MARKET_ADMIN) as provider:
            for code in (open_code, register):
                assert await until(lambda c=code: _status(provider, f"/resources/{c}/records/{THERE}", {}, 200))

        async with httpx.AsyncClient(base_url=exchange.url) as client:
            await _unconditional(client, open_code, consumer_system, as_system)
            grant = await _conditional(client, register, consumer_system, as_system)
            await _revoked(client, register, grant, as_system)
            await _tightened(client, catalog, open_code, as_system)

    await _trail(infra, auditor, register, consumer_system)


async def _unconditional(client: httpx.AsyncClient, code: str, consumer_system: str, as_system: dict) -> None:
    """A subscription is a grant at once; the consumer system queries under it."""
    subscription = {
        "resource_code": code,
        "purpose": "企业名称核验",
        "channels": ["API"],
        "consumer_system": consumer_system,
        "valid_to": "2027-12-31",
    }
    grant = await ok(client.post("/subscriptions", json=subscription, headers=APPROVAL_ADMIN), 201)
    assert grant["items"] == [CODE, NAME] and grant["consumer_system"] == consumer_system
    calling = as_system | {"X-Grant-Id": grant["grant_id"], "X-Purpose": quote("企业名称核验")}
    one = await ok(client.get(f"/services/{code}/records/{THERE}", headers=calling))
    assert one["fields"] == {CODE: THERE, NAME: "吉安乙公司"}  # unconditional: every subject, every item


async def _conditional(client: httpx.AsyncClient, code: str, consumer_system: str, as_system: dict) -> str:
    """An application narrowed by the provider's data administrator: the consumer system reads exactly the
    granted items and rows, in single, batch and feed reads alike."""
    application = {
        "resource_code": code,
        "items": [CODE, NAME, LEGAL, PHONE, CAPITAL],
        "regions": ["3608"],
        "purpose": PURPOSE,
        "channels": ["API"],
        "consumer_system": consumer_system,
        "valid_to": "2027-12-31",
        "unmasked": [LEGAL],
    }
    request = await ok(client.post("/requests", json=application, headers=APPROVAL_ADMIN), 201)
    assert request["status"] == "PENDING", request
    decision = {
        "decision": "APPROVED",
        "reasons": "审批核验仅需本区企业的名称与法定代表人",
        "items": [CODE, NAME, LEGAL, PHONE],
        "regions": ["360802"],
        "unmasked": [LEGAL],
    }
    decided = await ok(client.post(f"/requests/{request['request_id']}/decision", json=decision, headers=MARKET_ADMIN))
    grant_id = decided["grant_id"]
    grants = await ok(client.get("/grants", params={"as": "consumer"}, headers=as_system))
    assert grant_id in {g["grant_id"] for g in grants}

    calling = as_system | {"X-Grant-Id": grant_id, "X-Purpose": quote(PURPOSE)}
    base = f"/services/{code}"
    one = await ok(client.get(f"{base}/records/{HERE}", headers=calling))
    assert one["fields"] == {CODE: HERE, NAME: "吉安甲公司", LEGAL: "张三", PHONE: MASK}
    outside = await client.get(f"{base}/records/{THERE}", headers=calling)
    absent = await client.get(f"{base}/records/{ABSENT}", headers=calling)
    assert outside.status_code == absent.status_code == 404 and outside.json() == absent.json()
    assert "吉安乙公司" not in outside.text

    batch = await ok(client.post(f"{base}/records", json={"subject_keys": [HERE, THERE, ABSENT]}, headers=calling))
    assert [(r["subject_key"], r["fields"]) for r in batch["records"]] == [(HERE, one["fields"])]
    assert batch["not_found"] == [THERE, ABSENT]
    feed = await ok(client.get(f"{base}/changes", params={"since": 0}, headers=calling))
    assert [(c["subject_key"], c["fields"]) for c in feed["changes"]] == [(HERE, one["fields"])]
    assert feed["last_sequence"] >= 2  # THERE's change was passed over, not served

    wider = await client.get(f"{base}/records/{HERE}", params={"items": [CAPITAL]}, headers=calling)
    assert wider.status_code == 403 and CAPITAL in wider.json()["detail"]
    return grant_id


async def _revoked(client: httpx.AsyncClient, code: str, grant_id: str, as_system: dict) -> None:
    calling = as_system | {"X-Grant-Id": grant_id, "X-Purpose": quote(PURPOSE)}
    await ok(client.post(f"/grants/{grant_id}/revoke", json={"reason": "审批事项已办结"}, headers=MARKET_ADMIN))
    started = time.monotonic()
    assert await until(lambda: _status(client, f"/services/{code}/records/{HERE}", calling, 403), timeout=5)
    assert time.monotonic() - started < 3
    refused = await client.get(f"/services/{code}/records/{HERE}", headers=calling)
    assert "revoked: 审批事项已办结" in refused.json()["detail"] and "吉安甲公司" not in refused.text


async def _tightened(client: httpx.AsyncClient, catalog: httpx.AsyncClient, code: str, as_system: dict) -> None:
    """A new catalog version makes a granted item not shared: the subscription ends, its calls are refused."""
    [grant] = [
        g
        for g in await ok(client.get("/grants", params={"status": "ACTIVE"}, headers=APPROVAL_ADMIN))
        if g["resource_code"] == code
    ]
    entry = await ok(catalog.get(f"/entries/{code}", headers=COMPILER))
    stricter = [OPEN_ITEMS[0], OPEN_ITEMS[1] | {"share_type": "NOT_SHARED"}]
    content = NAMES | {
        "name": "企业名称公示信息",
        "share_type": "UNCONDITIONAL",
        "share_methods": ["API"],
        "data_items": stricter,
        "not_shared_basis": "《企业信息公示暂行条例》第十四条",
        "revision": entry["revision"],
    }
    content.pop("resource_code")
    edited = await ok(catalog.put(f"/entries/{code}/draft", json=content, headers=COMPILER))
    await approved(catalog, code, edited["revision"])

    async def ended() -> dict | None:
        found = await ok(client.get(f"/grants/{grant['grant_id']}", headers=APPROVAL_ADMIN))
        return found if found["status"] == "ENDED" else None

    found = await until(ended)
    assert found and NAME in found["ended_reason"] and "NOT_SHARED" in found["ended_reason"]
    calling = as_system | {"X-Grant-Id": grant["grant_id"], "X-Purpose": quote("企业名称核验")}
    refused = await client.get(f"/services/{code}/records/{HERE}", headers=calling)
    assert refused.status_code == 403 and "ended" in refused.json()["detail"], refused.text


async def _trail(infra, auditor: ServiceProcess, register: str, consumer_system: str) -> None:
    """Every call is a DataAccessed event; the auditor counts the served ones as the bureau's use."""
    records = await read_topic(infra.bootstrap, "exchange.data-accesses", 10**6, timeout=5)
    codec = EventCodec.from_folder()
    events = [codec.decode(r.value)[1] for r in records]
    assert all(HERE.encode() not in r.value and THERE.encode() not in r.value for r in records)
    mine = [e for e in events if e["resource_code"] == register]
    results = [(e["operation"], e["result"]) for e in mine]
    assert results[:6] == [
        ("record", "SERVED"),
        ("record", "NOT_FOUND"),  # out of scope
        ("record", "NOT_FOUND"),  # absent: the same
        ("batch", "SERVED"),
        ("changes", "SERVED"),
        ("record", "REFUSED"),  # an item outside the grant
    ]
    after = [result for _, result in results[6:]]  # polling after the revocation: served until it is seen
    assert after[-1] == "REFUSED" and after == sorted(after, key=lambda r: r == "REFUSED")
    served = mine[0]
    assert (served["consumer_code"], served["accessed_by"], served["accessor_kind"]) == (
        APPROVAL,
        consumer_system,
        "machine",
    )
    assert served["purpose"] == PURPOSE and served["items"] == [CODE, NAME, LEGAL, PHONE]
    assert served["record_count"] == 1 and len(served["subject_hashes"]) == 1
    assert mine[3]["record_count"] == 1 and mine[3]["subjects_requested"] == 3
    assert "revoked" in (mine[-1]["reason"] or "")
    used = sum(1 for e in events if e["consumer_code"] == APPROVAL and e["result"] == "SERVED")
    # the subscription's read; the register's single, batch and feed reads, and those before the revocation showed
    assert used == 4 + after.count("SERVED")

    async with httpx.AsyncClient(base_url=auditor.url, headers=AUDITOR) as client:

        async def counted() -> bool:
            return (await ok(client.get("/evaluation/data-accesses"))).get(APPROVAL) == used

        assert await until(counted, timeout=60), (await client.get("/evaluation/data-accesses")).text


async def _status(client: httpx.AsyncClient, path: str, headers: dict, status: int) -> bool:
    return (await client.get(path, headers=headers)).status_code == status
