"""The access trail against the real broker and database: events of every kind fed through Kafka become
entries that say who, what, why, when and the result; each kind of tampering with the stored trail is
detected; a signed checkpoint is checked with nothing but the public key; queries and who sees what."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import subprocess
import sys
import uuid
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from bson import Binary
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from common.auth import generate_signing_key, load_signing_key
from common.clock import SystemClock
from common.codec import EventCodec
from common.events import Event
from common.kafka import KafkaPublisher
from common.mongo import transaction
from common.policy import Role
from common.topics import load_topics
from devstack.processes import ROOT
from services.auditor import handlers
from services.auditor.adapters.checkpoints import CheckpointSigner
from services.auditor.adapters.trail_mongo import (
    BLOCKS,
    CHECKPOINTS,
    HEAD,
    LAYOUT,
    QUERIED,
    TRAIL,
    MongoTrail,
    block_document,
    block_from,
    blocks_of,
    convert_to_blocks,
    ensure_indexes,
)
from services.auditor.domain.trail import Head, TrailEntry, canonical, describe, link
from services.auditor.ports import AUDITED_TOPICS
from tests.integration.conftest import ServiceProcess, settings_for, skip_backlog
from tests.tokens import bearer

PROVIDER, CONSUMER, OTHER, IT = "91360800MA35F0XX1A", "11360800014511789K", "11360800OTHERDEPT1", "IT"
CITIZEN = "36080219800101001X"
AUDITOR = bearer(IT, Role.AUDITOR, subject="auditor")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def access(
    n: int, *, result: str = "SERVED", purpose: str = "企业开办审批核验", kind: str = "machine", **more
) -> Event:
    payload = {
        "access_id": f"a{n}",
        "resource_code": "101001/000001",
        "provider_code": PROVIDER,
        "consumer_code": CONSUMER,
        "grant_id": "grant-1",
        "channel": "API",
        "purpose": purpose,
        "record_count": 0 if result != "SERVED" else 2,
        "accessed_by": "approval-system" if kind == "machine" else "xzspj-admin",
        "accessed_at": T0 + timedelta(hours=n),
        "accessor_kind": kind,
        "operation": "batch",
        "items": ["企业名称"],
        "subjects_requested": 2,
        "subject_hashes": ["9f" * 16, "8e" * 16],
        "result": result,
        "reason": None,
    } | more
    return Event("DataAccessed", "101001/000001", payload, "exchange", occurred_at=T0 + timedelta(hours=n))


def decided() -> Event:
    payload = {
        "request_id": "r1",
        "resource_code": "101001/000001",
        "provider_code": PROVIDER,
        "consumer_code": CONSUMER,
        "decision": "APPROVED",
        "reasons": "审批核验所需",
        "decided_by": "scjgj-admin",
        "decided_on": date(2026, 11, 3),
        "data_items": ["企业名称"],
        "scope": "regions 3608",
        "valid_from": None,
        "valid_to": None,
        "narrowed": False,
        "decide_by": None,
        "overdue": False,
    }
    return Event("ShareDecided", "r1", payload, "exchange", occurred_at=T0 + timedelta(days=1))


def grant_revoked() -> Event:
    payload = {
        "grant_id": "grant-1",
        "resource_code": "101001/000001",
        "consumer_code": CONSUMER,
        "reason": "用途不符",
        "revoked_by": "scjgj-admin",
        "provider_code": PROVIDER,
        "request_id": "r1",
        "revoked_on": date(2026, 11, 20),
    }
    return Event("GrantRevoked", "grant-1", payload, "exchange", occurred_at=T0 + timedelta(days=18))


def roles_changed() -> Event:
    payload = {
        "person_id": "p-other",
        "department_code": OTHER,
        "roles": ["catalog_compiler"],
        "changed_by": "it-operator",
        "generation": 2,
    }
    return Event("PersonRolesChanged", OTHER, payload, "directory", occurred_at=T0 + timedelta(days=2))


def rejected() -> Event:
    payload = {
        "change_id": "c1",
        "resource_code": "101001/000001",
        "provider_code": PROVIDER,
        "rule": "key",
        "detail": f"subject key {CITIZEN} is not a credit code",
    }
    return Event("DataRejected", "101001/000001", payload, "exchange", occurred_at=T0 + timedelta(days=3))


def notified() -> Event:
    payload = {
        "notification_id": "n1",
        "recipient_code": CONSUMER,
        "kind": "GRANT_REVOKED",
        "title": "授权已撤销",
        "body": "用途不符",
        "reference": "grant-1",
        "due_on": None,
    }
    return Event("NotificationIssued", CONSUMER, payload, "notifier", occurred_at=T0 + timedelta(days=18, hours=1))


TOPIC_OF = {
    "DataAccessed": "exchange.data-accesses",
    "ShareDecided": "exchange.share-events",
    "GrantRevoked": "exchange.share-events",
    "PersonRolesChanged": "directory.events",
    "DataRejected": "exchange.resource-changes",
    "NotificationIssued": "notifier.notifications",
    "HostedServiceRegistered": "exchange.hosted-services",
    "HostedServiceUpdated": "exchange.hosted-services",
    "HostedServiceWithdrawn": "exchange.hosted-services",
}


async def auditor_for(infra, tmp_path: Path, services: list, **env: str) -> tuple[ServiceProcess, str]:
    """An auditor with a database of its own that reads only what is sent after it was made."""
    database = f"test_trail_{uuid.uuid4().hex[:8]}"
    auditor = ServiceProcess("auditor", infra, tmp_path, mongo_database=database, **env)
    for topic in AUDITED_TOPICS:
        await skip_backlog(infra, f"{auditor.group_prefix}auditor-trail", topic)
    services.append(auditor.start())
    await auditor.wait_ready()
    return auditor, database


async def publish(infra, events: list[Event]) -> None:
    publisher = KafkaPublisher(settings_for(infra), EventCodec.from_folder(), load_topics())
    await publisher.start()
    try:
        for event in events:
            await publisher.publish(TOPIC_OF[event.event_type], event)
    finally:
        await publisher.stop()


async def wait_for_entries(client: httpx.AsyncClient, count: int, timeout: float = 60) -> list[dict]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        page = (await client.get("/trail/entries", params={"limit": 1000})).json()
        if page["total"] >= count and len(page["items"]) >= min(count, 1000):
            return page["items"]
        assert asyncio.get_running_loop().time() < deadline, f"{page['total']} entries of {count}"
        await asyncio.sleep(0.3)


async def wait_for_events(client: httpx.AsyncClient, events: list[Event], timeout: float = 60) -> dict[int, int]:
    """Until every event is in the trail: its sequence → the event's place in `events` (from 1). The trail
    may hold other entries too: findings the auditor raised from these events, or late events of others."""
    wanted = {e.event_id: n for n, e in enumerate(events, start=1)}
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        items = (await client.get("/trail", params={"limit": 1000})).json()
        placed = {e["sequence"]: wanted[e["event_id"]] for e in items if e["event_id"] in wanted}
        if len(placed) == len(wanted):
            return placed
        assert asyncio.get_running_loop().time() < deadline, f"{len(placed)} of {len(wanted)} events in the trail"
        await asyncio.sleep(0.3)


async def test_events_of_every_kind_become_entries_queried_by_who_what_why_and_when(
    infra, topics, services, tmp_path
) -> None:
    auditor, _ = await auditor_for(infra, tmp_path, services)
    refused = access(3, result="REFUSED", reason=f"subject {CITIZEN} outside the grant's scope")
    person = access(4, kind="person", purpose="another purpose")
    events = [
        access(1),
        access(2),
        refused,
        person,
        decided(),
        grant_revoked(),
        roles_changed(),
        rejected(),
        notified(),
    ]
    async with httpx.AsyncClient(base_url=auditor.url, headers=AUDITOR, timeout=30) as client:
        for n in range(len(events)):  # one at a time: their order in the trail is known
            await publish(infra, [events[n]])
            place = await wait_for_events(client, events[: n + 1])
        by_place = {
            n: e for e in (await client.get("/trail", params={"limit": 1000})).json() if (n := place.get(e["sequence"]))
        }
        entries = [by_place[n] for n in range(1, len(events) + 1)]
        assert sorted(place) == [e["sequence"] for e in entries]  # in the order they came
        first = entries[0]
        assert (first["action"], first["actor"], first["actor_kind"], first["actor_department"]) == (
            "data.access",
            "approval-system",
            "system",
            CONSUMER,
        )
        assert (first["owner_department"], first["resource"], first["items"], first["subjects"]) == (
            PROVIDER,
            "101001/000001",
            ["企业名称"],
            2,
        )
        assert (first["purpose"], first["grant"], first["result"]) == ("企业开办审批核验", "grant-1", "SERVED")
        assert first["occurred_at"] == "2026-11-02T10:00:00.000000+00:00"
        assert [e["result"] for e in entries] == [
            "SERVED",
            "SERVED",
            "REFUSED",
            "SERVED",
            "APPROVED",
            "REVOKED",
            "ROLES_CHANGED",
            "REFUSED",
            "ISSUED",
        ]
        # no subject identifier in clear, in the entries or their export
        everything = (await client.get("/trail", params={"limit": 1000})).text
        assert CITIZEN not in everything and "id:" in entries[2]["reason"] and "id:" in entries[7]["reason"]

        async def found(**params) -> list[int]:
            """The places (in `events`) of the entries found; entries of other events left out."""
            page = (await client.get("/trail/entries", params=params | {"limit": 1000})).json()
            return [place[e["sequence"]] for e in page["items"] if e["sequence"] in place]

        assert await found(person="xzspj-admin") == [4]
        assert await found(system="approval-system") == [1, 2, 3]
        assert await found(person="scjgj-admin") == [5, 6]
        assert await found(purpose="another purpose") == [4]
        assert await found(resource="101001/000001") == [1, 2, 3, 4, 5, 6, 8]
        assert await found(department=OTHER) == [7]
        assert await found(since="2026-11-02T11:00:00Z", until="2026-11-02T13:00:00Z") == [2, 3]
        assert await found(action="grant.change") == [6]
        paged = (await client.get("/trail/entries", params={"action": "data.access", "offset": 1, "limit": 2})).json()
        assert (paged["total"], [place[e["sequence"]] for e in paged["items"]]) == (4, [2, 3])

        exported = await client.get("/trail/entries.csv", params={"department": PROVIDER})
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
        assert [place[int(r["sequence"])] for r in rows if int(r["sequence"]) in place] == [1, 2, 3, 4, 5, 6, 8]
        assert rows[0]["purpose"] == "企业开办审批核验" and CITIZEN not in exported.text
        assert (await client.get("/trail/verify")).json()["intact"]

    # a department sees its own accesses and actions and those on its data; the IT office everything
    async def seen_by(department: str, role: Role) -> list[int]:
        async with httpx.AsyncClient(base_url=auditor.url, headers=bearer(department, role)) as client:
            response = await client.get("/trail/entries", params={"limit": 1000})
            assert response.status_code == 200, response.text
            items = response.json()["items"]
            assert all(department in e["departments"] for e in items) or role == Role.IT_OFFICE_OPERATOR
            return [place[e["sequence"]] for e in items if e["sequence"] in place]

    assert await seen_by(CONSUMER, Role.DATA_ADMINISTRATOR) == [1, 2, 3, 4, 5, 6, 9]
    assert await seen_by(PROVIDER, Role.CATALOG_COMPILER) == [1, 2, 3, 4, 5, 6, 8]
    assert await seen_by(OTHER, Role.DATA_ADMINISTRATOR) == [7]
    assert await seen_by("11360800NOBODY0001", Role.DATA_ADMINISTRATOR) == []
    assert await seen_by(IT, Role.IT_OFFICE_OPERATOR) == list(range(1, 10))
    async with httpx.AsyncClient(base_url=auditor.url, headers=bearer(OTHER, Role.DATA_ADMINISTRATOR)) as client:
        # asking for another department's entries finds none of them
        assert (await client.get("/trail/entries", params={"department": PROVIDER})).json()["total"] == 0
        export = await client.get("/trail/entries.csv")
        exported_rows = list(csv.DictReader(io.StringIO(export.text.lstrip("\ufeff"))))
        assert exported_rows and all(
            OTHER in row["actor_department"] + row["owner_department"]
            for row in csv.DictReader(io.StringIO(export.text.lstrip("\ufeff")))
        )
        assert (await client.get("/trail/verify")).status_code == 403


def hosted(event_type: str, by: str, revision: int, hours: int) -> Event:
    at = T0 + timedelta(days=20, hours=hours)
    payload: dict = {"service_id": "svc-1", "resource_code": "101001/000001", "provider_code": PROVIDER}
    if event_type == "HostedServiceWithdrawn":
        payload |= {"withdrawn_by": by, "withdrawn_at": at, "revision": revision}
    else:
        stamp = {"registered_by": by, "registered_at": at} if revision == 1 else {"updated_by": by, "updated_at": at}
        payload |= stamp | {
            "base_url": "https://api.scjgj.example/licences",
            "operations": ["lookup"],
            "fields": {"企业名称": "name"},
            "openapi_sha256": "0" * 64,
            "credential_header": "X-Api-Key",
            "revision": revision,
        }
    return Event(event_type, "svc-1", payload, "exchange", occurred_at=at)


async def test_a_departments_hosted_service_registered_changed_and_withdrawn_is_in_the_trail(
    infra, topics, services, tmp_path
) -> None:
    auditor, _ = await auditor_for(infra, tmp_path, services)
    events = [
        hosted("HostedServiceRegistered", "scjgj-admin", 1, 1),
        hosted("HostedServiceUpdated", "scjgj-admin2", 2, 2),
        hosted("HostedServiceWithdrawn", "scjgj-admin", 3, 3),
    ]
    async with httpx.AsyncClient(base_url=auditor.url, headers=AUDITOR, timeout=30) as client:
        await publish(infra, events)
        place = await wait_for_events(client, events)
        found = (await client.get("/trail/entries", params={"action": "hosted.change", "limit": 100})).json()
        entries = sorted((e for e in found["items"] if e["sequence"] in place), key=lambda e: place[e["sequence"]])
        assert [(e["result"], e["actor"], e["actor_kind"]) for e in entries] == [
            ("REGISTERED", "scjgj-admin", "person"),
            ("UPDATED", "scjgj-admin2", "person"),
            ("WITHDRAWN", "scjgj-admin", "person"),
        ]
        assert {(e["actor_department"], e["owner_department"], e["resource"]) for e in entries} == {
            (PROVIDER, PROVIDER, "101001/000001")
        }
        assert (await client.get("/trail/verify")).json()["intact"]
    async with httpx.AsyncClient(base_url=auditor.url, headers=bearer(PROVIDER, Role.DATA_ADMINISTRATOR)) as client:
        own = (await client.get("/trail/entries", params={"action": "hosted.change"})).json()["items"]
        assert len([e for e in own if e["sequence"] in place]) == 3


@pytest.fixture
async def stored_trail(
    infra, topics, services, tmp_path
) -> AsyncIterator[tuple[ServiceProcess, AsyncMongoClient, str]]:
    """An auditor whose trail holds 20 entries with a signed checkpoint every 5, stored in blocks of 4 (1-4,
    5-8, ...: the appends of consumed batches fill the last block before starting the next)."""
    auditor, database = await auditor_for(
        infra, tmp_path, services, checkpoint_every_entries="5", trail_block_entries="4"
    )
    events = [access(n) for n in range(20)]
    await publish(infra, events)
    async with httpx.AsyncClient(base_url=auditor.url, headers=AUDITOR) as client:
        await wait_for_events(client, events)
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    yield auditor, mongo, database
    await mongo.close()


async def verify(auditor: ServiceProcess, **params: int) -> dict:
    async with httpx.AsyncClient(base_url=auditor.url, headers=AUDITOR, timeout=30) as client:
        response = await client.get("/trail/verify", params=params)
        assert response.status_code == 200, response.text
        return response.json()


async def metric(auditor: ServiceProcess, name: str) -> float | None:
    """A sample of the auditor's /metrics, as Prometheus scrapes it."""
    async with httpx.AsyncClient(base_url=auditor.url, timeout=30) as client:
        text = (await client.get("/metrics")).text
    samples = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    return samples.get(name)


async def stored(mongo: AsyncMongoClient, database: str) -> list[TrailEntry]:
    blocks = [block_from(doc) async for doc in mongo[database][BLOCKS].find({}).sort("_id", 1)]
    return [entry for block in blocks for entry in block.entries()]


async def rewrite_block(mongo: AsyncMongoClient, database: str, sequence: int, change) -> None:
    """Tamper with the block holding entry `sequence`: `change(texts, hashes)` edits its lists in place."""
    doc = await mongo[database][BLOCKS].find_one({"_id": {"$lte": sequence}}, sort=[("_id", -1)])
    block = block_from(doc)
    texts, hashes = list(block.texts), list(block.hashes)
    change(texts, hashes, sequence - block.first)
    await mongo[database][BLOCKS].update_one(
        {"_id": doc["_id"]},
        {"$set": {"entries": Binary(zlib.compress("\n".join(texts).encode(), 1)), "hashes": "".join(hashes)}},
    )


async def test_an_untouched_trail_verifies_from_its_checkpoints(stored_trail, infra, services) -> None:
    auditor, mongo, database = stored_trail
    signed = {doc["_id"] async for doc in mongo[database][CHECKPOINTS].find({})}
    assert {5, 10, 15, 20} <= signed  # every 5, and the end of the first append (the trail had none)
    report = await verify(auditor)
    stored_entries = len(await stored(mongo, database))
    assert [doc["_id"] async for doc in mongo[database][BLOCKS].find({}, {"_id": 1}).sort("_id", 1)][:5] == [
        1,
        5,
        9,
        13,
        17,
    ]
    assert report["intact"] and report["entries"] == stored_entries >= 20 and report["signed_through"] >= 20
    # from the checkpoint at 10 (or 11, if the first append ended there), not from the start
    report = await verify(auditor, first=12, last=17)
    assert report["intact"] and report["anchor"] in (10, 11) and report["entries"] == 17 - report["anchor"]
    # what the trail's alerts read: entries appended, when the newest checkpoint was signed, no failed verification
    newest = await mongo[database][CHECKPOINTS].find_one({}, sort=[("_id", -1)])
    signed_at = datetime.fromisoformat(newest["signed_at"]).timestamp()
    assert await metric(auditor, "datashare_trail_entries_appended_total") == stored_entries
    assert abs(await metric(auditor, "datashare_trail_last_checkpoint_timestamp_seconds") - signed_at) < 0.001  # ms
    assert abs(signed_at - datetime.now(UTC).timestamp()) < 120
    assert await metric(auditor, "datashare_trail_verification_failures_total") == 0
    # restarted, the auditor shows the newest checkpoint before it appends any
    auditor.stop()
    restarted = ServiceProcess("auditor", infra, auditor.log.parent)
    restarted.env = auditor.env | {"AUDITOR_HTTP_PORT": str(restarted.port)}
    services.append(restarted.start())
    await restarted.wait_ready()
    assert abs(await metric(restarted, "datashare_trail_last_checkpoint_timestamp_seconds") - signed_at) < 0.001


async def test_a_changed_entry_is_detected(stored_trail) -> None:
    auditor, mongo, database = stored_trail

    def change(texts: list[str], hashes: list[str], at: int) -> None:
        texts[at] = canonical(json.loads(texts[at]) | {"purpose": "看看而已"})  # whichever entry is 7

    await rewrite_block(mongo, database, 7, change)
    report = await verify(auditor)
    assert not report["intact"] and report["first_broken_sequence"] == 7 and "altered" in report["problem"]
    assert (await verify(auditor, first=11))["intact"]  # a range after the next checkpoint is untouched
    assert await metric(auditor, "datashare_trail_verification_failures_total") == 1  # the alert's signal


async def test_a_deleted_entry_is_detected_in_the_middle_and_at_the_end(stored_trail) -> None:
    auditor, mongo, database = stored_trail

    def delete(texts: list[str], hashes: list[str], at: int) -> None:
        del texts[at], hashes[at]

    await rewrite_block(mongo, database, 20, delete)
    report = await verify(auditor)
    assert not report["intact"] and report["first_broken_sequence"] == 20 and "missing" in report["problem"]
    await rewrite_block(mongo, database, 10, delete)
    report = await verify(auditor)
    assert not report["intact"] and report["first_broken_sequence"] == 10 and "missing" in report["problem"]
    await mongo[database][BLOCKS].delete_one({"_id": 5})  # a whole block: entries 5-8
    report = await verify(auditor)
    assert not report["intact"] and report["first_broken_sequence"] == 5 and "missing" in report["problem"]


async def test_an_inserted_entry_is_detected_even_with_every_later_hash_recomputed(stored_trail) -> None:
    auditor, mongo, database = stored_trail
    trail = mongo[database][BLOCKS]
    entries = await stored(mongo, database)
    forged = describe(access(99, purpose="伪造"), b"x" * 32)
    # the forger renumbers and re-links everything after entry 12 (but cannot sign a checkpoint)
    rewritten = link(Head(12, entries[11].hash), [forged, *entries[12:]])
    await trail.delete_many({"_id": {"$gt": 12}})
    await trail.insert_many([block_document(run) for run in blocks_of(rewritten, 4)])
    next_signed = min([doc["_id"] async for doc in mongo[database][CHECKPOINTS].find({"_id": {"$gt": 12}})])
    report = await verify(auditor)
    assert not report["intact"] and report["first_broken_sequence"] == next_signed <= 15
    assert "signed checkpoint" in report["problem"]


async def test_reordered_entries_are_detected(stored_trail) -> None:
    auditor, mongo, database = stored_trail

    def swap(texts: list[str], hashes: list[str], at: int) -> None:
        texts[at], texts[at + 1], hashes[at], hashes[at + 1] = texts[at + 1], texts[at], hashes[at + 1], hashes[at]

    await rewrite_block(mongo, database, 6, swap)  # entries 6 and 7, inside the block 5-8
    report = await verify(auditor)
    assert not report["intact"] and report["first_broken_sequence"] == 6
    await rewrite_block(mongo, database, 6, swap)  # put back
    assert (await verify(auditor))["intact"]
    trail = mongo[database][BLOCKS]  # whole blocks: 9-12 stored where 13-16 belong and the other way round
    nine, thirteen = await trail.find_one({"_id": 9}), await trail.find_one({"_id": 13})
    await trail.delete_many({"_id": {"$in": [9, 13]}})
    await trail.insert_many([thirteen | {"_id": 9, "last": 12}, nine | {"_id": 13, "last": 16}])
    report = await verify(auditor)
    assert not report["intact"] and report["first_broken_sequence"] == 9


async def test_a_block_whose_query_terms_leave_an_entry_out_is_detected(stored_trail) -> None:
    """Queries find blocks by their terms: a term removed would hide entries from them, so it is a break."""
    auditor, mongo, database = stored_trail
    await mongo[database][BLOCKS].update_one({"_id": 9}, {"$set": {"resources": ["101001/999999"]}})
    report = await verify(auditor)
    # the block of entries 9–12: the first of them that names a resource (the order events of several topics
    # arrive in decides which one that is)
    assert not report["intact"] and 9 <= report["first_broken_sequence"] <= 12 and "query terms" in report["problem"]


async def test_a_signed_checkpoint_is_verified_with_only_the_public_key(stored_trail, tmp_path) -> None:
    auditor, mongo, _ = stored_trail
    async with httpx.AsyncClient(base_url=auditor.url, timeout=30) as client:
        published = (await client.get("/.well-known/trail-checkpoint-key")).json()  # no credentials needed
        proof = await client.get("/trail/proof", params={"first": 8, "last": 18}, headers=AUDITOR)
    key, proof_file = tmp_path / "key.pem", tmp_path / "proof.jsonl"
    key.write_text(published["public_key_pem"])
    proof_file.write_bytes(proof.content)
    await mongo.close()  # the check needs no database, nor the service

    def check(path: Path, key_path: Path = key) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "services.auditor.verify", "--public-key", str(key_path), str(path)]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)

    intact = check(proof_file)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    report = json.loads(intact.stdout)
    # checkpoints sign every fifth entry, and the first append's last entry too (wherever a batch ended)
    anchor = report["anchor"]
    assert 5 <= anchor <= 7 and report["checked"] == 18 - anchor and 15 <= report["signed_through"] <= 18

    lines = proof.text.splitlines()
    # an access after the anchor (which event got which sequence depends on where the first batch ended)
    purpose, sequence = "企业开办审批核验", re.compile(r'"sequence":(\d+),')
    accesses = [int(m[1]) for line in lines if purpose in line and (m := sequence.search(line))]
    target = min(n for n in accesses if n > anchor)
    forged = [line.replace(purpose, "伪造的用途") if f'"sequence":{target},' in line else line for line in lines]
    assert forged != lines
    (tmp_path / "forged.jsonl").write_text("\n".join(forged) + "\n")
    broken = check(tmp_path / "forged.jsonl")
    assert broken.returncode == 1 and json.loads(broken.stdout)["first_broken_sequence"] == target

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    wrong_key = check(proof_file, stranger)
    assert wrong_key.returncode == 1 and "signature" in wrong_key.stdout


async def test_a_trail_of_the_earlier_format_is_set_aside_untouched(infra, topics, services, tmp_path) -> None:
    database = f"test_trail_{uuid.uuid4().hex[:8]}"
    legacy = {"_id": 1, "sequence": 1, "event_id": "old", "event_type": "GrantRevoked", "payload": {}, "hash": "h"}
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    try:
        await mongo[database][TRAIL].insert_one(legacy)
        await mongo[database]["audit_trail_head"].insert_one({"_id": "head", "sequence": 1, "hash": "h"})
        auditor = ServiceProcess("auditor", infra, tmp_path, mongo_database=database)
        for topic in AUDITED_TOPICS:
            await skip_backlog(infra, f"{auditor.group_prefix}auditor-trail", topic)
        services.append(auditor.start())
        await auditor.wait_ready()
        mine = access(1)
        await publish(infra, [mine])
        async with httpx.AsyncClient(base_url=auditor.url, headers=AUDITOR) as client:
            place = await wait_for_events(client, [mine])
            first = (await client.get("/trail", params={"limit": 1})).json()[0]
        assert first["sequence"] == 1 and first["action"] != "" and min(place) >= 1  # a chain of its own
        assert (await verify(auditor))["intact"]
        names = await mongo[database].list_collection_names()
        kept = [n for n in names if n.startswith("audit_trail_legacy_")]
        assert kept and await mongo[database][kept[0]].find_one({"_id": 1}) == legacy
    finally:
        await mongo.close()


def appending_to(mongo: AsyncMongoClient, database: str, block_entries: int = 4) -> MongoTrail:
    """The trail store as the service builds it, in this process (the transaction without an outbox)."""
    db = mongo[database]
    return MongoTrail(db, lambda: transaction(mongo, db, publisher=None), block_entries)  # type: ignore[arg-type]


TRAIL_KEYS = handlers.TrailKeys(
    signer=CheckpointSigner(load_signing_key(generate_signing_key())),
    secret=b"s" * 32,
    clock=SystemClock(),
    every_entries=5,
    every_seconds=3600,
)


async def test_a_redelivered_event_is_appended_once(infra) -> None:
    """Kafka redelivers what was appended but not yet committed (a crash between the two): each event is in
    the trail once, for the same store and for a restarted one (which rebuilds its memory of the recent event
    ids from the stored blocks)."""
    database = f"test_trail_{uuid.uuid4().hex[:8]}"
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    try:
        await ensure_indexes(mongo[database])
        events = [access(n) for n in range(9)]
        trail = appending_to(mongo, database)
        await handlers.record_in_trail(events[:6], trail, TRAIL_KEYS)
        await handlers.record_in_trail(events[3:7], trail, TRAIL_KEYS)  # 3-5 again, with 6 new
        restarted = appending_to(mongo, database)
        await handlers.record_in_trail([events[0], events[6], events[7], events[7], events[8]], restarted, TRAIL_KEYS)
        entries = await stored(mongo, database)
        assert [e.event_id for e in entries] == [e.event_id for e in events]
        assert [e.sequence for e in entries] == list(range(1, 10))
        report = await handlers.verify_trail(restarted, TRAIL_KEYS.signer.valid)
        assert report.intact and report.checked == 9 and report.signed_through >= 5
    finally:
        await mongo.drop_database(database)
        await mongo.close()


def entry_document(entry: TrailEntry) -> dict:
    """An entry as the earlier layout stored it: one document, its text with the queried fields beside it."""
    content = entry.content()
    return {"_id": entry.sequence, "entry": entry.text, "hash": entry.hash} | {n: content[n] for n in QUERIED}


async def test_a_trail_of_one_document_per_entry_is_converted_to_blocks_once(infra, topics, services, tmp_path) -> None:
    """The layout deployed before blocks: converted at start-up (a marker says it ran), it verifies, reads and
    grows as before, and an entry changed before the conversion is still found changed after it."""
    database, tampered = (f"test_trail_{uuid.uuid4().hex[:8]}" for _ in range(2))
    entries = link(Head(), [describe(access(n), b"s" * 32) for n in range(11)])
    mongo = AsyncMongoClient(infra.mongo_uri, tz_aware=True)
    try:
        for name in (database, tampered):
            await mongo[name][TRAIL].insert_many([entry_document(e) for e in entries])
            await mongo[name][HEAD].insert_one({"_id": "head", "sequence": 11, "hash": entries[-1].hash})
        await mongo[tampered][TRAIL].update_one({"_id": 4}, {"$set": {"purpose": "看看而已"}})
        assert await convert_to_blocks(mongo[tampered]) == 11
        await ensure_indexes(mongo[tampered])  # as the service starts: the conversion is done
        assert await convert_to_blocks(mongo[tampered]) == 0  # once
        report = await handlers.verify_trail(appending_to(mongo, tampered), TRAIL_KEYS.signer.valid)
        assert not report.intact and report.first_broken_sequence == 4 and "altered" in (report.problem or "")

        auditor = ServiceProcess("auditor", infra, tmp_path, mongo_database=database, trail_block_entries="4")
        for topic in AUDITED_TOPICS:
            await skip_backlog(infra, f"{auditor.group_prefix}auditor-trail", topic)
        services.append(auditor.start())
        await auditor.wait_ready()
        assert await mongo[database][HEAD].find_one(LAYOUT)
        converted = block_from(await mongo[database][BLOCKS].find_one({"_id": 1}))
        assert len(converted.texts) == 11  # one block of the size then (events of others may follow it)
        kept = [n for n in await mongo[database].list_collection_names() if n.startswith(f"{TRAIL}_entries_")]
        assert kept and await mongo[database][kept[0]].count_documents({}) == 11
        mine = access(20)
        await publish(infra, [mine])
        async with httpx.AsyncClient(base_url=auditor.url, headers=AUDITOR) as client:
            place = await wait_for_events(client, [mine])
            assert min(place) >= 12  # after the converted entries, linked to the last of them
            old = (await client.get("/trail/entries", params={"limit": 1000})).json()
            assert old["total"] >= 12 and old["items"][3]["event_id"] == entries[3].event_id
        report = await verify(auditor)
        assert report["intact"] and report["entries"] >= 12  # and whatever the auditor recorded since
    finally:
        for name in (database, tampered):
            await mongo.drop_database(name)
        await mongo.close()
