"""The access trail (Art. 19): every data access, share decision, grant change, catalog change, directory
change, refused data change, notification and finding as one entry saying who acted (person or system, and
department), on what (resource, data items, how many subjects), why (purpose, grant), when and with which
result. Subject identifiers never stand in clear: the exchange sends keyed hashes of the subjects it served,
and any citizen ID or credit code left in an event's text (other than the departments the entry names) is
replaced by a keyed hash here.

Tamper evidence: each entry carries the hash of its predecessor (a chain), and now and then the hash of an
entry is signed (a checkpoint). Changing, deleting, inserting or reordering entries breaks a link or a hash;
recomputing every hash after a forgery still disagrees with the next signed checkpoint. `ChainCheck`
verifies a range from the nearest checkpoint before it, one entry at a time, so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from common.events import Event

GENESIS = "0" * 64
PERSON, SYSTEM = "person", "system"
CHECKPOINT_CONTEXT = "datashare-audit-trail-checkpoint/v1"

# 18-character tokens not embedded in longer alphanumerics: citizen IDs (GB 11643) and credit codes (GB 32100)
_SUBJECT_CODE = re.compile(r"(?<![0-9A-Za-z])[0-9A-HJ-NP-RTUW-Y]{18}(?![0-9A-Za-z])")


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime):
        return instant(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def instant(moment: datetime) -> str:
    """One textual form for every instant (UTC, microseconds), so that text order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def identifier_hash(identifier: str, secret: bytes) -> str:
    return hmac.new(secret, identifier.encode(), hashlib.sha256).hexdigest()[:32]


def hide_identifiers(value: Any, secret: bytes, keep: frozenset[str]) -> Any:
    """`value` made JSON-safe, with every citizen ID or credit code outside `keep` (the departments an entry
    names) replaced by `id:` and its keyed hash. One pass: it runs for every field of every event, so the
    common types are told apart by `type` first and short strings, numbers and lists of them cost little."""
    kind = type(value)
    if kind is str:
        if len(value) < 18 or _SUBJECT_CODE.search(value) is None:
            return value
        return _SUBJECT_CODE.sub(
            lambda m: m.group(0) if m.group(0) in keep else "id:" + identifier_hash(m.group(0), secret), value
        )
    if kind is int or kind is bool or kind is float or value is None:
        return value
    if kind is dict:
        # the values of a payload, the common types inline (a call each was most of the work): strings shorter
        # than an identifier, or a department the entry names, stay as they are
        hidden: dict[str, Any] = {}
        for k, v in value.items():
            of = type(v)
            if (of is str and (len(v) < 18 or v in keep)) or of is int or of is bool or v is None:
                hidden[k if type(k) is str else str(k)] = v
            else:
                hidden[k if type(k) is str else str(k)] = hide_identifiers(v, secret, keep)
        return hidden
    if kind is list or kind is tuple:
        return [v if type(v) is str and len(v) < 18 else hide_identifiers(v, secret, keep) for v in value]
    if isinstance(value, datetime | date | bytes):
        return json_safe(value)
    if isinstance(value, dict):
        return {str(k): hide_identifiers(v, secret, keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [hide_identifiers(v, secret, keep) for v in value]
    if isinstance(value, str):
        return hide_identifiers(str(value), secret, keep)
    return value


# -- which event says what ---------------------------------------------------------------------------


def _field(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda p: str(p.get(name) or "")


@dataclass(frozen=True)
class Shape:
    """Where an event type carries the parts of a trail entry. Field names are payload fields; an event
    without an `actor` field was caused by the producing service itself (a system)."""

    action: str
    result: str | Callable[[dict[str, Any]], str]
    actor: str | None = None
    actor_department: str | None = None
    owner: str | None = "provider_code"  # the department whose data, entry or people it concerns
    others: tuple[str, ...] = ()  # further departments concerned (they see the entry too)
    resource: str | None = "resource_code"
    items: str | None = None
    purpose: str | None = None
    grant: str | None = None
    reason: str | None = None


def _directory(result: str, **parts: Any) -> Shape:
    return Shape("directory.change", result, owner="department_code", resource=None, **parts)


def _catalog(result: str, **parts: Any) -> Shape:
    """Compilers, reviewers and maintainers act for the entry's provider department."""
    return Shape("catalog.change", result, **({"actor_department": "provider_code"} | parts))


def _demand(result: str, **parts: Any) -> Shape:
    return Shape("catalog.demand", result, owner="requester_code", **parts)


def _hosted(result: str, **parts: Any) -> Shape:
    return Shape("hosted.change", result, actor_department="provider_code", **parts)


SHAPES: dict[str, Shape] = {
    # data use
    "DataAccessed": Shape(
        "data.access",
        _field("result"),
        actor="accessed_by",
        actor_department="consumer_code",
        items="items",
        purpose="purpose",
        grant="grant_id",
        reason="reason",
    ),
    "ResourceChanged": Shape("data.change", "STORED", actor_department="provider_code"),
    "DataRejected": Shape("data.change", "REFUSED", actor_department="provider_code", reason="detail"),
    # share decisions
    "ShareRequested": Shape(
        "share.request",
        "REQUESTED",
        actor="requested_by",
        actor_department="consumer_code",
        items="data_items",
        purpose="purpose",
    ),
    "ShareRefused": Shape(
        "share.decision", "REFUSED", others=("consumer_code",), items="data_items", reason="legal_basis"
    ),
    "ShareDecided": Shape(
        "share.decision",
        _field("decision"),
        actor="decided_by",
        actor_department="provider_code",
        others=("consumer_code",),
        items="data_items",
        reason="reasons",
    ),
    "ShareDecisionOverdue": Shape(
        "share.decision", "OVERDUE", others=("consumer_code", "responsible_code"), reason="step"
    ),
    "ShareDisputed": Shape(
        "share.dispute",
        "DISPUTED",
        actor="raised_by",
        actor_department="consumer_code",
        others=("consumer_code",),
        reason="grounds",
    ),
    "DisputeRuled": Shape(
        "share.dispute",
        _field("outcome"),
        actor="ruled_by",
        others=("consumer_code",),
        items="data_items",
        reason="reasons",
    ),
    "DisputeEscalated": Shape(
        "share.dispute",
        "ESCALATED",
        actor="escalated_by",
        actor_department="escalated_by_department",
        others=("consumer_code",),
        reason="grounds",
    ),
    "PublicationConsentRequested": Shape(
        "share.consent",
        "REQUESTED",
        actor="requested_by",
        actor_department="consumer_code",
        others=("consumer_code",),
        purpose="purpose",
        grant="grant_id",
    ),
    "PublicationConsentDecided": Shape(
        "share.consent",
        lambda p: "GRANTED" if p.get("granted") else "DENIED",
        actor="decided_by",
        actor_department="provider_code",
        others=("consumer_code",),
        resource=None,
        reason="reasons",
    ),
    "ConfidentialityReviewRecorded": Shape(
        "share.review", "REVIEWED", actor="reviewed_by", actor_department="provider_code", reason="conclusion"
    ),
    # interface services a department hosts and the center proxies (Art. 16), managed by its administrators
    "HostedServiceRegistered": _hosted("REGISTERED", actor="registered_by"),
    "HostedServiceUpdated": _hosted("UPDATED", actor="updated_by"),
    "HostedServiceWithdrawn": _hosted("WITHDRAWN", actor="withdrawn_by"),
    # grant changes
    "GrantIssued": Shape(
        "grant.change", "ISSUED", others=("consumer_code",), items="data_items", purpose="purpose", grant="grant_id"
    ),
    "GrantRevoked": Shape(
        "grant.change",
        "REVOKED",
        actor="revoked_by",
        actor_department="provider_code",
        others=("consumer_code",),
        grant="grant_id",
        reason="reason",
    ),
    "GrantEnded": Shape("grant.change", "ENDED", others=("consumer_code",), grant="grant_id", reason="reason"),
    # catalog changes
    "CatalogEntryDrafted": _catalog("DRAFTED", actor="compiled_by"),
    "CatalogEntrySubmitted": _catalog("SUBMITTED", actor="submitted_by"),
    "CatalogEntryReturned": _catalog("RETURNED", actor="reviewed_by"),
    "CatalogEntryPublished": _catalog("PUBLISHED", actor="reviewed_by"),
    "CatalogEntryWithdrawn": _catalog("WITHDRAWN", actor="withdrawn_by", reason="reason"),
    "CatalogEntryChangeReported": _catalog("CHANGE_REPORTED", reason="reason"),
    "CatalogEntryOverdue": Shape("catalog.change", "OVERDUE", reason="kind"),
    "CatalogEntryMaintenanceConfirmed": _catalog("MAINTAINED", actor="confirmed_by", reason="note"),
    "DuplicateSourceFlagged": Shape(
        "catalog.change", "FLAGGED", owner="new_provider_code", others=("existing_provider_code",), items="data_element"
    ),
    "DataElementChanged": Shape(
        "catalog.dictionary", _field("change"), actor="changed_by", owner="source_code", resource="identifier"
    ),
    "ShareDemandFiled": _demand(
        "FILED", actor="filed_by", actor_department="requester_code", resource=None, items="wanted_items"
    ),
    "ShareDemandMatched": _demand("MATCHED", actor="confirmed_by", items="covered_items", reason="reason"),
    "ShareDemandUnmatched": _demand("UNMATCHED", actor="undone_by", reason="reason"),
    "ShareDemandCancelled": _demand(
        "CANCELLED", actor="cancelled_by", actor_department="requester_code", resource=None, reason="reason"
    ),
    "ShareDemandUnmeetable": _demand("UNMEETABLE", actor="declared_by", resource=None, reason="legal_basis"),
    # directory changes
    "DepartmentRegistered": _directory("DEPARTMENT_REGISTERED", others=("parent_code",)),
    "DepartmentChanged": _directory("DEPARTMENT_CHANGED", others=("parent_code",)),
    "PersonRolesChanged": _directory("ROLES_CHANGED", actor="changed_by"),
    "DataAdministratorAppointed": _directory("ADMINISTRATOR_APPOINTED", actor="registered_by"),
    "PersonTokensRevoked": _directory("TOKENS_REVOKED", actor="revoked_by", reason="reason"),
    "PersonReactivated": _directory("REACTIVATED", actor="reactivated_by", reason="reason"),
    "MachineIdentityIssued": _directory("MACHINE_ISSUED", actor="issued_by"),
    "MachineIdentityRevoked": _directory("MACHINE_REVOKED", actor="revoked_by", reason="reason"),
    "MachineCredentialsRotated": _directory("CREDENTIALS_ROTATED", actor="rotated_by"),
    "AdapterKeyRegistered": _directory("KEY_REGISTERED", actor="registered_by"),
    "AdapterKeyRevoked": _directory("KEY_REVOKED", actor="revoked_by", reason="reason"),
    # notifications and findings
    "NotificationIssued": Shape("notification", "ISSUED", owner="recipient_code", resource=None, reason="kind"),
    "AuditFindingRaised": Shape("finding", "RAISED", owner="department_code", resource=None, reason="description"),
    "AuditFindingCorrected": Shape(
        "finding", "CORRECTED", actor="corrected_by", owner="department_code", resource=None, reason="note"
    ),
    "AuditFindingEscalated": Shape("finding", "ESCALATED", owner="department_code", resource=None, reason="notice"),
    "AuditFindingReported": Shape(
        "finding",
        "REPORTED",
        actor="reported_by",
        actor_department="reported_by_department",
        owner="department_code",
        resource=None,
        reason="report",
    ),
    "AuditFindingReportRejected": Shape(
        "finding",
        "REPORT_REJECTED",
        actor="rejected_by",
        actor_department="rejected_by_department",
        owner="department_code",
        resource=None,
        reason="reason",
    ),
}
UNKNOWN = Shape("other", "RECORDED", owner=None, resource=None)

# What the platform does that the trail cannot show, because no event says it yet.
WITHOUT_EVENTS = (
    "refused sign-ins at the directory's /token (logged and counted, no event)",
    "data changes refused because their sender was not the provider's adapter (kept in the exchange's "
    "/refusals, no event: anyone able to write the topic could write them in a provider's name)",
    "outcomes of notifications' deliveries (webhook attempts); only the notification issued is an event",
    "reads of a department's own data over the exchange's /resources routes and of the catalog",
    "requests refused at a route's role gate (403, logged and counted)",
)


@dataclass(frozen=True)
class TrailEntry:
    sequence: int
    event_id: str
    event_type: str
    action: str
    occurred_at: str
    producer: str
    key: str
    actor: str
    actor_kind: str
    actor_department: str | None
    owner_department: str | None
    departments: tuple[str, ...]
    resource: str | None
    items: tuple[str, ...]
    subjects: int
    subject_hashes: tuple[str, ...]
    purpose: str | None
    grant: str | None
    result: str
    reason: str | None
    payload: dict[str, Any]
    previous_hash: str
    hash: str = ""
    text: str = field(default="", compare=False, repr=False)  # the canonical JSON the hash is of, once linked

    def content(self) -> dict[str, Any]:
        """Everything the hash covers: the whole entry but its own hash."""
        return {
            "sequence": self.sequence,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "action": self.action,
            "occurred_at": self.occurred_at,
            "producer": self.producer,
            "key": self.key,
            "actor": self.actor,
            "actor_kind": self.actor_kind,
            "actor_department": self.actor_department,
            "owner_department": self.owner_department,
            "departments": list(self.departments),
            "resource": self.resource,
            "items": list(self.items),
            "subjects": self.subjects,
            "subject_hashes": list(self.subject_hashes),
            "purpose": self.purpose,
            "grant": self.grant,
            "result": self.result,
            "reason": self.reason,
            "payload": self.payload,
            "previous_hash": self.previous_hash,
        }

    def placed(self, sequence: int, previous_hash: str, hash: str, text: str) -> TrailEntry:
        """This entry at its place in the chain. (A copy of the instance's fields, not `dataclasses.replace`,
        which validates all 24 fields again: at thousands of entries a second that was a fifth of the work.)"""
        entry = object.__new__(TrailEntry)
        entry.__dict__.update(self.__dict__)
        entry.__dict__.update(sequence=sequence, previous_hash=previous_hash, hash=hash, text=text)
        return entry

    @classmethod
    def made(cls, **fields: Any) -> TrailEntry:
        """An entry of every field but its hash and text, without the checks of `__init__` (a frozen dataclass
        sets its 25 fields one call each: a sixth of describing an event). Used where the fields are built."""
        entry = object.__new__(cls)
        entry.__dict__.update(fields, hash="", text="")
        return entry

    @classmethod
    def from_text(cls, text: str, hash: str) -> TrailEntry:
        """An entry read back from its canonical JSON (`text` is kept: it is what `hash` is of)."""
        entry = cls.from_content(json.loads(text), hash)
        entry.__dict__["text"] = text
        return entry

    @classmethod
    def from_content(cls, content: dict[str, Any], hash: str) -> TrailEntry:
        fields = dict(content)
        for name in ("departments", "items", "subject_hashes"):
            fields[name] = tuple(fields[name])
        return cls(**fields, hash=hash)


# contents are built from decoded events and hold no cycles: not looking for them saves a tenth of the encoding
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), check_circular=False)


def canonical(content: dict[str, Any]) -> str:
    """The one text of an entry's content its hash is of: JSON, keys sorted, no spaces, UTF-8."""
    return _CANONICAL.encode(content)


def content_hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(content).encode("utf-8")).hexdigest()


def _text(payload: dict[str, Any], name: str | None) -> str | None:
    value = payload.get(name) if name else None
    return None if value is None or value == "" else str(value)


def _list(payload: dict[str, Any], name: str | None) -> tuple[str, ...]:
    value = payload.get(name) if name else None
    if value is None:
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else (str(value),)


def describe(event: Event, secret: bytes) -> TrailEntry:
    """The trail entry an event makes, not yet placed in the chain (sequence 0, no hashes)."""
    shape = SHAPES.get(event.event_type, UNKNOWN)
    p = event.payload
    actor = _text(p, shape.actor)
    actor_department = _text(p, shape.actor_department)
    owner = _text(p, shape.owner)
    departments = {d for d in (actor_department, owner, *(_text(p, o) for o in shape.others)) if d}
    keep = frozenset(departments)
    kind = PERSON if actor else SYSTEM
    if event.event_type == "DataAccessed" and p.get("accessor_kind") != PERSON:
        kind = SYSTEM  # a machine identity, or nobody authenticated
    result = shape.result(p) if callable(shape.result) else shape.result
    rest = {k: v for k, v in p.items() if k != "subject_hashes"}
    safe: dict[str, Any] = hide_identifiers(rest, secret, keep)
    hidden = hide_identifiers(
        {"key": event.key, "purpose": _text(p, shape.purpose), "reason": _text(p, shape.reason)}, secret, keep
    )
    return TrailEntry.made(
        sequence=0,
        event_id=event.event_id,
        event_type=event.event_type,
        action=shape.action,
        occurred_at=instant(event.occurred_at),
        producer=event.producer,
        key=hidden["key"],
        actor=actor or event.producer,
        actor_kind=kind,
        actor_department=actor_department,
        owner_department=owner,
        departments=tuple(sorted(departments)),
        resource=_text(p, shape.resource),
        items=_list(p, shape.items),
        subjects=int(p.get("record_count") or 0),
        subject_hashes=tuple(str(h) for h in p.get("subject_hashes") or ()),
        purpose=hidden["purpose"],
        grant=_text(p, shape.grant),
        result=result or "RECORDED",
        reason=hidden["reason"],
        payload=safe,
        previous_hash="",
    )


# -- the chain -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """The end of the chain, and the latest checkpoint: what an append needs to know."""

    sequence: int = 0
    hash: str = GENESIS
    checkpoint_sequence: int = 0
    checkpoint_at: datetime | None = None


def link(head: Head, entries: Iterable[TrailEntry]) -> list[TrailEntry]:
    """Place described entries after `head`: sequence numbers, links and hashes, all in memory."""
    linked, sequence, previous = [], head.sequence, head.hash
    for entry in entries:
        sequence += 1
        content = entry.content()
        content["sequence"], content["previous_hash"] = sequence, previous
        text = canonical(content)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        linked.append(entry.placed(sequence, previous, digest, text))
        previous = digest
    return linked


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that entry `sequence` of the trail had hash `hash` at `signed_at`."""

    sequence: int
    hash: str
    signed_at: str
    key_id: str
    signature: str  # base64url of the Ed25519 signature of `message()`

    def message(self) -> bytes:
        return checkpoint_message(self.sequence, self.hash, self.signed_at)


def checkpoint_message(sequence: int, hash: str, signed_at: str) -> bytes:
    return f"{CHECKPOINT_CONTEXT}\n{sequence}\n{hash}\n{signed_at}".encode()


def due_checkpoints(
    head: Head, linked: list[TrailEntry], now: datetime, every_entries: int, every_seconds: float
) -> list[TrailEntry]:
    """The entries of an append to sign: each whose sequence is a multiple of `every_entries`, and the last
    one when the latest checkpoint is older than `every_seconds` (so a quiet trail is signed too, without a
    timer: only appends sign)."""
    due = [e for e in linked if e.sequence % every_entries == 0]
    stale = head.checkpoint_at is None or (now - head.checkpoint_at).total_seconds() >= every_seconds
    if linked and stale and (not due or due[-1] is not linked[-1]):
        due.append(linked[-1])
    return due


# -- blocks: runs of entries stored together -------------------------------------------------------------

# The terms a block is found by, each from its entries' content (what a query asks about).
TERMS: dict[str, Callable[[dict[str, Any]], Iterable[str | None]]] = {
    "departments": lambda c: c["departments"],
    "actors": lambda c: (c["actor"],),
    "resources": lambda c: (c["resource"],),
    "purposes": lambda c: (c["purpose"],),
    "actions": lambda c: (c["action"],),
    "event_types": lambda c: (c["event_type"],),
}


def block_terms(contents: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """Every term the entries name, by kind (empty ones left out)."""
    listed = list(contents)
    terms: dict[str, set[str]] = {}
    for name, values in TERMS.items():
        found: set[str | None] = set()
        for content in listed:
            found.update(values(content))
        terms[name] = {v for v in found if v}
    return terms


@dataclass(frozen=True)
class StoredBlock:
    """Consecutive entries as stored together: their canonical texts and hashes in order, the terms the block
    is found by, and the span of its entries' times."""

    first: int
    texts: list[str]
    hashes: list[str]
    terms: dict[str, frozenset[str]]
    earliest: str | None = None
    latest: str | None = None

    def names(self, content: dict[str, Any]) -> bool:
        """Whether the block's terms and time span include what this entry of it names."""
        at = content.get("occurred_at")
        if (
            self.earliest is not None
            and self.latest is not None
            and not (isinstance(at, str) and self.earliest <= at <= self.latest)
        ):
            return False
        return all(v in self.terms.get(name, ()) for name, values in TERMS.items() for v in values(content) if v)

    def entries(self) -> list[TrailEntry]:
        return [TrailEntry.from_text(text, hash) for text, hash in zip(self.texts, self.hashes, strict=False)]


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- verification ----------------------------------------------------------------------------------------


@dataclass
class ChainReport:
    intact: bool
    first: int  # the range asked for
    last: int
    anchor: int  # the signed checkpoint verification started from (0: the beginning of the trail)
    checked: int = 0  # entries whose links and hashes were recomputed
    checkpoints: int = 0  # signed checkpoints the range passed, each verified
    signed_through: int = 0  # the last entry a verified signature vouches for
    first_broken_sequence: int | None = None
    problem: str | None = None

    @property
    def entries(self) -> int:
        return self.checked


@dataclass
class ChainCheck:
    """Verifies entries fed in sequence order, starting after `anchor` (a signed checkpoint, or the start);
    it keeps only the last hash. `signature_valid` checks a checkpoint's signature with the public key."""

    report: ChainReport
    checkpoints: dict[int, Checkpoint]
    signature_valid: Callable[[Checkpoint], bool]
    previous_hash: str = GENESIS
    expected: int = 1
    stopped: bool = field(default=False, init=False)

    @classmethod
    def start(
        cls,
        first: int,
        last: int,
        anchor: Checkpoint | None,
        checkpoints: Iterable[Checkpoint],
        signature_valid: Callable[[Checkpoint], bool],
    ) -> ChainCheck:
        report = ChainReport(True, first, last, anchor.sequence if anchor else 0)
        check = cls(report, {c.sequence: c for c in checkpoints}, signature_valid)
        if anchor is not None:
            if not signature_valid(anchor):
                check.broken(anchor.sequence, "the checkpoint's signature does not verify with the public key")
            check.previous_hash, check.expected = anchor.hash, anchor.sequence + 1
            report.checkpoints, report.signed_through = 1, anchor.sequence
        return check

    def broken(self, sequence: int, problem: str) -> None:
        if not self.stopped:
            self.report.intact, self.report.first_broken_sequence, self.report.problem = False, sequence, problem
            self.stopped = True

    def feed(self, entry: TrailEntry) -> bool:
        """Check the next entry; False once the chain broke (the first broken link is reported)."""
        return self._next(entry.sequence, entry.previous_hash, entry.hash, content_hash(entry.content()))

    def feed_block(self, block: StoredBlock, after: int, last: int) -> bool:
        """Check a stored block's entries `after`+1..`last` from their texts (the hash is of the stored text:
        nothing is serialized again), and that the block's query terms name what its entries name (or a query
        would miss them). False once the chain broke, or past `last`."""
        if len(block.texts) != len(block.hashes):
            self.broken(max(block.first, self.expected), "its block holds a different number of texts and hashes")
            return False
        for text, stored_hash in zip(block.texts, block.hashes, strict=True):
            try:
                content = json.loads(text)
                sequence, previous = int(content["sequence"]), str(content["previous_hash"])
            except (ValueError, KeyError, TypeError):
                self.broken(self.expected, "a stored entry is not readable")
                return False
            if sequence <= after:
                continue
            if sequence > last:
                return False
            if not self._next(sequence, previous, stored_hash, _text_hash(text)):
                return False
            if not block.names(content):
                self.broken(sequence, "its block's query terms leave it out (queries would not find it)")
                return False
        return True

    def _next(self, sequence: int, previous_hash: str, hash: str, recomputed: str) -> bool:
        if self.stopped:
            return False
        if sequence != self.expected:
            if sequence > self.expected:
                self.broken(self.expected, f"entry {self.expected} is missing (the next stored is {sequence})")
            else:
                self.broken(self.expected, f"entry {sequence} is stored where entry {self.expected} belongs")
            return False
        if previous_hash != self.previous_hash:
            self.broken(sequence, "its link to the previous entry does not match")
            return False
        if recomputed != hash:
            self.broken(sequence, "its content was altered after it was recorded")
            return False
        signed = self.checkpoints.get(sequence)
        if signed is not None:
            if signed.hash != hash:
                self.broken(sequence, "it differs from the signed checkpoint of that entry")
                return False
            if not self.signature_valid(signed):
                self.broken(sequence, "the checkpoint's signature does not verify with the public key")
                return False
            self.report.checkpoints += 1
            self.report.signed_through = sequence
        self.previous_hash, self.expected = hash, sequence + 1
        self.report.checked += 1
        return True

    def finish(self) -> ChainReport:
        """After the last entry fed: entries the range or a signed checkpoint says exist must have come."""
        must_reach = max([self.report.last, *(s for s in self.checkpoints if s <= self.report.last)], default=0)
        if not self.stopped and self.expected <= must_reach:
            self.broken(self.expected, f"entry {self.expected} is missing (the trail ends before {must_reach})")
        return self.report


def verify_proof(lines: Iterable[str], signature_valid: Callable[[Checkpoint], bool]) -> ChainReport:
    """Verify a proof file (GET /trail/proof: a `range` line, the checkpoints, then the entries, one JSON
    document per line) with nothing but a signature check of the auditor's public key. The entries are read
    one at a time. A range without a signed checkpoint at or after its end is vouched for by the chain only
    up to the last checkpoint: `signed_through` says how far a signature reaches."""
    first = last = 0
    anchor: Checkpoint | None = None
    checkpoints: list[Checkpoint] = []
    check: ChainCheck | None = None
    for line in lines:
        if not line.strip():
            continue
        item = json.loads(line)
        if "range" in item:
            first, last = int(item["range"]["first"]), int(item["range"]["last"])
        elif "checkpoint" in item:
            checkpoint = Checkpoint(**item["checkpoint"])
            if checkpoint.sequence < first and anchor is None:
                anchor = checkpoint
            else:
                checkpoints.append(checkpoint)
        elif "entry" in item:
            if check is None:
                check = ChainCheck.start(first, last, anchor, checkpoints, signature_valid)
            content = dict(item["entry"])
            hash = content.pop("hash")
            if not check.feed(TrailEntry.from_content(content, hash)):
                break
    if check is None:
        check = ChainCheck.start(first, last, anchor, checkpoints, signature_valid)
    return check.finish()


def entry_view(entry: TrailEntry) -> dict[str, Any]:
    return entry.content() | {"hash": entry.hash}


CSV_COLUMNS = (
    "sequence",
    "occurred_at",
    "action",
    "event_type",
    "actor",
    "actor_kind",
    "actor_department",
    "owner_department",
    "resource",
    "items",
    "subjects",
    "purpose",
    "grant",
    "result",
    "reason",
    "event_id",
    "hash",
)


def csv_row(entry: TrailEntry) -> list[str]:
    values = entry_view(entry)
    values["items"] = "、".join(entry.items)
    return ["" if values[c] is None else str(values[c]) for c in CSV_COLUMNS]
