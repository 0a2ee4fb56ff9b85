"""Attacks on sign-in, the token lifecycle and the directory's events, made as an outsider makes them: raw
HTTP, and a raw Kafka producer with no credentials writing Avro it built from the public schemas."""

import asyncio
import io
import math
import time
import uuid
from datetime import UTC, datetime, timedelta

import fastavro
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import ServiceProcess, headers_of, read_topic
from tests.integration.test_directory import MARKET, OPERATOR, register, sign_in, start_directory

ATTACKER = "127.0.0.2"  # another client address: on Linux the whole 127/8 is the loopback


@pytest.fixture
async def directory(infra, topics, services, tmp_path) -> ServiceProcess:
    return await start_directory(infra, services, tmp_path)


def from_address(directory: ServiceProcess, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=directory.url, transport=httpx.AsyncHTTPTransport(local_address=address))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def status_within(client: httpx.AsyncClient, headers: dict, status: int, seconds: float = 5.0) -> int:
    """The status of GET /departments once it is `status`, or the last one after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        got = (await client.get("/departments", headers=headers)).status_code
        if got == status or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.1)


async def person_signed_in(client: httpx.AsyncClient, login: str, roles: list[str]) -> tuple[str, dict]:
    password = await register(client, login, roles)
    granted = await sign_in(client, grant_type="password", username=login, password=password)
    assert granted.status_code == 200, granted.text
    return password, granted.json()


# -- §2: a forged directory event ------------------------------------------------------------------


async def forged_value(client: httpx.AsyncClient, event_type: str, payload: dict) -> bytes:
    """Avro single-object encoding built from what any service publishes at /schemas."""
    fingerprint = (await client.get("/schemas")).json()[event_type]["fingerprint"]
    schema = (await client.get(f"/schemas/{event_type}")).json()
    fields = {f["name"] for f in schema["fields"]}
    buffer = io.BytesIO()
    buffer.write(b"\xc3\x01" + bytes.fromhex(fingerprint))
    values = {k: v for k, v in payload.items() if k in fields}
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), values, strict_allow_default=True)
    return buffer.getvalue()


async def test_a_forged_directory_event_shuts_nobody_out(infra, directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as client:
        password, old = await person_signed_in(client, "forged.victim", ["catalog_compiler"])
        future = datetime.now(UTC) + timedelta(days=1)
        payload = {
            "person_id": "forged.victim",
            "department_code": MARKET,
            "roles": [],
            "changed_by": "it-operator",
            "generation": 2**40,
            "reason": "forged",
            "revoked_by": "it-operator",
        }
        producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap)
        await producer.start()
        try:
            for event_type in ("PersonRolesChanged", "PersonTokensRevoked"):
                if event_type not in (await client.get("/schemas")).json():
                    continue
                value = await forged_value(client, event_type, payload)
                envelope = [
                    ("event_id", uuid.uuid4().hex.encode()),
                    ("event_type", event_type.encode()),
                    ("occurred_at", future.isoformat().encode()),
                    ("producer", b"directory"),
                ]
                for extra in ([], [("signature", b"AAAA:" + b"A" * 86)]):  # unsigned, and signed by nobody
                    await producer.send_and_wait(
                        "directory.events", value, key=b"forged.victim", headers=envelope + extra
                    )
        finally:
            await producer.stop()

        # A genuine change of the same person after the forgeries, on the same partition: once her old token is
        # refused, every service has read past the forged events.
        changed = await client.put(
            "/people/forged.victim/roles", json={"roles": ["catalog_reviewer"]}, headers=OPERATOR
        )
        assert changed.status_code == 200
        assert await status_within(client, bearer(old["access_token"]), 401) == 401
        fresh = (await sign_in(client, grant_type="password", username="forged.victim", password=password)).json()
        assert (await client.get("/departments", headers=bearer(fresh["access_token"]))).status_code == 200

    # The genuine events carry the directory's signature.
    signed = await read_topic(
        infra.bootstrap,
        "directory.events",
        1,
        where=lambda r: (
            r.key == b"forged.victim" and "signature" in headers_of(r) and headers_of(r)["signature"][:4] != "AAAA"
        ),
    )
    assert signed, "the directory's own events are signed"


# -- §3: sign-in -----------------------------------------------------------------------------------


async def test_twenty_wrong_passwords_at_once_check_five(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url, timeout=30) as client:
        await register(client, "raced.person", ["catalog_compiler"])
        started = time.monotonic()
        answers = await asyncio.gather(
            *(sign_in(client, grant_type="password", username="raced.person", password=f"guess{i}") for i in range(20))
        )
        elapsed = time.monotonic() - started
    checked = [a for a in answers if a.status_code == 401]
    # Five free failures, then waits of 1 s, 2 s, 4 s...: on a slow machine a wait may pass while the twenty are
    # still arriving, and one more guess is then rightly checked — but never more than the waits that elapsed.
    waits_passed = int(math.log2(elapsed + 1))
    assert 5 <= len(checked) <= 5 + waits_passed, ([(a.status_code, a.text[:200]) for a in answers], elapsed)
    assert {a.json()["detail"] for a in checked} == {"invalid username or password"}
    slowed = [a for a in answers if a.status_code == 429]
    assert len(slowed) == 20 - len(checked) and all(int(a.headers["retry-after"]) >= 1 for a in slowed)


async def test_a_stranger_slows_his_own_guesses_and_locks_nobody_out(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as owner, from_address(directory, ATTACKER) as stranger:
        password = await register(owner, "guessed.person", ["catalog_compiler"])
        statuses = []
        for i in range(8):
            answer = await sign_in(stranger, grant_type="password", username="guessed.person", password=f"guess{i}")
            statuses.append(answer.status_code)
        assert statuses == [401] * 5 + [429] * 3  # then he must wait, longer after each further failure
        granted = await sign_in(owner, grant_type="password", username="guessed.person", password=password)
        assert granted.status_code == 200, granted.text


async def test_a_machine_is_throttled_never_locked(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as owner, from_address(directory, ATTACKER) as stranger:
        issued = (
            await owner.post("/machines", json={"department_code": MARKET, "kind": "adapter"}, headers=OPERATOR)
        ).json()
        statuses = []
        for i in range(12):  # the client id travels in message headers: anyone may know it
            answer = await sign_in(
                stranger, grant_type="client_credentials", client_id=issued["login"], client_secret=f"guess{i}"
            )
            statuses.append(answer.status_code)
        assert set(statuses[5:]) == {429}
        granted = await sign_in(
            owner, grant_type="client_credentials", client_id=issued["login"], client_secret=issued["secret"]
        )
        assert granted.status_code == 200, granted.text


async def test_only_those_who_administer_people_see_their_logins(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as client:
        _, compiler = await person_signed_in(client, "listing.compiler", ["catalog_compiler"])
        seen = (await client.get(f"/departments/{MARKET}/people", headers=bearer(compiler["access_token"]))).json()
        assert seen and all(p["person_id"] is None for p in seen) and "listing.compiler" not in str(seen)
        administered = (await client.get(f"/departments/{MARKET}/people", headers=OPERATOR)).json()
        assert "listing.compiler" in {p["person_id"] for p in administered}


async def test_a_person_id_is_no_oracle_for_logins(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as client:
        _, prober = await person_signed_in(client, "probing.compiler", ["catalog_compiler"])
        headers = bearer(prober["access_token"])
        existing = await client.get("/people/listing.target", headers=headers)
        await register(client, "listing.target", ["catalog_reviewer"])
        after = await client.get("/people/listing.target", headers=headers)
        missing = await client.get("/people/no.such.person", headers=headers)
        assert existing.status_code == after.status_code == missing.status_code == 404
        assert after.json()["detail"] == missing.json()["detail"].replace("no.such.person", "listing.target")
        assert (await client.get("/people/probing.compiler", headers=headers)).status_code == 200  # oneself
        assert (await client.get("/people/listing.target", headers=OPERATOR)).status_code == 200


# -- §3: the token lifecycle -----------------------------------------------------------------------


async def test_a_role_change_in_the_same_second_ends_the_token(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as client:
        password = await register(client, "quick.person", ["catalog_compiler"])
        while time.time() % 1 > 0.3:  # sign in and lose the roles within one second
            await asyncio.sleep(0.05)
        granted = (await sign_in(client, grant_type="password", username="quick.person", password=password)).json()
        await client.put("/people/quick.person/roles", json={"roles": []}, headers=OPERATOR)
        assert await status_within(client, bearer(granted["access_token"]), 401) == 401


async def test_a_password_reset_ends_the_access_tokens(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as client:
        _, granted = await person_signed_in(client, "reset.person", ["catalog_compiler"])
        assert (await client.post("/people/reset.person/reset-password", headers=OPERATOR)).status_code == 200
        assert await status_within(client, bearer(granted["access_token"]), 401) == 401


async def test_a_secret_rotation_ends_the_access_tokens(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as client:
        issued = (
            await client.post("/machines", json={"department_code": MARKET, "kind": "adapter"}, headers=OPERATOR)
        ).json()
        granted = (
            await sign_in(
                client, grant_type="client_credentials", client_id=issued["login"], client_secret=issued["secret"]
            )
        ).json()
        assert (await client.post(f"/machines/{issued['login']}/rotate", headers=OPERATOR)).status_code == 200
        assert await status_within(client, bearer(granted["access_token"]), 401) == 401


async def test_a_reused_refresh_token_ends_its_whole_family(directory) -> None:
    async with httpx.AsyncClient(base_url=directory.url) as client:
        _, first = await person_signed_in(client, "family.person", ["catalog_compiler"])
        second = (await sign_in(client, grant_type="refresh_token", refresh_token=first["refresh_token"])).json()
        # A thief replays the first refresh token: refused, and every token of that sign-in ends.
        replayed = await sign_in(client, grant_type="refresh_token", refresh_token=first["refresh_token"])
        assert replayed.status_code == 401
        later = await sign_in(client, grant_type="refresh_token", refresh_token=second["refresh_token"])
        assert later.status_code == 401
        assert await status_within(client, bearer(second["access_token"]), 401) == 401
