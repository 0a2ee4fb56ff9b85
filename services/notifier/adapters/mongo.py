"""The notifier's own database: inboxes, the parties of disputes, who holds what, the entries' terms in force,
open batches of changes, reminders and the departments' preferences."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from common.events import Event
from common.mongo import Transaction
from common.policy import Role
from common.runtime import Runtime
from services.notifier.adapters.webhooks_mongo import IN_PER_QUERY, MongoWebhookQueue, in_parts
from services.notifier.domain.changes import ChangeBatch, Ranges, told_after
from services.notifier.domain.events import Dispute, ShareType
from services.notifier.domain.holdings import EntryTerms, Holding
from services.notifier.domain.notifications import (
    READERS_KEPT,
    Audience,
    Channel,
    Delivery,
    Notification,
    NotificationKind,
    audiences_concerning,
)
from services.notifier.domain.preferences import Preferences
from services.notifier.domain.reminders import Deadline, Reminder
from services.notifier.domain.webhooks import Delivery as WebhookDelivery
from services.notifier.ports import InboxQuery

INBOX = "notifier_inbox"
DISPUTES = "notifier_disputes"
HOLDINGS = "notifier_holdings"
ENTRIES = "notifier_entries"
FEEDS = "notifier_change_feeds"  # per resource: how far its changes were told, and the batch still open
REMINDERS = "notifier_reminders"
PREFERENCES = "notifier_preferences"
PREFERENCES_READ_WHOLE = 1_000  # departments that chose, read in one query when a fan-out asks for many
# Once more than that chose, fan-outs look the departments up in parts without trying the whole read first
# until this long has passed (then it is tried once more); per database, in this process.
PREFERENCES_MANY_RECHECK = timedelta(minutes=10)
_preferences_many_until: dict[str, datetime] = {}
DIGESTS = "notifier_digests"  # per department on a daily digest: when the next one is due
UPGRADES = "notifier_upgrades"  # what start-up no longer needs to do to the documents kept before
INBOX_KEYED = "inbox_keys"  # every notice has the inbox's keys, and no replica storing notices without is left


@dataclass(frozen=True)
class Retention:
    """How long notices stay in the inbox: a read one `read` after it was read, a data-change notice `changes`
    after it was issued, read or not (later batches supersede it); other unread notices until they are read.
    Kept as `expire_at` under a TTL index, in the database's wall-clock time: the system clock's, never a
    shifted clock's (NOTIFIER_CLOCK_START)."""

    read: timedelta = timedelta(days=180)
    changes: timedelta = timedelta(days=90)

    def on_issue(self, notice: Notification) -> datetime | None:
        return notice.created_at + self.changes if notice.kind is NotificationKind.RESOURCE_CHANGED else None

    def on_read(self) -> datetime:
        return datetime.now(UTC) + self.read


def _day(value: date) -> datetime:  # BSON has no date-only type
    return datetime(value.year, value.month, value.day)


def _to_doc(n: Notification, retention: Retention) -> dict[str, Any]:
    # the fields as they are (all flat values): asdict's deep copy cost more than the insert of a fan-out
    doc = {f.name: getattr(n, f.name) for f in fields(n)}
    doc |= {"_id": n.notification_id, "kind": n.kind.value, "channels": sorted(c.value for c in n.channels)}
    doc["audience"] = _audience_value(n.audience)
    doc |= _inbox_keys(n.channels, n.audience)
    doc["read_by"] = sorted(n.read_by)
    doc.pop("notification_id")
    if (expire_at := retention.on_issue(n)) is not None:
        doc["expire_at"] = expire_at
    if isinstance(n.due_on, date):
        doc["due_on"] = _day(n.due_on)
    return doc


def _audience_value(audience: Audience) -> list[str] | None:
    return sorted(r.value for r in audience) or None  # null, as a notice kept before: everyone


# The inbox's lookup, in scalar fields: the local database serves no query on an array (`channels`, `audience`)
# by index, so a notice also keeps whether it is in the inbox and its audience as one value.
WHOLE_DEPARTMENT = "*"  # the audience key of a notice for the department as a whole
INBOX_INDEX = "inbox_for_roles"
INBOX_KEY = [("recipient_code", ASCENDING), ("in_inbox", ASCENDING), ("for_roles", ASCENDING)]
NEWEST = [("created_at", DESCENDING), ("_id", DESCENDING)]


def _audience_key(audience: Audience) -> str:
    return ",".join(sorted(r.value for r in audience)) or WHOLE_DEPARTMENT


def _inbox_keys(channels: Collection[Channel | str], audience: Audience) -> dict[str, Any]:
    return {"in_inbox": Channel.INBOX in channels, "for_roles": _audience_key(audience)}


def _from_doc(doc: dict[str, Any]) -> Notification:
    fields = {k: v for k, v in doc.items() if k not in ("_id", "expire_at", "in_inbox", "for_roles")}
    fields["kind"] = NotificationKind(fields["kind"])
    fields["channels"] = frozenset(Channel(c) for c in fields.get("channels", [c.value for c in Channel]))
    fields["audience"] = frozenset(Role(r) for r in fields.get("audience") or ())
    fields["read_by"] = frozenset(fields.get("read_by") or ())
    if fields.get("due_on") is not None:
        fields["due_on"] = fields["due_on"].date()
    return Notification(notification_id=doc["_id"], **fields)


def _for_roles(roles: frozenset[Role]) -> dict[str, Any]:
    """Notices for one of `roles`, or for the whole department, as the domain's `concerns` decides: the audience
    keys of every audience it finds concerning them (a notice kept before notices had audiences gets the whole
    department's key in ensure_indexes)."""
    return {"$in": [_audience_key(a) for a in audiences_concerning(roles)]}


def inbox_filter(query: InboxQuery) -> tuple[dict[str, Any], dict[str, Any]]:
    """The inbox query as (what the inbox index answers, what is checked on the notices it finds). Roles with
    neither department nor own_code are refused by InboxQuery itself."""
    indexed: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    if query.department_code is not None:
        indexed = {"recipient_code": query.department_code, "in_inbox": True}
        if query.roles is not None:
            indexed["for_roles"] = _for_roles(query.roles)
    elif query.own_code is not None and query.roles is not None:
        # the IT office overseeing: her own department's as her own inbox shows them, the others' inboxes whole
        # (what they were sent by their systems' channels only is in their deliveries, not an inbox to mark read)
        own = {"recipient_code": query.own_code, "in_inbox": True, "for_roles": _for_roles(query.roles)}
        rest["$or"] = [{"recipient_code": {"$ne": query.own_code}, "in_inbox": True}, own]
    if query.unread_only:
        rest["read"] = False  # the flag of notices read before read state was kept per reader
        if query.reader is not None:
            rest["read_by"] = {"$ne": query.reader}
    if query.kind is not None:
        rest["kind"] = query.kind.value
    if query.resource_code is not None:
        rest["resource_code"] = query.resource_code
    return indexed, rest


def inbox_pipeline(query: InboxQuery) -> list[dict[str, Any]]:
    """The inbox's aggregation as MongoUnitOfWork.inbox runs it: one document, the page's ids (`page`) and the
    total (`total`, none when nothing matches). The index's part is a stage of its own, the rest comes after it:
    the local database plans only a query its index covers whole, and takes a pipeline's first stage to the index
    (mongod merges the two). The order comes before `$facet`, where mongod can take it from the index (a `$sort`
    inside `$facet` sorts every notice found in memory); the facet keeps only the ids, so that the one document
    it makes stays far below the 16 MB a result document may have on mongod (a page is up to 1,000 notices)."""
    indexed, rest = inbox_filter(query)
    page = [*([{"$skip": query.offset}] if query.offset else []), {"$limit": query.limit}, {"$project": {"_id": 1}}]
    return [
        {"$match": indexed},
        *([{"$match": rest}] if rest else []),
        {"$sort": dict(NEWEST)},
        {"$facet": {"page": page, "total": [{"$count": "n"}]}},
    ]


def _holding(doc: dict[str, Any]) -> Holding:
    return Holding(
        doc["_id"],
        doc["resource_code"],
        doc["consumer_code"],
        doc["valid_from"].date(),
        doc["valid_to"].date(),
        doc["subscription"],
        doc.get("ended", False),
    )


def _terms_doc(t: EntryTerms) -> dict[str, Any]:
    return {
        "_id": t.resource_code,
        "version": t.version,
        "name": t.name,
        "share_type": t.share_type.value,
        "methods": sorted(t.methods),
        "items": [[name, own.value if own else None, sensitive] for name, (own, sensitive) in t.items.items()],
    }


def _terms(doc: dict[str, Any]) -> EntryTerms:
    items = {name: (ShareType(own) if own else None, sensitive) for name, own, sensitive in doc["items"]}
    return EntryTerms(
        doc["_id"], doc["version"], doc["name"], ShareType(doc["share_type"]), frozenset(doc["methods"]), items
    )


def _batch(resource_code: str, doc: dict[str, Any]) -> ChangeBatch:
    # a batch kept before batches held their sequences was the range first–last, opened a window before tell_at
    sequences = doc.get("sequences") or [(doc["first"], doc["last"])]
    return ChangeBatch(
        resource_code,
        doc["provider_code"],
        tuple((low, high) for low, high in sequences),
        doc["deletes"],
        doc.get("opened_at", doc["tell_at"]),
        doc["tell_at"],
    )


def _batch_doc(batch: ChangeBatch) -> dict[str, Any]:
    return {
        "provider_code": batch.provider_code,
        "sequences": [list(r) for r in batch.sequences],
        "deletes": batch.deletes,
        "opened_at": batch.opened_at,
        "tell_at": batch.tell_at,
    }


def _told(doc: dict[str, Any] | None) -> Ranges:
    if doc is None:
        return ()
    if "told" in doc:
        return tuple((low, high) for low, high in doc["told"])
    through = doc.get("told_through", 0)  # kept before told ranges: everything up to it was told
    return ((0, through),) if through else ()


def _reminder_doc(r: Reminder) -> dict[str, Any]:
    return {
        "_id": r.reminder_id,
        "deadline": r.deadline.value,
        "recipient_code": r.recipient_code,
        "resource_code": r.resource_code,
        "reference": r.reference,
        "due_on": _day(r.due_on),
        "remind_at": r.remind_at,
        "sent": False,
        "about_code": r.about_code,
        "since": _day(r.since) if r.since is not None else None,
    }


def _reminder(doc: dict[str, Any]) -> Reminder:
    return Reminder(
        doc["_id"],
        Deadline(doc["deadline"]),
        doc["recipient_code"],
        doc["resource_code"],
        doc["reference"],
        doc["due_on"].date(),
        doc["remind_at"],
        doc.get("about_code"),
        doc["since"].date() if doc.get("since") is not None else None,
    )


def _preferences(doc: dict[str, Any]) -> Preferences:
    kinds = doc.get("kinds")
    return Preferences(
        doc["_id"],
        None if kinds is None else frozenset(NotificationKind(k) for k in kinds),
        frozenset(Channel(c) for c in doc["channels"]),
        Delivery(doc["delivery"]),
    )


async def ensure_indexes(db: AsyncDatabase, retention: Retention) -> None:
    if not await _inbox_keyed(db):  # every notice has its keys (and channels) since: reading them all is spared
        # notices kept before departments chose channels went to every channel
        every = sorted(c.value for c in Channel)
        await db[INBOX].update_many({"channels": {"$exists": False}}, {"$set": {"channels": every}})
        await _add_inbox_keys(db)
    # notices kept before their retention get its full period from now
    read = {"read": True, "expire_at": {"$exists": False}}
    await db[INBOX].update_many(read, {"$set": {"expire_at": retention.on_read()}})
    changes = {"kind": NotificationKind.RESOURCE_CHANGED.value, "expire_at": {"$exists": False}}
    await db[INBOX].update_many(changes, {"$set": {"expire_at": datetime.now(UTC) + retention.changes}})
    await db[INBOX].create_index([("expire_at", ASCENDING)], expireAfterSeconds=0)
    # A department's inbox (a person's: her roles' and the department's) is found by this index; its notices of
    # one kind, unread or waiting for a digest among those it finds. It replaces the (recipient, newest)
    # index: each index more is written with every notice, and a change of a widely held resource stores a
    # thousand at once.
    await db[INBOX].create_index([*INBOX_KEY, *NEWEST], name=INBOX_INDEX)
    # The (recipient, newest) index it replaces stays through this release: replicas of the release before
    # read their inboxes by it during a rolling upgrade, and one of them starting again would create it again.
    # The next release drops it (docs/operations.md, the notifier).
    for unused in ("recipient_code_1_kind_1_created_at_-1__id_-1", "recipient_code_1_in_digest_1"):
        if unused in await db[INBOX].index_information():
            await db[INBOX].drop_index(unused)
    await db[INBOX].create_index([("resource_code", ASCENDING), *NEWEST])
    await db[HOLDINGS].create_index([("resource_code", ASCENDING)])
    await db[FEEDS].create_index([("batch.tell_at", ASCENDING)], sparse=True)
    await db[REMINDERS].create_index([("sent", ASCENDING), ("remind_at", ASCENDING)])
    await db[REMINDERS].create_index([("deadline", ASCENDING), ("reference", ASCENDING)])
    await db[REMINDERS].create_index([("recipient_code", ASCENDING), ("due_on", ASCENDING)])
    await db[DIGESTS].create_index([("at", ASCENDING)])


KEYS_BATCH = 10_000  # notices keyed at a time: a range of ids (each update reads the collection locally)


async def _add_inbox_keys(db: AsyncDatabase) -> int:
    """Notices kept before the inbox's scalar keys get them: in the inbox by their channels (none, kept before
    channels: every channel), the audience key by their audience (none, kept before audiences: the whole
    department). A range of ids at a time, once per audience present in it, and only on notices without the
    keys, so a second run changes nothing. How many were found without them."""
    unkeyed: dict[str, Any] = {"for_roles": {"$exists": False}}
    found, after = 0, None
    while True:
        where = unkeyed | ({"_id": {"$gt": after}} if after is not None else {})
        cursor = db[INBOX].find(where, {"audience": 1}).sort("_id", ASCENDING).limit(KEYS_BATCH)
        docs = await cursor.to_list()
        if not docs:
            return found
        found, after = found + len(docs), docs[-1]["_id"]
        ids = unkeyed | {"_id": {"$gte": docs[0]["_id"], "$lte": after}}
        inbox = {"$or": [{"channels": Channel.INBOX.value}, {"channels": {"$exists": False}}]}
        await db[INBOX].update_many(ids | inbox, {"$set": {"in_inbox": True}})
        await db[INBOX].update_many(ids | {"in_inbox": {"$exists": False}}, {"$set": {"in_inbox": False}})
        for stored in {tuple(doc.get("audience") or ()) for doc in docs}:  # a list of roles, null or missing
            audience = frozenset(Role(r) for r in stored)
            await db[INBOX].update_many(
                ids | {"audience": list(stored) if stored else None}, {"$set": {"for_roles": _audience_key(audience)}}
            )


async def _inbox_keyed(db: AsyncDatabase) -> bool:
    return await db[UPGRADES].find_one({"_id": INBOX_KEYED}) is not None


async def key_inbox_through_roll(db: AsyncDatabase, roll: timedelta, every: timedelta) -> None:
    """While a rolling upgrade goes on, replicas of the release before store notices without the inbox's keys,
    which no inbox query finds: they are keyed again every `every` for `roll` after start (ensure_indexes keyed
    those before), the last time when `roll` has passed. That last run finding none, no replica of before is
    left: the marker `INBOX_KEYED` says so, and later starts skip the reading of every notice (a run with
    nothing to key reads the notices without the keys, all of the collection on the local database). One
    finding some, the roll goes on: another `roll`."""
    while not await _inbox_keyed(db):
        ends, found = time.monotonic() + roll.total_seconds(), 0
        while (left := ends - time.monotonic()) > 0:
            await asyncio.sleep(min(every.total_seconds(), left))
            found = await _add_inbox_keys(db)
        if found == 0:
            doc = {"at": datetime.now(UTC)}
            await db[UPGRADES].update_one({"_id": INBOX_KEYED}, {"$setOnInsert": doc}, upsert=True)
    await asyncio.Event().wait()  # done: the periodic job stays idle rather than start again


class MongoNotifierTransaction:
    def __init__(self, tx: Transaction, retention: Retention, hold: timedelta | None = None) -> None:
        self.tx = tx
        self.db, self.session = tx.db, tx.session
        self.retention = retention
        self.webhooks = MongoWebhookQueue(tx.db, tx.session, hold)

    async def existing(self, notification_ids: Collection[str]) -> set[str]:
        if not notification_ids:
            return set()
        # one query: the notices asked about are new but for a batch told again, and the local database
        # compares only the documents it finds with the values listed
        cursor = self.db[INBOX].find({"_id": {"$in": list(notification_ids)}}, {"_id": 1}, session=self.session)
        return {doc["_id"] async for doc in cursor}

    async def add_all(self, notifications: list[Notification]) -> None:
        if notifications:
            docs = [_to_doc(n, self.retention) for n in notifications]
            await self.db[INBOX].insert_many(docs, session=self.session)

    def emit(self, topic: str, event: Event) -> None:
        self.tx.emit(topic, event)

    async def preferences(self, department_codes: Collection[str]) -> dict[str, Preferences]:
        """The choices of those of `department_codes` that chose. Asked for many (a fan-out), the chosen ones are
        read whole in one query while there are at most PREFERENCES_READ_WHOLE (one per department that
        chose: few), else fifty departments to a query; a read that found more is not tried again for
        PREFERENCES_MANY_RECHECK (the bound read, PREFERENCES_READ_WHOLE + 1 documents, would be wasted)."""
        found = {}
        now = datetime.now(UTC)
        if len(department_codes) > IN_PER_QUERY and _preferences_many_until.get(self.db.name, now) <= now:
            cursor = self.db[PREFERENCES].find({}, session=self.session).limit(PREFERENCES_READ_WHOLE + 1)
            chosen = await cursor.to_list()
            if len(chosen) <= PREFERENCES_READ_WHOLE:
                _preferences_many_until.pop(self.db.name, None)
                wanted = set(department_codes)
                return {doc["_id"]: _preferences(doc) for doc in chosen if doc["_id"] in wanted}
            _preferences_many_until[self.db.name] = now + PREFERENCES_MANY_RECHECK
        for part in in_parts(department_codes):
            async for doc in self.db[PREFERENCES].find({"_id": {"$in": part}}, session=self.session):
                found[doc["_id"]] = _preferences(doc)
        return found

    async def remember_dispute(self, dispute: Dispute) -> None:
        doc = asdict(dispute) | {"_id": dispute.dispute_id}
        doc.pop("dispute_id")
        await self.db[DISPUTES].replace_one({"_id": dispute.dispute_id}, doc, upsert=True, session=self.session)

    async def dispute(self, dispute_id: str) -> Dispute | None:
        doc = await self.db[DISPUTES].find_one({"_id": dispute_id}, session=self.session)
        if doc is None:
            return None
        return Dispute(doc["_id"], doc["request_id"], doc["consumer_code"], doc["provider_code"])

    async def hold(self, holding: Holding) -> None:
        doc = {
            "resource_code": holding.resource_code,
            "consumer_code": holding.consumer_code,
            "valid_from": _day(holding.valid_from),
            "valid_to": _day(holding.valid_to),
            "subscription": holding.subscription,
        }
        # an end heard before the grant (another partition) stays an end
        await self.db[HOLDINGS].update_one(
            {"_id": holding.grant_id},
            {"$set": doc, "$setOnInsert": {"ended": False}},
            upsert=True,
            session=self.session,
        )

    async def end_holding(self, grant_id: str) -> None:
        await self.db[HOLDINGS].update_one(
            {"_id": grant_id},
            {"$set": {"ended": True}, "$setOnInsert": {"resource_code": None}},
            upsert=True,
            session=self.session,
        )

    async def holdings(self, resource_code: str) -> list[Holding]:
        cursor = self.db[HOLDINGS].find({"resource_code": resource_code, "ended": False}, session=self.session)
        return [_holding(doc) async for doc in cursor]

    async def entry_terms(self, resource_code: str) -> EntryTerms | None:
        doc = await self.db[ENTRIES].find_one({"_id": resource_code}, session=self.session)
        return _terms(doc) if doc else None

    async def keep_entry_terms(self, terms: EntryTerms) -> None:
        await self.db[ENTRIES].replace_one(
            {"_id": terms.resource_code}, _terms_doc(terms), upsert=True, session=self.session
        )

    async def change_batches(self, resource_codes: Collection[str]) -> dict[str, tuple[ChangeBatch | None, Ranges]]:
        cursor = self.db[FEEDS].find({"_id": {"$in": list(resource_codes)}}, session=self.session)
        found = {}
        async for doc in cursor:
            batch = _batch(doc["_id"], doc["batch"]) if doc.get("batch") else None
            found[doc["_id"]] = (batch, _told(doc))
        return found

    async def keep_change_batch(self, batch: ChangeBatch) -> None:
        await self.db[FEEDS].update_one(
            {"_id": batch.resource_code}, {"$set": {"batch": _batch_doc(batch)}}, upsert=True, session=self.session
        )

    async def due_change_batch(self, now: datetime) -> ChangeBatch | None:
        doc = await self.db[FEEDS].find_one(
            {"batch.tell_at": {"$lte": now}}, sort=[("batch.tell_at", ASCENDING)], session=self.session
        )
        return _batch(doc["_id"], doc["batch"]) if doc else None

    async def batch_told(self, batch: ChangeBatch) -> None:
        """The batch as it was read is told; changes counted in since (its notices were stored in several
        transactions) stay as the open batch."""
        feed = await self.db[FEEDS].find_one({"_id": batch.resource_code}, session=self.session)
        told = [list(r) for r in told_after(_told(feed), batch)]
        kept = _batch(batch.resource_code, feed["batch"]) if feed and feed.get("batch") else None
        left = kept.left_after(batch) if kept is not None else None
        await self.db[FEEDS].update_one(
            {"_id": batch.resource_code},
            {"$set": {"told": told, "batch": _batch_doc(left) if left else None}, "$unset": {"told_through": ""}},
            session=self.session,
        )

    async def schedule(self, reminder: Reminder) -> None:
        """Once per deadline: a reminder sent before is not scheduled again."""
        doc = _reminder_doc(reminder)
        await self.db[REMINDERS].update_one(
            {"_id": reminder.reminder_id}, {"$setOnInsert": doc}, upsert=True, session=self.session
        )

    async def cancel_reminders(self, deadline: Deadline, reference: str) -> None:
        await self.db[REMINDERS].delete_many(
            {"deadline": deadline.value, "reference": reference, "sent": False}, session=self.session
        )

    async def due_reminders(self, now: datetime, limit: int) -> list[Reminder]:
        cursor = (
            self.db[REMINDERS]
            .find({"sent": False, "remind_at": {"$lte": now}}, session=self.session)
            .sort("remind_at", ASCENDING)
            .limit(limit)
        )
        return [_reminder(doc) async for doc in cursor]

    async def reminder_sent(self, reminder_id: str) -> None:
        await self.db[REMINDERS].update_one({"_id": reminder_id}, {"$set": {"sent": True}}, session=self.session)

    async def set_preferences(self, preferences: Preferences) -> None:
        doc = {
            "kinds": None if preferences.kinds is None else sorted(k.value for k in preferences.kinds),
            "channels": sorted(c.value for c in preferences.channels),
            "delivery": preferences.delivery.value,
        }
        await self.db[PREFERENCES].replace_one(
            {"_id": preferences.department_code}, doc, upsert=True, session=self.session
        )

    async def schedule_digest(self, department_code: str, at: datetime | None) -> None:
        if at is None:
            await self.db[DIGESTS].delete_one({"_id": department_code}, session=self.session)
        else:
            await self.db[DIGESTS].replace_one({"_id": department_code}, {"at": at}, upsert=True, session=self.session)

    async def due_digest(self, now: datetime) -> tuple[str, datetime] | None:
        doc = await self.db[DIGESTS].find_one({"at": {"$lte": now}}, sort=[("at", ASCENDING)], session=self.session)
        return (doc["_id"], doc["at"]) if doc else None

    async def digest_audiences(self, department_code: str) -> list[Audience]:
        where = {"recipient_code": department_code, "in_digest": True}
        groups = await self.db[INBOX].aggregate(
            [{"$match": where}, {"$group": {"_id": "$audience"}}], session=self.session
        )
        found = {frozenset(Role(r) for r in g["_id"] or ()) for g in await groups.to_list()}
        return sorted(found, key=lambda a: sorted(a))

    async def awaiting_digest(
        self, department_code: str, audience: Audience, limit: int
    ) -> tuple[list[Notification], int]:
        where = {"recipient_code": department_code, "in_digest": True, "audience": _audience_value(audience)}
        total = await self.db[INBOX].count_documents(where, session=self.session)
        cursor = self.db[INBOX].find(where, session=self.session).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [_from_doc(doc) for doc in await cursor.limit(limit).to_list()], total

    async def digested(self, department_code: str) -> None:
        await self.db[INBOX].update_many(
            {"recipient_code": department_code, "in_digest": True}, {"$set": {"in_digest": False}}, session=self.session
        )


class MongoUnitOfWork:
    def __init__(
        self,
        runtime: Runtime,
        retention: Retention,
        on_deliveries: Callable[[list[WebhookDelivery]], None] | None = None,
        hold: timedelta | None = None,
    ) -> None:
        self.runtime = runtime
        self.retention = retention
        # Hands committed webhook deliveries to the worker, which holds them for `hold` (MongoWebhookQueue)
        # and reads their endpoints itself when it takes them.
        self.on_deliveries = on_deliveries
        self.hold = hold if on_deliveries is not None else None

    @property
    def db(self) -> AsyncDatabase:
        return self.runtime.db

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoNotifierTransaction]:
        async with self.runtime.transaction() as tx:
            notifier_tx = MongoNotifierTransaction(tx, self.retention, self.hold)
            yield notifier_tx
        if notifier_tx.webhooks.queued and self.on_deliveries is not None:
            self.on_deliveries(notifier_tx.webhooks.queued)

    async def inbox(self, query: InboxQuery) -> tuple[list[Notification], int]:
        # the page's ids and the total from one read of what the index finds (inbox_pipeline), then the page's
        # notices by their ids (in_parts), in the order found; one gone meanwhile (its retention ended) is left out
        cursor = await self.db[INBOX].aggregate(inbox_pipeline(query))
        [found] = await cursor.to_list()
        total = found["total"][0]["n"] if found["total"] else 0
        ids = [doc["_id"] for doc in found["page"]]
        if not ids:
            return [], total
        docs: dict[str, dict[str, Any]] = {}
        for part in in_parts(ids):  # a thousand ids in one `$in` cost the local database a second
            docs |= {doc["_id"]: doc async for doc in self.db[INBOX].find({"_id": {"$in": part}})}
        return [_from_doc(docs[i]) for i in ids if i in docs], total

    async def mark_read(
        self, department_code: str | None, notification_id: str, reader: str, roles: frozenset[Role] | None = None
    ) -> bool:
        where: dict[str, Any] = {"_id": notification_id, "in_inbox": True}  # one the inbox shows
        if department_code is not None:
            where["recipient_code"] = department_code
        if roles is not None:
            where["for_roles"] = _for_roles(roles)
        # kept the first READERS_KEPT readers; the first read starts the notice's retention after reading
        read = {
            "$push": {"read_by": {"$each": [reader], "$slice": READERS_KEPT}},
            "$min": {"expire_at": self.retention.on_read()},
        }
        result = await self.db[INBOX].update_one(where | {"read_by": {"$ne": reader}}, read)
        return result.matched_count == 1 or await self.db[INBOX].count_documents(where, limit=1) == 1

    async def preferences_of(self, department_code: str) -> Preferences | None:
        doc = await self.db[PREFERENCES].find_one({"_id": department_code})
        return _preferences(doc) if doc else None

    async def next_due(self) -> datetime | None:
        batch = await self.db[FEEDS].find_one(
            {"batch.tell_at": {"$ne": None}}, {"batch.tell_at": 1}, sort=[("batch.tell_at", ASCENDING)]
        )
        reminder = await self.db[REMINDERS].find_one({"sent": False}, {"remind_at": 1}, sort=[("remind_at", ASCENDING)])
        digest = await self.db[DIGESTS].find_one({}, {"at": 1}, sort=[("at", ASCENDING)])
        times = [batch["batch"]["tell_at"]] if batch else []
        times += [reminder["remind_at"]] if reminder else []
        times += [digest["at"]] if digest else []
        return min(times, default=None)

    async def reminders_of(self, department_code: str, followed: Collection[Deadline] = ()) -> list[Reminder]:
        # its own first, then those it follows (each up to 1,000: the city's many cannot crowd out its own)
        wheres: list[dict[str, Any]] = [{"recipient_code": department_code}]
        if followed:
            kinds = sorted(d.value for d in followed)
            wheres.append({"recipient_code": {"$ne": department_code}, "deadline": {"$in": kinds}})
        found: list[Reminder] = []
        for where in wheres:
            cursor = self.db[REMINDERS].find(where | {"sent": False}).sort("due_on", ASCENDING).limit(1000)
            found += [_reminder(doc) for doc in await cursor.to_list()]
        return sorted(found, key=lambda r: r.due_on)
