"""A department hosts an interface service of its own (Art. 16); the center proxies a consumer's calls to it
under the consumer's grant. A small fake department service runs on loopback in the test (uvicorn, a free
port) and records what reaches it: only granted items come back, no consumer credential goes out, a path
the OpenAPI does not describe is never called, and a service that is down or slow is answered 502 or 504 —
each call read back as a DataAccessed event."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn

from common.codec import EventCodec
from common.mongo import connect
from common.policy import MachineKind, Role
from devstack.processes import free_port
from devstack.samples import catalog_published
from services.exchange.sharing.adapters.hosted_mongo import HOSTED
from services.exchange.sharing.grants import MASK
from tests.integration.conftest import read_topic, settings_for
from tests.integration.test_api_channel import APPROVAL, ITEMS, enterprise
from tests.integration.test_exchange import PROVIDER, exchange_knowing, until
from tests.tokens import bearer

PURPOSE = "企业开办审批核验"
HERE, THERE, ALSO_HERE = enterprise("360821", 11), enterprise("360822", 12), enterprise("360821", 14)
ROWS = {
    HERE: {
        "uscc": HERE,
        "name": "吉安甲公司",
        "legal": "张三",
        "phone": "13800000000",
        "capital": 100.0,
        "address": "吉安市某路1号",  # a field the mapping does not name: never passed on
    },
    THERE: {"uscc": THERE, "name": "吉安乙公司", "legal": "李四", "phone": "13900000000", "capital": 200.0},
}
FIELDS = {
    "uscc": "统一社会信用代码", "name": "企业名称", "legal": "法定代表人", "phone": "联系电话", "capital": "注册资本"
}  # fmt: skip
OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "企业登记查询服务", "version": "1.0"},
    "paths": {
        "/enterprises": {"get": {"summary": "企业列表", "responses": {"200": {"description": "ok"}}}},
        "/enterprises/{uscc}": {"get": {"summary": "一个企业", "responses": {"200": {"description": "ok"}}}},
        "/slow": {"get": {"responses": {"200": {"description": "ok"}}}},
        "/broken": {"get": {"responses": {"200": {"description": "ok"}}}},
        "/crowd": {"get": {"responses": {"200": {"description": "ok"}}}},
    },
}
DEPARTMENT_KEY = "dept-api-key-" + uuid.uuid4().hex
MARKET_ADMIN = bearer(PROVIDER, Role.DATA_ADMINISTRATOR, subject="market-admin")
APPROVAL_ADMIN = bearer(APPROVAL, Role.DATA_ADMINISTRATOR, subject="approval-admin")
SYSTEM = bearer(APPROVAL, subject="approval-system", machine=MachineKind.CONSUMER_SYSTEM)


class Department:
    """The department's own service: answers from its rows and records every request that reaches it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.query: list[str] = []
        self.raw: list[bytes] = []  # the paths as sent, before decoding

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].removeprefix("/api")
        self.query.append(scope["query_string"].decode())
        self.raw.append(scope["raw_path"])
        self.seen.append((scope["method"], path, {k.decode().lower(): v.decode() for k, v in scope["headers"]}))
        status, body = 200, None
        if path == "/enterprises":
            nameless = {"name": "无代码企业", "legal": "王五"}  # no key field: its subject cannot be told
            body = {"total": len(ROWS) + 1, "items": [*ROWS.values(), nameless], "page": 1}
        elif path.startswith("/enterprises/"):
            row = ROWS.get(path.rsplit("/", 1)[1])
            status, body = (200, row) if row else (404, {"error": "no such enterprise"})
        elif path == "/slow":
            await asyncio.sleep(3)
            body = {"late": True}
        elif path == "/crowd":  # more subjects than one answer may carry (the test's setting: 1)
            body = {"items": [ROWS[HERE], ROWS[HERE] | {"uscc": ALSO_HERE}]}
        elif path == "/broken":
            status, body = 500, {"error": "database down"}
        else:
            status, body = 404, {"error": "no such path"}
        data = json.dumps(body, ensure_ascii=False).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


@asynccontextmanager
async def running(app: Department) -> AsyncIterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = server.force_exit = True
        await task


async def granted(client: httpx.AsyncClient, code: str) -> str:
    """A grant made as the sharing lifecycle makes it: the consumer applies, the provider approves."""
    application = {
        "resource_code": code,
        "items": ["统一社会信用代码", "企业名称", "法定代表人"],
        "regions": ["360821"],
        "purpose": PURPOSE,
        "channels": ["API"],
        "consumer_system": "approval-system",
        "valid_to": (date.today() + timedelta(days=30)).isoformat(),
    }
    filed = await client.post("/requests", json=application, headers=APPROVAL_ADMIN)
    assert filed.status_code == 201, filed.text
    decision = {"decision": "APPROVED", "reasons": "审批核验所需"}
    decided = await client.post(f"/requests/{filed.json()['request_id']}/decision", json=decision, headers=MARKET_ADMIN)
    assert decided.status_code == 200, decided.text
    return decided.json()["grant_id"]


async def test_a_department_hosted_service_behind_the_center(infra, topics, services, tmp_path: Path) -> None:
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    entry = catalog_published(code, PROVIDER, ITEMS)
    entry.payload["confidentiality_reviewed_on"] = date(2026, 1, 5)
    entry.payload["data_items"] = [
        stated | {"sensitive": item.get("sensitive", False)}
        for stated, item in zip(entry.payload["data_items"], ITEMS, strict=True)
    ]
    exchange = await exchange_knowing(
        infra, services, tmp_path, entry,
        hosted_timeout_seconds="1", hosted_max_request_bytes="1000", hosted_max_subjects="1",
    )  # fmt: skip
    department = Department()
    async with running(department) as port, httpx.AsyncClient(base_url=exchange.url) as client:
        grant_id = await granted(client, code)
        registration = {
            "resource_code": code,
            "base_url": f"http://127.0.0.1:{port}/api",
            "openapi": OPENAPI,
            "fields": FIELDS,
            "envelope": ["total", "items", "page"],
            "credential": {"header": "X-Api-Key", "value": DEPARTMENT_KEY},
        }
        # only the provider's data administrator registers it; a document that is not OpenAPI 3 is refused
        foreign = await client.post("/hosted-services", json=registration, headers=APPROVAL_ADMIN)
        assert foreign.status_code == 403 and foreign.json()["rule"] == "exchange.hosted.manage"
        swagger = registration | {"openapi": {"swagger": "2.0", "info": {}, "paths": {}}}
        not_openapi = await client.post("/hosted-services", json=swagger, headers=MARKET_ADMIN)
        assert not_openapi.status_code == 422 and "OpenAPI 3" in not_openapi.json()["detail"]
        unknown_item = registration | {"fields": {"x": "年产值"}}
        assert (await client.post("/hosted-services", json=unknown_item, headers=MARKET_ADMIN)).status_code == 422
        keyless = registration | {"fields": {k: v for k, v in FIELDS.items() if k != "uscc"}}
        no_key = await client.post("/hosted-services", json=keyless, headers=MARKET_ADMIN)
        assert no_key.status_code == 422 and "key item" in no_key.json()["detail"], no_key.text
        created = await client.post("/hosted-services", json=registration, headers=MARKET_ADMIN)
        assert created.status_code == 201, created.text
        service = created.json()
        assert service["operations"] == [
            "GET /enterprises", "GET /enterprises/{uscc}", "GET /slow", "GET /broken", "GET /crowd"
        ]  # fmt: skip
        again = await client.post("/hosted-services", json=registration, headers=MARKET_ADMIN)
        assert again.status_code == 409
        # consumers see it and its description, which points at the center, not at the department
        listed = (await client.get("/hosted-services", headers=SYSTEM)).json()
        mine = next(s for s in listed if s["service_id"] == service["service_id"])
        assert mine["base_url"] is None and mine["proxy"] == f"/hosted/{code}/-"
        described = (await client.get(f"/hosted-services/{service['service_id']}/openapi.json", headers=SYSTEM)).json()
        assert described["servers"][0]["url"] == f"/hosted/{code}/-" and "/enterprises" in described["paths"]

        base = f"/hosted/{code}/-"
        calling = SYSTEM | {"X-Grant-Id": grant_id, "X-Purpose": quote(PURPOSE), "Cookie": "session=consumer-cookie"}
        # the list: the row outside the grant's regions left out, items outside the grant removed, the
        # sensitive item the grant does not name in clear masked, fields the mapping does not name and the row
        # without a key field dropped, the envelope kept but for its numbers (a count tells of other rows)
        listing = await client.get(f"{base}/enterprises", headers=calling, params={"page": "1"})
        assert listing.status_code == 200, listing.text
        assert listing.json() == {"items": [{"uscc": HERE, "name": "吉安甲公司", "legal": MASK}]}
        one = await client.get(f"{base}/enterprises/{HERE}", headers=calling)
        assert one.status_code == 200 and one.json() == {"uscc": HERE, "name": "吉安甲公司", "legal": MASK}
        # a subject outside the grant's rows is answered exactly as one the department does not hold
        outside = await client.get(f"{base}/enterprises/{THERE}", headers=calling)
        absent = await client.get(f"{base}/enterprises/{enterprise('360821', 13)}", headers=calling)
        assert outside.status_code == absent.status_code == 404 and outside.json() == absent.json()
        assert "吉安乙公司" not in outside.text
        # a parameter with an encoded `?` stays one parameter: no query slipped into the department's URL
        await client.get(f"{base}/enterprises/x%3Fadmin=1", headers=calling)
        # the path sent is the template's, each parameter encoded whole: a trailing `/` is not sent either
        trailing = await client.get(f"{base}/enterprises/{HERE}/", headers=calling)
        assert trailing.status_code == 200 and department.raw[-1] == f"/api/enterprises/{HERE}".encode()
        # what reached the department: the center's credential and who calls, none of the consumer's credentials
        method, path, headers = department.seen[0]
        assert (method, path, department.query[0]) == ("GET", "/enterprises", "page=1")
        assert headers["x-api-key"] == DEPARTMENT_KEY and headers["x-datashare-consumer"] == APPROVAL
        assert headers["x-datashare-grant"] == grant_id
        for _, _, sent in department.seen:
            assert "authorization" not in sent and "cookie" not in sent and "x-grant-id" not in sent
        assert ("GET", "/enterprises/x?admin=1") == department.seen[-2][:2]  # the decoded path, no query
        assert department.raw[-2] == b"/api/enterprises/x%3Fadmin%3D1" and department.query[-2] == ""
        reached = len(department.seen)

        # refusals, none of which reaches the department
        no_grant = await client.get(f"{base}/enterprises", headers=calling | {"X-Grant-Id": ""})
        assert no_grant.status_code == 403 and "names no grant" in no_grant.json()["detail"]
        wrong_purpose = await client.get(f"{base}/enterprises", headers=calling | {"X-Purpose": quote("别的用途")})
        assert wrong_purpose.status_code == 403 and "purpose is not the grant's" in wrong_purpose.json()["detail"]
        provider_person = await client.get(f"{base}/enterprises", headers=MARKET_ADMIN | {"X-Grant-Id": grant_id})
        assert provider_person.status_code == 403
        undescribed = await client.get(f"{base}/admin/users", headers=calling)
        assert undescribed.status_code == 404 and "not an operation" in undescribed.json()["detail"]
        wrong_method = await client.post(f"{base}/enterprises", headers=calling, json={})
        assert wrong_method.status_code == 404
        dotted = await client.get(f"{base}/enterprises/..;", headers=calling)  # `..` to Tomcat and Spring
        assert dotted.status_code == 404 and "not an operation" in dotted.json()["detail"]
        long_query = await client.get(f"{base}/enterprises", headers=calling, params={"q": "x" * 4001})
        assert long_query.status_code == 422
        too_big = await client.post(f"{base}/enterprises", headers=calling, content=b"x" * 1001)
        assert too_big.status_code == 413
        assert len(department.seen) == reached

        # the department's service slow, or failing: 504 and 502, with a reason for machines and people
        started = time.monotonic()
        slow = await client.get(f"{base}/slow", headers=calling)
        assert slow.status_code == 504 and slow.json()["code"] == "hosted.timeout", slow.text
        assert "规定时间" in slow.json()["message"] and time.monotonic() - started < 2.5
        broken = await client.get(f"{base}/broken", headers=calling)
        assert broken.status_code == 502 and broken.json()["code"] == "hosted.unreachable"
        assert "database down" not in broken.text
        crowd = await client.get(f"{base}/crowd", headers=calling)
        assert crowd.status_code == 502 and crowd.json()["code"] == "hosted.too_many_subjects", crowd.text

        # the department moves its service to where nothing answers: 502 once the change is read
        moved = registration | {"base_url": f"http://127.0.0.1:{free_port()}/api", "envelope": ["total", "items"]}
        moved.pop("credential")
        changed = await client.put(f"/hosted-services/{service['service_id']}", json=moved, headers=MARKET_ADMIN)
        assert changed.status_code == 200 and changed.json()["revision"] == 2

        async def down() -> httpx.Response | None:
            answer = await client.get(f"{base}/enterprises", headers=calling)
            return answer if answer.status_code == 502 else None

        down_answer = await until(down, timeout=10)
        assert down_answer is not None and down_answer.json()["code"] == "hosted.unreachable"
        assert "无法连接" in down_answer.json()["message"]

        withdrawn = await client.post(f"/hosted-services/{service['service_id']}/withdraw", headers=MARKET_ADMIN)
        assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "WITHDRAWN"

        async def gone() -> bool:
            return (await client.get(f"{base}/enterprises", headers=calling)).status_code == 404

        assert await until(gone, timeout=10)

    # the credential is stored sealed and travels in no event
    mongo = connect(settings_for(infra))
    stored = await mongo[exchange.env["EXCHANGE_MONGO_DATABASE"]][HOSTED].find_one({"_id": service["service_id"]})
    await mongo.close()
    assert stored is not None and DEPARTMENT_KEY not in str(stored) and "credential" in stored
    codec = EventCodec.from_folder()
    announced = await read_topic(
        infra.bootstrap, "exchange.hosted-services", 3, where=lambda r: r.key.decode() == service["service_id"]
    )
    assert [codec.decode(r.value)[0] for r in announced] == [
        "HostedServiceRegistered", "HostedServiceUpdated", "HostedServiceWithdrawn"
    ]  # fmt: skip
    assert all(DEPARTMENT_KEY.encode() not in r.value for r in announced)
    # with the envelope each declared: what of an answer besides the mapped items passes
    assert [codec.decode(r.value)[1].get("envelope") for r in announced] == [
        ["total", "items", "page"],
        ["total", "items"],
        None,
    ]

    # every proxied call is a DataAccessed event of the API channel, operation `hosted`
    accesses = await read_topic(
        infra.bootstrap, "exchange.data-accesses", 10**6, timeout=5, where=lambda r: code.encode() in (r.value or b"")
    )
    events = [codec.decode(r.value)[1] for r in accesses if codec.decode(r.value)[1]["operation"] == "hosted"]
    assert all(HERE.encode() not in r.value for r in accesses)
    served = [e for e in events if e["result"] == "SERVED"]
    # two calls above, and those served while the move was not yet read (the grant cache's second)
    assert len(served) >= 2 and {e["record_count"] for e in served} == {1}
    assert served[0]["channel"] == "API" and served[0]["grant_id"] == grant_id and served[0]["purpose"] == PURPOSE
    assert served[0]["items"] == ["统一社会信用代码", "企业名称", "法定代表人"]
    assert any(e["result"] == "NOT_FOUND" for e in events)
    reasons = " | ".join(e["reason"] or "" for e in events if e["result"] == "REFUSED")
    for reason in (
        "names no grant", "not an operation", "hosted.timeout (504)", "hosted.unreachable (502)",
        "characters of query", "at most 1,000 bytes", "hosted.too_many_subjects (502)",
    ):  # fmt: skip
        assert reason in reasons, reason
