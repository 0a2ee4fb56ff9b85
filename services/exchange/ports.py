"""What the exchange's handlers need from the outside world."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from common.events import Event
from services.exchange.domain.records import Outcome, SubjectRecord
from services.exchange.domain.resources import ResourceSchema

DATA_CHANGES = "exchange.data-changes"
RESOURCE_CHANGES = "exchange.resource-changes"
CATALOG_PUBLISHED = "catalog.published"
CATALOG_ENTRY_EVENTS = "catalog.entry-events"
UPLOADED_BY = "exchange-upload:"  # the producer of an uploaded change, followed by who uploaded it


@dataclass(frozen=True)
class RefusedChange:
    """A data change the center did not store, and why: a finding against the provider (Art. 24(3))."""

    change_id: str
    resource_code: str
    provider_code: str
    subject_key: str
    rule: str
    detail: str


@dataclass(frozen=True)
class ResourceState:
    """What the exchange holds of one resource: its catalog schema and how current its data is."""

    schema: ResourceSchema
    published_at: datetime
    last_change_at: datetime | None
    records: int
    sequence: int


class ExchangeTransaction(Protocol):
    async def schemas(self, resource_codes: set[str]) -> dict[str, ResourceSchema]: ...

    async def unseen(self, change_ids: list[str]) -> set[str]:
        """The ids among `change_ids` that the center has not stored yet."""
        ...

    async def records(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], SubjectRecord]:
        """The current records of `keys` that exist, without their fields: applying a change to a record
        needs only its version, whether it is deleted and its digest."""
        ...

    async def store(self, outcomes: list[Outcome]) -> dict[str, int]:
        """History of every outcome, the records' new state and the digests; returns the sequence number
        each applied change got in its resource's change feed."""
        ...

    async def refuse(self, refused: list[RefusedChange]) -> list[RefusedChange]:
        """Record refusals; returns those not recorded before (a redelivered refusal counts once)."""
        ...

    async def withdrawn_version(self, resource_code: str) -> int | None:
        """The latest version of the resource's entry seen withdrawn, if any."""
        ...

    async def put_schema(self, schema: ResourceSchema, version: int, published_at: datetime) -> None: ...

    async def withdraw(self, resource_code: str, version: int) -> None:
        """Remember the withdrawal; the resource is no longer published unless a later version is."""
        ...

    def emit(self, topic: str, event: Event) -> None: ...


@dataclass(frozen=True)
class Sender:
    """Who signed a data change: an adapter with its registered key, or the exchange itself for a file it
    took from `uploaded_by` after authenticating and authorizing her over HTTP."""

    subject: str
    department_code: str
    uploaded_by: str | None = None


class Senders(Protocol):
    async def known_at(self, moment: datetime) -> None:
        """Wait until the state of signing keys is known for messages appended at `moment` (TimeoutError
        when it cannot be learnt yet: a failure of the infrastructure, retried)."""
        ...

    def sender(self, event: Event, appended_at: datetime) -> Sender:
        """Who signed the change, if the signature verifies by a key valid at `appended_at`; raises
        Unauthenticated otherwise."""
        ...


class UnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[ExchangeTransaction]: ...

    async def record(self, resource_code: str, subject_key: str) -> SubjectRecord | None: ...

    async def subject_records(self, subject_key: str) -> list[SubjectRecord]: ...

    async def history(self, resource_code: str, subject_key: str) -> list[dict]: ...

    async def resource(self, resource_code: str) -> ResourceState | None: ...

    async def resources(self) -> list[ResourceState]: ...

    async def changes_since(self, resource_code: str, sequence: int, limit: int) -> list[dict]: ...

    async def leaves(self, resource_code: str) -> dict[int, tuple[int, int]]:
        """The center's digest leaves of a resource: bucket → (sum of record hashes, records)."""
        ...

    async def bucket_records(self, resource_code: str, buckets: list[int]) -> list[SubjectRecord]: ...

    async def refusals(self, provider_code: str | None, limit: int) -> list[RefusedChange]: ...


class UploadedTable(Protocol):
    """A table a department uploaded, kept in a file of its own that another process can read."""

    @property
    def path(self) -> Path: ...

    @property
    def filename(self) -> str:
        """The name it was uploaded under: its ending says CSV or XLSX."""
        ...


class UploadSender(Protocol):
    """Checks an uploaded table whole, then sends its rows onto the bus as the DataChanged events an adapter
    would send, signed with the exchange's own key in the uploader's name. Raises Invalid naming the rows
    at fault, and sends nothing then. Reading, checking, encoding and signing run in a worker process: a
    thread would hold the GIL the event loop needs to answer probes and feed the consumers' heartbeats."""

    async def send(
        self, schema: ResourceSchema, table: UploadedTable, deletions: list[str], version: int, uploaded_by: str
    ) -> int: ...
