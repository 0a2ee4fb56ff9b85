"""A command whose transaction lost a write conflict to a concurrent one is run again, from the start, a few
times before the caller gets the 503: run again it reads what the other committed and either succeeds or is
refused for a reason the caller can act on (an element's name now taken, its source now claimed)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

ATTEMPTS = 4
T = TypeVar("T")
CONFLICT_CODES = frozenset({112, 251})  # WriteConflict; NoSuchTransaction (aborted under us by a conflict)


def lost_conflict(exc: BaseException) -> bool:
    """A transaction that lost to a concurrent one, not a database that is away (that waits for its 503)."""
    if not isinstance(exc, PyMongoError) or isinstance(exc, ConnectionFailure):
        return False
    return exc.has_error_label("TransientTransactionError") or (
        isinstance(exc, OperationFailure) and exc.code in CONFLICT_CODES
    )


async def retried(command: Callable[[], Awaitable[T]], attempts: int = ATTEMPTS) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return await command()
        except PyMongoError as exc:
            if attempt == attempts or not lost_conflict(exc):
                raise
        await asyncio.sleep(random.uniform(0.005, 0.02) * attempt)
    raise AssertionError("unreachable")
