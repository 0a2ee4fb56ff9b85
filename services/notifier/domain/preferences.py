"""Each department chooses what it hears and how: which kinds of notice, on which channels (its inbox, its
own Kafka topic, its webhooks), at once or in a daily digest. Without a choice a department gets every kind
on every channel at once. A kind it leaves out is still kept (the IT office sees every notice), sent nowhere."""

from __future__ import annotations

from dataclasses import dataclass

from services.notifier.domain.notifications import ALL_CHANNELS, Channel, Delivery, NotificationKind


@dataclass(frozen=True)
class Preferences:
    department_code: str
    kinds: frozenset[NotificationKind] | None = None  # None: every kind, those added later included
    channels: frozenset[Channel] = ALL_CHANNELS
    delivery: Delivery = Delivery.IMMEDIATE

    def channels_for(self, kind: NotificationKind) -> frozenset[Channel]:
        """Where a notice of `kind` goes. A digest itself goes wherever the department listens."""
        if kind is NotificationKind.DIGEST or self.kinds is None or kind in self.kinds:
            return self.channels
        return frozenset()

    def pushes_now(self, kind: NotificationKind) -> bool:
        """Whether pushed channels (Kafka, webhooks) get the notice now, or in the next digest."""
        return self.delivery is Delivery.IMMEDIATE or kind is NotificationKind.DIGEST


def defaults(department_code: str) -> Preferences:
    return Preferences(department_code)
