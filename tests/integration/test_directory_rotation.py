"""Rotating the directory's signing key: the directory, restarted with a new key and the old one's public half
as retired (with its retirement time), signs tokens with the new key only and publishes both, so a service
reading `directory.events` from the beginning afterwards still takes the events signed before the rotation as
the directory's — and nothing the old key signs afterwards: neither its tokens nor its events."""

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
import jwt
from aiokafka.admin import AIOKafkaAdminClient
from cryptography.hazmat.primitives import serialization
from prometheus_client.parser import text_string_to_metric_families

from common.auth import TokenIssuer, generate_signing_key, key_id, load_signing_key
from common.policy import Principal, Role
from services.directory.demo_data import credit_code
from tests.integration.conftest import ServiceProcess, headers_of, read_topic, skip_backlog
from tests.tokens import KEY, bearer

OLD_PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
OLD_PUBLIC_PEM = (
    KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
)
IT = credit_code("360800", 8101)
OPERATOR = bearer(IT, Role.IT_OFFICE_OPERATOR, subject="it-operator")  # signed with the old key


async def test_events_signed_before_a_rotation_still_verify_and_the_old_keys_later_tokens_and_events_do_not(
    infra, topics, services, tmp_path
) -> None:
    database = f"dir_{uuid.uuid4().hex[:8]}"
    department = credit_code("360800", 8000 + uuid.uuid4().int % 999)
    new_pem = generate_signing_key()
    new_kid, old_kid = key_id(load_signing_key(new_pem).public_key()), key_id(KEY.public_key())
    rotated = ServiceProcess(
        "directory",
        infra,
        tmp_path,
        mongo_database=database,
        signing_key=new_pem,
        retired_signing_keys="",  # set at the rotation, with its time
    )
    # the notifier makes a department's notice topic on the directory's signed word only; it starts after the
    # rotation and reads only what this test's directory writes
    notifier = ServiceProcess(
        "notifier", infra, tmp_path, auth_jwks="", auth_jwks_url=f"{rotated.url}/.well-known/jwks.json"
    )
    await skip_backlog(infra, f"{notifier.group_prefix}notifier-directory", "directory.events")

    before = ServiceProcess("directory", infra, tmp_path, mongo_database=database, signing_key=OLD_PEM.decode())
    services.append(before.start())
    await before.wait_ready()
    async with httpx.AsyncClient(base_url=before.url, headers=OPERATOR) as client:
        body = {"code": department, "name": "吉安市轮换测试局", "level": "CITY"}
        assert (await client.post("/departments", json=body)).status_code == 201
    registered = await read_topic(
        infra.bootstrap,
        "directory.events",
        1,
        where=lambda r: r.key == department.encode() and headers_of(r)["event_type"] == "DepartmentRegistered",
    )
    assert len(registered) == 1 and headers_of(registered[0])["signature"].startswith(f"{old_kid}:")
    before.stop()

    # the rotation comes after the broker appended the event, at a whole second (the JWKS says unix seconds)
    retired_at = datetime.fromtimestamp(int(time.time()) + 1, UTC)
    await asyncio.sleep(retired_at.timestamp() - time.time() + 0.01)
    rotated.env["DIRECTORY_RETIRED_SIGNING_KEYS"] = f"retired_at: {retired_at.isoformat()}\n{OLD_PUBLIC_PEM}"
    services.append(rotated.start())
    await rotated.wait_ready()
    new_operator = TokenIssuer(load_signing_key(new_pem), "jian-datashare", "jian-datashare").issue(
        Principal("it-operator", IT, frozenset({Role.IT_OFFICE_OPERATOR}))
    )[0]
    async with httpx.AsyncClient(base_url=rotated.url, headers=OPERATOR) as client:
        published = (await client.get("/.well-known/jwks.json")).json()["keys"]
        assert [k["kid"] for k in published] == [new_kid, old_kid]  # the current key first
        assert "retired_at" not in published[0] and published[1]["retired_at"] == int(retired_at.timestamp())
        refused = await client.get("/departments")  # a token the old key signs is no longer anyone's
        assert refused.status_code == 401 and "retired key" in refused.text
        client.headers["Authorization"] = f"Bearer {new_operator}"
        person = {
            "person_id": "rotation.tester",
            "name": "测试人",
            "department_code": department,
            "roles": ["catalog_compiler"],
        }
        created = await client.post("/people", json=person)
        assert created.status_code == 201, created.text
        token = await client.post(
            "/token",
            data={"grant_type": "password", "username": "rotation.tester", "password": created.json()["secret"]},
        )
        assert jwt.get_unverified_header(token.json()["access_token"])["kid"] == new_kid  # signs with the new key

    services.append(notifier.start())
    await notifier.wait_ready()
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        while f"notifier.notices.{department}" not in await admin.list_topics():
            assert time.monotonic() < deadline, "the notifier did not take the earlier event as the directory's"
            await asyncio.sleep(0.3)
    finally:
        await admin.close()
    async with httpx.AsyncClient(base_url=notifier.url) as client:
        metrics = (await client.get("/metrics")).text
    dead = [
        s
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "datashare_events_consumed_total"
        and s.labels["topic"] == "directory.events"  # (the shared broker holds other tests' refusable events)
        and s.labels["outcome"] == "dead_lettered"
        and s.value
    ]
    assert dead == []

    # whoever still holds the old private key signs a new event (here: a directory still running with it):
    # appended after the retirement, the notifier refuses it
    forged = credit_code("360800", 8000 + uuid.uuid4().int % 999)
    forger = ServiceProcess("directory", infra, tmp_path, mongo_database=f"{database}f", signing_key=OLD_PEM.decode())
    services.append(forger.start())
    await forger.wait_ready()
    async with httpx.AsyncClient(base_url=forger.url, headers=OPERATOR) as client:
        body = {"code": forged, "name": "伪造测试局", "level": "CITY"}
        assert (await client.post("/departments", json=body)).status_code == 201
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=notifier.url) as client:
        while not await dead_lettered(client):
            assert time.monotonic() < deadline, "the notifier did not refuse the event the retired key signed late"
            await asyncio.sleep(0.3)
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
    await admin.start()
    try:
        assert f"notifier.notices.{forged}" not in await admin.list_topics()
    finally:
        await admin.close()


async def dead_lettered(client: httpx.AsyncClient) -> float:
    metrics = (await client.get("/metrics")).text
    return sum(
        s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "datashare_events_consumed_total"
        and s.labels["topic"] == "directory.events"
        and s.labels["outcome"] == "dead_lettered"
    )
