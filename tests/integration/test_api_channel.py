"""A consumer system reads another department's data through the API channel of a running exchange: exactly
the granted items and rows, and every abuse refused with its reason — each call, served or refused, read back
as a DataAccessed event from the topic."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
from datashare_adapter.identifiers import credit_code_check_character

from common.auth import TokenIssuer
from common.codec import EventCodec
from common.mongo import connect
from common.policy import MachineKind, Principal, Role
from devstack.samples import catalog_published
from services.exchange.sharing.adapters.grant_docs import GRANTS, grant_doc
from services.exchange.sharing.grants import MASK, Channel, Grant, GrantStatus, RowScope
from tests.adapter_keys import directory_says
from tests.integration.conftest import read_topic, settings_for
from tests.integration.test_exchange import PROVIDER, adapter_for, exchange_knowing, until
from tests.tokens import ISSUER, KEY, bearer, token

APPROVAL = "11360800MB4000009" + credit_code_check_character("11360800MB4000009")
PURPOSE = "企业开办审批核验"
ITEMS = [
    {"name": "统一社会信用代码", "type": "string", "length": 18},
    {"name": "企业名称", "type": "string", "length": 100},
    {"name": "法定代表人", "type": "string", "length": 50, "sensitive": True},
    {"name": "联系电话", "type": "string", "length": 20, "sensitive": True},
    {"name": "注册资本", "type": "decimal"},
]


def enterprise(county: str, n: int) -> str:
    body = f"91{county}MA{n:07d}"
    return body + credit_code_check_character(body)


HERE, THERE, ABSENT = enterprise("360821", 1), enterprise("360822", 2), enterprise("360821", 3)


def grant(grant_id: str, code: str, **changes) -> Grant:
    base = dict(
        grant_id=grant_id,
        request_id="r-" + grant_id,
        resource_code=code,
        provider_code=PROVIDER,
        consumer_code=APPROVAL,
        consumer_system="approval-system",
        items=("统一社会信用代码", "企业名称", "法定代表人", "联系电话"),
        scope=RowScope(("360821",)),
        purpose=PURPOSE,
        channels=frozenset({Channel.API}),
        valid_from=date(2026, 1, 1),
        valid_to=date.today() + timedelta(days=30),
        entry_version=1,
        unmasked=frozenset({"法定代表人"}),
    )
    return Grant(**(base | changes))


def forged(genuine: str) -> str:
    """A genuine token with its department changed: the signature no longer covers it."""
    header, claims, signature = genuine.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    decoded["dept"] = PROVIDER
    changed = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return f"{header}.{changed}.{signature}"


async def test_a_consumer_reads_exactly_what_its_grant_opens_and_every_call_is_recorded(
    infra, topics, services, tmp_path: Path
) -> None:
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    entry = catalog_published(code, PROVIDER, ITEMS)
    entry.payload["confidentiality_reviewed_on"] = date(2026, 1, 5)  # Art. 20: reviewed, so it can be shared
    entry.payload["data_items"] = [
        stated | {"sensitive": item.get("sensitive", False)}
        for stated, item in zip(entry.payload["data_items"], ITEMS, strict=True)
    ]
    exchange = await exchange_knowing(infra, services, tmp_path, entry)
    async with adapter_for(infra, exchange) as adapter:
        for key, name in [(HERE, "吉安甲公司"), (THERE, "吉安乙公司")]:
            fields = {"统一社会信用代码": key, "企业名称": name, "法定代表人": "张三", "联系电话": "13800000000"}
            await adapter.upsert(code, key, fields | {"注册资本": 100.0}, 1)
    provider = bearer(PROVIDER, Role.DATA_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=exchange.url, headers=provider) as client:
        assert await until(lambda: _held(client, f"/resources/{code}/records/{THERE}"))

    # Grants are seeded straight into the exchange's database in the one stored layout (grant_docs), to reach
    # every refusal cheaply; test_sharing_flow.py goes through the sharing lifecycle that issues them.
    mongo = connect(settings_for(infra))
    grants = mongo[exchange.env["EXCHANGE_MONGO_DATABASE"]][GRANTS]
    await grants.insert_many(
        [
            grant_doc(grant("g-ok", code)),
            grant_doc(grant("g-expired", code, valid_to=date(2026, 1, 31))),
            grant_doc(grant("g-revoked", code, status=GrantStatus.REVOKED, ended_reason="no longer needed")),
            grant_doc(grant("g-other-system", code, consumer_system="other-system")),
            grant_doc(grant("g-to-revoke", code)),
            grant_doc(grant("g-department", code, consumer_system=None)),
        ]
    )
    system = bearer(APPROVAL, subject="approval-system", machine=MachineKind.CONSUMER_SYSTEM)
    calling = {"X-Grant-Id": "g-ok", "X-Purpose": quote(PURPOSE)}
    base = f"/services/{code}"
    async with httpx.AsyncClient(base_url=exchange.url, headers=system | calling) as client:
        # the registered services and the resource's own OpenAPI description
        listed = {s["resource_code"]: s for s in (await client.get("/services")).json()}
        assert {c["operation"] for c in listed[code]["calls"]} == {
            "record", "batch", "changes", "digest", "digest_leaves"
        }  # fmt: skip
        described = (await client.get(f"/resources/{code}/openapi.json")).json()
        assert described["components"]["schemas"]["Fields"]["properties"]["注册资本"]["type"] == "number"
        assert (await client.get(f"/resources/{code}")).json()["resource_code"] == code  # the catch-all still

        # one subject: exactly the granted items, the sensitive one the grant does not name masked
        one = await client.get(f"{base}/records/{HERE}")
        assert one.status_code == 200, one.text
        assert one.json()["fields"] == {
            "统一社会信用代码": HERE, "企业名称": "吉安甲公司", "法定代表人": "张三", "联系电话": MASK
        }  # fmt: skip
        # a subject outside the row scope is answered exactly as one the center does not hold
        outside, absent = await client.get(f"{base}/records/{THERE}"), await client.get(f"{base}/records/{ABSENT}")
        assert outside.status_code == absent.status_code == 404 and outside.json() == absent.json()
        assert "吉安乙公司" not in outside.text
        # a person of the consumer department may call under a grant to the department, with raw UTF-8 purpose,
        # but not under one bound to a consumer system
        person = bearer(APPROVAL, Role.DATA_ADMINISTRATOR, subject="approval-admin")
        raw = {"X-Purpose": PURPOSE.encode()}
        departments = {"X-Grant-Id": "g-department"}
        assert (await client.get(f"{base}/records/{HERE}", headers=person | raw | departments)).status_code == 200
        bound = await client.get(f"{base}/records/{HERE}", headers=person | raw)
        assert bound.status_code == 403 and "for consumer system approval-system" in bound.json()["detail"]

        batch = await client.post(f"{base}/records", json={"subject_keys": [HERE, THERE, ABSENT]})
        assert batch.status_code == 200, batch.text
        assert [r["subject_key"] for r in batch.json()["records"]] == [HERE]
        assert batch.json()["not_found"] == [THERE, ABSENT]

        feed = (await client.get(f"{base}/changes", params={"since": 0})).json()
        assert {c["subject_key"] for c in feed["changes"]} == {HERE} and feed["last_sequence"] >= 2
        assert all(
            set(c["fields"]) <= {"统一社会信用代码", "企业名称", "法定代表人", "联系电话"} for c in feed["changes"]
        )
        digest = await client.get(f"{base}/digest")
        assert digest.status_code == 200 and digest.json()["records"] == 1
        assert (await client.get(f"{base}/digest/leaves", params={"top": 0})).status_code == 200

        # every abuse: refused with its reason, nothing of the record in the answer
        expired_token = TokenIssuer(KEY, ISSUER.issuer, ISSUER.audience, ttl_seconds=-60).issue(
            _principal("approval-system")
        )[0]
        revoked_token = token(APPROVAL, subject="revoked-system", machine=MachineKind.CONSUMER_SYSTEM)
        await directory_says(
            infra,
            ("MachineIdentityRevoked", "revoked-system", {"client_id": "revoked-system", "department_code": APPROVAL,
             "reason": "retired", "revoked_by": "it-operator", "generation": 1}),
        )  # fmt: skip
        abuses = {
            "no grant": ({"X-Grant-Id": ""}, 403, "names no grant"),
            "expired grant": ({"X-Grant-Id": "g-expired"}, 403, "expired on 2026-01-31"),
            "revoked grant": ({"X-Grant-Id": "g-revoked"}, 403, "revoked: no longer needed"),
            "purpose": ({"X-Purpose": quote("别的用途")}, 403, "purpose is not the grant's"),
            "another system's grant": ({"X-Grant-Id": "g-other-system"}, 403, "another consumer system's"),
            "forged token": ({"Authorization": f"Bearer {forged(token(APPROVAL))}"}, 401, "does not verify"),
            "expired token": ({"Authorization": f"Bearer {expired_token}"}, 401, "token expired"),
            "revoked token": ({"Authorization": f"Bearer {revoked_token}"}, 401, "credentials revoked"),
            "an adapter": (bearer(APPROVAL, machine=MachineKind.ADAPTER, subject="ad"), 403, "consumer_system"),
        }
        for what, (headers, status, reason) in abuses.items():

            async def refused(headers=headers, status=status) -> httpx.Response | None:
                answer = await client.get(f"{base}/records/{HERE}", headers=headers)
                return answer if answer.status_code == status else None

            answer = await until(refused, timeout=10)
            assert answer is not None, what
            assert reason in answer.json()["detail"] and "吉安甲公司" not in answer.text, what
        outside_items = await client.get(f"{base}/records/{HERE}", params={"items": ["注册资本"]})
        assert (
            outside_items.status_code == 403 and "items outside the grant: 注册资本" in outside_items.json()["detail"]
        )
        too_many = await client.post(f"{base}/records", json={"subject_keys": [HERE] * 10_000})
        assert too_many.status_code == 422 and "at most 1000" in too_many.json()["detail"]

        # the provider revokes: the grant stops opening anything within a second or two
        await grants.update_one({"_id": "g-to-revoke"}, {"$set": {"status": "REVOKED", "ended_reason": "misuse"}})
        revoking = {"X-Grant-Id": "g-to-revoke"}
        started = asyncio.get_running_loop().time()
        assert await until(lambda: _status(client, f"{base}/records/{HERE}", revoking, 403), timeout=5)
        assert asyncio.get_running_loop().time() - started < 3
    await mongo.close()

    # the access trail: every call above, served or refused, without a subject key in clear
    accesses = await read_topic(  # all there are after a few seconds
        infra.bootstrap, "exchange.data-accesses", 10**6, timeout=5, where=lambda r: code.encode() in (r.value or b"")
    )
    codec = EventCodec.from_folder()
    events = [codec.decode(r.value)[1] for r in accesses]
    assert all(HERE.encode() not in r.value and THERE.encode() not in r.value for r in accesses)
    results = [(e["operation"], e["result"]) for e in events]
    assert results.count(("record", "SERVED")) >= 2 and results.count(("record", "NOT_FOUND")) == 2
    assert ("batch", "SERVED") in results and ("changes", "SERVED") in results and ("digest", "SERVED") in results
    reasons = " | ".join(e["reason"] or "" for e in events if e["result"] == "REFUSED")
    for _, _, reason in abuses.values():
        assert reason in reasons, reason
    assert "at most 1000" in reasons and "items outside the grant" in reasons
    served = next(e for e in events if e["result"] == "SERVED" and e["operation"] == "record")
    assert (served["consumer_code"], served["accessed_by"], served["accessor_kind"]) == (
        APPROVAL,
        "approval-system",
        "machine",
    )
    assert served["grant_id"] == "g-ok" and served["purpose"] == PURPOSE and served["record_count"] == 1
    assert served["items"] == ["统一社会信用代码", "企业名称", "法定代表人", "联系电话"]
    assert len(served["subject_hashes"]) == 1 and len(served["subject_hashes"][0]) == 64


def _principal(subject: str) -> Principal:
    return Principal(subject, APPROVAL, machine=MachineKind.CONSUMER_SYSTEM)


async def _held(client: httpx.AsyncClient, path: str) -> bool:
    return (await client.get(path)).status_code == 200


async def _status(client: httpx.AsyncClient, path: str, headers: dict, status: int) -> bool:
    return (await client.get(path, headers=headers)).status_code == status
