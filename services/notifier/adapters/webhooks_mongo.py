"""Webhook endpoints and deliveries in the notifier's own MongoDB.

Deliveries are queued in the transaction that stores their notices (one write for all of them). Deliveries
of one chain (endpoint and resource) carry increasing `seq` numbers; the worker tries only the first open
one of a chain (open ones it delivered itself, their outcome not written yet, aside) and marks the others it
finds due as `waiting`, to be woken when the one before them is delivered or dead (and looked at again after
WAITING_RECHECK in any case, so that no interleaving of a wake-up and a marking can leave one waiting for
ever). A delivery being attempted is claimed by moving its `next_try_at` past the attempt's lease: a process
killed mid-attempt leaves it due again when the lease ends (at least once)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateMany, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.notifier.adapters.sealing import SecretSealer
from services.notifier.domain.notifications import NotificationKind
from services.notifier.domain.webhooks import Delivery, DeliveryState, Endpoint, Outcome, SigningSecret, heads

ENDPOINTS = "notifier_webhooks"
DELIVERIES = "notifier_webhook_deliveries"
LAST_ERROR_LENGTH = 500
# A delivery found behind an earlier open one is woken when that one finishes; it is looked at again after
# this in any case (a wake-up that raced with its marking as waiting would otherwise be missed).
WAITING_RECHECK = timedelta(minutes=5)
FIRST_OPEN_CAP = 10_000  # open deliveries read to find the first of each chain in one batch


async def ensure_indexes(db: AsyncDatabase, sealer: SecretSealer) -> None:
    await seal_secrets(db, sealer)
    await db[ENDPOINTS].create_index([("department_code", ASCENDING), ("created_at", ASCENDING)])
    # Claims and chains look at open deliveries only, so only open ones are in their indexes: a finished one
    # leaves them with its outcome (the local database rewrites every index entry of a document it updates),
    # and a query for the open ones of many chains is answered from the index, not by reading every delivery
    # ever made (which the full (chain, seq) index did not spare the local database's planner).
    found = await db[DELIVERIES].index_information()
    for superseded in ("state_1_next_try_at_1", "chain_1_seq_1"):
        if superseded in found:
            await db[DELIVERIES].drop_index(superseded)
    await db[DELIVERIES].create_index(OPEN_BY_DUE, name="open_by_due", partialFilterExpression=OPEN)
    await db[DELIVERIES].create_index(OPEN_BY_CHAIN, name=OPEN_BY_CHAIN_NAME, partialFilterExpression=OPEN)
    await db[DELIVERIES].create_index([("department_code", ASCENDING), ("created_at", ASCENDING)])


OPEN = {"state": DeliveryState.PENDING.value}
OPEN_BY_DUE = [("state", ASCENDING), ("next_try_at", ASCENDING)]
OPEN_BY_CHAIN = [("chain", ASCENDING), ("seq", ASCENDING)]
OPEN_BY_CHAIN_NAME = "open_by_chain"


def open_in_chains(chains: Collection[str]) -> dict[str, Any]:
    """The open deliveries of these chains, in the shape the chain index answers: another condition beside
    these two makes the local database read the whole collection, so callers filter the rest themselves."""
    return {"chain": {"$in": sorted(chains)}, **OPEN}


IN_PER_QUERY = 50  # values of one `$in`: the local database compares each document found with every value


def in_parts(values: Collection[str]) -> list[list[str]]:
    """`values` sorted, in lists of IN_PER_QUERY: a thousand looked up in one `$in` cost the local database
    a million comparisons, in twenty of fifty, fifty thousand."""
    ordered = sorted(values)
    return [ordered[i : i + IN_PER_QUERY] for i in range(0, len(ordered), IN_PER_QUERY)]


def _utc(value: datetime | None) -> datetime | None:
    """BSON dates come back naive; they are UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def endpoint_doc(e: Endpoint, sealer: SecretSealer) -> dict[str, Any]:
    return {
        "_id": e.endpoint_id,
        "department_code": e.department_code,
        "url": e.url,
        "kinds": sorted(k.value for k in e.kinds),
        "secrets": [_secret_doc(s, sealer) for s in e.secrets],
        "created_by": e.created_by,
        "created_at": e.created_at,
        "description": e.description,
    }


def _secret_doc(s: SigningSecret, sealer: SecretSealer) -> dict[str, Any]:
    return {"sealed": sealer.seal(s.value), "created_at": s.created_at, "expires_at": s.expires_at}


def _secret_value(doc: dict[str, Any], sealer: SecretSealer) -> str:
    return sealer.open(doc["sealed"]) if "sealed" in doc else doc["value"]  # "value": kept before sealing


def endpoint_from(doc: dict[str, Any], sealer: SecretSealer | None) -> Endpoint:
    """Without a sealer (the secrets were not read), an endpoint without its secrets."""
    return Endpoint(
        endpoint_id=doc["_id"],
        department_code=doc["department_code"],
        url=doc["url"],
        kinds=frozenset(NotificationKind(k) for k in doc.get("kinds", [])),
        secrets=[
            SigningSecret(_secret_value(s, sealer), _utc(s["created_at"]) or s["created_at"], _utc(s.get("expires_at")))
            for s in doc["secrets"]
        ]
        if sealer is not None
        else [],
        created_by=doc["created_by"],
        created_at=_utc(doc["created_at"]) or doc["created_at"],
        description=doc.get("description", ""),
    )


async def seal_secrets(db: AsyncDatabase, sealer: SecretSealer) -> int:
    """At start: secrets kept in clear (before sealing) or sealed under an older key are sealed under the
    current key; returns how many endpoints were rewritten."""
    rewritten = 0
    async for doc in db[ENDPOINTS].find({}, {"secrets": 1}):
        if all("sealed" in s and sealer.is_current(s["sealed"]) for s in doc["secrets"]):
            continue
        secrets = [
            {
                "sealed": sealer.seal(_secret_value(s, sealer)),
                "created_at": s["created_at"],
                "expires_at": s.get("expires_at"),
            }
            for s in doc["secrets"]
        ]
        await db[ENDPOINTS].update_one({"_id": doc["_id"]}, {"$set": {"secrets": secrets}})
        rewritten += 1
    return rewritten


DELIVERY_DATES = ("created_at", "next_try_at", "delivered_at", "retry_from")


def delivery_doc(d: Delivery) -> dict[str, Any]:
    return {
        "_id": d.delivery_id,
        "endpoint_id": d.endpoint_id,
        "department_code": d.department_code,
        "notification_id": d.notification_id,
        "chain": d.chain,
        "seq": d.seq,
        "body": d.body,
        "created_at": d.created_at,
        "next_try_at": d.next_try_at,
        "kind": d.kind,
        "reference": d.reference,
        "state": d.state.value,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "last_status": d.last_status,
        "delivered_at": d.delivered_at,
        "retry_from": d.retry_from,
        "waiting": d.waiting,
        "lease": d.lease,
    }


def delivery_from(doc: dict[str, Any]) -> Delivery:
    dates = {name: _utc(doc.get(name)) for name in DELIVERY_DATES}
    return Delivery(
        delivery_id=doc["_id"],
        endpoint_id=doc["endpoint_id"],
        department_code=doc["department_code"],
        notification_id=doc["notification_id"],
        chain=doc["chain"],
        seq=doc["seq"],
        body=doc.get("body", ""),  # left out where only the state is wanted
        kind=doc.get("kind", ""),
        reference=doc.get("reference"),
        state=DeliveryState(doc["state"]),
        attempts=doc.get("attempts", 0),
        last_error=doc.get("last_error"),
        last_status=doc.get("last_status"),
        created_at=dates["created_at"],  # type: ignore[arg-type]
        next_try_at=dates["next_try_at"],  # type: ignore[arg-type]
        delivered_at=dates["delivered_at"],
        retry_from=dates["retry_from"],
        waiting=doc.get("waiting", False),
        lease=doc.get("lease"),
    )


class MongoWebhookQueue:
    """The webhook part of a notice's transaction (services.notifier.adapters.mongo)."""

    def __init__(self, db: AsyncDatabase, session: AsyncClientSession, hold: timedelta | None = None) -> None:
        self.db = db
        self.session = session
        # With `hold`, this process attempts the deliveries itself right after the commit: they are stored
        # as claimed for that long (due again then, should the process die first). The worker reads their
        # endpoints by id when it takes them, secrets and all; this transaction reads only who wants what.
        self.hold = hold
        self.queued: list[Delivery] = []

    async def endpoints_of(self, department_codes: Collection[str]) -> list[Endpoint]:
        """The departments' endpoints without their secrets, which are neither read nor opened here."""
        found = []
        for part in in_parts(department_codes):
            query = {"department_code": {"$in": part}}
            cursor = self.db[ENDPOINTS].find(query, {"secrets": 0}, session=self.session)
            found += [endpoint_from(doc, None) async for doc in cursor]
        return found

    async def queue(self, deliveries: list[Delivery]) -> None:
        held_until = datetime.now(UTC) + self.hold if self.hold is not None else None  # from now, not the notice
        lease = uuid.uuid4().hex if held_until is not None else None  # this process's claim on them
        for delivery in deliveries:
            delivery.seq = next_seq()
            if held_until is not None:
                delivery.next_try_at = held_until
                delivery.lease = lease
        await self.db[DELIVERIES].insert_many([delivery_doc(d) for d in deliveries], session=self.session)
        self.queued += deliveries


_last_seq = 0


def next_seq() -> int:
    """Increasing in this process: nanoseconds since the epoch, one more than the last if the clock stood
    still. A chain's deliveries are not numbered by one process alone: a resource's notices are queued by the
    `notifier` and `notifier-changes` consumer groups and by every replica's timer, possibly at the same time,
    so no process may assume it is alone in a chain. Whatever queued them, the worker takes a delivery only
    after reading its chain's open ones again once it is committed (MongoWebhookStore.take): one committed
    before that read and numbered earlier goes first. Across processes the order is that of the clocks that
    numbered them, and one numbered earlier but committed after that read is not waited for."""
    global _last_seq
    _last_seq = max(time.time_ns(), _last_seq + 1)
    return _last_seq


class MongoWebhookStore:
    def __init__(self, db: AsyncDatabase, sealer: SecretSealer) -> None:
        self.db = db
        self.sealer = sealer
        self.backlogs: dict[str, ChainBacklog] = {}  # chains whose open deliveries were read, see _wake_next
        # Marking deliveries waiting and waking a chain's next one take turns in this process (_park): a wake
        # that read a delivery not waiting yet cannot be followed by its marking in between.
        self.chain_turns = asyncio.Lock()

    async def add_endpoint(self, endpoint: Endpoint) -> None:
        await self.db[ENDPOINTS].insert_one(endpoint_doc(endpoint, self.sealer))

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        doc = await self.db[ENDPOINTS].find_one({"_id": endpoint_id})
        return endpoint_from(doc, self.sealer) if doc else None

    async def endpoints(self, department_code: str) -> list[Endpoint]:
        cursor = self.db[ENDPOINTS].find({"department_code": department_code}).sort("created_at", ASCENDING)
        return [endpoint_from(doc, self.sealer) async for doc in cursor]

    async def save_secrets(self, endpoint: Endpoint) -> None:
        secrets = [_secret_doc(s, self.sealer) for s in endpoint.secrets]
        await self.db[ENDPOINTS].update_one({"_id": endpoint.endpoint_id}, {"$set": {"secrets": secrets}})

    async def remove_endpoint(self, endpoint_id: str) -> bool:
        result = await self.db[ENDPOINTS].delete_one({"_id": endpoint_id})
        return result.deleted_count == 1

    async def deliveries(
        self,
        *,
        department_code: str | None,
        state: DeliveryState | None,
        endpoint_id: str | None,
        offset: int,
        limit: int,
    ) -> tuple[list[Delivery], int]:
        query: dict[str, Any] = {}
        for name, value in (("department_code", department_code), ("endpoint_id", endpoint_id)):
            if value is not None:
                query[name] = value
        if state is not None:
            query["state"] = state.value
        total = await self.db[DELIVERIES].count_documents(query)
        cursor = (
            self.db[DELIVERIES]
            .find(query)
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [delivery_from(doc) async for doc in cursor], total

    async def delivery(self, delivery_id: str) -> Delivery | None:
        doc = await self.db[DELIVERIES].find_one({"_id": delivery_id})
        return delivery_from(doc) if doc else None

    async def replay(self, delivery_ids: list[str], now: datetime) -> int:
        """Dead deliveries go out again at once, outside their chain's order (theirs has moved on), with a
        fresh retry horizon."""
        result = await self.db[DELIVERIES].update_many(
            {"_id": {"$in": delivery_ids}, "state": DeliveryState.DEAD.value},
            {
                "$set": {
                    "state": DeliveryState.PENDING.value,
                    "waiting": False,
                    "next_try_at": now,
                    "retry_from": None,
                    "attempts": 0,
                },
                "$inc": {"replays": 1},
            },
        )
        return result.modified_count

    async def endpoints_by_id(self, endpoint_ids: Collection[str]) -> dict[str, Endpoint]:
        found = {}
        for part in in_parts(endpoint_ids):
            async for doc in self.db[ENDPOINTS].find({"_id": {"$in": part}}):
                found[doc["_id"]] = endpoint_from(doc, self.sealer)
        return found

    async def claim_due(
        self, now: datetime, limit: int, lease_until: datetime, delivered: Mapping[str, Collection[int]] | None = None
    ) -> list[Delivery]:
        due = {"state": DeliveryState.PENDING.value, "next_try_at": {"$lte": now}}
        cursor = self.db[DELIVERIES].find(due, {"body": 0}).sort([("next_try_at", ASCENDING), ("seq", ASCENDING)])
        candidates = [delivery_from(doc) for doc in await cursor.limit(limit).to_list()]
        if delivered:  # delivered here, their claim ended before the outcome was written: that write settles them
            candidates = [d for d in candidates if d.seq not in delivered.get(d.chain, ())]
        if not candidates:
            return []
        go, behind = heads(candidates, await self._first_open({d.chain for d in candidates}, delivered))
        await self._park(behind, due, now, delivered)
        if not go:
            return []
        ids, lease = [d.delivery_id for d in go], uuid.uuid4().hex
        await self.db[DELIVERIES].update_many(
            {"_id": {"$in": ids}, **due}, {"$set": {"next_try_at": lease_until, "lease": lease, "waiting": False}}
        )
        won = self.db[DELIVERIES].find({"_id": {"$in": ids}, "lease": lease})
        return [delivery_from(doc) async for doc in won]

    async def take(
        self, deliveries: list[Delivery], now: datetime, delivered: Mapping[str, Collection[int]] | None = None
    ) -> list[Delivery]:
        """Those of this process's fresh deliveries that are the first open one of their chain, each chain read
        again here (other processes queue into the same chains: no transaction knows its delivery first); an
        open one `delivered` by this process (its outcome not written yet) holds none back."""
        go, behind = heads(deliveries, await self._first_open({d.chain for d in deliveries}, delivered))
        await self._park(behind, {"state": DeliveryState.PENDING.value}, now, delivered)
        return go

    async def _park(
        self,
        behind: list[Delivery],
        still: dict[str, Any],
        now: datetime,
        delivered: Mapping[str, Collection[int]] | None = None,
    ) -> None:
        """Deliveries found behind an earlier open one wait (until woken, or WAITING_RECHECK). The one before
        may have finished since it was read, its wake seeing these not waiting yet: in this process marking and
        waking take turns, and after the marking each chain's first open delivery is read again; one marked
        that is first by now is due at once (a wake in another process that came too early)."""
        if not behind:
            return
        async with self.chain_turns:
            await self.db[DELIVERIES].update_many(
                {"_id": {"$in": [d.delivery_id for d in behind]}, **still},
                {"$set": {"waiting": True, "next_try_at": now + WAITING_RECHECK}},
            )
            first = await self._first_open({d.chain for d in behind}, delivered)
            now_first = [d.delivery_id for d in behind if first[d.chain] == d.seq]
            if now_first:
                await self.db[DELIVERIES].update_many(
                    {"_id": {"$in": now_first}, "waiting": True, "state": DeliveryState.PENDING.value},
                    {"$set": {"waiting": False, "next_try_at": now}},
                )

    async def _first_open(
        self, chains: Collection[str], delivered: Mapping[str, Collection[int]] | None = None
    ) -> dict[str, int]:
        """The lowest open `seq` of each chain but those `delivered` (by the chain index; a chain left out past
        the cap counts as having an older open one, so its candidates wait for the recheck)."""
        first: dict[str, int] = {}
        left = FIRST_OPEN_CAP
        delivered = delivered or {}
        for part in in_parts(chains):
            cursor = self.db[DELIVERIES].find(open_in_chains(part), {"chain": 1, "seq": 1, "_id": 0})
            async for doc in cursor.sort(OPEN_BY_CHAIN).limit(left):
                left -= 1
                if doc["seq"] not in delivered.get(doc["chain"], ()):
                    first.setdefault(doc["chain"], doc["seq"])
            if left <= 0:
                break
        return {chain: first.get(chain, -1) for chain in chains}

    async def next_due(self) -> datetime | None:
        doc = await self.db[DELIVERIES].find_one(
            {"state": DeliveryState.PENDING.value}, {"next_try_at": 1}, sort=[("next_try_at", 1)]
        )
        return _utc(doc["next_try_at"]) if doc else None

    async def record(self, outcomes: list[Outcome], now: datetime) -> None:
        """Each outcome is written only while its attempt's claim holds (the lease it was claimed or queued
        with): once the lease ended and the delivery was claimed again, the other attempt owns it, and a late
        outcome of the first changes nothing (neither books it delivered nor sets it back to pending). The
        first waiting delivery of each chain whose open one finished is then due now. Delivered attempts of
        one claim are written together (_outcome_writes)."""
        await self.wake_next(await self.write_outcomes(outcomes), now)

    async def write_outcomes(self, outcomes: list[Outcome]) -> dict[str, int]:
        """The outcomes' write alone (see record): the chains whose open delivery finished, each with the
        highest `seq` finished, for wake_next."""
        if not outcomes:
            return {}
        result = await self.db[DELIVERIES].bulk_write(_outcome_writes(outcomes), ordered=False)
        done = {o.delivery.delivery_id: o.delivery for o in outcomes if o.finished}
        if result.matched_count < len(outcomes) and done:  # some claims were lost: their chains go on only if done
            still_open = {
                doc["_id"]
                for part in in_parts(done)
                async for doc in self.db[DELIVERIES].find({"_id": {"$in": part}, **OPEN}, {"_id": 1})
            }
            done = {i: d for i, d in done.items() if i not in still_open}
        finished: dict[str, int] = {}
        for d in done.values():
            finished[d.chain] = max(d.seq, finished.get(d.chain, d.seq))
        return finished

    async def wake_next(self, finished: dict[str, int], now: datetime) -> None:
        """The next delivery of each finished chain (chain: the `seq` finished) is due now; in turn with the
        marking of waiting ones (_park)."""
        if finished:
            async with self.chain_turns:
                await self._wake_next(finished, now)

    async def _wake_next(self, finished: dict[str, int], now: datetime) -> None:
        """The first waiting delivery after each finished one (chain: its `seq`) is due now (tried if it is the
        first open one by then). The local database reads every open delivery of a chain to answer any query
        on it (a limit or a sort does not shorten its index walk), so a chain's open ones are read once and
        kept in order (ChainBacklog); while its backlog drains, each finish reads one delivery by its id.
        Chains without a backlog known are read together, fifty to a query (a fan-out finishes a thousand
        chains of one delivery each: twenty queries, not a thousand); what that read finds is current and
        decides at once (the backlogs kept are a cache: one dropped is read again, never skipped)."""
        unknown = [chain for chain, seq in finished.items() if not self._known(chain, seq)]
        kept = {chain: self.backlogs[chain] for chain in finished if chain not in unknown}
        fresh = await self._open_of(unknown, {"waiting": 1})
        for chain, docs in fresh.items():
            self._keep(chain, [(doc["seq"], doc["_id"]) for doc in docs])
        waiting = []
        for chain, seq in sorted(finished.items()):
            if chain in fresh:  # read a moment ago: open, and waiting or not
                after = [doc for doc in fresh[chain] if doc["seq"] > seq]
                if after and after[0].get("waiting"):
                    waiting.append(after[0]["_id"])
                continue
            ids = await kept[chain].after(seq)  # read again by it when none was left
            for delivery_id in ids:
                doc = await self.db[DELIVERIES].find_one({"_id": delivery_id}, {"state": 1, "waiting": 1})
                if doc is None or doc["state"] != DeliveryState.PENDING.value:
                    continue  # finished meanwhile: the next one
                if doc.get("waiting"):
                    waiting.append(delivery_id)
                break  # the chain's first open one: woken if it waits, else it goes by itself
            else:
                if not ids:
                    continue  # just read: nothing open after the finished one
                # every one kept finished meanwhile: the chain as it is now
                docs = (await self._open_of([chain], {"waiting": 1}))[chain]
                self._keep(chain, [(doc["seq"], doc["_id"]) for doc in docs])
                after = [doc for doc in docs if doc["seq"] > seq]
                if after and after[0].get("waiting"):
                    waiting.append(after[0]["_id"])
        if waiting:
            await self.db[DELIVERIES].bulk_write(
                [
                    UpdateOne({"_id": i, "waiting": True}, {"$set": {"waiting": False, "next_try_at": now}})
                    for i in waiting
                ],
                ordered=False,
            )

    async def _open_of(self, chains: Collection[str], fields: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
        """The open deliveries of each chain in `seq` order (`fields` of them), fifty chains to a query. A query
        cut short by its row limit has read the chains before its last row's whole; that chain and those
        after it are read one by one (each up to the limit, from its first open one), never left unread."""
        found: dict[str, list[dict[str, Any]]] = {chain: [] for chain in chains}
        for part in in_parts(chains):
            rows = await self._open_rows(part, fields)
            for doc in rows:
                found[doc["chain"]].append(doc)
            if len(rows) >= FIRST_OPEN_CAP:
                for chain in (c for c in part if c >= rows[-1]["chain"]):
                    found[chain] = await self._open_rows([chain], fields)
        return found

    async def _open_rows(self, chains: list[str], fields: dict[str, int]) -> list[dict[str, Any]]:
        cursor = self.db[DELIVERIES].find(open_in_chains(chains), {"chain": 1, "seq": 1, **fields})
        return await cursor.sort(OPEN_BY_CHAIN).limit(FIRST_OPEN_CAP).to_list()

    def _known(self, chain: str, seq: int) -> bool:
        """Whether open deliveries of `chain` after `seq` are kept from an earlier read."""
        backlog = self.backlogs.get(chain)
        return backlog is not None and any(s > seq for s, _ in backlog.open)

    def _keep(self, chain: str, open_: list[tuple[int, str]]) -> None:
        backlog = self.backlogs.pop(chain, None) or ChainBacklog(self.db, chain)
        backlog.open = open_
        self.backlogs[chain] = backlog  # the most recently read last
        while len(self.backlogs) > BACKLOGS_KEPT:
            del self.backlogs[next(iter(self.backlogs))]


BACKLOGS_KEPT = 1_000  # chains whose open deliveries are kept in order, the least recently read dropped first


class ChainBacklog:
    """A chain's open deliveries as read once, in `seq` order: those after a finished one are handed out one
    by one (each checked by its id by the caller) and read again once used up. A delivery queued since by
    this process has a higher `seq` than those read and is found when they are used up; one queued by another
    process may sit between them, and is found then too, or by the recheck of waiting ones (WAITING_RECHECK)."""

    def __init__(self, db: AsyncDatabase, chain: str) -> None:
        self.db = db
        self.chain = chain
        self.open: list[tuple[int, str]] = []

    async def after(self, seq: int) -> list[str]:
        """Ids of the open deliveries after `seq`, in order, as known; read again when none is known."""
        self.open = [(s, i) for s, i in self.open if s > seq]
        if not self.open:
            cursor = self.db[DELIVERIES].find(open_in_chains([self.chain]), {"seq": 1}).sort(OPEN_BY_CHAIN)
            self.open = [(doc["seq"], doc["_id"]) async for doc in cursor.limit(FIRST_OPEN_CAP) if doc["seq"] > seq]
        return [i for _, i in self.open]


def _outcome_writes(outcomes: list[Outcome]) -> list[UpdateOne | UpdateMany]:
    """One update per claim and identical change for the delivered attempts (a fan-out's deliveries share the
    claim their transaction queued them under, and their times are kept to the second, `delivered_at` rounded
    up: the local database spends about half as much on a document updated with forty-nine others as on one
    updated alone), one update each for the others (retries differ in their next try). Each update still
    names the claim, so a late outcome of a lost claim writes nothing."""
    grouped: dict[tuple[str | None, tuple[tuple[str, Any], ...]], list[str]] = {}
    writes: list[UpdateOne | UpdateMany] = []
    for o in outcomes:
        if o.state is DeliveryState.DELIVERED:
            key = (o.delivery.lease, tuple(sorted(_change(o, to_second=True).items())))
            grouped.setdefault(key, []).append(o.delivery.delivery_id)
        else:
            writes.append(UpdateOne({"_id": o.delivery.delivery_id, "lease": o.delivery.lease}, {"$set": _change(o)}))
    for (lease, fields), ids in grouped.items():
        for part in in_parts(ids):
            if len(part) == 1:
                writes.append(UpdateOne({"_id": part[0], "lease": lease}, {"$set": dict(fields)}))
            else:
                writes.append(UpdateMany({"_id": {"$in": part}, "lease": lease}, {"$set": dict(fields)}))
    return writes


def _to_second(value: datetime | None) -> datetime | None:
    return value.replace(microsecond=0) if value is not None else None


def _up_to_second(value: datetime) -> datetime:
    """The next whole second (or this one, if whole): a delivery's `delivered_at` so kept never reads before
    its `created_at` or its attempt."""
    whole = value.replace(microsecond=0)
    return whole if whole == value else whole + timedelta(seconds=1)


def _change(o: Outcome, *, to_second: bool = False) -> dict[str, Any]:
    change: dict[str, Any] = {
        "state": o.state.value,
        "attempts": o.attempts,
        "retry_from": _to_second(o.retry_from) if to_second else o.retry_from,
        "last_status": o.last_status,
        "last_error": o.last_error[:LAST_ERROR_LENGTH] if o.last_error else None,
        "lease": None,
    }
    if o.next_try_at is not None:
        change["next_try_at"] = o.next_try_at
    if o.delivered_at is not None:
        change["delivered_at"] = _up_to_second(o.delivered_at) if to_second else o.delivered_at
    return change
