"""The notifier's inbox on the real database: whom a notice concerns is one rule, which the in-memory fake (the
domain's `Notification.concerns`) and the MongoDB store answer alike for every audience and every reader; the
inbox's queries are answered from its index, not by reading the whole collection, with what the array filters
they replaced found; notices kept before the index's keys get them once, at start."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import bson

from common.policy import Role
from common.runtime import Runtime
from services.notifier.adapters import mongo
from services.notifier.adapters.mongo import (
    INBOX,
    INBOX_INDEX,
    INBOX_KEYED,
    NEWEST,
    UPGRADES,
    MongoUnitOfWork,
    Retention,
    ensure_indexes,
    inbox_pipeline,
    key_inbox_through_roll,
)
from services.notifier.domain.notifications import Channel, Notification, NotificationKind, every_audience
from services.notifier.ports import InboxQuery
from tests.integration.conftest import settings_for
from tests.unit.test_notifier import IT_OFFICE, PROVIDER, FakeUnitOfWork

OTHER = "11360800MB3000002"
COMPILER, REVIEWER, ADMIN = Role.CATALOG_COMPILER, Role.CATALOG_REVIEWER, Role.DATA_ADMINISTRATOR
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)  # data-change notices expire after 90 days

# the readers of the table: each role alone, a few together, a person without a role in the department
READERS: list[frozenset[Role]] = [frozenset({r}) for r in Role] + [
    frozenset({COMPILER, REVIEWER}),
    frozenset({ADMIN, COMPILER}),
    frozenset({Role.IT_OFFICE_OPERATOR, Role.AUDITOR}),
    frozenset(Role),
    frozenset(),
]


def notices() -> list[Notification]:
    """A notice for each audience there can be (64), in the inbox or not, read by someone or not, of a few kinds
    and resources, for the provider and another department."""
    made = []
    for number, audience in enumerate(every_audience() * 2):
        recipient = PROVIDER if number % 5 else OTHER
        channels = frozenset(Channel) if number % 7 else frozenset({Channel.WEBHOOK})
        made.append(
            Notification(
                f"n{number:03d}:{recipient}",
                recipient,
                NotificationKind.OTHER if number % 3 else NotificationKind.RESOURCE_CHANGED,
                "t",
                "b",
                created_at=START + timedelta(seconds=number // 2),  # ties: broken by the id
                resource_code="101001/000001" if number % 4 else "101001/000002",
                channels=channels,
                read_by=frozenset({"person:p1"}) if number % 6 == 0 else frozenset(),
                audience=audience,
            )
        )
    return made


def queries() -> list[InboxQuery]:
    found = []
    for roles in [*READERS, None]:  # None: a machine, or the IT office reading another department's
        found.append(InboxQuery(PROVIDER, roles=roles, limit=1000))
        found.append(InboxQuery(PROVIDER, unread_only=True, roles=roles, reader="person:p1", limit=1000))
    found.append(InboxQuery(PROVIDER, kind=NotificationKind.RESOURCE_CHANGED, roles=frozenset({ADMIN}), limit=7))
    found.append(InboxQuery(PROVIDER, resource_code="101001/000002", roles=frozenset({COMPILER}), offset=3, limit=5))
    operator = frozenset({Role.IT_OFFICE_OPERATOR})  # overseeing: her own department's by her roles, others' whole
    found.append(InboxQuery(None, roles=operator, own_code=OTHER, limit=1000))
    found.append(InboxQuery(None, roles=operator, own_code=IT_OFFICE, unread_only=True, reader="person:p1"))
    return found


def stored(notice: Notification) -> dict[str, Any]:
    """How a notice was kept before the inbox's keys (and, for some, before audiences and channels)."""
    doc = {
        "_id": notice.notification_id,
        "recipient_code": notice.recipient_code,
        "kind": notice.kind.value,
        "title": notice.title,
        "body": notice.body,
        "reference": None,
        "due_on": None,
        "created_at": notice.created_at,
        "read": False,
        "resource_code": notice.resource_code,
        "channels": sorted(notice.channels),
        "in_digest": False,
        "fallback": None,
        "audience": sorted(notice.audience) or None,
        "read_by": sorted(notice.read_by),
    }
    return doc


def legacy() -> tuple[list[dict[str, Any]], list[Notification]]:
    """Documents kept before: without the inbox's keys; some before audiences (none: the whole department), some
    before channels (every one) or read state per reader (read for everyone); and the notices they mean."""
    docs, meant = [], []
    for number in range(12):
        audience = frozenset({COMPILER}) if number % 3 == 0 else frozenset()
        notice = Notification(
            f"old{number:02d}:{PROVIDER}",
            PROVIDER,
            NotificationKind.OTHER,
            "t",
            "b",
            created_at=START - timedelta(days=1, seconds=number),
            resource_code="101001/000001",
            read=number % 4 == 1,
            channels=frozenset({Channel.KAFKA}) if number == 2 else frozenset(Channel),
            audience=audience,
        )
        doc = stored(notice) | {"read": notice.read}
        if number % 3 == 1:
            doc.pop("audience")  # before audiences
        if number % 5 == 4:
            doc.pop("channels")  # before channels: every channel
        docs.append(doc)
        meant.append(notice)
    return docs, meant


def ids(found: tuple[list[Notification], int]) -> tuple[list[str], int]:
    return [n.notification_id for n in found[0]], found[1]


async def test_whom_a_notice_concerns_is_one_rule_in_the_fake_and_in_the_database(infra) -> None:
    """Every audience a notice can have, read by each role, by roles together, by a person without one, by a
    machine and by the IT office overseeing, unread or not, by kind and resource: the MongoDB store shows what
    the fake built on the domain's rule shows, in the same order, with the same total."""
    database = f"inbox_{uuid.uuid4().hex[:8]}"
    runtime = Runtime.build("notifier", settings_for(infra, mongo_database=database))
    uow, fake = MongoUnitOfWork(runtime, Retention()), FakeUnitOfWork()
    try:
        made = notices()
        docs, meant = legacy()
        await runtime.db[INBOX].insert_many(docs)
        await ensure_indexes(runtime.db, Retention())
        async with uow() as tx:
            await tx.add_all(made)
        fake.kept = {n.notification_id: n for n in made + meant}
        for query in queries():
            assert ids(await uow.inbox(query)) == ids(await fake.inbox(query)), query
        # marking read: only a notice the reader is shown
        for roles in READERS:
            for notice in made[:64]:
                if notice.recipient_code != PROVIDER:
                    continue
                reader = f"person:{'-'.join(sorted(roles))}"
                args = (PROVIDER, notice.notification_id, reader, roles)
                assert await uow.mark_read(*args) == await fake.mark_read(*args), (roles, notice.audience)
        # a notice sent to the department's systems alone is in no inbox: nobody marks it read, not a machine
        hooked = [n for n in made if Channel.INBOX not in n.channels and n.recipient_code == PROVIDER]
        assert hooked and not await uow.mark_read(PROVIDER, hooked[0].notification_id, "adapter:a1")
        assert not await uow.mark_read(None, hooked[0].notification_id, "person:operator")  # the IT office
        # ... nor does the IT office's overview show it (it could never mark it read)
        overview = InboxQuery(None, roles=frozenset({Role.IT_OFFICE_OPERATOR}), own_code=IT_OFFICE, limit=1000)
        shown = ids(await uow.inbox(overview))[0]
        assert hooked[0].notification_id not in shown and any(n.notification_id in shown for n in made)
        assert "adapter:a1" not in (await runtime.db[INBOX].find_one({"_id": hooked[0].notification_id}))["read_by"]
    finally:
        await runtime.client.drop_database(database)
        await runtime.client.close()


def _plans(explained: Any) -> list[dict[str, Any]]:
    """Every winning plan in an explain's answer (a find's, or an aggregate's first stage's)."""
    if isinstance(explained, dict):
        found = [explained["winningPlan"]] if isinstance(explained.get("winningPlan"), dict) else []
        return found + [p for v in explained.values() for p in _plans(v)]
    if isinstance(explained, list):
        return [p for v in explained for p in _plans(v)]
    return []


def _stages(plan: Any) -> list[tuple[str, str | None]]:
    if not isinstance(plan, dict):
        return []
    here = [(plan["stage"], plan.get("indexName"))] if "stage" in plan else []
    return here + [s for v in plan.values() for s in (_stages(v) if isinstance(v, dict) else [])]


def _before(query: InboxQuery) -> dict[str, Any]:
    """The inbox's filter as it was, on the array fields `channels` and `audience` (null: the department)."""
    where: dict[str, Any] = {"recipient_code": query.department_code, "channels": "INBOX"}
    if query.roles is not None:
        where["audience"] = {"$in": [None, *sorted(r.value for r in query.roles)]}
    if query.unread_only:
        where |= {"read": False, "read_by": {"$ne": query.reader}}
    if query.kind is not None:
        where["kind"] = query.kind.value
    return where


async def test_the_inbox_is_read_from_its_index_and_finds_what_the_array_filters_found(infra, monkeypatch) -> None:
    """A person's inbox, unread or of one kind, and a machine's: the first stage of each aggregation the store
    runs, explained as it runs, is planned on the inbox index (IXSCAN, never COLLSCAN), and each finds, in order,
    what the filter on `channels` and `audience` found. Kept documents are given the keys at start, a second
    start changes none."""
    database = f"inbox_{uuid.uuid4().hex[:8]}"
    runtime = Runtime.build("notifier", settings_for(infra, mongo_database=database))
    uow = MongoUnitOfWork(runtime, Retention())
    inbox = runtime.db[INBOX]
    try:
        docs, _ = legacy()
        await inbox.insert_many(docs)
        old_index = "recipient_code_1_created_at_-1__id_-1"  # the release before's, which its replicas read by
        await inbox.create_index([("recipient_code", 1), ("created_at", -1), ("_id", -1)], name=old_index)
        await ensure_indexes(runtime.db, Retention())
        keyed = {d["_id"]: (d["in_inbox"], d["for_roles"]) async for d in inbox.find({})}
        assert keyed[f"old01:{PROVIDER}"] == (True, "*")  # before audiences: the whole department's
        assert keyed[f"old00:{PROVIDER}"] == (True, "catalog_compiler")
        assert keyed[f"old02:{PROVIDER}"] == (False, "*")  # not in the inbox
        assert keyed[f"old04:{PROVIDER}"][0] is True  # before channels: every channel
        await ensure_indexes(runtime.db, Retention())  # a second start
        assert {d["_id"]: (d["in_inbox"], d["for_roles"]) async for d in inbox.find({})} == keyed
        made = notices()
        for number in range(600):  # a busy department: its data changes, told to its data administrators
            made.append(
                Notification(
                    f"c{number:04d}:{PROVIDER}",
                    PROVIDER,
                    NotificationKind.RESOURCE_CHANGED,
                    "t",
                    "b",
                    created_at=START + timedelta(minutes=number),
                    resource_code="101001/000003",
                    audience=frozenset({ADMIN}),
                )
            )
        async with uow() as tx:
            await tx.add_all(made)
        asked = [
            InboxQuery(PROVIDER, roles=frozenset({COMPILER}), limit=50),
            InboxQuery(PROVIDER, roles=frozenset({ADMIN}), unread_only=True, reader="person:p1", limit=50),
            InboxQuery(PROVIDER, roles=frozenset({REVIEWER, ADMIN}), kind=NotificationKind.OTHER, limit=50),
            InboxQuery(PROVIDER, offset=40, limit=100),  # a machine
        ]
        ran: list[list[dict[str, Any]]] = []  # the pipelines the adapter built and ran
        monkeypatch.setattr(mongo, "inbox_pipeline", lambda q: ran.append(inbox_pipeline(q)) or ran[-1])
        for query in asked:
            ran.clear()
            await uow.inbox(query)
            [pipeline] = ran
            assert pipeline == inbox_pipeline(query)
            explained = await runtime.db.command("explain", {"aggregate": INBOX, "pipeline": pipeline, "cursor": {}})
            stages = [s for plan in _plans(explained) for s in _stages(plan)]
            assert ("IXSCAN", INBOX_INDEX) in stages and "COLLSCAN" not in {s for s, _ in stages}, (query, stages)
            newest = [("created_at", -1), ("_id", -1)]
            before = await inbox.find(_before(query)).sort(newest).skip(query.offset).limit(query.limit).to_list()
            total = await inbox.count_documents(_before(query))
            assert ids(await uow.inbox(query)) == ([d["_id"] for d in before], total), query
            assert total > 0
        # kept through a rolling upgrade: an old replica would create it again, and read its inbox without it
        assert old_index in await inbox.index_information()
    finally:
        await runtime.client.drop_database(database)
        await runtime.client.close()


async def test_a_page_of_a_thousand_large_notices_is_read_in_index_order_by_its_ids(infra) -> None:
    """A page of 1,000 notices of 20 KB each (20 MB, more than the 16 MB mongod allows a result document): the
    aggregation's one document holds their ids and the total only, its order is set before `$facet` as the index
    keeps it (mongod then takes it from the index; inside `$facet` it would sort in memory), and the notices are
    read by their ids, whole, in that order."""
    database = f"inbox_{uuid.uuid4().hex[:8]}"
    runtime = Runtime.build("notifier", settings_for(infra, mongo_database=database))
    uow = MongoUnitOfWork(runtime, Retention())
    try:
        await ensure_indexes(runtime.db, Retention())
        body = "变" * 7_000  # 21 KB in UTF-8
        made = [  # three a second: ties broken by the id
            Notification(f"big{number:04d}:{PROVIDER}", PROVIDER, NotificationKind.OTHER, "t", body,
                         created_at=START + timedelta(seconds=number // 3), audience=frozenset())
            for number in range(1_050)
        ]  # fmt: skip
        async with uow() as tx:
            await tx.add_all(made)
        query = InboxQuery(PROVIDER, offset=20, limit=1_000)
        pipeline = inbox_pipeline(query)
        stages = [next(iter(stage)) for stage in pipeline]
        assert stages[-2:] == ["$sort", "$facet"] and pipeline[-2]["$sort"] == dict(NEWEST)
        index = (await runtime.db[INBOX].index_information())[INBOX_INDEX]["key"]
        assert list(index)[-2:] == list(pipeline[-2]["$sort"].items()) and "$sort" not in str(pipeline[-1])
        [found] = await (await runtime.db[INBOX].aggregate(pipeline)).to_list()
        assert found["total"] == [{"n": 1_050}] and len(found["page"]) == 1_000
        assert all(set(doc) == {"_id"} for doc in found["page"]) and len(bson.encode(found)) < 100_000
        newest = sorted(made, key=lambda n: (n.created_at, n.notification_id), reverse=True)[20:1_020]
        page, total = await uow.inbox(query)
        assert [n.notification_id for n in page] == [n.notification_id for n in newest] and total == 1_050
        assert all(n.body == body for n in page)
    finally:
        await runtime.client.drop_database(database)
        await runtime.client.close()


async def test_notices_an_old_replica_stores_are_keyed_through_the_roll_then_starts_skip_the_backfill(
    infra, monkeypatch
) -> None:
    """A rolling upgrade: notices stored without the inbox's keys after the start's backfill are keyed by the
    runs through the roll, a range of ids at a time; the marker that every notice is keyed is written only once
    the run at the roll's end found none, and a later start then reads no notice for keys (an operator deletes
    the marker to have them read again)."""
    database = f"inbox_{uuid.uuid4().hex[:8]}"
    runtime = Runtime.build("notifier", settings_for(infra, mongo_database=database))
    uow = MongoUnitOfWork(runtime, Retention())
    inbox, upgrades = runtime.db[INBOX], runtime.db[UPGRADES]
    monkeypatch.setattr(mongo, "KEYS_BATCH", 5)  # 12 notices: three ranges
    roll = asyncio.create_task(key_inbox_through_roll(runtime.db, timedelta(seconds=3), timedelta(seconds=0.2)))
    try:
        await ensure_indexes(runtime.db, Retention())
        docs, meant = legacy()
        await inbox.insert_many(docs)  # by a replica of the release before, after the start
        asked = InboxQuery(PROVIDER, roles=frozenset({COMPILER}))
        fake = FakeUnitOfWork()
        fake.kept = {n.notification_id: n for n in meant}
        for _ in range(100):
            if await inbox.count_documents({"for_roles": {"$exists": False}}) == 0:
                break
            await asyncio.sleep(0.1)
        assert ids(await uow.inbox(asked)) == ids(await fake.inbox(asked)) and ids(await fake.inbox(asked))[1] == 11
        assert await upgrades.count_documents({}) == 0  # the roll goes on
        for _ in range(100):
            if await upgrades.find_one({"_id": INBOX_KEYED}):
                break
            await asyncio.sleep(0.1)
        assert await upgrades.find_one({"_id": INBOX_KEYED}) is not None
        assert not roll.done()  # idle, not started again
        late = stored(meant[0]) | {"_id": f"late:{PROVIDER}"}
        await inbox.insert_one(late)
        await ensure_indexes(runtime.db, Retention())  # a later start: no notice read for keys
        assert "for_roles" not in await inbox.find_one({"_id": late["_id"]})
        await upgrades.delete_one({"_id": INBOX_KEYED})  # asked again
        await ensure_indexes(runtime.db, Retention())
        assert (await inbox.find_one({"_id": late["_id"]}))["for_roles"] == "catalog_compiler"
    finally:
        roll.cancel()
        await runtime.client.drop_database(database)
        await runtime.client.close()
