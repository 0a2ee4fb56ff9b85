"""The event envelope: payload plus the metadata carried in Kafka headers (no I/O imports here)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Event:
    event_type: str
    key: str
    payload: dict[str, Any]
    producer: str
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("event_id", self.event_id.encode()),
            ("event_type", self.event_type.encode()),
            ("occurred_at", self.occurred_at.isoformat().encode()),
            ("producer", self.producer.encode()),
        ]
