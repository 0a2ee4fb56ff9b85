"""Attacks on the exchange's ingestion, made as an outsider (or a retired adapter) makes them: a raw Kafka
consumer reading exchange.data-changes with no credentials, a raw producer writing what it read back with
changes of its own, and raw HTTP (issue 11 §1)."""

import base64
import io
import uuid
from datetime import UTC, datetime

import fastavro
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from datashare_adapter.signing import ChangeSigner, generate_key, key_id, public_pem, signing_input, value_digest

from common.policy import MachineKind, Role
from common.topics import ensure_topics, load_topics
from devstack.processes import Infra
from devstack.samples import catalog_published
from tests.adapter_keys import adapter_key
from tests.integration.conftest import headers_of, read_topic
from tests.integration.test_directory import MARKET, OPERATOR, register, sign_in, start_directory
from tests.integration.test_exchange import ITEMS, PROVIDER, adapter_for, enterprise, exchange_knowing, until
from tests.tokens import bearer

DATA_CHANGES = "exchange.data-changes"


@pytest.fixture
async def own(own_infra: Infra) -> Infra:
    """A broker and database of the test's own: an exchange with a new database reads exchange.data-changes from
    the beginning, and on the shared broker earlier tests leave tens of thousands of changes there."""
    admin = AIOKafkaAdminClient(bootstrap_servers=own_infra.bootstrap)
    await admin.start()
    try:
        await ensure_topics(admin, list(load_topics().values()))
    finally:
        await admin.close()
    return own_infra


async def avro_value(client: httpx.AsyncClient, event_type: str, payload: dict) -> bytes:
    """Avro single-object encoding built from what the exchange publishes at /schemas."""
    fingerprint = (await client.get("/schemas")).json()[event_type]["fingerprint"]
    schema = (await client.get(f"/schemas/{event_type}")).json()
    buffer = io.BytesIO()
    buffer.write(b"\xc3\x01" + bytes.fromhex(fingerprint))
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), payload)
    return buffer.getvalue()


async def topic_records(bootstrap: str, topic: str, where) -> list:
    """Everything on `topic` matching `where`, read from the beginning by a consumer with no credentials."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list = []
    try:
        for _ in range(10):
            batches = await consumer.getmany(timeout_ms=500)
            found += [r for records in batches.values() for r in records if where(r)]
            if not batches and found:
                break
    finally:
        await consumer.stop()
    return found


def change(code: str, key: str, provider: str, operation: str, version: int, fields: dict) -> dict:
    return {
        "change_id": uuid.uuid4().hex,
        "resource_code": code,
        "provider_code": provider,
        "operation": operation,
        "subject_key": key,
        "fields": fields,
        "source_version": version,
        "changed_at": datetime.now(UTC),
    }


async def test_a_message_read_off_the_topic_opens_nothing(own, services, tmp_path) -> None:
    infra = own
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    exchange = await exchange_knowing(infra, services, tmp_path, catalog_published(code, PROVIDER, ITEMS))
    a, b = enterprise(401), enterprise(402)
    async with adapter_for(infra, exchange) as adapter:
        sent = await adapter.upsert(code, a, {"统一社会信用代码": a, "企业名称": "吉安甲公司"}, 1)
    admin = bearer(PROVIDER, Role.DATA_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=exchange.url, headers=admin) as client:
        assert await until(lambda: _status(client, f"/resources/{code}/records/{a}", 200))

        # The attacker reads the topic: no bearer token, nor anything like one, travels with the change.
        (captured,) = await topic_records(infra.bootstrap, DATA_CHANGES, lambda r: headers_of(r)["event_id"] == sent)
        headers = headers_of(captured)
        assert "authorization" not in {k.lower() for k in headers}
        assert not any(v.startswith(("Bearer", "eyJ")) or ".eyJ" in v for v in headers.values())
        assert headers["signature"]

        # ... and writes changes of its own under the captured headers: another subject, and a delete; then
        # announces a key of his own for the provider's adapter on directory.events (unsigned: he has no
        # directory key) and sends a change signed with it.
        forged = {
            "new subject": change(code, b, PROVIDER, "UPSERT", 5, {"统一社会信用代码": b, "企业名称": "伪造"}),
            "delete": change(code, a, PROVIDER, "DELETE", 5, {}),
        }
        own_key = generate_key()
        with_own_key = change(code, b, PROVIDER, "UPSERT", 6, {"统一社会信用代码": b, "企业名称": "伪造"})
        producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap)
        await producer.start()
        try:
            for payload in forged.values():
                envelope = dict(headers) | {"event_id": payload["change_id"]}
                await producer.send_and_wait(
                    DATA_CHANGES,
                    await avro_value(client, "DataChanged", payload),
                    key=f"{code}|{payload['subject_key']}".encode(),
                    headers=[(k, v.encode()) for k, v in envelope.items()],
                )
            announced = {
                "key_id": key_id(own_key.public_key()),
                "client_id": "market-adapter",
                "department_code": PROVIDER,
                "public_key": public_pem(own_key.public_key()),
                "registered_by": "it-operator",
                "registered_at": datetime.now(UTC),
            }
            envelope = {"event_id": uuid.uuid4().hex, "event_type": "AdapterKeyRegistered", "producer": "directory"}
            envelope["occurred_at"] = datetime.now(UTC).isoformat()
            await producer.send_and_wait(
                "directory.events",
                await avro_value(client, "AdapterKeyRegistered", announced),
                key=b"market-adapter",
                headers=[(k, v.encode()) for k, v in envelope.items()],
            )
            value = await avro_value(client, "DataChanged", with_own_key)
            sent_at = datetime.now(UTC).isoformat()
            covered = signing_input(
                with_own_key["change_id"], code, b, "UPSERT", 6, value_digest(value), sent_at, "adapter-market-adapter"
            )
            envelope = dict(headers) | {"event_id": with_own_key["change_id"], "occurred_at": sent_at}
            envelope["signature"] = ChangeSigner(own_key).header(covered).decode()
            await producer.send_and_wait(
                DATA_CHANGES, value, key=f"{code}|{b}".encode(), headers=[(k, v.encode()) for k, v in envelope.items()]
            )
        finally:
            await producer.stop()

        ids = {p["change_id"] for p in [*forged.values(), with_own_key]}
        dead = await read_topic(
            infra.bootstrap, f"{DATA_CHANGES}.dlq", 3, where=lambda r: headers_of(r)["event_id"] in ids
        )
        assert {headers_of(r)["event_id"] for r in dead} == ids
        assert all("sender" in headers_of(r)["dlq.reason"] for r in dead)
        assert (await client.get(f"/resources/{code}/records/{b}")).status_code == 404
        assert (await client.get(f"/resources/{code}/records/{a}")).json()["fields"]["企业名称"] == "吉安甲公司"
        # the provider sees that changes in its name were refused
        refusals = (await client.get("/refusals", params={"limit": 1000})).json()
        assert {r["change_id"] for r in refusals if r["rule"] == "sender"} >= ids


async def _status(client: httpx.AsyncClient, path: str, status: int, headers: dict | None = None) -> bool:
    return (await client.get(path, headers=headers)).status_code == status


async def test_a_revoked_key_or_adapter_is_refused_on_kafka_as_on_rest(own, services, tmp_path) -> None:
    infra = own
    directory = await start_directory(infra, services, tmp_path)
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    exchange = await exchange_knowing(infra, services, tmp_path, catalog_published(code, MARKET, ITEMS))
    async with httpx.AsyncClient(base_url=directory.url, headers=OPERATOR) as client:
        issued = (await client.post("/machines", json={"department_code": MARKET, "kind": "adapter"})).json()
        client_id, secret = issued["login"], issued["secret"]
        first, second = adapter_key(client_id), adapter_key(client_id + "#2")
        registered = await client.post(
            f"/machines/{client_id}/keys", json={"public_key": public_pem(first.public_key())}
        )
        assert registered.status_code == 201, registered.text
        first_id = registered.json()["key_id"]
        granted = await client.post(
            "/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        )
        adapter_token = {"Authorization": f"Bearer {granted.json()['access_token']}"}

    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap)
    await producer.start()

    async def send(key, subject: str, version: int) -> str:
        """What the adapter's own code would send: a change signed with `key`, by a raw producer."""
        payload = change(code, subject, MARKET, "UPSERT", version, {"统一社会信用代码": subject, "企业名称": "某"})
        async with httpx.AsyncClient(base_url=exchange.url) as http:
            value = await avro_value(http, "DataChanged", payload)
        sent_at, producer_name = datetime.now(UTC).isoformat(), f"adapter-{client_id}"
        covered = signing_input(
            payload["change_id"], code, subject, "UPSERT", version, value_digest(value), sent_at, producer_name
        )
        headers = {
            "event_id": payload["change_id"],
            "event_type": "DataChanged",
            "occurred_at": sent_at,
            "producer": producer_name,
            "signature": ChangeSigner(key).header(covered).decode(),
        }
        await producer.send_and_wait(
            DATA_CHANGES, value, key=f"{code}|{subject}".encode(), headers=[(k, v.encode()) for k, v in headers.items()]
        )
        return payload["change_id"]

    admin = bearer(MARKET, Role.DATA_ADMINISTRATOR)
    try:
        async with httpx.AsyncClient(base_url=exchange.url, headers=admin) as client:
            await send(first, enterprise(501), 1)
            assert await until(lambda: _status(client, f"/resources/{code}/records/{enterprise(501)}", 200))
            assert await _status(client, f"/resources/{code}", 200, adapter_token)

            # rotation: the new key signs, the old one no longer does
            async with httpx.AsyncClient(base_url=directory.url, headers=OPERATOR) as dir_client:
                rotated = await dir_client.post(
                    f"/machines/{client_id}/keys",
                    json={"public_key": public_pem(second.public_key()), "replaces": first_id},
                )
                assert rotated.status_code == 201, rotated.text
            old_key = await send(first, enterprise(502), 1)
            await send(second, enterprise(503), 1)
            assert await until(lambda: _status(client, f"/resources/{code}/records/{enterprise(503)}", 200))

            # the machine identity revoked: REST refuses its token, Kafka its signed changes
            async with httpx.AsyncClient(base_url=directory.url, headers=OPERATOR) as dir_client:
                revoked = await dir_client.post(f"/machines/{client_id}/revoke", json={"reason": "retired"})
                assert revoked.status_code == 204
            assert await until(lambda: _status(client, f"/resources/{code}", 401, adapter_token))
            after_revocation = await send(second, enterprise(504), 1)

            refused = {old_key, after_revocation}
            dead = await read_topic(
                infra.bootstrap, f"{DATA_CHANGES}.dlq", 2, where=lambda r: headers_of(r)["event_id"] in refused
            )
            reasons = {headers_of(r)["event_id"]: headers_of(r)["dlq.reason"] for r in dead}
            assert reasons.keys() == refused
            assert all("revoked before the change reached the broker" in reason for reason in reasons.values())
            for subject in (enterprise(502), enterprise(504)):
                assert await _status(client, f"/resources/{code}/records/{subject}", 404)
            refusals = (await client.get("/refusals", params={"limit": 1000})).json()
            assert {r["change_id"] for r in refusals if r["rule"] == "sender"} >= refused
    finally:
        await producer.stop()


async def test_keys_are_registered_by_the_departments_own_administrators(infra, topics, services, tmp_path) -> None:
    directory = await start_directory(infra, services, tmp_path)
    other = bearer(PROVIDER, Role.DATA_ADMINISTRATOR, subject="stranger-admin")
    own = bearer(MARKET, Role.DATA_ADMINISTRATOR, subject="market-admin")
    async with httpx.AsyncClient(base_url=directory.url, headers=OPERATOR) as client:
        adapter = (await client.post("/machines", json={"department_code": MARKET, "kind": "adapter"})).json()
        system = (await client.post("/machines", json={"department_code": MARKET, "kind": "consumer_system"})).json()
        public = public_pem(adapter_key(adapter["login"] + "#own").public_key())
        path = f"/machines/{adapter['login']}/keys"
        assert (await client.post(path, json={"public_key": public}, headers=other)).status_code == 403
        machine_token = bearer(MARKET, machine=MachineKind.ADAPTER, subject=adapter["login"])
        assert (await client.post(path, json={"public_key": public}, headers=machine_token)).status_code == 403
        assert (await client.post(path, json={"public_key": "not a key"}, headers=own)).status_code == 422
        not_adapter = await client.post(f"/machines/{system['login']}/keys", json={"public_key": public}, headers=own)
        assert not_adapter.status_code == 422
        created = await client.post(path, json={"public_key": public}, headers=own)
        assert created.status_code == 201 and created.json()["registered_by"] == "market-admin"
        assert (await client.post(path, json={"public_key": public}, headers=own)).status_code == 409
        key_id = created.json()["key_id"]
        revoke = f"{path}/{key_id}/revoke"
        assert (await client.post(revoke, json={"reason": "lost"}, headers=other)).status_code == 403
        assert (await client.post(revoke, json={"reason": "lost"}, headers=own)).status_code == 204
        listed = (await client.get(path, headers=own)).json()
        assert [(k["key_id"], k["revoked_by"]) for k in listed] == [(key_id, "market-admin")]

    # announced on the directory's topic, signed by the directory
    announced = await read_topic(
        infra.bootstrap,
        "directory.events",
        2,
        where=lambda r: r.key == adapter["login"].encode() and headers_of(r)["event_type"].startswith("AdapterKey"),
    )
    assert {headers_of(r)["event_type"] for r in announced} == {"AdapterKeyRegistered", "AdapterKeyRevoked"}
    assert all(len(base64.urlsafe_b64decode(headers_of(r)["signature"].split(":")[1])) == 64 for r in announced)


async def test_an_upload_puts_no_credentials_on_the_bus_and_records_who_uploaded(own, services, tmp_path) -> None:
    """The data administrator uploads with a lower-case `bearer` (RFC 7235: the scheme is case-insensitive);
    an attacker reads the topic and tries what he found on POST /machines."""
    infra = own
    directory = await start_directory(infra, services, tmp_path)
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    exchange = await exchange_knowing(infra, services, tmp_path, catalog_published(code, MARKET, ITEMS))
    async with httpx.AsyncClient(base_url=directory.url) as client:
        password = await register(client, "upload.admin", [])
        appointed = await client.post(
            f"/departments/{MARKET}/data-administrator", json={"person_id": "upload.admin"}, headers=OPERATOR
        )
        assert appointed.status_code == 201, appointed.text
        granted = await sign_in(client, grant_type="password", username="upload.admin", password=password)
        token = granted.json()["access_token"]

    a = enterprise(601)
    table = f"统一社会信用代码,企业名称\n{a},上传公司\n".encode()
    async with httpx.AsyncClient(base_url=exchange.url, headers={"authorization": f"bearer {token}"}) as client:
        sent = await client.post(f"/resources/{code}/uploads", files={"file": ("r.csv", table)})
        assert sent.status_code == 202 and sent.json() == {"sent": 1}, sent.text
        assert await until(lambda: _status(client, f"/resources/{code}/records/{a}", 200))
        history = (await client.get(f"/resources/{code}/records/{a}/history")).json()
        assert [(h["applied"], h["sent_by"]) for h in history] == [(True, "upload.admin")]
        assert [r for r in (await client.get("/refusals")).json() if r["subject_key"] == a] == []

    (captured,) = await topic_records(
        infra.bootstrap, DATA_CHANGES, lambda r: r.key == f"{code}|{a}".encode() and r.value is not None
    )
    headers = headers_of(captured)
    assert headers["producer"] == "exchange-upload:upload.admin" and headers["signature"]
    assert token not in captured.value.decode("utf-8", "replace")
    async with httpx.AsyncClient(base_url=directory.url) as client:
        for value in headers.values():  # whatever travelled with the change opens nothing
            issued = await client.post(
                "/machines",
                json={"department_code": MARKET, "kind": "adapter"},
                headers={"Authorization": f"Bearer {value.removeprefix('Bearer ')}"},
            )
            assert issued.status_code == 401
