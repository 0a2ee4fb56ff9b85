"""The access trail (Art. 19, 23): every share decision, data access and catalog change, append-only.
Each entry carries the hash of its predecessor, so an edited or deleted entry breaks the chain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from common.events import Event

GENESIS = "0" * 64


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


@dataclass(frozen=True)
class TrailEntry:
    sequence: int
    event_id: str
    event_type: str
    key: str
    producer: str
    occurred_at: str
    payload: dict[str, Any]
    previous_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        fields = asdict(self)
        fields.pop("hash")
        return fields


def content_hash(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def next_entry(previous: TrailEntry | None, event: Event) -> TrailEntry:
    content = {
        "sequence": previous.sequence + 1 if previous else 1,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "key": event.key,
        "producer": event.producer,
        "occurred_at": event.occurred_at.isoformat(),
        "payload": json_safe(event.payload),
        "previous_hash": previous.hash if previous else GENESIS,
    }
    return TrailEntry(**content, hash=content_hash(content))


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    entries: int
    first_broken_sequence: int | None = None
    problem: str | None = None


def verify_chain(entries: list[TrailEntry]) -> ChainReport:
    """Check sequence numbers, links and hashes of entries in sequence order."""
    previous_hash, expected = GENESIS, 1
    for entry in entries:
        if entry.sequence != expected:
            return ChainReport(False, len(entries), expected, f"entry {expected} is missing")
        if entry.previous_hash != previous_hash:
            return ChainReport(False, len(entries), entry.sequence, "link to the previous entry does not match")
        if content_hash(entry.content()) != entry.hash:
            return ChainReport(False, len(entries), entry.sequence, "content was altered after it was recorded")
        previous_hash, expected = entry.hash, expected + 1
    return ChainReport(True, len(entries))
