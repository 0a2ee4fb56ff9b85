"""The access trail's health as Prometheus metrics: entries appended, when the newest checkpoint was signed, and
verifications that found the trail broken (the alerts DatashareTrailVerificationFailed and
DatashareTrailCheckpointsStale read them)."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge

from services.auditor.domain.trail import ChainReport, Head, TrailEntry
from services.auditor.ports import TrailStore

ENTRIES = Counter("datashare_trail_entries_appended_total", "Entries appended to the access trail")
LAST_CHECKPOINT = Gauge(
    "datashare_trail_last_checkpoint_timestamp_seconds", "When the trail's newest checkpoint was signed (Unix time)"
)
VERIFICATION_FAILURES = Counter(
    "datashare_trail_verification_failures_total",
    "Verifications of the trail (GET /trail/verify) that found a broken link or an invalid checkpoint signature",
)


def appended(entries: list[TrailEntry], head: Head) -> None:
    """After an append committed: `head` is the trail's end as written, with its latest checkpoint."""
    ENTRIES.inc(len(entries))
    if head.checkpoint_at is not None:
        LAST_CHECKPOINT.set(_aware(head.checkpoint_at).timestamp())


async def show_last_checkpoint(store: TrailStore) -> None:
    """At start: the newest checkpoint already in the trail (none in an empty trail: the gauge stays absent)."""
    newest = await store.anchor(before=await store.last_sequence() + 1)
    if newest is not None:
        LAST_CHECKPOINT.set(_aware(datetime.fromisoformat(newest.signed_at)).timestamp())


def verified(report: ChainReport) -> None:
    if not report.intact:
        VERIFICATION_FAILURES.inc()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
