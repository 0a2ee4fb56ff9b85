"""The API channel (Art. 16, 17): the interface services the exchange generates from a published catalog entry
— one subject, a batch of subjects, the change feed, consistency digests — and how every call is checked
against the grant it names and recorded. Standard library only: the adapters read grants and records and
write the access events.

Every call names its grant and states its purpose; `Grant.refusal` decides whether it opens anything. Only
granted items are served (sensitive ones masked unless the grant names them), only subjects in the grant's
row scope, and a subject outside the scope is answered exactly as one the center does not hold. Each call,
served or refused, leaves one `DataAccess`; a call whose access cannot be recorded is not served.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from itertools import islice
from typing import Any, Protocol

from datashare_adapter.digest import BUCKETS, TOPS, ResourceDigest

from common.clock import CHINA  # a grant's period is in Beijing calendar days
from common.errors import Invalid, NotFound
from common.identifiers import InvalidIdentifier
from common.policy import AccessDenied, Principal
from services.exchange.domain.records import SubjectRecord
from services.exchange.domain.resources import ResourceSchema
from services.exchange.sharing.grants import Channel, Grant, pseudonym
from services.exchange.sharing.requests import rule_kept, stricter_rule

RULE = "exchange.share.read"
DIGEST_SLICE = 1000  # records hashed per turn in a worker thread: the event loop serves calls in between
DIGEST_KEPT = timedelta(seconds=30)  # a computed digest answers its leaves and repeated calls this long
DIGESTS_KEPT = 64  # computed digests held at once
MAX_BATCH = 1000  # subjects per batch query
NOT_SHARED = "NOT_SHARED"
BROWSE_PAGE = 100  # rows of one browse page at most
BROWSE_RANGES = 4096  # digest key ranges one browse page reads at most (of 65,536): its work is bounded by them
BROWSE_FILTER = 100  # characters of a browse page's filter
BROWSE_POSITION = 400  # characters of a browse position (`next`)


class Operation(StrEnum):
    RECORD = "record"
    BATCH = "batch"
    CHANGES = "changes"
    DIGEST = "digest"
    DIGEST_LEAVES = "digest_leaves"
    DOWNLOAD = "download"  # a file of the grant's data (sharing.downloads), fetched
    HOSTED = "hosted"  # a call proxied to a department-hosted service (sharing.proxy)
    PACKAGE = "package"  # an offline exchange package (sharing.packages), made
    BROWSE = "browse"  # a page of the online browse channel (Art. 16): a person reads records in a browser


class AccessResult(StrEnum):
    SERVED = "SERVED"
    NOT_FOUND = "NOT_FOUND"  # nothing in the grant's scope: absent and out of scope look the same
    REFUSED = "REFUSED"


@dataclass(frozen=True)
class Call:
    """What every call through the API channel states: who (None: the token failed its check), which
    resource, the grant it relies on and its purpose, and which data items it wants (empty: all granted)."""

    principal: Principal | None
    resource_code: str
    grant_id: str | None
    purpose: str | None
    items: tuple[str, ...] = ()
    channel: Channel = Channel.API  # the grant must open it, and the entry offer it


@dataclass(frozen=True)
class DataAccess:
    """One call, as the access trail keeps it. Subject keys stay in this process: the access log hashes them."""

    call: Call
    operation: Operation
    provider_code: str
    accessed_at: datetime
    result: AccessResult
    reason: str | None = None
    items: tuple[str, ...] = ()
    subjects_requested: int = 0
    subject_keys: tuple[str, ...] = ()
    record_count: int = 0


class Clock(Protocol):
    def now(self) -> datetime: ...


class Today(Protocol):
    def today(self) -> date:
        """The city's date, as the sharing lifecycle counts grants' periods (one clock for both halves)."""
        ...


class GrantBook(Protocol):
    async def grant(self, grant_id: str) -> Grant | None:
        """The grant as stored (possibly a second or two old: see the adapter), None when there is none."""
        ...


class SharedResources(Protocol):
    async def schema(self, resource_code: str) -> ResourceSchema | None:
        """The resource's terms from its catalog entry in force, published or not; None when unknown."""
        ...

    async def schemas(self) -> list[ResourceSchema]: ...


class SharedData(Protocol):
    """The center's records of a resource, read as for the provider's own reads (adapters.mongo)."""

    async def record(self, resource_code: str, subject_key: str) -> SubjectRecord | None: ...

    async def records_of(self, resource_code: str, subject_keys: list[str]) -> list[SubjectRecord]: ...

    async def changes_since(self, resource_code: str, sequence: int, limit: int) -> list[dict]: ...

    async def leaves(self, resource_code: str) -> dict[int, tuple[int, int]]: ...

    async def sequence(self, resource_code: str) -> int:
        """The sequence number of the resource's last change (0: none yet)."""
        ...

    def records_in(self, resource_code: str) -> AsyncIterator[SubjectRecord]:
        """Every current, undeleted record of the resource."""
        ...

    def records_from(self, resource_code: str, bucket: int, after_key: str, until: int) -> AsyncIterator[SubjectRecord]:
        """The current, undeleted records of the resource in the digest key ranges `bucket` to `until`
        (excluded), those of range `bucket` after the subject `after_key` ("": all), in the order of (bucket,
        subject key): the order a browse pages through."""
        ...


class AccessLog(Protocol):
    async def record(self, access: DataAccess) -> None:
        """Return once the access is durably recorded; raise when it cannot be (the call is then not served)."""
        ...


# -- the terms of a resource --------------------------------------------------------------------------------


def registered(schema: ResourceSchema) -> bool:
    """Whether the exchange offers interface services for a resource: published, shared, by API."""
    return schema.published and schema.share_type != NOT_SHARED and "API" in schema.share_methods


def shared_items(schema: ResourceSchema) -> list[str]:
    """The data items a grant can open: those the entry does not exclude from sharing."""
    return [i.name for i in schema.items if schema.item_share_type(i.name) != NOT_SHARED]


def resource_refusal(schema: ResourceSchema | None, channel: Channel = Channel.API) -> str | None:
    if schema is None or not schema.published:
        return "the exchange holds no published resource of this code"
    if schema.share_type == NOT_SHARED:
        return f"the resource is not shared: {schema.not_shared_basis or 'see its catalog entry'}"
    if channel.value not in schema.share_methods:
        return f"the resource is not shared through the {channel.value} channel"
    if schema.confidentiality_reviewed_on is None:
        return "the resource has no recorded confidentiality review (Art. 20)"
    return None


def tightened(grant: Grant, schema: ResourceSchema, channel: Channel = Channel.API) -> str | None:
    """Why the entry in force, newer than the one the grant came from, no longer allows it (the lifecycle's
    own rule): the lifecycle ends such a grant, but its consumer may lag the terms read here."""
    if grant.entry_version >= schema.version:
        return None
    if resource_refusal(schema, channel) is not None:
        return f"version {schema.version} of the entry does not offer the {channel.value} channel"
    return stricter_rule(grant, schema, *rule_kept(grant))


@dataclass(frozen=True)
class BrowsePosition:
    """Where a browse page starts: a digest key range, and the last subject of it the page before showed
    ("": the range from its start). It names only a shown row or a range boundary, so it tells nothing of the
    rows outside the grant, and rows removed before it move nothing. The browser gets it sealed (`seal`)."""

    bucket: int = 0
    after_key: str = ""

    def seal(self, grant_id: str, secret: bytes) -> str:
        """The position encrypted and authenticated by the center for this grant: the browser can neither read
        the subject it names (a key the grant may show only by pseudonym) nor make one up."""
        plain = self.bucket.to_bytes(3, "big") + self.after_key.encode()
        tag = _position_tag(grant_id, plain, secret)
        sealed = tag + bytes(x ^ y for x, y in zip(plain, _keystream(tag, len(plain), secret), strict=True))
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    @classmethod
    def opened(cls, text: str | None, grant_id: str, secret: bytes) -> BrowsePosition:
        """The position `seal` gave this grant; Invalid for anything else."""
        if not text:
            return cls()
        refused = Invalid("after", "not a position a browse page of this grant gave (`next`)")
        if len(text) > BROWSE_POSITION or not re.fullmatch(r"[A-Za-z0-9_-]+", text, re.ASCII):
            raise refused
        try:
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except ValueError:
            raise refused from None
        tag, hidden = sealed[:16], sealed[16:]
        if len(tag) < 16 or len(hidden) < 3:
            raise refused
        plain = bytes(x ^ y for x, y in zip(hidden, _keystream(tag, len(hidden), secret), strict=True))
        if not hmac.compare_digest(tag, _position_tag(grant_id, plain, secret)):
            raise refused
        bucket = int.from_bytes(plain[:3], "big")
        try:
            key = plain[3:].decode()
        except UnicodeDecodeError:
            raise refused from None
        if bucket >= BUCKETS:
            raise refused
        return cls(bucket, key)


def _position_tag(grant_id: str, plain: bytes, secret: bytes) -> bytes:
    key = hmac.digest(secret, b"browse position: tag", hashlib.sha256)
    return hmac.digest(key, grant_id.encode() + b"\0" + plain, hashlib.sha256)[:16]


def _keystream(tag: bytes, length: int, secret: bytes) -> bytes:
    key = hmac.digest(secret, b"browse position: stream", hashlib.sha256)
    blocks = (hmac.digest(key, tag + n.to_bytes(4, "big"), hashlib.sha256) for n in range(-(-length // 32)))
    return b"".join(blocks)[:length]


@dataclass(frozen=True)
class Opened:
    """A call the grant lets through: what it may see of the resource."""

    schema: ResourceSchema
    grant: Grant
    items: tuple[str, ...]  # served items, in the entry's order
    sensitive: frozenset[str]

    def view(self, fields: dict[str, Any]) -> dict[str, Any]:
        shown = self.grant.view(fields, self.sensitive)
        return {name: shown[name] for name in self.items if name in shown}

    @property
    def keys_in_clear(self) -> bool:
        """Whether the grant serves the resource's key item in clear: else the feed names subjects by
        pseudonym (a single or batch read is answered with the key the caller already gave)."""
        key = self.schema.key_item
        return (
            key is not None
            and key in self.grant.items
            and key in shared_items(self.schema)
            and (key not in self.sensitive or key in self.grant.unmasked)
        )

    def covers(self, record: SubjectRecord) -> bool:
        return not record.deleted and self.grant.scope.covers(record.subject_key, record.subject_kind)

    @property
    def whole(self) -> bool:
        """Whether the grant shows whole records of every subject: the center's stored digest is then the
        consumer's."""
        every = {i.name for i in self.schema.items}
        return set(self.items) == every and self.sensitive <= self.grant.unmasked and self.grant.scope.everything


def served_items(schema: ResourceSchema, grant: Grant, wanted: tuple[str, ...]) -> tuple[str, ...] | str:
    """The items a call gets, or why it gets none: items outside the grant are refused, not dropped."""
    open_items = set(grant.items) & set(shared_items(schema))
    outside = [name for name in wanted if name not in open_items]
    if outside:
        return f"items outside the grant: {', '.join(outside)}"
    chosen = set(wanted) or open_items
    return tuple(i.name for i in schema.items if i.name in chosen)


# -- the channel --------------------------------------------------------------------------------------------


@dataclass
class ApiChannel:
    """The API channel's handlers with what they need, built once in the service's bootstrap."""

    grants: GrantBook
    resources: SharedResources
    data: SharedData
    log: AccessLog
    clock: Clock  # when a call happened, for the access trail
    days: Today | None = None  # the lifecycle's clock; None: the Beijing date of `clock`
    secret: bytes = field(kw_only=True)  # the subject secret, for the feed's per-grant pseudonyms
    computed: dict[tuple, tuple[datetime, ResourceDigest]] = field(default_factory=dict, kw_only=True)
    computing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1), kw_only=True)

    async def record(self, call: Call, subject_key: str) -> dict[str, Any]:
        opened = await self.open(call, Operation.RECORD, 1, (subject_key,))
        [(kind, key)] = await self._identified(call, opened, Operation.RECORD, [subject_key])
        record = None
        if opened.grant.scope.covers(key, kind):  # out of scope: not even read, and answered as absent
            record = await self.data.record(call.resource_code, key)
        if record is None or not opened.covers(record):
            await self._log(call, Operation.RECORD, opened, AccessResult.NOT_FOUND, (key,), 0, 1)
            raise NotFound("subject_key", f"no record of this subject in {call.resource_code} within the grant")
        await self._log(call, Operation.RECORD, opened, AccessResult.SERVED, (key,), 1, 1)
        return shown(record, opened)

    async def batch(self, call: Call, subject_keys: list[str]) -> dict[str, Any]:
        if len(subject_keys) > MAX_BATCH:
            reason = f"at most {MAX_BATCH} subjects per batch query; this one names {len(subject_keys)}"
            await self.refuse(call, Operation.BATCH, reason, subjects=len(subject_keys))
            raise Invalid("subject_keys", reason)
        opened = await self.open(call, Operation.BATCH, len(subject_keys), tuple(subject_keys))
        identified = dict(
            (key, kind) for kind, key in await self._identified(call, opened, Operation.BATCH, subject_keys)
        )
        in_scope = [key for key, kind in identified.items() if opened.grant.scope.covers(key, kind)]
        by_key = {r.subject_key: r for r in await self.data.records_of(call.resource_code, in_scope)}
        found = [by_key[k] for k in in_scope if k in by_key and opened.covers(by_key[k])]
        served = {r.subject_key for r in found}
        result = AccessResult.SERVED if found else AccessResult.NOT_FOUND
        await self._log(call, Operation.BATCH, opened, result, tuple(identified), len(found), len(subject_keys))
        return {
            "records": [shown(r, opened) for r in found],
            "not_found": [k for k in identified if k not in served],
        }

    async def changes(self, call: Call, since: int, limit: int) -> dict[str, Any]:
        """The feed after `since`, in scope and with the grant's items; `last_sequence` is where to go on from
        (changes outside the scope are skipped, so a page may hold fewer than `limit`)."""
        opened = await self.open(call, Operation.CHANGES, 0, ())
        history = await self.data.changes_since(call.resource_code, since, limit)
        visible = [h for h in history if opened.grant.scope.covers(h["subject_key"], h.get("subject_kind", ""))]
        subjects = tuple(dict.fromkeys(h["subject_key"] for h in visible))
        await self._log(call, Operation.CHANGES, opened, AccessResult.SERVED, subjects, len(visible), len(subjects))
        return {
            "changes": [feed_entry(h, opened, self.secret) for h in visible],
            "last_sequence": history[-1]["sequence"] if history else since,
        }

    async def browse(self, call: Call, after: str | None, limit: int, contains: str = "") -> dict[str, Any]:
        """One page of the records the grant opens, for a person reading them in a browser: its items (masked
        as the grant says), rows in its scope whose shown values contain `contains`, from `after` on. Subjects
        are named as the feed names them. `next` is where the following page starts (None: no more). A page
        reads at most BROWSE_RANGES key ranges, so one of a narrow scope may hold fewer rows (even none) and
        still go on; where it stops depends only on where it started and the rows it shows."""
        if call.principal is not None and call.principal.machine is not None:
            reason = "online browse is for a person reading in a browser; a system calls the API channel"
            await self.refuse(call, Operation.BROWSE, reason)
            raise AccessDenied(RULE, reason)
        opened = await self.open(call, Operation.BROWSE, 0, ())
        try:
            start = BrowsePosition.opened(after, opened.grant.grant_id, self.secret)
            if not 1 <= limit <= BROWSE_PAGE:
                raise Invalid("limit", f"a browse page holds 1 to {BROWSE_PAGE} rows")
            if len(contains) > BROWSE_FILTER:
                raise Invalid("contains", f"a browse filter is at most {BROWSE_FILTER} characters")
        except Invalid as exc:
            await self._log(call, Operation.BROWSE, opened, AccessResult.REFUSED, (), 0, 0, str(exc))
            raise
        needle, until = contains.strip(), min(start.bucket + BROWSE_RANGES, BUCKETS)
        rows: list[tuple[SubjectRecord, dict[str, Any]]] = []
        following: BrowsePosition | None = BrowsePosition(until) if until < BUCKETS else None
        async for record in self.data.records_from(call.resource_code, start.bucket, start.after_key, until):
            view = opened.view(record.fields)
            if opened.covers(record) and (not needle or any(needle in str(v) for v in view.values())):
                if len(rows) == limit:  # one more row to show: the next page starts after the last shown
                    last = rows[-1][0]
                    following = BrowsePosition(last.bucket, last.subject_key)
                    break
                rows.append((record, view))
        keys = tuple(r.subject_key for r, _ in rows)
        await self._log(call, Operation.BROWSE, opened, AccessResult.SERVED, keys, len(rows), len(rows))
        return {
            "items": list(opened.items),
            "records": [
                {"subject": self._named(r.subject_key, opened), "fields": view, "changed_at": r.changed_at}
                for r, view in rows
            ],
            "next": following.seal(opened.grant.grant_id, self.secret) if following else None,
        }

    def _named(self, subject_key: str, opened: Opened) -> str:
        return subject_key if opened.keys_in_clear else pseudonym(subject_key, opened.grant.grant_id, self.secret)

    async def digest(self, call: Call, operation: Operation = Operation.DIGEST) -> ResourceDigest:
        """The digest of the consumer's view: the center's stored one when the grant shows whole records of
        every subject, else computed from the records in scope with the grant's items."""
        opened = await self.open(call, operation, 0, ())
        if opened.whole:
            digest = ResourceDigest(await self.data.leaves(call.resource_code))
        else:
            digest = await self._partial_digest(call.resource_code, opened)
        await self._log(call, operation, opened, AccessResult.SERVED, (), digest.records, 0)
        return digest

    async def _partial_digest(self, resource_code: str, opened: Opened) -> ResourceDigest:
        """A digest of part of the resource, computed one at a time and off the event loop, then kept a moment
        for the resource's position: a consumer's leaves calls that follow its digest reuse it."""
        key = (opened.grant.grant_id, opened.schema.version, opened.items, await self.data.sequence(resource_code))
        async with self.computing:
            now = self.clock.now()
            kept = self.computed.get(key)
            if kept is not None and now - kept[0] < DIGEST_KEPT:
                return kept[1]
            digest = await self._computed(resource_code, opened)
            if len(self.computed) >= DIGESTS_KEPT:
                self.computed = {k: v for k, v in self.computed.items() if now - v[0] < DIGEST_KEPT}
                if len(self.computed) >= DIGESTS_KEPT:
                    self.computed.clear()
            self.computed[key] = (now, digest)  # changes during the scan moved the position: not reused
            return digest

    async def _computed(self, resource_code: str, opened: Opened) -> ResourceDigest:
        digest, batch = ResourceDigest(), []
        async for record in self.data.records_in(resource_code):
            batch.append(record)
            if len(batch) >= DIGEST_SLICE:
                await asyncio.to_thread(_add_to, digest, batch, opened)
                batch = []
        await asyncio.to_thread(_add_to, digest, batch, opened)
        return digest

    async def leaves(self, call: Call, tops: list[int]) -> dict[int, list[list[int]]]:
        if any(not 0 <= t < TOPS for t in tops):
            raise Invalid("top", f"top nodes are numbered 0 to {TOPS - 1}")
        digest = await self.digest(call, Operation.DIGEST_LEAVES)
        return {t: [list(leaf) for leaf in digest.leaves_under(t)] for t in tops}

    # -- the one check ------------------------------------------------------------------------------------

    async def open(self, call: Call, operation: Operation, subjects: int, keys: tuple[str, ...]) -> Opened:
        """What the grant named in the call opens; refused (recorded, then AccessDenied) when it opens nothing."""
        schema = await self.resources.schema(call.resource_code)
        provider = schema.provider_code if schema is not None else ""
        reason = resource_refusal(schema, call.channel)
        grant = None
        if reason is None:
            grant, reason = await self._grant(call)
        if reason is None and grant is not None and schema is not None:
            reason = tightened(grant, schema, call.channel)
        if reason is None and grant is not None and schema is not None:
            items = served_items(schema, grant, call.items)
            if isinstance(items, str):
                reason = items
            else:
                sensitive = frozenset(i.name for i in schema.items if i.sensitive)
                return Opened(schema, grant, items, sensitive)
        at, named = self.clock.now(), tuple(k.strip().upper() for k in keys)
        await self.log.record(
            DataAccess(call, operation, provider, at, AccessResult.REFUSED, reason, (), subjects, named)
        )
        raise AccessDenied(RULE, reason or "refused")

    async def _grant(self, call: Call) -> tuple[Grant | None, str | None]:
        if call.principal is None:
            return None, "no valid credentials"
        if not call.grant_id:
            return None, "the call names no grant (header X-Grant-Id)"
        if not call.purpose:
            return None, "the call states no purpose (header X-Purpose)"
        grant = await self.grants.grant(call.grant_id)
        if grant is None or grant.resource_code != call.resource_code:
            return None, "no such grant for this resource"
        today = self.days.today() if self.days is not None else self.clock.now().astimezone(CHINA).date()
        return grant, grant.refusal(call.principal, call.channel, call.purpose, today)

    async def served(
        self, call: Call, operation: Operation, opened: Opened, subject_keys: Iterable[str], count: int
    ) -> None:
        """Record an access served whole (a file, a package) as this channel records its own: the subjects it
        holds, hashed by the access log, each once and at most as many as a batch query names, and its rows."""
        await self._log(call, operation, opened, AccessResult.SERVED, named_subjects(subject_keys), count, count)

    async def refuse(self, call: Call, operation: Operation, reason: str, subjects: int = 0) -> None:
        """Record a call refused before the grant was looked at (bad credentials, a batch too large)."""
        schema = await self.resources.schema(call.resource_code)
        provider = schema.provider_code if schema is not None else ""
        at = self.clock.now()
        await self.log.record(DataAccess(call, operation, provider, at, AccessResult.REFUSED, reason, (), subjects))

    async def _identified(
        self, call: Call, opened: Opened, operation: Operation, given: list[str]
    ) -> list[tuple[str, str]]:
        """(kind, key) of each subject as the resource's key item declares it; a malformed key is refused
        whole (422), naming its position, never its value."""
        identified, bad = [], []
        for position, key in enumerate(given):
            try:
                identified.append(opened.schema.identify(key))
            except InvalidIdentifier as exc:
                bad.append(f"#{position + 1}: {exc.rule}")
        if bad:
            reason = "not a subject key of this resource: " + "; ".join(bad[:10])
            await self._log(call, operation, opened, AccessResult.REFUSED, (), 0, len(given), reason)
            raise Invalid("subject_key", reason)
        return identified

    async def _log(
        self,
        call: Call,
        operation: Operation,
        opened: Opened,
        result: AccessResult,
        keys: tuple[str, ...],
        count: int,
        subjects: int,
        reason: str | None = None,
    ) -> None:
        if result is AccessResult.NOT_FOUND:
            reason = "no record within the grant's scope"
        access = DataAccess(
            call, operation, opened.schema.provider_code, self.clock.now(), result, reason, opened.items, subjects,
            keys, count,
        )  # fmt: skip
        await self.log.record(access)


def named_subjects(subject_keys: Iterable[str]) -> tuple[str, ...]:
    """The subjects an access event names: each once, at most MAX_BATCH (a batch query's own bound), in the
    order served; the access log hashes them."""
    return tuple(islice(dict.fromkeys(subject_keys), MAX_BATCH))


def _add_to(digest: ResourceDigest, records: list[SubjectRecord], opened: Opened) -> None:
    for record in records:
        if opened.covers(record):
            digest.add(record.subject_key, opened.view(record.fields))


def shown(record: SubjectRecord, opened: Opened) -> dict[str, Any]:
    return {
        "subject_key": record.subject_key,
        "fields": opened.view(record.fields),
        "source_version": record.source_version,
        "changed_at": record.changed_at,
    }


def feed_entry(change: dict[str, Any], opened: Opened, secret: bytes) -> dict[str, Any]:
    key = change["subject_key"]
    return {
        "sequence": change["sequence"],
        "subject_key": key if opened.keys_in_clear else pseudonym(key, opened.grant.grant_id, secret),
        "operation": change["operation"],
        "fields": opened.view(change.get("fields") or {}),
        "source_version": change["source_version"],
        "changed_at": change["changed_at"],
    }
