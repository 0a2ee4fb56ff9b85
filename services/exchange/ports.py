"""What the exchange's handlers need from the outside world."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from common.events import Event
from common.policy import Principal
from services.exchange.domain.records import DataChange, SubjectRecord

DATA_CHANGES = "exchange.data-changes"
RESOURCE_CHANGES = "exchange.resource-changes"


class ExchangeTransaction(Protocol):
    async def change_seen(self, change_id: str) -> bool: ...

    async def add_history(self, change: DataChange, applied: bool) -> None: ...

    async def record(self, resource_code: str, subject_key: str) -> SubjectRecord | None: ...

    async def put_record(self, record: SubjectRecord) -> None: ...

    async def next_sequence(self, resource_code: str) -> int: ...

    def emit(self, topic: str, event: Event) -> None: ...


class Credentials(Protocol):
    def principal(self, token: str | None, at: datetime | None = None) -> Principal:
        """The sender's principal, its token checked at `at`; raises Unauthenticated."""
        ...


class UnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[ExchangeTransaction]: ...

    async def record(self, resource_code: str, subject_key: str) -> SubjectRecord | None: ...

    async def history(self, resource_code: str, subject_key: str) -> list[dict]: ...
