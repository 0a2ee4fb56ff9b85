"""A command whose transaction lost a write conflict runs again a few times; other failures are not retried."""

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from services.catalog.adapters.retry import ATTEMPTS, lost_conflict, retried


def conflict() -> OperationFailure:
    return OperationFailure("Write conflict during plan execution", code=112)


async def test_a_lost_write_conflict_is_run_again_and_then_succeeds() -> None:
    runs = []

    async def command() -> str:
        runs.append(1)
        if len(runs) < 3:
            raise conflict()
        return "done"

    assert await retried(command) == "done" and len(runs) == 3


async def test_a_conflict_lost_every_time_reaches_the_caller_after_the_last_attempt() -> None:
    runs = []

    async def command() -> None:
        runs.append(1)
        raise conflict()

    with pytest.raises(OperationFailure):
        await retried(command)
    assert len(runs) == ATTEMPTS


@pytest.mark.parametrize("failure", [AutoReconnect("down"), OperationFailure("bad", code=2), ValueError("x")])
async def test_anything_but_a_lost_conflict_is_not_retried(failure: Exception) -> None:
    runs = []

    async def command() -> None:
        runs.append(1)
        raise failure

    with pytest.raises(type(failure)):
        await retried(command)
    assert len(runs) == 1 and not lost_conflict(failure)
