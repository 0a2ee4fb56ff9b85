"""Which failures are the infrastructure's, not the message's: a broker or database away, a transaction
that lost a conflict. Such a failure says nothing about the event; it is retried until it passes, never
dead-lettered. And an outage is logged when it starts and when it ends, not at every retry."""

from __future__ import annotations

import logging
import time

from aiokafka.errors import KafkaError
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

# MongoDB error codes of conflicts and of a server that is not (yet, or no longer) able to serve.
TRANSIENT_MONGO_CODES = frozenset(
    {
        112,  # WriteConflict
        117,  # ConflictingOperationInProgress
        189,  # PrimarySteppedDown
        91,  # ShutdownInProgress
        10107,  # NotWritablePrimary
        13435,  # NotPrimaryNoSecondaryOk
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        251,  # NoSuchTransaction (the transaction was aborted under us)
        262,  # ExceededTimeLimit
        24,  # LockTimeout
    }
)


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same work later can succeed without any change to it."""
    if isinstance(exc, ConnectionFailure):  # AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError
        return True
    if isinstance(exc, PyMongoError) and (
        exc.has_error_label("TransientTransactionError") or exc.has_error_label("UnknownTransactionCommitResult")
    ):
        return True
    if isinstance(exc, OperationFailure) and exc.code in TRANSIENT_MONGO_CODES:
        return True
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in {
            "KafkaConnectionError",
            "KafkaTimeoutError",
            "RequestTimedOutError",
            "NodeNotReadyError",
            "NotLeaderForPartitionError",
        }
    return isinstance(exc, ConnectionError | TimeoutError)


class OutageLog:
    """Logs a dependency going away once, and coming back once with how many failures it took, instead
    of a line per retry."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self.failures = 0
        self.since = 0.0

    def failed(self, exc: BaseException) -> None:
        if self.failures == 0:
            self.since = time.monotonic()
            self.logger.warning(
                "%s: unavailable, retrying until it is back: %s: %s", self.what, type(exc).__name__, exc
            )
        self.failures += 1

    def recovered(self) -> None:
        if self.failures:
            self.logger.warning(
                "%s: available again after %d failed attempts over %.1fs",
                self.what,
                self.failures,
                time.monotonic() - self.since,
            )
        self.failures = 0


class Dependency:
    """What a service knows of a dependency from its own recent calls. One failed call under load is not an
    outage: the dependency counts as down once calls have failed for `grace` seconds without a success in
    between. While it is failing, requests give up on it quickly (common.http) and the runtime asks it every
    second whether it is back."""

    def __init__(self, name: str, *, grace: float = 5.0) -> None:
        self.name = name
        self.grace = grace
        self.failing_since: float | None = None
        self.reason = ""

    def failed(self, exc: BaseException) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.reason = f"{type(exc).__name__}: {exc}"[:300]

    def succeeded(self) -> None:
        self.failing_since = None
        self.reason = ""

    @property
    def down(self) -> bool:
        return self.failing_since is not None and time.monotonic() - self.failing_since >= self.grace
