"""State and the events it causes never diverge: the process is killed between the two."""

import asyncio
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from common.identifiers import credit_code_check_character
from common.policy import Role
from tests.integration.conftest import ServiceProcess, headers_of, read_topic
from tests.tokens import bearer

PROVIDER = "11360800MB1234567" + credit_code_check_character("11360800MB1234567")


def draft(code: str) -> dict:
    return {
        "resource_code": code,
        "name": "企业登记基本信息",
        "provider_code": PROVIDER,
        "share_type": "CONDITIONAL",
    }


COMPILER = bearer(PROVIDER, Role.CATALOG_COMPILER)


async def test_killed_after_commit_the_event_is_relayed_on_restart(own_infra, services, tmp_path) -> None:
    infra = own_infra  # no earlier tests' directory events to be in the middle of when it is killed
    database = f"outbox_{uuid.uuid4().hex[:8]}"
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    # First life: the relay is off, so the committed event can only sit in the outbox when we kill -9.
    first = ServiceProcess("catalog", infra, tmp_path, mongo_database=database, outbox_relay_enabled="false").start()
    services.append(first)
    await first.wait_ready()
    async with httpx.AsyncClient(base_url=first.url, headers=COMPILER) as client:
        assert (await client.post("/entries", json=draft(code))).status_code == 201
    first.signal(signal.SIGKILL)
    first.wait_exit(10)

    mongo = AsyncMongoClient(infra.mongo_uri)
    db = mongo[database]
    assert await db.catalog_entries.find_one({"_id": code}) is not None
    pending = await db.outbox.find({}).to_list()
    assert [m["event_type"] for d in pending for m in d["messages"]] == ["CatalogEntryDrafted"]
    event_id = pending[0]["messages"][0]["event_id"]

    second = ServiceProcess("catalog", infra, tmp_path, mongo_database=database).start()
    services.append(second)
    # The first life may have died inside a transaction (its consumer reads the directory's events): the
    # database aborts it after 60 s idle (mongod's transactionLifetimeLimitSeconds), and until then the same
    # write conflicts; the consumer waits it out rather than dead-lettering a good event.
    await second.wait_ready(timeout=120)
    relayed = await read_topic(
        infra.bootstrap, "catalog.entry-events", 1, where=lambda r: headers_of(r).get("event_id") == event_id
    )
    assert len(relayed) == 1 and relayed[0].key.decode() == code
    for _ in range(50):
        if await db.outbox.count_documents({}) == 0:
            break
        await asyncio.sleep(0.1)
    assert await db.outbox.count_documents({}) == 0
    await mongo.close()


KILLED_MID_TRANSACTION = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from common.events import Event
    from common.runtime import Runtime
    from common.settings import ServiceSettings

    async def main():
        settings = ServiceSettings(kafka_bootstrap_servers=sys.argv[1], mongo_uri=sys.argv[2],
                                   mongo_database=sys.argv[3])
        runtime = Runtime.build("catalog", settings)
        async with runtime.transaction() as tx:
            await tx.db.catalog_entries.insert_one({"_id": sys.argv[4], "name": "x"}, session=tx.session)
            tx.emit("catalog.entry-events", Event("CatalogEntrySubmitted", sys.argv[4],
                    {"resource_code": sys.argv[4], "version": 1, "provider_code": "p", "submitted_by": "s"}, "catalog"))
            await tx._flush()  # both writes are done, the commit is not
            print("written", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def test_killed_inside_the_transaction_neither_state_nor_event_survives(infra, topics) -> None:
    database = f"outbox_{uuid.uuid4().hex[:8]}"
    code = f"101001/{uuid.uuid4().int % 10**6:06d}"
    result = subprocess.run(
        [sys.executable, "-c", KILLED_MID_TRANSACTION, infra.bootstrap, infra.mongo_uri, database, code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "written" in result.stdout
    mongo = AsyncMongoClient(infra.mongo_uri)
    db = mongo[database]
    await asyncio.sleep(1)
    assert await db.catalog_entries.find_one({"_id": code}) is None
    assert await db.outbox.count_documents({}) == 0
    await mongo.close()


async def test_only_one_relay_holds_the_lease(infra, topics) -> None:
    from common.codec import EventCodec
    from common.kafka import KafkaPublisher
    from common.mongo import OutboxRelay
    from common.topics import load_topics
    from tests.integration.conftest import settings_for

    settings = settings_for(infra)
    mongo = AsyncMongoClient(infra.mongo_uri)
    db = mongo[settings.mongo_database]
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    first = OutboxRelay(db, publisher, name="catalog", poll_seconds=0.1)
    second = OutboxRelay(db, publisher, name="catalog", poll_seconds=0.1)
    second.owner = first.owner + "-replica"
    assert await first._hold_lease()
    assert not await second._hold_lease()  # the first replica's lease is live
    assert await first._hold_lease()  # and its holder renews it
    await db.leases.update_one({"_id": "outbox"}, {"$set": {"expires": datetime.now(UTC) - timedelta(1)}})
    assert await second._hold_lease()  # an expired lease passes to another replica
    assert not await first._hold_lease()
    await mongo.close()


async def test_two_outboxes_of_one_database_each_have_their_relay_and_lease(infra, topics) -> None:
    """The exchange's API and ingestion processes share a database: each relays its own outbox."""
    from common.codec import EventCodec
    from common.events import Event
    from common.kafka import KafkaPublisher
    from common.mongo import OutboxRelay, connect, transaction
    from common.topics import load_topics
    from tests.integration.conftest import settings_for

    settings = settings_for(infra)
    client = connect(settings)
    db = client[settings.mongo_database]
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    payload = {"grant_id": "g", "resource_code": "101001/000001", "consumer_code": "C", "reason": "期满"}
    ended = Event("GrantRevoked", "g", payload | {"revoked_by": "admin"}, producer="test")
    async with transaction(client, db, publisher, outbox="outbox_ingest") as tx:
        tx.emit("exchange.share-events", ended)
    assert await db.outbox.count_documents({}) == 0 and await db.outbox_ingest.count_documents({}) == 1

    def published() -> float:  # as the dashboard counts events published, by topic and type
        labels = {"topic": "exchange.share-events", "event_type": "GrantRevoked"}
        return REGISTRY.get_sample_value("datashare_events_published_total", labels) or 0

    before = published()
    api = OutboxRelay(db, publisher, name="exchange", poll_seconds=0.1)
    ingest = OutboxRelay(db, publisher, name="exchange", poll_seconds=0.1, outbox="outbox_ingest")
    ingest.owner = api.owner + "-ingest"
    assert await api._hold_lease() and await ingest._hold_lease()  # a lease per outbox, both live
    assert await api.relay_once() == 0
    assert await ingest.relay_once() == 1
    assert await db.outbox_ingest.count_documents({}) == 0
    assert published() == before + 1
    found = await read_topic(
        infra.bootstrap, "exchange.share-events", 1, where=lambda r: headers_of(r)["event_id"] == ended.event_id
    )
    assert len(found) == 1
    await publisher.stop()
    await client.close()


async def test_an_event_too_large_for_the_broker_never_blocks_the_outbox(infra, topics) -> None:
    from bson import Binary

    from common.codec import EventCodec
    from common.errors import Invalid
    from common.events import Event
    from common.kafka import KafkaPublisher
    from common.mongo import OutboxRelay, connect, transaction
    from common.topics import load_topics
    from tests.integration.conftest import settings_for

    settings = settings_for(infra, kafka_max_message_bytes=64 * 1024)
    client = connect(settings)
    db = client[settings.mongo_database]
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()

    def revoked(reason: str) -> Event:
        payload = {"grant_id": "g", "resource_code": "101001/000001", "consumer_code": "C", "reason": reason}
        return Event("GrantRevoked", "g", payload | {"revoked_by": "admin"}, producer="test")

    # Written through a transaction, an oversized event is refused with the state it came with.
    try:
        async with transaction(client, db, publisher) as tx:
            await db.grants.insert_one({"_id": "g"}, session=tx.session)
            tx.emit("exchange.share-events", revoked("长" * 40_000))
        raise AssertionError("an oversized event was accepted")
    except Invalid as refused:
        assert "more than the 65,536 a message may have" in str(refused)
    assert await db.grants.count_documents({}) == 0 and await db.outbox.count_documents({}) == 0

    # One that got there anyway (written by an older version, say) is parked, and the next one goes out.
    fine = revoked("期满")
    big = {"topic": "exchange.share-events", "key": "g", "value": Binary(b"x" * (2 * 1024 * 1024)), "headers": []}
    await db.outbox.insert_one({"messages": [big]})
    async with transaction(client, db, publisher) as tx:
        tx.emit("exchange.share-events", fine)
    relay = OutboxRelay(db, publisher, name="test", poll_seconds=0.1)
    assert await relay.relay_once() == 2
    assert await db.outbox.count_documents({}) == 0
    parked = await db.outbox_parked.find_one({})
    assert parked is not None and "MessageSizeTooLarge" in parked["reason"]
    found = await read_topic(
        infra.bootstrap, "exchange.share-events", 1, where=lambda r: headers_of(r)["event_id"] == fine.event_id
    )
    assert len(found) == 1
    await publisher.stop()
    await client.close()


async def test_an_idle_relay_writes_nothing_and_relays_at_once_after_a_commit(infra, topics) -> None:
    import time

    from common.codec import EventCodec
    from common.events import Event
    from common.kafka import KafkaPublisher
    from common.mongo import OutboxRelay, connect, transaction
    from common.topics import load_topics
    from tests.integration.conftest import settings_for

    settings = settings_for(infra)
    client = connect(settings)
    db = client[settings.mongo_database]
    publisher = KafkaPublisher(settings, EventCodec.from_folder(), load_topics())
    await publisher.start()
    relay = OutboxRelay(db, publisher, name="test", poll_seconds=30)  # the poll plays no part here
    running = asyncio.create_task(relay.run())
    try:
        for _ in range(50):
            if relay.healthy():
                break
            await asyncio.sleep(0.05)
        assert relay.healthy()
        # Idle, it only looks: no lease is taken (every write wakes the database's change streams).
        assert await db.leases.count_documents({}) == 0

        code = f"101001/{uuid.uuid4().int % 10**6:06d}"
        submitted = Event(
            "CatalogEntrySubmitted",
            code,
            {"resource_code": code, "version": 1, "provider_code": "p", "submitted_by": "s"},
            "catalog",
        )
        committed = time.monotonic()
        async with transaction(client, db, publisher, relay.wake) as tx:
            tx.emit("catalog.entry-events", submitted)
        found = await read_topic(
            infra.bootstrap,
            "catalog.entry-events",
            1,
            timeout=10,
            where=lambda r: headers_of(r).get("event_id") == submitted.event_id,
        )
        assert len(found) == 1
        assert time.monotonic() - committed < 3  # the commit woke the relay: far sooner than its 30 s poll
        # the relay clears its outbox row after the broker acknowledged the event, which a reader may see first
        for _ in range(100):
            if await db.outbox.count_documents({}) == 0:
                break
            await asyncio.sleep(0.05)
        assert await db.outbox.count_documents({}) == 0
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await publisher.stop()
        await client.close()
