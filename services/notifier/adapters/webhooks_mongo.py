"""Webhook endpoints and deliveries in the notifier's own MongoDB.

Deliveries are queued in the transaction that stores their notices (one write for all of them). Deliveries
of one chain (endpoint and resource) carry increasing `seq` numbers; the worker tries only the first open
one of a chain and marks the others it finds due as `waiting`, to be woken when the one before them is
delivered or dead (and looked at again after WAITING_RECHECK in any case, so that no interleaving of a
wake-up and a marking can leave one waiting for ever). A delivery being attempted is claimed by moving
its `next_try_at` past the attempt's lease: a process killed mid-attempt leaves it due again when the
lease ends (at least once).

Delivered attempts are not written into their deliveries one by one (the local database spends about 5 ms on
every document it updates, whatever the update): a write of outcomes records all of its delivered ones in ONE
document of OUTCOMES (each with the claim it was attempted under), which the claims, the chains' order and
the state queries read beside the deliveries. The records are folded into the deliveries later (`fold`), off
the fan-out's path; a recorded outcome stands only while the delivery still carries the claim it names, as
an update conditional on that claim would have. Retries and dead ones are written into their deliveries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.notifier.adapters.sealing import SecretSealer
from services.notifier.domain.notifications import NotificationKind
from services.notifier.domain.webhooks import Delivery, DeliveryState, Endpoint, Outcome, SigningSecret, heads

ENDPOINTS = "notifier_webhooks"
DELIVERIES = "notifier_webhook_deliveries"
OUTCOMES = "notifier_webhook_outcomes"  # delivered attempts not yet folded into their deliveries
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
    still. The events of one resource are handled by one consumer at a time, so its chain's deliveries are
    numbered by one process, in the order its events were handled."""
    global _last_seq
    _last_seq = max(time.time_ns(), _last_seq + 1)
    return _last_seq


class MongoWebhookStore:
    def __init__(self, db: AsyncDatabase, sealer: SecretSealer) -> None:
        self.db = db
        self.sealer = sealer
        self.backlogs: dict[str, ChainBacklog] = {}  # chains whose open deliveries were read, see _wake_next

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
        await self.fold()  # the outcomes recorded so far are in the deliveries: filtered and counted by state
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
        entry = (await self._recorded([delivery_id])).get(delivery_id)  # first: see _first_open
        doc = await self.db[DELIVERIES].find_one({"_id": delivery_id})
        if doc is None:
            return None
        return delivery_from(doc | _delivered(entry) if entry is not None and _stands(entry, doc) else doc)

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

    async def claim_due(self, now: datetime, limit: int, lease_until: datetime) -> list[Delivery]:
        due = {"state": DeliveryState.PENDING.value, "next_try_at": {"$lte": now}}
        cursor = self.db[DELIVERIES].find(due, {"body": 0}).sort([("next_try_at", ASCENDING), ("seq", ASCENDING)])
        candidates = [delivery_from(doc) for doc in await cursor.limit(limit).to_list()]
        if not candidates:
            return []
        # delivered under the claim they still carry (recorded, not folded yet): never sent again. The records are
        # read after the candidates: one folded meanwhile leaves its candidate to a claim that matches nothing.
        recorded = await self._recorded()
        delivered = {d.delivery_id for d in candidates if _stands(recorded.get(d.delivery_id), delivery_doc(d))}
        if delivered:
            await self._apply([recorded[i] for i in delivered])
            candidates = [d for d in candidates if d.delivery_id not in delivered]
        go, behind = heads(candidates, await self._first_open({d.chain for d in candidates}, recorded))
        if behind:
            await self.db[DELIVERIES].update_many(
                {"_id": {"$in": [d.delivery_id for d in behind]}, **due},
                {"$set": {"waiting": True, "next_try_at": now + WAITING_RECHECK}},
            )
        if not go:
            return []
        ids, lease = [d.delivery_id for d in go], uuid.uuid4().hex
        await self.db[DELIVERIES].update_many(
            {"_id": {"$in": ids}, **due}, {"$set": {"next_try_at": lease_until, "lease": lease, "waiting": False}}
        )
        won = self.db[DELIVERIES].find({"_id": {"$in": ids}, "lease": lease})
        return [delivery_from(doc) async for doc in won]

    async def take(self, deliveries: list[Delivery], now: datetime) -> list[Delivery]:
        go, behind = heads(deliveries, await self._first_open({d.chain for d in deliveries}))
        if behind:
            await self.db[DELIVERIES].update_many(
                {"_id": {"$in": [d.delivery_id for d in behind]}, "state": DeliveryState.PENDING.value},
                {"$set": {"waiting": True, "next_try_at": now + WAITING_RECHECK}},
            )
        return go

    async def _first_open(
        self, chains: Collection[str], recorded: dict[str, dict[str, Any]] | None = None
    ) -> dict[str, int]:
        """The lowest open `seq` of each chain (by the chain index), a delivery recorded delivered under the
        claim it carries not counting as open; -1 for a chain with none open."""
        # the records first: one folded (and removed) meanwhile is found delivered in the deliveries read next
        recorded = await self._recorded() if recorded is None else recorded
        open_ = await self._open_of(chains, {"chain": 1, "seq": 1, "lease": 1})
        first: dict[str, int] = {}
        for chain, docs in open_.items():
            first[chain] = next((doc["seq"] for doc in docs if not _stands(recorded.get(doc["_id"]), doc)), -1)
        return first

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

    async def next_due(self) -> datetime | None:
        doc = await self.db[DELIVERIES].find_one(
            {"state": DeliveryState.PENDING.value}, {"next_try_at": 1}, sort=[("next_try_at", 1)]
        )
        return _utc(doc["next_try_at"]) if doc else None

    async def record(self, outcomes: list[Outcome], now: datetime) -> None:
        """Each outcome stands only while its attempt's claim holds (the lease it was claimed or queued with):
        once the lease ended and the delivery was claimed again, the other attempt owns it, and a late outcome
        of the first changes nothing (neither books it delivered nor sets it back to pending). Delivered ones
        go into ONE outcome record, those not delivered into their deliveries. The first waiting delivery of
        each chain whose open one finished is then due now."""
        if not outcomes:
            return
        delivered = [o for o in outcomes if o.state is DeliveryState.DELIVERED]
        others = [o for o in outcomes if o.state is not DeliveryState.DELIVERED]
        done = await self._record_delivered(delivered, now)
        if others:
            result = await self.db[DELIVERIES].bulk_write(
                [
                    UpdateOne({"_id": o.delivery.delivery_id, "lease": o.delivery.lease}, {"$set": _change(o)})
                    for o in others
                ],
                ordered=False,
            )
            dead = [o.delivery for o in others if o.finished]
            if result.matched_count < len(others) and dead:  # some claims were lost: their chains go on only if done
                done += await self._still_claimed(dead, DeliveryState.DEAD)
            else:
                done += dead
        finished: dict[str, int] = {}
        for d in done:
            finished[d.chain] = max(d.seq, finished.get(d.chain, d.seq))
        await self._wake_next(finished, now)

    async def _record_delivered(self, delivered: list[Outcome], now: datetime) -> list[Delivery]:
        """One outcome record for the delivered attempts whose claims hold: those whose lease has not ended
        (no one claims a delivery before), and those whose lease ended but that nobody claimed since."""
        held = [o for o in delivered if o.delivery.lease is not None and o.delivery.next_try_at > now]
        doubtful = [o for o in delivered if o.delivery.lease is None or o.delivery.next_try_at <= now]
        if doubtful:
            kept = {d.delivery_id for d in await self._still_claimed([o.delivery for o in doubtful])}
            held += [o for o in doubtful if o.delivery.delivery_id in kept]
        if held:
            entries = [_entry(o) for o in held]
            await self.db[OUTCOMES].insert_one({"_id": uuid.uuid4().hex, "at": now, "delivered": entries})
        return [o.delivery for o in held]

    async def _still_claimed(self, deliveries: list[Delivery], state: DeliveryState | None = None) -> list[Delivery]:
        """Those of `deliveries` that still carry the lease they were attempted under (in `state`: written)."""
        lease_of = {d.delivery_id: d.lease for d in deliveries}
        where = {"state": (state or DeliveryState.PENDING).value}
        kept = {
            doc["_id"]
            for part in in_parts(lease_of)
            async for doc in self.db[DELIVERIES].find({"_id": {"$in": part}, **where}, {"lease": 1})
            if state is not None or doc.get("lease") == lease_of[doc["_id"]]
        }
        return [d for d in deliveries if d.delivery_id in kept]

    async def fold(self, most: int | None = None) -> bool:
        """Write recorded outcomes into their deliveries, oldest first, up to `most` of them (each only where
        the delivery still carries the claim it was recorded under); returns whether any are left."""
        left = None if most is None else most
        for record in await self.db[OUTCOMES].find({}).sort("at", ASCENDING).to_list():
            entries = record["delivered"]
            part = entries if left is None else entries[:left]
            await self._apply(part)
            rest = entries[len(part) :]
            if rest:
                await self.db[OUTCOMES].update_one({"_id": record["_id"]}, {"$set": {"delivered": rest}})
                return True
            await self.db[OUTCOMES].delete_one({"_id": record["_id"]})
            if left is not None:
                left -= len(part)
                if left <= 0:
                    return await self.db[OUTCOMES].find_one({}, {"_id": 1}) is not None
        return False

    async def _apply(self, entries: list[dict[str, Any]]) -> None:
        if entries:
            await self.db[DELIVERIES].bulk_write(
                [UpdateOne({"_id": e["_id"], "lease": e["lease"], **OPEN}, {"$set": _delivered(e)}) for e in entries],
                ordered=False,
            )

    async def _recorded(self, delivery_ids: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
        """The outcomes recorded and not folded yet (of these deliveries), by delivery id. Few: the records are
        folded once the worker is idle, and claimed deliveries' ones at their claim."""
        where = {} if delivery_ids is None else {"delivered._id": {"$in": list(delivery_ids)}}
        found: dict[str, dict[str, Any]] = {}
        async for record in self.db[OUTCOMES].find(where, {"delivered": 1}):
            for entry in record["delivered"]:
                found[entry["_id"]] = entry
        return found

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
        fresh = await self._open_of(unknown, {"waiting": 1, "lease": 1})
        for chain, docs in fresh.items():
            self._keep(chain, [(doc["seq"], doc["_id"]) for doc in docs])
        recorded: dict[str, dict[str, Any]] | None = None
        waiting = []
        for chain, seq in sorted(finished.items()):
            if chain in fresh:
                after = [doc for doc in fresh[chain] if doc["seq"] > seq]
            else:
                after = [{"_id": i} for i in await kept[chain].after(seq)]
            for known in after:
                doc = known
                if chain not in fresh:  # kept from an earlier read: as it is now
                    now_doc = await self.db[DELIVERIES].find_one(
                        {"_id": known["_id"]}, {"state": 1, "waiting": 1, "lease": 1}
                    )
                    if now_doc is None or now_doc["state"] != DeliveryState.PENDING.value:
                        continue  # finished meanwhile: the next one
                    doc = now_doc
                if doc.get("waiting"):
                    waiting.append(doc["_id"])
                    break
                recorded = recorded if recorded is not None else await self._recorded()
                if not _stands(recorded.get(doc["_id"]), doc):
                    break  # the chain's first open one goes by itself
        if waiting:
            await self.db[DELIVERIES].bulk_write(
                [
                    UpdateOne({"_id": i, "waiting": True}, {"$set": {"waiting": False, "next_try_at": now}})
                    for i in waiting
                ],
                ordered=False,
            )

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
    by one (each checked by its id by the caller) and read again once used up. A delivery queued since has a
    higher `seq` than those read (one process numbers a chain's deliveries, increasing), so it is found when
    they are used up."""

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


def _entry(o: Outcome) -> dict[str, Any]:
    """A delivered attempt in an outcome record: the delivery, the claim it was attempted under, what it did."""
    d = o.delivery
    return {
        "_id": d.delivery_id,
        "lease": d.lease,
        "attempts": o.attempts,
        "retry_from": o.retry_from,
        "last_status": o.last_status,
        "delivered_at": o.delivered_at,
    }


def _stands(entry: dict[str, Any] | None, doc: dict[str, Any]) -> bool:
    """Whether a recorded outcome holds for the delivery as stored: it is still open under the same claim."""
    return entry is not None and doc.get("lease") == entry["lease"] and doc.get("state", OPEN["state"]) == OPEN["state"]


def _delivered(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": DeliveryState.DELIVERED.value,
        "attempts": entry["attempts"],
        "retry_from": entry["retry_from"],
        "last_status": entry["last_status"],
        "last_error": None,
        "lease": None,
        "delivered_at": entry["delivered_at"],
    }


def _change(o: Outcome) -> dict[str, Any]:
    change: dict[str, Any] = {
        "state": o.state.value,
        "attempts": o.attempts,
        "retry_from": o.retry_from,
        "last_status": o.last_status,
        "last_error": o.last_error[:LAST_ERROR_LENGTH] if o.last_error else None,
        "lease": None,
    }
    if o.next_try_at is not None:
        change["next_try_at"] = o.next_try_at
    if o.delivered_at is not None:
        change["delivered_at"] = o.delivered_at
    return change
