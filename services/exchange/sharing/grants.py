"""Grants — the only thing that opens data — and the one check every channel makes before serving any
(Art. 9, 15, 16, 20). Standard library only."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from common.identifiers import CITIZEN_ID, CREDIT_CODE
from common.policy import Principal

MASK = "***"


class Channel(StrEnum):
    API = "API"
    FILE_DOWNLOAD = "FILE_DOWNLOAD"
    ONLINE_BROWSE = "ONLINE_BROWSE"
    OFFLINE = "OFFLINE"


class GrantStatus(StrEnum):
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"  # by the provider, with a reason
    ENDED = "ENDED"  # by itself: period over, entry withdrawn or made stricter


def region_of(subject_key: str, kind: str) -> str:
    """The administrative division code (GB/T 2260) a subject is registered in: digits 1–6 of a citizen ID,
    characters 3–8 of a unified social credit code."""
    if kind == CITIZEN_ID:
        return subject_key[:6]
    if kind == CREDIT_CODE:
        return subject_key[2:8]
    return ""


@dataclass(frozen=True)
class RowScope:
    """Which subjects a grant opens: all, those registered in the given divisions (code prefixes, e.g. 3608
    for the city, 360821 for one county), or the named subjects. Both given: a subject must meet both."""

    regions: tuple[str, ...] = ()
    subjects: frozenset[str] = frozenset()

    @property
    def everything(self) -> bool:
        return not self.regions and not self.subjects

    def covers(self, subject_key: str, kind: str) -> bool:
        if self.subjects and subject_key not in self.subjects:
            return False
        if self.regions:
            region = region_of(subject_key, kind)
            return any(region.startswith(prefix) for prefix in self.regions)
        return True

    def within(self, other: RowScope) -> bool:
        """Whether this scope opens no subject that `other` does not (a decision may only narrow)."""
        if other.everything:
            return True
        if other.subjects and not (self.subjects and self.subjects <= other.subjects):
            return False
        if other.regions:
            if not self.regions:  # named subjects alone may lie outside `other`'s regions: the grant keeps no other
                return False
            return all(any(mine.startswith(theirs) for theirs in other.regions) for mine in self.regions)
        return True


@dataclass(frozen=True)
class Grant:
    grant_id: str
    request_id: str | None  # None for a subscription to an unconditional resource
    resource_code: str
    provider_code: str
    consumer_code: str
    consumer_system: str | None  # the machine identity that will call; None: any of the department's
    items: tuple[str, ...]
    scope: RowScope
    purpose: str
    channels: frozenset[Channel]
    valid_from: date
    valid_to: date
    entry_version: int  # the catalog version whose rules it came from
    unmasked: frozenset[str] = frozenset()  # sensitive items the grant names, served in clear
    status: GrantStatus = GrantStatus.ACTIVE
    ended_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def refusal(self, principal: Principal, channel: Channel, purpose: str, today: date) -> str | None:
        """Why this grant does not let `principal` read through `channel` for `purpose` today; None when it
        does. The reasons name only the caller's own grant, never another department's data."""
        if principal.department_code != self.consumer_code:
            return "the grant is another department's"
        if self.consumer_system is not None:  # only that machine identity; a grant without one: the department's
            if not principal.machine:
                return f"the grant is for consumer system {self.consumer_system}"
            if principal.subject != self.consumer_system:
                return "the grant is another consumer system's"
        if self.status is GrantStatus.REVOKED:
            return f"the grant was revoked: {self.ended_reason or ''}".rstrip(": ")
        if self.status is GrantStatus.ENDED:
            return f"the grant has ended: {self.ended_reason or ''}".rstrip(": ")
        if today < self.valid_from:
            return f"the grant is valid from {self.valid_from.isoformat()}"
        if today > self.valid_to:
            return f"the grant expired on {self.valid_to.isoformat()}"
        if channel not in self.channels:
            return f"the grant does not open the {channel.value} channel"
        if purpose.strip() != self.purpose:
            return "the stated purpose is not the grant's"
        return None

    def view(self, fields: dict[str, Any], sensitive: frozenset[str]) -> dict[str, Any]:
        """A record's fields as the grant shows them: granted items only, sensitive ones masked unless named —
        an empty one too, or the mask would tell whether the subject has a value."""
        return {
            name: (MASK if name in sensitive and name not in self.unmasked else value)
            for name, value in fields.items()
            if name in self.items
        }


def subject_hash(subject_key: str, key: bytes) -> str:
    """How an access event names a subject: never the key in clear, and keyed (HMAC-SHA256 with a secret of
    the center's), since a bare hash of an 18-character ID is found by trying them all."""
    return hmac.new(key, subject_key.encode(), hashlib.sha256).hexdigest()


def pseudonym(subject_key: str, grant_id: str, key: bytes) -> str:
    """How the change feed names a subject to a grant that does not show its key item in clear: stable for
    the grant, so a consumer can follow one subject's changes, but neither the key nor linkable across grants
    or with the access trail's hashes (HMAC-SHA256 under a key derived from the secret and the grant)."""
    per_grant = hmac.new(key, grant_id.encode(), hashlib.sha256).digest()
    return hmac.new(per_grant, subject_key.encode(), hashlib.sha256).hexdigest()
