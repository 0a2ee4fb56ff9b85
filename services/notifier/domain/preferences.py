"""Each department chooses what it hears and how: which kinds of notice, on which channels (its inbox, its
own Kafka topic, its webhooks), at once or in a daily digest. Without a choice a department gets every kind
on every channel at once. A kind it leaves out is still kept (the IT office sees every notice), sent nowhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from services.notifier.domain.notifications import (
    ALL_CHANNELS,
    DEPARTMENT,
    Audience,
    Channel,
    Delivery,
    Notification,
    NotificationKind,
)
from services.notifier.domain.reminders import CHINA


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


DIGEST_SHOWN = 30  # notices listed in a digest; the count says how many there were


def next_digest_at(now: datetime, at: time) -> datetime:
    """The next daily digest after `now`: at `at` o'clock Beijing time, today or tomorrow."""
    local = now.astimezone(CHINA)
    due = datetime.combine(local.date(), at, CHINA)
    return due if due > local else datetime.combine(local.date() + timedelta(days=1), at, CHINA)


def digest(
    department_code: str, at: datetime, notices: list[Notification], total: int, audience: Audience = DEPARTMENT
) -> Notification:
    """One notice for the department's pushed channels, listing what came since the last digest for one
    audience (those it lists are all for that audience, so a person who sees the digest sees each notice it
    names: a compiler's digest never names a request for the data administrator). Its key is the department's,
    the audience's and the digest's time: a digest fired again is the same notice."""
    day = at.astimezone(CHINA).date()
    lines = [f"{n.created_at.astimezone(CHINA):%m-%d %H:%M} {n.title}" for n in notices[:DIGEST_SHOWN]]
    more = f"\n另有 {total - len(lines)} 条，请查看收件箱。" if total > len(lines) else ""
    whom = "".join(f"{r.value}," for r in sorted(audience))  # empty for the whole department: the key as before
    return Notification(
        f"digest:{department_code}:{whom}{at.astimezone(UTC):%Y%m%dT%H%M}",
        department_code,
        NotificationKind.DIGEST,
        f"每日通知汇总：{day.isoformat()}（{total} 条）",
        "\n".join(lines) + more,
        reference=day.isoformat(),
        audience=audience,
    )
