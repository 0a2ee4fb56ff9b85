"""What departments ask of the sharing lifecycle (commands, imperative) and what it learns from the catalog
(events, past tense), as typed values: the entry points translate HTTP bodies and Avro payloads into these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.exchange.domain.resources import ResourceSchema
from services.exchange.sharing.grants import Channel


@dataclass(frozen=True)
class Narrowing:
    """What a decision or ruling grants instead of what was asked; None keeps the asked value."""

    items: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None
    subjects: tuple[str, ...] | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    unmasked: tuple[str, ...] = ()  # sensitive items served in clear


@dataclass(frozen=True)
class Subscribe:
    resource_code: str
    items: tuple[str, ...]  # empty: every unconditional item
    purpose: str
    channels: frozenset[Channel]
    consumer_system: str | None
    valid_from: date | None
    valid_to: date


@dataclass(frozen=True)
class FileRequest:
    resource_code: str
    items: tuple[str, ...]
    regions: tuple[str, ...]
    subjects: tuple[str, ...]
    purpose: str
    channels: frozenset[Channel]
    consumer_system: str | None
    valid_from: date | None
    valid_to: date
    unmasked: tuple[str, ...] = ()  # sensitive items asked for in clear; a decision unmasks no other


@dataclass(frozen=True)
class Decide:
    request_id: str
    approve: bool
    reasons: str
    narrowing: Narrowing = Narrowing()


@dataclass(frozen=True)
class RaiseDispute:
    request_id: str
    grounds: str


@dataclass(frozen=True)
class RuleOnDispute:
    request_id: str
    overturn: bool
    reasons: str
    narrowing: Narrowing = Narrowing()


@dataclass(frozen=True)
class Escalate:
    request_id: str
    grounds: str


@dataclass(frozen=True)
class RevokeGrant:
    grant_id: str
    reason: str


@dataclass(frozen=True)
class EntryPublished:
    """A catalog version came into force: its sharing terms are the rule for grants from now on."""

    schema: ResourceSchema


@dataclass(frozen=True)
class EntryWithdrawn:
    resource_code: str
    version: int


@dataclass(frozen=True)
class DepartmentNamed:
    """The directory registered a department or changed it (DepartmentRegistered, DepartmentChanged): the
    name the printed application shows for its code."""

    department_code: str
    name: str
    named_at: datetime  # when the directory said so: the latest statement wins, replays change nothing
