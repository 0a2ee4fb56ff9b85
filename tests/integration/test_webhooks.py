"""The webhook channel through the running notifier: share events on the real broker become notices, and the
notices reach the departments' receivers (HTTP servers on loopback) signed, retried, dead-lettered and
replayed, in order per resource, and without loss when the notifier is killed with deliveries pending."""

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient, monitoring
from standardwebhooks import Webhook

from common.codec import EventCodec
from common.events import Event
from common.identifiers import credit_code_check_character
from common.kafka import KafkaPublisher
from common.policy import Role
from common.topics import load_topics
from devstack.processes import Infra
from devstack.webhook_receivers import Received, Receiver
from services.notifier import webhooks
from services.notifier.adapters import webhooks_mongo
from services.notifier.adapters.sealing import SecretSealer
from services.notifier.domain.webhooks import Delivery, DeliveryState, Outcome
from services.notifier.ports import SUBSCRIBED
from services.notifier.settings import DEV_SECRET_KEYS
from tests.integration.conftest import ServiceProcess, settings_for, skip_backlog
from tests.tokens import bearer

RESOURCE = "101001/000001"
FAST_RETRIES = {
    "webhook_retry_first_seconds": "0.2",
    "webhook_retry_factor": "2",
    "webhook_retry_longest_seconds": "1",
    "webhook_timeout_seconds": "2",
}


@contextlib.asynccontextmanager
async def webhook_db(infra: Infra, *listeners: monitoring.CommandListener) -> AsyncIterator[tuple[Any, SecretSealer]]:
    """A database of its own with the webhook store's indexes (and the development sealer), dropped after."""
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True, event_listeners=list(listeners))
    db = mongo[f"webhooks_{uuid.uuid4().hex[:8]}"]
    try:
        sealer = SecretSealer.parse(DEV_SECRET_KEYS)
        await webhooks_mongo.ensure_indexes(db, sealer)
        yield db, sealer
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()


def fresh_code() -> str:
    first17 = f"11360800MB{uuid.uuid4().int % 10**7:07d}"
    return first17 + credit_code_check_character(first17)


def admin(department: str) -> dict:
    return bearer(department, Role.DATA_ADMINISTRATOR, subject=f"admin-{department[-6:]}")


async def start_notifier(infra: Infra, tmp_path, services: list, **env: str) -> ServiceProcess:
    prefix = env.pop("consumer_group_prefix", None)
    if prefix is None:
        prefix = f"wh{uuid.uuid4().hex[:8]}-"
        for topic in SUBSCRIBED:  # only this test's events: not the backlog earlier tests left
            await skip_backlog(infra, prefix + "notifier", topic)
    notifier = ServiceProcess(
        "notifier",
        infra,
        tmp_path,
        mongo_database=env.pop("mongo_database", f"webhooks_{uuid.uuid4().hex[:8]}"),
        consumer_group_prefix=prefix,
        **FAST_RETRIES | env,
    ).start()
    services.append(notifier)
    await notifier.wait_ready()
    return notifier


async def register(notifier: ServiceProcess, department: str, url: str, **body) -> dict:
    async with httpx.AsyncClient(base_url=notifier.url, headers=admin(department)) as client:
        response = await client.post(f"/webhooks/{department}/endpoints", json={"url": url, **body})
    assert response.status_code == 201, response.text
    return response.json()


async def publish(infra: Infra, events: list[Event]) -> None:
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        await publisher.publish_many("exchange.share-events", events)
    finally:
        await publisher.stop()


def decided(request_id: str, provider: str, consumer: str, reasons: str, resource: str = RESOURCE) -> Event:
    """A decision on a request for `resource`: its applicant (consumer) is told."""
    payload = {
        "request_id": request_id,
        "resource_code": resource,
        "provider_code": provider,
        "consumer_code": consumer,
        "decision": "APPROVED",
        "reasons": reasons,
        "decided_by": "admin",
        "decided_on": date(2026, 12, 3),
    }
    return Event("ShareDecided", request_id, payload, "exchange")


def requested(request_id: str, provider: str, consumer: str) -> Event:
    payload = {
        "request_id": request_id,
        "provider_code": provider,
        "consumer_code": consumer,
        "purpose": "企业开办一件事",
        "data_items": ["企业名称"],
        "resource_code": RESOURCE,
        "scope": "全市",
        "period_from": date(2026, 12, 1),
        "period_to": date(2027, 11, 30),
        "requested_by": "officer-9",
        "decide_by": date(2026, 12, 11),
    }
    return Event("ShareRequested", request_id, payload, "exchange")


async def deliveries(notifier: ServiceProcess, department: str, **params) -> list[dict]:
    async with httpx.AsyncClient(base_url=notifier.url, headers=admin(department)) as client:
        response = await client.get(f"/webhooks/{department}/deliveries", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def reasons_of(r: Received) -> str:
    return json.loads(r.body)["data"]["body"].rsplit("理由：", 1)[1]


def hmac_ok(secret: str, r: Received) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{r.headers['webhook-id']}.{r.headers['webhook-timestamp']}.{r.body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(s.split(",", 1)[1], expected) for s in r.headers["webhook-signature"].split(" "))


async def test_notices_reach_the_endpoint_signed_and_a_rotation_signs_with_both_secrets(
    infra, topics, services, tmp_path
) -> None:
    provider, consumer = fresh_code(), fresh_code()
    receiver, picky = await Receiver().start(), await Receiver().start()
    try:
        notifier = await start_notifier(infra, tmp_path, services)
        created = await register(notifier, provider, receiver.url, description="审批系统")
        await register(notifier, provider, picky.url, kinds=["GRANT_ISSUED"])
        secret = created["secret"]
        assert secret.startswith("whsec_") and created["secrets_in_force"] == 1
        async with httpx.AsyncClient(base_url=notifier.url, headers=admin(provider)) as client:
            listed = (await client.get(f"/webhooks/{provider}/endpoints")).json()
        assert {e["url"] for e in listed} == {receiver.url, picky.url}
        assert all("secret" not in e for e in listed)  # shown once, at creation

        first = uuid.uuid4().hex
        await publish(infra, [requested(first, provider, consumer)])
        [got] = await receiver.wait_for(1, 30)
        payload = Webhook(secret).verify(got.body, got.headers)  # the reference implementation's verifier
        assert hmac_ok(secret, got)  # and a plain HMAC over id.timestamp.body
        assert payload["type"] == "notification.REQUEST_ARRIVED" and payload["data"]["reference"] == first
        assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 30
        async with httpx.AsyncClient(base_url=notifier.url, headers=admin(provider)) as client:
            inbox = (await client.get(f"/inbox/{provider}")).json()["items"]
        assert got.webhook_id == inbox[0]["notification_id"]  # the idempotency key is the notice's id
        [state] = await deliveries(notifier, provider, endpoint_id=created["endpoint_id"])
        assert state["state"] == "DELIVERED" and state["attempts"] == 1 and state["last_status"] == 200

        async with httpx.AsyncClient(base_url=notifier.url, headers=admin(provider)) as client:
            rotated = await client.post(
                f"/webhooks/{provider}/endpoints/{created['endpoint_id']}/rotate", json={"overlap_seconds": 4}
            )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != secret and rotated.json()["secrets_in_force"] == 2
        await publish(infra, [requested(uuid.uuid4().hex, provider, consumer)])
        second = (await receiver.wait_for(2, 30))[1]
        assert len(second.headers["webhook-signature"].split(" ")) == 2
        for known in (secret, new_secret):  # a receiver still on the old secret, or already on the new one
            Webhook(known).verify(second.body, second.headers)
        await asyncio.sleep(4.5)  # the overlap ends
        await publish(infra, [requested(uuid.uuid4().hex, provider, consumer)])
        third = (await receiver.wait_for(3, 30))[2]
        assert len(third.headers["webhook-signature"].split(" ")) == 1
        Webhook(new_secret).verify(third.body, third.headers)
        with pytest.raises(Exception, match="signature"):
            Webhook(secret).verify(third.body, third.headers)
        assert picky.received == []  # it wants grants only
    finally:
        await receiver.stop()
        await picky.stop()


async def test_a_failing_receiver_is_retried_until_it_answers(infra, topics, services, tmp_path) -> None:
    provider, consumer = fresh_code(), fresh_code()
    answers = iter([503, 503])
    receiver = await Receiver(answer=lambda _r: next(answers, 200)).start()
    try:
        notifier = await start_notifier(infra, tmp_path, services, webhook_retry_first_seconds="1")
        await register(notifier, provider, receiver.url)
        await publish(infra, [requested(uuid.uuid4().hex, provider, consumer)])

        async def failing_once() -> list[dict]:
            found = await deliveries(notifier, provider)
            return found if found and found[0]["attempts"] >= 1 and found[0]["state"] == "PENDING" else []

        [pending] = await until(failing_once, 30, "a first failed attempt")
        assert pending["last_error"].startswith("HTTP 503") and pending["last_status"] == 503
        assert pending["next_try_at"] is not None
        await receiver.wait_for(1, 30)
        assert [r.status for r in receiver.received] == [503, 503, 200]
        assert len({r.webhook_id for r in receiver.received}) == 1  # the same notice each time
        [done] = await until(lambda: deliveries(notifier, provider, state="DELIVERED"), 10, "delivered")
        assert done["attempts"] == 3 and done["last_status"] == 200
    finally:
        await receiver.stop()


async def test_a_delivery_given_up_is_dead_listed_and_replayed(infra, topics, services, tmp_path) -> None:
    provider, consumer, it_office = fresh_code(), fresh_code(), fresh_code()
    healthy = False
    receiver = await Receiver(answer=lambda _r: 200 if healthy else 500).start()
    try:
        notifier = await start_notifier(
            infra, tmp_path, services, webhook_give_up_after_seconds="2", it_office_code=it_office
        )
        await register(notifier, provider, receiver.url)
        await publish(infra, [requested(uuid.uuid4().hex, provider, consumer) for _ in range(2)])
        dead = await until(
            lambda: _when(deliveries(notifier, provider, state="DEAD"), lambda f: len(f) == 2), 30, "two dead"
        )
        assert all(d["attempts"] >= 2 and d["last_error"].startswith("HTTP 500") for d in dead)
        assert all(d["next_try_at"] is None for d in dead)
        oversight = bearer(it_office, Role.IT_OFFICE_OPERATOR)
        async with httpx.AsyncClient(base_url=notifier.url, headers=oversight) as client:
            seen = await client.get("/webhook-deliveries", params={"state": "DEAD", "department_code": provider})
            assert {d["delivery_id"] for d in seen.json()["items"]} == {d["delivery_id"] for d in dead}
        other = fresh_code()  # another department's data administrator sees none of it
        async with httpx.AsyncClient(base_url=notifier.url, headers=admin(other)) as client:
            assert (await client.get(f"/webhooks/{provider}/deliveries")).status_code == 403
            assert (await client.get("/webhook-deliveries")).status_code == 403

        healthy = True
        first, second = sorted(dead, key=lambda d: d["created_at"])
        async with httpx.AsyncClient(base_url=notifier.url, headers=admin(provider)) as client:
            replayed = await client.post(f"/webhooks/{provider}/deliveries/{first['delivery_id']}/replay")
            assert replayed.status_code == 202, replayed.text
        await receiver.wait_for(1, 30)
        async with httpx.AsyncClient(base_url=notifier.url, headers=oversight) as client:  # the IT office replays
            replayed = await client.post("/webhook-deliveries/replay", params={"department_code": provider})
            assert replayed.json() == {"replayed": 1}
        await receiver.wait_for(2, 30)
        assert sorted(receiver.accepted_ids()) == sorted(d["notification_id"] for d in dead)
        done = await until(
            lambda: _when(deliveries(notifier, provider, state="DELIVERED"), lambda f: len(f) == 2), 10, "delivered"
        )
        assert {d["delivery_id"] for d in done} == {first["delivery_id"], second["delivery_id"]}
        async with httpx.AsyncClient(base_url=notifier.url, headers=admin(provider)) as client:
            again = await client.post(f"/webhooks/{provider}/deliveries/{first['delivery_id']}/replay")
        assert again.status_code == 409  # delivered: nothing to replay
    finally:
        await receiver.stop()


async def _when(found, accept):
    result = await found
    return result if accept(result) else None


async def test_a_receiver_down_gets_everything_afterwards_in_order_per_resource(
    infra, topics, services, tmp_path
) -> None:
    provider, consumer = fresh_code(), fresh_code()
    receiver = await Receiver().start()
    port = receiver.port
    await receiver.stop()  # down before anything is sent
    notifier = await start_notifier(infra, tmp_path, services)
    await register(notifier, consumer, f"http://127.0.0.1:{port}/hook")
    requests = [uuid.uuid4().hex for _ in range(3)]
    resources = {r: f"101001/{i + 1:06d}" for i, r in enumerate(requests)}  # one resource each: three chains
    events = [decided(r, provider, consumer, f"{r}-{n}", resources[r]) for n in range(5) for r in requests]
    for event in events:  # the requests' keys spread them over partitions; each request's events in order
        await publish(infra, [event])

    async def all_queued() -> list[dict]:
        # a notice just committed is marked as waiting once the worker takes it: waited for, not assumed
        found = await deliveries(notifier, consumer)
        behind = sum(1 for d in found if d["waiting_behind_earlier"])
        retried = any(d["attempts"] >= 2 for d in found)
        return found if len(found) == len(events) and retried and behind == len(events) - len(requests) else []

    queued = await until(all_queued, 60, "every notice queued, the heads retried, the rest waiting behind them")
    waiting = [d for d in queued if d["waiting_behind_earlier"]]
    assert len(waiting) == len(events) - len(requests)  # one head per request is tried, the rest wait
    assert all(d["attempts"] == 0 for d in waiting)
    await asyncio.sleep(3)  # down a while longer: retries back off

    receiver = await Receiver(port=port).start()
    try:
        got = await receiver.wait_for(len(events), 60)
        assert len({r.webhook_id for r in got}) == len(events)
        for r in requests:
            assert [reasons_of(x) for x in got if reasons_of(x).startswith(r)] == [f"{r}-{n}" for n in range(5)]
    finally:
        await receiver.stop()


async def test_a_notifier_killed_with_deliveries_pending_loses_none(infra, topics, services, tmp_path) -> None:
    provider, consumer = fresh_code(), fresh_code()
    receiver = await Receiver().start()
    port = receiver.port
    await receiver.stop()
    database, prefix = f"webhooks_{uuid.uuid4().hex[:8]}", f"wh{uuid.uuid4().hex[:8]}-"
    for topic in SUBSCRIBED:
        await skip_backlog(infra, prefix + "notifier", topic)
    notifier = await start_notifier(infra, tmp_path, services, mongo_database=database, consumer_group_prefix=prefix)
    await register(notifier, consumer, f"http://127.0.0.1:{port}/hook")
    requests = [uuid.uuid4().hex for _ in range(4)]
    resources = {r: f"101001/{i + 1:06d}" for i, r in enumerate(requests)}  # one resource each: three chains
    events = [decided(r, provider, consumer, f"{r}-{n}", resources[r]) for n in range(5) for r in requests]
    await publish(infra, events)
    await until(
        lambda: _when(deliveries(notifier, consumer), lambda f: len(f) == len(events) and f[0]["attempts"] >= 1),
        60,
        "every notice queued, the first tried",
    )
    notifier.signal(9)
    notifier.wait_exit(10)

    receiver = await Receiver(port=port).start()
    try:
        restarted = await start_notifier(
            infra, tmp_path, services, mongo_database=database, consumer_group_prefix=prefix
        )
        got = await receiver.wait_for(len(events), 90)
        ids = [r.webhook_id for r in got]
        assert len(set(ids)) == len(events), f"{len(set(ids))} of {len(events)} notices arrived"
        for r in requests:
            assert [reasons_of(x) for x in got if reasons_of(x).startswith(r)] == [f"{r}-{n}" for n in range(5)]
        done = await deliveries(restarted, consumer, state="DELIVERED")
        assert len(done) == len(events)
    finally:
        await receiver.stop()


async def test_registration_refuses_urls_the_notifier_must_not_call(infra, topics, services, tmp_path) -> None:
    department = fresh_code()
    notifier = await start_notifier(infra, tmp_path, services, webhook_allow_private_targets="false")
    refused = {
        "http://127.0.0.1:9/hook": "127.0.0.1",
        "http://localhost:9/hook": "resolves to",  # a name is resolved, not trusted
        "http://[::1]:9/hook": "::1",
        "http://169.254.169.254/latest/meta-data": "169.254.169.254",
        "http://10.0.0.8/hook": "10.0.0.8",
        "http://224.0.0.1/hook": "224.0.0.1",
        "https://user:secret@hooks.example.gov.cn/n": "password",
        "ftp://hooks.example.gov.cn/n": "scheme",
        "https://hooks.invalid/n": "does not resolve",
    }
    async with httpx.AsyncClient(base_url=notifier.url, headers=admin(department)) as client:
        for url, reason in refused.items():
            response = await client.post(f"/webhooks/{department}/endpoints", json={"url": url})
            assert response.status_code == 422, (url, response.text)
            assert response.json()["field"] == "url" and reason in response.json()["detail"], (url, response.text)
        too_long = await client.post(f"/webhooks/{department}/endpoints", json={"url": "https://a.cn/" + "x" * 3000})
        assert too_long.status_code == 422
        other = await client.post(f"/webhooks/{fresh_code()}/endpoints", json={"url": "https://a.cn/"})
        assert other.status_code == 403  # another department's webhooks are not hers
        assert (await client.get(f"/webhooks/{department}/endpoints")).json() == []
    reader = bearer(department, Role.CATALOG_COMPILER)
    async with httpx.AsyncClient(base_url=notifier.url, headers=reader) as client:
        assert (await client.get(f"/webhooks/{department}/endpoints")).status_code == 403


async def test_a_department_that_chose_no_webhooks_gets_none(infra, topics, services, tmp_path) -> None:
    provider, consumer = fresh_code(), fresh_code()
    receiver = await Receiver().start()
    try:
        notifier = await start_notifier(infra, tmp_path, services)
        await register(notifier, provider, receiver.url)
        async with httpx.AsyncClient(base_url=notifier.url, headers=admin(provider)) as client:
            chosen = await client.put(f"/preferences/{provider}", json={"channels": ["INBOX"]})
            assert chosen.status_code in (200, 204), chosen.text
        await publish(infra, [requested(uuid.uuid4().hex, provider, consumer)])
        async with httpx.AsyncClient(base_url=notifier.url, headers=admin(provider)) as client:
            await until(lambda: _when(client.get(f"/inbox/{provider}"), lambda r: r.json()["items"]), 30, "inbox")
        await asyncio.sleep(2)
        assert receiver.received == [] and await deliveries(notifier, provider) == []
        async with httpx.AsyncClient(base_url=notifier.url, headers=admin(provider)) as client:
            chosen = await client.put(f"/preferences/{provider}", json={"channels": ["INBOX", "WEBHOOK"]})
        await publish(infra, [requested(uuid.uuid4().hex, provider, consumer)])
        assert len(await receiver.wait_for(1, 30)) == 1
    finally:
        await receiver.stop()


async def test_a_department_on_webhooks_only_without_an_endpoint_finds_its_notices_in_its_inbox(
    infra, topics, services, tmp_path
) -> None:
    lonely, served, consumer = fresh_code(), fresh_code(), fresh_code()
    receiver = await Receiver().start()
    try:
        notifier = await start_notifier(infra, tmp_path, services)
        await register(notifier, served, receiver.url)
        for department in (lonely, served):
            async with httpx.AsyncClient(base_url=notifier.url, headers=admin(department)) as client:
                chosen = await client.put(f"/preferences/{department}", json={"channels": ["WEBHOOK"]})
                assert chosen.status_code in (200, 204), chosen.text
        await publish(infra, [requested(uuid.uuid4().hex, department, consumer) for department in (lonely, served)])
        async with httpx.AsyncClient(base_url=notifier.url, headers=admin(lonely)) as client:
            await until(lambda: _when(client.get(f"/inbox/{lonely}"), lambda r: r.json()["items"]), 30, "inbox")
            [notice] = (await client.get(f"/inbox/{lonely}")).json()["items"]
        assert notice["kind"] == "REQUEST_ARRIVED" and "INBOX" in notice["channels"]
        assert "no active webhook endpoint" in notice["fallback"]
        assert await deliveries(notifier, lonely) == []
        # the department with an endpoint gets its notice there, not in the inbox it did not choose
        assert len(await receiver.wait_for(1, 30)) == 1
        async with httpx.AsyncClient(base_url=notifier.url, headers=admin(served)) as client:
            assert (await client.get(f"/inbox/{served}")).json()["items"] == []
    finally:
        await receiver.stop()


async def test_signing_secrets_are_sealed_at_rest_and_clear_ones_kept_before_are_sealed_at_start(
    infra, topics, services, tmp_path
) -> None:
    provider, consumer = fresh_code(), fresh_code()
    database = f"webhooks_{uuid.uuid4().hex[:8]}"
    old_secret, now = "whsec_" + base64.b64encode(b"k" * 32).decode(), datetime.now(UTC)
    receiver = await Receiver().start()
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    try:
        endpoints = mongo[database]["notifier_webhooks"]
        await endpoints.insert_one(  # as kept before secrets were sealed
            {"_id": "wh_old", "department_code": provider, "url": receiver.url, "kinds": [],
             "secrets": [{"value": old_secret, "created_at": now, "expires_at": None}],
             "created_by": "admin", "created_at": now, "description": ""}
        )  # fmt: skip
        new_key = "k2:" + base64.b64encode(b"n" * 32).decode()
        notifier = await start_notifier(
            infra, tmp_path, services, mongo_database=database, webhook_secret_keys=f"{new_key},{DEV_SECRET_KEYS}"
        )
        [migrated] = [s["sealed"] for s in (await endpoints.find_one({"_id": "wh_old"}))["secrets"]]
        assert migrated.startswith("k2:") and old_secret not in str(await endpoints.find_one({"_id": "wh_old"}))
        shown = (await register(notifier, provider, receiver.url + "?second"))["secret"]
        stored = await endpoints.find_one({"url": receiver.url + "?second"})
        assert shown not in str(stored) and stored["secrets"][0]["sealed"].startswith("k2:")
        await publish(infra, [requested(uuid.uuid4().hex, provider, consumer)])
        got = await receiver.wait_for(2, 30)
        assert sorted(hmac_ok(old_secret, r) for r in got) == [False, True]  # each endpoint signs with its own
        assert sorted(hmac_ok(shown, r) for r in got) == [False, True]
    finally:
        await mongo.close()
        await receiver.stop()


def _plan(explained: dict) -> str:
    return str(explained["queryPlanner"]["winningPlan"])


async def test_open_deliveries_are_found_from_indexes_that_hold_only_open_ones(infra) -> None:
    """The worker's lookups of open deliveries (of many chains at once, and those due) are answered from
    indexes, not by reading every delivery ever made; those indexes hold open deliveries only, so a finished
    one leaves them. A database kept before gets them in place of its full indexes."""
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    db = mongo[f"webhooks_{uuid.uuid4().hex[:8]}"]
    deliveries = db[webhooks_mongo.DELIVERIES]
    try:
        await deliveries.create_index([("state", 1), ("next_try_at", 1)])  # as kept before
        await deliveries.create_index([("chain", 1), ("seq", 1)])
        await webhooks_mongo.ensure_indexes(db, SecretSealer.parse(DEV_SECRET_KEYS))
        found = await deliveries.index_information()
        assert "chain_1_seq_1" not in found and "state_1_next_try_at_1" not in found
        for name in ("open_by_chain", "open_by_due"):
            assert found[name]["partialFilterExpression"] == {"state": "PENDING"}
        now = datetime.now(UTC)
        made = [
            Delivery(f"wh_{n}:x{k}", f"wh_{n}", "d", f"x{k}", f"wh_{n}|r", n * 10 + k, "{}", now, now)
            for n in range(webhooks_mongo.IN_PER_QUERY + 10)  # more chains than one lookup takes
            for k in range(2)
        ]
        await deliveries.insert_many([webhooks_mongo.delivery_doc(d) for d in made])
        chains = [d.chain for d in made]
        by_chain = deliveries.find(webhooks_mongo.open_in_chains(chains)).sort(webhooks_mongo.OPEN_BY_CHAIN)
        assert "open_by_chain" in _plan(await by_chain.explain())
        due = deliveries.find({**webhooks_mongo.OPEN, "next_try_at": {"$lte": now}}).sort("next_try_at", 1)
        assert "open_by_due" in _plan(await due.explain())
        store = webhooks_mongo.MongoWebhookStore(db, SecretSealer.parse(DEV_SECRET_KEYS))
        go = await store.take(made, now)  # the first of each chain goes, the second waits behind it
        assert sorted(d.delivery_id for d in go) == sorted(d.delivery_id for d in made if d.seq % 10 == 0)
        first = made[0]
        outcome = Outcome(first, DeliveryState.DELIVERED, 1, now, 200, delivered_at=now)
        await store.record([outcome], now)
        open_ones = await by_chain.clone().to_list()
        assert len(open_ones) == len(made) - 1 and first.delivery_id not in {d["_id"] for d in open_ones}
        behind = next(d for d in open_ones if d["chain"] == first.chain)
        assert behind["waiting"] is False and behind["next_try_at"] <= now  # due now that the first is done
        assert (await store.delivery(first.delivery_id)).state is DeliveryState.DELIVERED  # still queryable
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()


async def test_an_outcome_written_after_its_claim_was_lost_changes_nothing(infra) -> None:
    """A delivery claimed again after its lease ended is the new attempt's: the first attempt's late outcome
    neither books it delivered (freeing the chain's next one while the second attempt is in flight) nor
    sets it back to pending; the new attempt's outcome is written and frees the next one."""
    async with webhook_db(infra) as (db, sealer):
        store = webhooks_mongo.MongoWebhookStore(db, sealer)
        now = datetime.now(UTC)
        first, second = (Delivery(f"wh_a:n{k}", "wh_a", "d", f"n{k}", "wh_a|r", k, "{}", now, now) for k in (1, 2))
        await db[webhooks_mongo.DELIVERIES].insert_many([webhooks_mongo.delivery_doc(d) for d in (first, second)])
        [lost] = await store.claim_due(now, 10, now + timedelta(seconds=30))  # the second waits behind it
        assert lost.delivery_id == first.delivery_id and lost.lease is not None
        later = now + timedelta(seconds=31)  # the lease ended: claimed again by another attempt
        [owner] = await store.claim_due(later, 10, later + timedelta(seconds=30))
        assert owner.delivery_id == first.delivery_id and owner.lease != lost.lease
        before = await db[webhooks_mongo.DELIVERIES].find({}).sort("seq", 1).to_list()
        for late in (
            Outcome(lost, DeliveryState.DELIVERED, 1, now, 200, delivered_at=later),
            Outcome(lost, DeliveryState.PENDING, 1, now, 500, "HTTP 500", later + timedelta(seconds=5)),
        ):
            await store.record([late], later)
            assert await db[webhooks_mongo.DELIVERIES].find({}).sort("seq", 1).to_list() == before
        await store.record([Outcome(owner, DeliveryState.DELIVERED, 2, now, 200, delivered_at=later)], later)
        assert (await store.delivery(first.delivery_id)).state is DeliveryState.DELIVERED
        freed = await store.delivery(second.delivery_id)
        assert freed.state is DeliveryState.PENDING and not freed.waiting and freed.next_try_at <= later


class Finds(monitoring.CommandListener):
    """The filters of the `find` commands sent on the deliveries."""

    def __init__(self) -> None:
        self.filters: list[dict] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command["find"] == webhooks_mongo.DELIVERIES:
            self.filters.append(dict(event.command.get("filter", {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_while_a_chain_drains_each_finish_reads_only_the_next_delivery(infra) -> None:
    """While a receiver's backlog drains, each delivery that finishes frees the next of its chain by reading
    that one delivery by its id: the chain's open backlog (which the local database reads whole for any query
    on the chain) is read once, not once per delivery. The order per chain holds."""
    finds = Finds()
    async with webhook_db(infra, finds) as (db, sealer):
        now = datetime.now(UTC)
        backlog = [Delivery(f"wh_b:n{k}", "wh_b", "d", f"n{k}", "wh_b|r", k, "{}", now, now) for k in range(40)]
        for d in backlog[1:]:
            d.waiting = True
        other = Delivery("wh_c:n0", "wh_c", "d", "n0", "wh_c|r", 0, "{}", now, now, waiting=True)
        await db[webhooks_mongo.DELIVERIES].insert_many([webhooks_mongo.delivery_doc(d) for d in [*backlog, other]])
        store = webhooks_mongo.MongoWebhookStore(db, sealer)
        finds.filters.clear()
        woken = []
        for d in backlog:
            await store.record([Outcome(d, DeliveryState.DELIVERED, 1, now, 200, delivered_at=now)], now)
            due = await db[webhooks_mongo.DELIVERIES].find({"waiting": False, "state": "PENDING"}).to_list()
            woken.append([doc["_id"] for doc in due])
        assert woken == [[d.delivery_id] for d in backlog[1:]] + [[]]  # one at a time, in order
        assert (await store.delivery(other.delivery_id)).waiting  # another chain's is left alone
        backlog_reads = [f for f in finds.filters if "chain" in f]
        by_id = [f for f in finds.filters if set(f) == {"_id"}]
        assert len(backlog_reads) <= 2, backlog_reads  # read at the first finish (and found empty at the last)
        assert len(by_id) <= len(backlog), len(by_id)


async def test_a_fan_out_s_finishes_read_the_open_deliveries_of_many_chains_together(infra) -> None:
    """A change told to many endpoints finishes many chains at once: their open deliveries are read fifty
    chains to a query, not one query per chain (nor one per delivery by its id); each waiting one after a
    finished one is due now, and a chain with nothing after its finished one is left as it is."""
    finds = Finds()
    async with webhook_db(infra, finds) as (db, sealer):
        now = datetime.now(UTC)
        chains = 2 * webhooks_mongo.IN_PER_QUERY + 20
        first = [Delivery(f"wh_{n}:a", f"wh_{n}", "d", "a", f"wh_{n}|r", 1, "{}", now, now) for n in range(chains)]
        second = [
            Delivery(f"wh_{n}:b", f"wh_{n}", "d", "b", f"wh_{n}|r", 2, "{}", now, now, waiting=True)
            for n in range(0, chains, 2)  # every other chain has one waiting behind its first
        ]
        await db[webhooks_mongo.DELIVERIES].insert_many([webhooks_mongo.delivery_doc(d) for d in first + second])
        store = webhooks_mongo.MongoWebhookStore(db, sealer)
        finds.filters.clear()
        await store.record([Outcome(d, DeliveryState.DELIVERED, 1, now, 200, delivered_at=now) for d in first], now)
        due = await db[webhooks_mongo.DELIVERIES].find({"waiting": False, "state": "PENDING"}).to_list()
        assert sorted(doc["_id"] for doc in due) == sorted(d.delivery_id for d in second)
        chain_reads = [f for f in finds.filters if "chain" in f]
        assert len(chain_reads) == 3, chain_reads  # 120 chains, fifty to a query
        assert not [f for f in finds.filters if set(f) == {"_id"}]


async def test_a_delivery_handed_over_goes_to_its_endpoint_as_it_is_now(infra) -> None:
    """The worker sends the deliveries its own transactions queued to their endpoints as they are when it
    takes them, not as the transaction read them: one removed since (a receiver or secret compromised) gets
    nothing, and the delivery is dead with the reason; one still there gets it signed with its secret."""
    from services.notifier.adapters.webhooks_delivery import WebhookDeliverer
    from services.notifier.domain.webhooks import Endpoint, RetrySchedule, SigningSecret, new_secret
    from services.notifier.webhooks import UrlPolicy

    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    db = mongo[f"webhooks_{uuid.uuid4().hex[:8]}"]
    receiver = await Receiver().start()
    sealer = SecretSealer.parse(DEV_SECRET_KEYS)
    store = webhooks_mongo.MongoWebhookStore(db, sealer)

    async def no_lookup(host: str, port: int) -> list[str]:
        return []

    deliverer = WebhookDeliverer(store, RetrySchedule(), UrlPolicy(no_lookup, allow_private=True), timeout=5.0)
    worker = None
    try:
        await webhooks_mongo.ensure_indexes(db, sealer)
        now = datetime.now(UTC)
        secret = new_secret()
        endpoint = Endpoint("wh_h", "d", receiver.url, frozenset(), [SigningSecret(secret, now)], "test", now)
        held = now + deliverer.lease
        # the endpoint was removed after the transaction read it: not in the database
        removed = Delivery("wh_h:n0", "wh_h", "d", "n0", "wh_h|r", 1, '{"a":0}', now, held, lease="held")
        await db[webhooks_mongo.DELIVERIES].insert_one(webhooks_mongo.delivery_doc(removed))
        worker = asyncio.create_task(deliverer.run())
        deliverer.hand_over([removed])

        async def dead() -> Delivery | None:
            found = await store.delivery(removed.delivery_id)
            return found if found is not None and found.state is DeliveryState.DEAD else None

        gone = await until(dead, 60, "the delivery to the removed endpoint given up")
        assert "removed" in (gone.last_error or "")
        assert receiver.accepted() == []

        await store.add_endpoint(endpoint)
        delivery = Delivery("wh_h:n1", "wh_h", "d", "n1", "wh_h|r2", 1, '{"a":1}', now, held, lease="held")
        await db[webhooks_mongo.DELIVERIES].insert_one(webhooks_mongo.delivery_doc(delivery))
        deliverer.hand_over([delivery])

        async def arrived() -> list[Received]:
            return receiver.accepted()

        got = await until(arrived, 60, "the handed-over delivery")
        assert [r.webhook_id for r in got] == ["n1"]
        Webhook(secret).verify(got[0].body, got[0].headers)
        stored = await until(lambda: _delivered(store, delivery.delivery_id), 60, "its outcome written under its claim")
        assert stored.attempts == 1
    finally:
        if worker is not None:
            worker.cancel()
        await receiver.stop()
        await mongo.drop_database(db.name)
        await mongo.close()


async def _delivered(store: webhooks_mongo.MongoWebhookStore, delivery_id: str) -> Delivery | None:
    found = await store.delivery(delivery_id)
    return found if found is not None and found.state is DeliveryState.DELIVERED else None


class Updates(monitoring.CommandListener):
    """The update statements sent on the deliveries: (filter, multi) of each."""

    def __init__(self) -> None:
        self.statements: list[tuple[dict, bool]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update" and event.command["update"] == webhooks_mongo.DELIVERIES:
            self.statements += [(dict(u["q"]), bool(u.get("multi"))) for u in event.command["updates"]]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_delivered_attempts_of_one_claim_are_written_together_and_a_lost_claim_s_not_at_all(infra) -> None:
    """The delivered attempts of deliveries queued under one claim are written with one update per fifty (the
    local database spends half as much per document so), each naming the claim: one of them claimed again by
    another attempt meanwhile is left as the other attempt has it. A failed attempt is written by itself
    (its next try is its own). Each delivered one reads delivered, its time rounded up to the second."""
    updates = Updates()
    async with webhook_db(infra, updates) as (db, sealer):
        store = webhooks_mongo.MongoWebhookStore(db, sealer)
        now = datetime.now(UTC)
        held = now + timedelta(seconds=30)
        made = [
            Delivery(f"wh_{n}:a", f"wh_{n}", "d", "a", f"wh_{n}|r", n, "{}", now, held, lease="L") for n in range(120)
        ]
        await db[webhooks_mongo.DELIVERIES].insert_many([webhooks_mongo.delivery_doc(d) for d in made])
        taken = made[7]  # its claim ended and another attempt holds it now
        await db[webhooks_mongo.DELIVERIES].update_one({"_id": taken.delivery_id}, {"$set": {"lease": "M"}})
        failed = made[-1]
        at = now.replace(microsecond=0) + timedelta(seconds=1)  # their times differ within the second before it
        outcomes = [
            Outcome(d, DeliveryState.DELIVERED, 1, now, 204, delivered_at=at - timedelta(milliseconds=n + 1))
            for n, d in enumerate(made[:-1])
        ]
        outcomes.append(Outcome(failed, DeliveryState.PENDING, 1, now, 500, "HTTP 500", at + timedelta(seconds=5)))
        updates.statements.clear()
        await store.record(outcomes, at)
        many = [q for q, multi in updates.statements if multi]
        single = [q for q, multi in updates.statements if not multi]
        assert len(many) == 3 and single == [{"_id": failed.delivery_id, "lease": "L"}], updates.statements
        assert all(q["lease"] == "L" for q in many)
        stored = {doc["_id"]: doc for doc in await db[webhooks_mongo.DELIVERIES].find({}).to_list()}
        for d in made[:-1]:
            doc = stored[d.delivery_id]
            if d is taken:
                assert doc["state"] == "PENDING" and doc["lease"] == "M" and doc["attempts"] == 0
            else:
                assert doc["state"] == "DELIVERED" and doc["lease"] is None and doc["last_status"] == 204
                assert doc["delivered_at"] == at
        assert stored[failed.delivery_id]["state"] == "PENDING" and stored[failed.delivery_id]["last_status"] == 500


def _held(n: int, now: datetime, seq: int = 1, **fields) -> Delivery:
    """A delivery queued and held by this process (claimed for 30 s under lease L)."""
    held_until = now + timedelta(seconds=30)
    return Delivery(
        f"wh_{n}:s{seq}", f"wh_{n}", "d", f"s{seq}", f"wh_{n}|r", seq, "{}", now, held_until, lease="L", **fields
    )


async def test_a_write_that_finishes_more_chains_than_backlogs_are_kept_wakes_each_one_behind(
    infra, monkeypatch
) -> None:
    """Each chain finished by one write has the delivery waiting behind its finished one woken, however many
    chains the write finished: more than the backlogs kept (which a cache dropped before they were looked
    up, leaving every one of them to the five-minute recheck)."""
    monkeypatch.setattr(webhooks_mongo, "BACKLOGS_KEPT", 3)
    await _wakes_each_chain(infra, chains=8, behind_first=0)


async def test_chains_after_one_with_a_long_backlog_in_the_same_read_are_woken_too(infra, monkeypatch) -> None:
    """Chains read together share a row limit: a chain with more open deliveries than the limit, read first,
    must not leave the chains after it unread (their waiting ones would wait for the recheck)."""
    monkeypatch.setattr(webhooks_mongo, "FIRST_OPEN_CAP", 5)
    await _wakes_each_chain(infra, chains=4, behind_first=7)


async def _wakes_each_chain(infra, *, chains: int, behind_first: int) -> None:
    """`chains` chains of a finished delivery and one waiting behind it; the first chain has `behind_first`
    more waiting. One write of their outcomes wakes the first waiting one of each chain."""
    async with webhook_db(infra) as (db, sealer):
        store = webhooks_mongo.MongoWebhookStore(db, sealer)
        now = datetime.now(UTC)
        first = [_held(n, now) for n in range(chains)]
        waiting = [_held(n, now, seq=2, waiting=True) for n in range(chains)]
        more = [_held(0, now, seq=3 + k, waiting=True) for k in range(behind_first)]
        await db[webhooks_mongo.DELIVERIES].insert_many(
            [webhooks_mongo.delivery_doc(d) for d in first + waiting + more]
        )
        await store.record([Outcome(d, DeliveryState.DELIVERED, 1, now, 200, delivered_at=now) for d in first], now)
        woken = await db[webhooks_mongo.DELIVERIES].find({"waiting": False, "seq": {"$gt": 1}}).to_list()
        assert sorted(doc["_id"] for doc in woken) == sorted(d.delivery_id for d in waiting)


async def test_the_queuing_transaction_reads_no_endpoint_secret(infra) -> None:
    """The notifier as its bootstrap wires it: the transaction that queues deliveries reads which endpoints
    want what, never their secrets (the worker reads each endpoint by its id when it sends)."""
    from services.notifier import main as notifier_main
    from services.notifier.settings import NotifierSettings

    settings = NotifierSettings(
        kafka_bootstrap_servers=infra.bootstrap,
        mongo_uri=infra.mongo_uri,
        mongo_database=f"webhooks_{uuid.uuid4().hex[:8]}",
        http_port=0,
    )
    app, runtime = notifier_main.build(settings)  # not started: its unit of work and store are used directly
    try:
        channel, department = app.state.webhooks, fresh_code()
        endpoint, _ = await webhooks.register(
            channel.store,
            channel.urls,
            department_code=department,
            url="http://127.0.0.1:9/hook",
            kinds=frozenset(),
            description="",
            created_by="test",
            now=datetime.now(UTC),
        )
        async with app.state.notifier_uow() as tx:
            found = await tx.webhooks.endpoints_of({department})
        assert [e.endpoint_id for e in found] == [endpoint.endpoint_id]
        assert found[0].secrets == []
        assert (await channel.store.endpoint(endpoint.endpoint_id)).secrets  # kept, and read where they sign
    finally:
        await runtime.client.drop_database(settings.mongo_database)
        await runtime.client.close()


class PreferenceFinds(monitoring.CommandListener):
    """The filters of the `find` commands sent on the departments' preferences."""

    def __init__(self) -> None:
        self.filters: list[dict] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command["find"] == "notifier_preferences":
            self.filters.append(dict(event.command.get("filter", {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_fan_out_reads_the_preferences_chosen_in_one_query_while_they_are_few(infra, monkeypatch) -> None:
    """A transaction asking the preferences of many departments (a change told to every holder) reads the
    departments' choices whole in one query while at most PREFERENCES_READ_WHOLE chose, and finds each
    department's own; past that bound it looks them up fifty to a query, with the same answer, and the
    following fan-outs skip the whole read until PREFERENCES_MANY_RECHECK has passed."""
    from common import mongo as common_mongo
    from services.notifier import main as notifier_main
    from services.notifier.adapters import mongo as notifier_mongo
    from services.notifier.domain.notifications import Channel
    from services.notifier.domain.preferences import Preferences
    from services.notifier.settings import NotifierSettings

    finds = PreferenceFinds()
    listened = functools.partial(AsyncMongoClient, event_listeners=[finds])
    monkeypatch.setattr(common_mongo, "AsyncMongoClient", listened)  # the notifier's client, made next, reports
    settings = NotifierSettings(
        kafka_bootstrap_servers=infra.bootstrap,
        mongo_uri=infra.mongo_uri,
        mongo_database=f"webhooks_{uuid.uuid4().hex[:8]}",
        http_port=0,
    )
    app, runtime = notifier_main.build(settings)  # not started: its unit of work is used directly
    try:
        asked = [fresh_code() for _ in range(2 * webhooks_mongo.IN_PER_QUERY + 20)]
        chose = {code: Preferences(code, channels=frozenset({Channel.INBOX})) for code in asked[::40]}
        async with app.state.notifier_uow() as tx:
            for chosen in [*chose.values(), Preferences(fresh_code())]:  # and one of a department not asked
                await tx.set_preferences(chosen)
        monkeypatch.setattr(notifier_mongo, "PREFERENCES_READ_WHOLE", 100)
        finds.filters.clear()
        async with app.state.notifier_uow() as tx:
            assert await tx.preferences(asked) == chose
        assert finds.filters == [{}]  # the few chosen read whole
        monkeypatch.setattr(notifier_mongo, "PREFERENCES_READ_WHOLE", 2)  # more chose than that
        finds.filters.clear()
        async with app.state.notifier_uow() as tx:
            assert await tx.preferences(asked) == chose
        assert finds.filters[0] == {} and len(finds.filters) == 1 + 3  # a bounded look, then fifty to a query
        finds.filters.clear()
        async with app.state.notifier_uow() as tx:
            assert await tx.preferences(asked) == chose
        assert len(finds.filters) == 3 and {} not in finds.filters  # known to be many: no bounded look
        monkeypatch.setattr(notifier_mongo, "PREFERENCES_READ_WHOLE", 100)  # fewer chose since
        monkeypatch.setitem(notifier_mongo._preferences_many_until, settings.mongo_database, datetime.now(UTC))
        finds.filters.clear()
        async with app.state.notifier_uow() as tx:
            assert await tx.preferences(asked) == chose
        assert finds.filters == [{}]  # the recheck is due: read whole again
    finally:
        await runtime.client.drop_database(settings.mongo_database)
        await runtime.client.close()


async def test_a_delivery_queued_while_another_process_queues_into_its_chain_waits_behind_it(infra) -> None:
    """A chain's deliveries are queued by more than one process at once (two consumer groups and every
    replica's timer queue a resource's notices): a transaction that found nothing open in its chain cannot
    know its delivery the chain's first. One queued meanwhile by another process, numbered before it and
    committed before it is taken, goes first; the later one waits behind it."""
    from services.notifier import main as notifier_main
    from services.notifier.settings import NotifierSettings

    settings = NotifierSettings(
        kafka_bootstrap_servers=infra.bootstrap,
        mongo_uri=infra.mongo_uri,
        mongo_database=f"webhooks_{uuid.uuid4().hex[:8]}",
        http_port=0,
    )
    app, runtime = notifier_main.build(settings)  # not started: its unit of work and store are used directly
    try:
        await webhooks_mongo.ensure_indexes(runtime.db, settings.sealer())
        uow, store, handed = app.state.notifier_uow, app.state.webhooks.store, []
        uow.on_deliveries = handed.extend
        now = datetime.now(UTC)
        tag = uuid.uuid4().hex[:6]

        def delivery(n: int) -> Delivery:
            return Delivery(f"wh_a:{tag}{n}", "wh_a", "d", f"{tag}{n}", "wh_a|r", 0, "{}", now, now)

        other = delivery(0)
        other.seq = webhooks_mongo.next_seq()  # numbered first, by another process
        async with uow() as tx:
            await tx.webhooks.queue([delivery(1)])  # nothing open in the chain as this transaction sees it
            # the other process commits its delivery while this transaction is still open
            await runtime.db[webhooks_mongo.DELIVERIES].insert_one(webhooks_mongo.delivery_doc(other))
        assert [d.delivery_id for d in handed] == [f"wh_a:{tag}1"]
        assert await store.take(handed, now) == []  # not tried while the other's is open
        waits = await store.delivery(f"wh_a:{tag}1")
        assert waits is not None and waits.waiting and waits.state is DeliveryState.PENDING
    finally:
        await runtime.client.drop_database(settings.mongo_database)
        await runtime.client.close()


async def test_a_delivery_marked_waiting_after_the_one_before_it_finished_is_due_at_once(infra, monkeypatch) -> None:
    """The worker reads a chain's first open delivery, then marks those behind it waiting. If the one before
    finishes in between (another replica's outcome) its wake finds the next one not waiting yet and leaves it;
    the marking then reads the chain again and makes the one now first due at once, not after WAITING_RECHECK."""
    async with webhook_db(infra) as (db, sealer):
        now = datetime.now(UTC)
        before, behind = (Delivery(f"wh_a:n{k}", "wh_a", "d", f"n{k}", "wh_a|r", k, "{}", now, now) for k in (1, 2))
        await db[webhooks_mongo.DELIVERIES].insert_many([webhooks_mongo.delivery_doc(d) for d in (before, behind)])
        store, other_replica = (webhooks_mongo.MongoWebhookStore(db, sealer) for _ in range(2))
        read_first_open = store._first_open
        reads = []

        async def then_the_one_before_finishes(chains, delivered=None):
            first = await read_first_open(chains, delivered)
            reads.append(first)
            if len(reads) == 1:  # right after the worker's read: delivered, and its next one woken if waiting
                done = Outcome(before, DeliveryState.DELIVERED, 1, now, 200, delivered_at=now)
                await other_replica.record([done], now)
            return first

        monkeypatch.setattr(store, "_first_open", then_the_one_before_finishes)
        assert await store.take([behind], now) == []  # behind the one before, as read
        assert reads == [{"wh_a|r": 1}, {"wh_a|r": 2}]  # read again after the marking: first by now
        after = await store.delivery(behind.delivery_id)
        assert after is not None and after.state is DeliveryState.PENDING
        assert not after.waiting and after.next_try_at <= now  # due at once


async def test_a_delivery_behind_one_this_process_delivered_goes_before_that_outcome_is_written(infra) -> None:
    """The worker holds the outcomes of a fan-out's attempts for a while (the database stores the rest of it
    first): a resource's next notice need not wait for that write when the one before it in its chain was
    delivered by this process. One behind an open delivery not delivered here still waits."""
    async with webhook_db(infra) as (db, sealer):
        store = webhooks_mongo.MongoWebhookStore(db, sealer)
        now = datetime.now(UTC)

        def delivery(chain: str, k: int) -> Delivery:
            return Delivery(f"wh_{chain}:n{k}", f"wh_{chain}", "d", f"n{k}", f"wh_{chain}|r", k, "{}", now, now)

        sent, after = delivery("a", 1), delivery("a", 2)  # `sent` delivered here, its outcome not written yet
        unsent, behind = delivery("b", 1), delivery("b", 2)  # `unsent` still open, delivered by no one
        docs = [webhooks_mongo.delivery_doc(d) for d in (sent, after, unsent, behind)]
        await db[webhooks_mongo.DELIVERIES].insert_many(docs)
        delivered = {"wh_a|r": {1}}
        assert await store.take([after, behind], now, delivered) == [after]
        waits = await store.delivery(behind.delivery_id)
        assert waits is not None and waits.waiting
        # claimed from the database alike: due again, `after` goes, `behind` still waits
        await db[webhooks_mongo.DELIVERIES].update_many({}, {"$set": {"next_try_at": now, "waiting": False}})
        await db[webhooks_mongo.DELIVERIES].delete_many({"_id": {"$in": [sent.delivery_id, unsent.delivery_id]}})
        await db[webhooks_mongo.DELIVERIES].insert_one(webhooks_mongo.delivery_doc(unsent) | {"next_try_at": now})
        await db[webhooks_mongo.DELIVERIES].insert_one(
            webhooks_mongo.delivery_doc(sent) | {"next_try_at": now + timedelta(minutes=1)}  # held by its claim
        )
        claimed = await store.claim_due(now, 10, now + timedelta(minutes=1), delivered)
        assert sorted(d.delivery_id for d in claimed) == [after.delivery_id, unsent.delivery_id]
        assert await store.take([after], now) == []  # without it: behind the open one
        # one delivered here whose claim ended before its outcome was written: neither claimed again nor parked
        await db[webhooks_mongo.DELIVERIES].update_one({"_id": sent.delivery_id}, {"$set": {"next_try_at": now}})
        assert await store.claim_due(now, 10, now + timedelta(minutes=1), delivered) == []
        left = await store.delivery(sent.delivery_id)
        assert left is not None and not left.waiting and left.lease is None


async def test_a_chain_whose_kept_deliveries_all_finished_meanwhile_is_read_again(infra) -> None:
    """A finish whose chain's kept backlog holds only deliveries finished meanwhile (by another replica) reads
    the chain again: a waiting one queued since is woken, not left for the recheck."""
    async with webhook_db(infra) as (db, sealer):
        now = datetime.now(UTC)
        chain = [Delivery(f"wh_a:n{k}", "wh_a", "d", f"n{k}", "wh_a|r", k, "{}", now, now) for k in range(4)]
        for d in chain[1:]:
            d.waiting = True
        deliveries = db[webhooks_mongo.DELIVERIES]
        await deliveries.insert_many([webhooks_mongo.delivery_doc(d) for d in chain[:3]])
        store = webhooks_mongo.MongoWebhookStore(db, sealer)
        await store.record([Outcome(chain[0], DeliveryState.DELIVERED, 1, now, 200, delivered_at=now)], now)
        assert not (await store.delivery(chain[1].delivery_id)).waiting  # woken; the chain's others now kept
        await deliveries.update_one({"_id": chain[2].delivery_id}, {"$set": {"state": "DELIVERED", "waiting": False}})
        await deliveries.insert_one(webhooks_mongo.delivery_doc(chain[3]))  # queued since, waiting
        await store.record([Outcome(chain[1], DeliveryState.DELIVERED, 1, now, 200, delivered_at=now)], now)
        woken = await store.delivery(chain[3].delivery_id)
        assert woken is not None and not woken.waiting and woken.next_try_at <= now


async def test_a_delivered_attempt_is_never_dated_before_its_delivery_was_created(infra) -> None:
    """Delivered attempts are written to the second: `delivered_at` is rounded up, so it never reads before
    the delivery's `created_at` (kept to the millisecond) nor before the attempt."""
    async with webhook_db(infra) as (db, sealer):
        created = datetime.now(UTC).replace(microsecond=400_000)
        sent = created + timedelta(milliseconds=200)
        d = Delivery("wh_a:n1", "wh_a", "d", "n1", "wh_a|r", 1, "{}", created, created)
        await db[webhooks_mongo.DELIVERIES].insert_one(webhooks_mongo.delivery_doc(d))
        store = webhooks_mongo.MongoWebhookStore(db, sealer)
        await store.record([Outcome(d, DeliveryState.DELIVERED, 1, created, 200, delivered_at=sent)], sent)
        stored = await store.delivery(d.delivery_id)
        assert stored is not None and stored.state is DeliveryState.DELIVERED
        assert stored.delivered_at == created.replace(microsecond=0) + timedelta(seconds=1)
        assert stored.delivered_at >= sent >= stored.created_at
