"""Counting what wakes an event loop: every timer scheduled on it (sleeps, timeouts), with where from."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from traceback import extract_stack


@contextmanager
def timers_scheduled() -> Iterator[Counter[str]]:
    """The timers scheduled on the running loop meanwhile, counted by the code that asked for them."""
    loop = asyncio.get_running_loop()
    counted: Counter[str] = Counter()
    schedule = loop.call_at

    def call_at(when, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        outside = [f for f in extract_stack(limit=12)[:-1] if "/asyncio/" not in f.filename]
        counted[f"{outside[-1].filename}:{outside[-1].lineno}" if outside else "asyncio"] += 1
        return schedule(when, callback, *args, **kwargs)

    loop.call_at = call_at  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        del loop.call_at  # type: ignore[method-assign]
