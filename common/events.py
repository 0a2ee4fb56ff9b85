"""The event envelope: payload plus the metadata carried in Kafka headers (no I/O imports here)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Signature:
    """A sender's signature as received (`signature` header), with what it covers beyond the payload: the
    `occurred_at` header exactly as sent and the digest of the encoded value."""

    header: str
    sent_at: str
    value_digest: bytes


@dataclass(frozen=True)
class Event:
    event_type: str
    key: str
    payload: dict[str, Any]
    producer: str
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    signature: Signature | None = None  # on receipt, when the sender signed it (no credentials ever travel)
    appended_at: datetime | None = None  # when the broker appended it (LogAppendTime topics), on receipt
    # where the consumer read it (topic, partition, offset), on receipt: a redelivery comes from the same place
    position: tuple[str, int, int] | None = field(default=None, compare=False)

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("event_id", self.event_id.encode()),
            ("event_type", self.event_type.encode()),
            ("occurred_at", self.occurred_at.isoformat().encode()),
            ("producer", self.producer.encode()),
        ]
        if self.signature is not None:
            headers.append(("signature", self.signature.header.encode()))
        return headers
