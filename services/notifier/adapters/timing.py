"""The notifier's timer, which sleeps until the next due batch or reminder (or until a handler
scheduled something sooner): no polling while nothing is due."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

log = logging.getLogger(__name__)
MIN_SLEEP = 0.05


class Timer:
    def __init__(
        self, fire: Callable[[], Awaitable[datetime | None]], now: Callable[[], datetime], max_sleep: float
    ) -> None:
        self.fire, self.now, self.max_sleep = fire, now, max_sleep
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def run(self) -> None:
        while True:
            self._woken.clear()
            due = await self.fire()
            delay = self.max_sleep if due is None else (due - self.now()).total_seconds()
            try:  # never less than a moment: something due that `fire` left must not make this spin
                await asyncio.wait_for(self._woken.wait(), min(max(delay, MIN_SLEEP), self.max_sleep))
            except TimeoutError:
                pass
