"""The HTTP server the services run on: uvicorn, waking only when it has something to do."""

from __future__ import annotations

import asyncio
from types import FrameType

import uvicorn

TICK_SECONDS = 1.0  # how often the Date header is renewed; it has a resolution of one second


class QuietServer(uvicorn.Server):
    """uvicorn's main loop wakes ten times a second to see whether a signal asked it to stop. This one
    sleeps until a signal comes or the Date header needs renewing, once a second: an idle service costs next
    to nothing, and it still stops the moment it is told to."""

    _exit: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop, self._exit = asyncio.get_running_loop(), asyncio.Event()
        ticks = 0
        while not await self.on_tick(ticks):
            ticks = (ticks + 10) % 864000  # uvicorn counts tenths of a second and renews the header every 10
            try:
                await asyncio.wait_for(self._exit.wait(), TICK_SECONDS)
            except TimeoutError:
                pass

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._exit is not None:
            self._loop.call_soon_threadsafe(self._exit.set)
