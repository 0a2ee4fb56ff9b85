"""What runs beside the consumer: the deadline watch, which sleeps until the next open finding falls due (or
until a finding changes) and then escalates what is overdue, and the refresh of the evaluation metrics, which
recomputes the current month's figures when events changed them, at most every `min_interval` seconds.
Neither polls: each waits for a change or for the moment something falls due."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from common.clock import CHINA
from services.auditor.oversight import handlers
from services.auditor.oversight.adapters import metrics
from services.auditor.oversight.handlers import Oversight

log = logging.getLogger(__name__)
LONGEST_SLEEP = 6 * 3600.0  # a clock adjusted meanwhile is noticed within this


@dataclass
class Changes:
    """Wakes the deadline watch and the metrics refresh when findings or figures may have changed."""

    deadlines: asyncio.Event = field(default_factory=asyncio.Event)
    figures: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self) -> None:
        self.deadlines.set()
        self.figures.set()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), min(seconds, LONGEST_SLEEP))


async def watch_deadlines(oversight: Oversight, changes: Changes) -> None:
    while True:
        changes.deadlines.clear()
        stale = await handlers.flag_stale(oversight)
        escalated = await handlers.escalate_overdue(oversight)
        if stale or escalated:
            log.info("%s resources found stale, %s findings escalated to notices of criticism", stale, escalated)
        due = await handlers.next_due(oversight)
        wait = LONGEST_SLEEP if due is None else oversight.clock.seconds_until_day_after(due)
        await _wait(changes.deadlines, wait)


async def refresh_figures(
    oversight: Oversight, changes: Changes, min_interval: float, poll: float | None = None
) -> None:
    """The evaluation's and the open findings' gauges, recomputed when this process changed them (at most every
    `min_interval`), at midnight, and every `poll` seconds where findings also change in another process."""
    while True:
        changes.figures.clear()
        period = handlers.current_month(oversight)
        metrics.show(await handlers.ranking(period, oversight), await handlers.open_findings(oversight))
        await asyncio.sleep(min_interval)  # a burst of events is counted once
        now = datetime.now(CHINA)
        until_tomorrow = (datetime.combine(now.date() + timedelta(days=1), time(), CHINA) - now).total_seconds()
        # a new month starts counting at midnight
        await _wait(changes.figures, until_tomorrow if poll is None else min(poll, until_tomorrow))
