"""The event a consumer is handling right now, so that the handler's transaction can record it as handled
atomically with the state it changes (the consumer's idempotency by event id)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Delivery:
    group: str
    event_id: str
    claimed: bool = False

    @property
    def record_id(self) -> str:
        return f"{self.group}:{self.event_id}"


CURRENT_DELIVERY: ContextVar[Delivery | None] = ContextVar("current_delivery", default=None)


class AlreadyHandled(Exception):
    """This consumer group already committed the effects of this event; nothing more to do."""
