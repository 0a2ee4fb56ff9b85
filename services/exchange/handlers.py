"""One handler per exchange command or event."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from datashare_adapter.digest import TOPS, ResourceDigest, top_of
from datashare_adapter.sources import SourceError, typed_record

from common.errors import Invalid, NotFound, RejectedEvent
from common.events import Event
from common.identifiers import InvalidIdentifier, change_id, validate_subject_key
from common.policy import OVERSIGHT, AccessDenied, MachineKind, Principal, Target, Unauthenticated, authorize
from services.exchange.domain.records import DataChange, Operation, Outcome, SubjectRecord, apply_in_order
from services.exchange.domain.resources import ItemSpec, Rejection, ResourceSchema, admit, publication_stands
from services.exchange.ports import (
    RESOURCE_CHANGES,
    UPLOADED_BY,
    ExchangeTransaction,
    RefusedChange,
    ResourceState,
    Senders,
    UnitOfWork,
    UploadedTable,
    UploadSender,
)

PRODUCER = "exchange"


class RecordNotFound(NotFound):
    pass


class ResourceNotFound(NotFound):
    pass


def check_sender(event: Event, change: DataChange, senders: Senders) -> str:
    """Only the provider reports its data (Art. 8): its adapter, with a key its department registered and had
    not revoked when the broker received the message, or the exchange itself for a file the provider's data
    administrator uploaded. No credentials travel with a change: a copied message opens nothing. Returns who
    sent it: the adapter, or who uploaded."""
    if event.appended_at is None:
        raise RejectedEvent("sender", "data changes need broker-assigned timestamps (a LogAppendTime topic)")
    try:
        sender = senders.sender(event, event.appended_at)
        if sender.uploaded_by is not None:
            return sender.uploaded_by
        adapter = Principal(sender.subject, sender.department_code, machine=MachineKind.ADAPTER)
        authorize(adapter, "exchange.data.write", Target(department_code=change.provider_code))
        return sender.subject
    except (Unauthenticated, AccessDenied) as exc:
        raise RejectedEvent("sender", str(exc)) from None


def _refusal(payload: dict[str, Any], rejection: Rejection) -> RefusedChange:
    return RefusedChange(
        str(payload.get("change_id", "")),
        str(payload.get("resource_code", "")),
        str(payload.get("provider_code", "")),
        str(payload.get("subject_key", "")),
        rejection.rule,
        rejection.detail,
    )


def screen(events: list[Event], senders: Senders) -> tuple[list[tuple[Event, DataChange]], dict[str, RefusedChange]]:
    """The changes that come from their provider, in order; the others refused, by event id. Needs nothing
    stored."""
    changes: list[tuple[Event, DataChange]] = []
    refused: dict[str, RefusedChange] = {}
    for event in events:
        try:
            change = DataChange.from_payload(event.payload)
            change = replace(change, sent_by=check_sender(event, change, senders))
        except RejectedEvent as exc:
            refused[event.event_id] = _refusal(event.payload, Rejection(exc.rule, exc.detail))
            continue
        changes.append((event, change))
    return changes, refused


async def ingest_changes(events: list[Event], uow: UnitOfWork, senders: Senders) -> dict[str, str]:
    """Store a batch of reported changes: history always, current state where newer, digests and the change
    feed kept current, a ResourceChanged per stored change. Returns the refused events' ids with why;
    those go to the dead-letter topic and are recorded against the provider (as findings unless the sender
    was refused: anyone can write a message in a provider's name)."""
    appended = [e.appended_at for e in events if e.appended_at is not None]
    if appended:
        await senders.known_at(max(appended))
    # A batch holds thousands of changes: the work on all of them at once goes to a worker thread, so that
    # the event loop answers meanwhile (verifying signatures alone takes a while).
    changes, refused = await asyncio.to_thread(screen, events, senders)
    async with uow() as tx:
        schemas = await tx.schemas({c.resource_code for _, c in changes})
        new = await tx.unseen([c.change_id for _, c in changes])
        accepted = await asyncio.to_thread(admitted_changes, changes, new, schemas, refused)
        await apply_and_announce(accepted, tx)
        for refusal in await tx.refuse(list(refused.values())):
            if refusal.rule != "sender":
                tx.emit(
                    RESOURCE_CHANGES, Event("DataRejected", refusal.resource_code, data_rejected(refusal), PRODUCER)
                )
    return {event_id: f"{r.rule}: {r.detail}" for event_id, r in refused.items()}


def admitted_changes(
    changes: list[tuple[Event, DataChange]],
    new: set[str],
    schemas: dict[str, ResourceSchema],
    refused: dict[str, RefusedChange],
) -> list[DataChange]:
    """The changes not stored before that fit their resource; the others are added to `refused`."""
    accepted = []
    for event, change in changes:
        if change.change_id not in new:
            continue  # stored before, or twice in this batch
        new.discard(change.change_id)
        admitted = admit(schemas.get(change.resource_code), change)
        if isinstance(admitted, Rejection):
            refused[event.event_id] = _refusal(event.payload, admitted)
        else:
            accepted.append(admitted)
    return accepted


async def apply_and_announce(accepted: list[DataChange], tx: ExchangeTransaction) -> None:
    """Apply the accepted changes to the current records in order and announce each one stored."""
    current = await tx.records({(c.resource_code, c.subject_key) for c in accepted})
    outcomes = await asyncio.to_thread(apply_in_order, accepted, current)
    sequences = await tx.store(outcomes)
    await asyncio.to_thread(announce, outcomes, sequences, tx)


def announce(outcomes: list[Outcome], sequences: dict[str, int], tx: ExchangeTransaction) -> None:
    for outcome in outcomes:
        if outcome.after is not None:
            tx.emit(RESOURCE_CHANGES, resource_changed(outcome.change, sequences[outcome.change.change_id]))


def resource_changed(change: DataChange, sequence: int) -> Event:
    payload = {
        "resource_code": change.resource_code,
        "provider_code": change.provider_code,
        "sequence": sequence,
        "change_id": change.change_id,
        "operation": change.operation.value,
        "changed_at": change.changed_at,
    }
    return Event("ResourceChanged", change.resource_code, payload, PRODUCER)


def data_rejected(r: RefusedChange) -> dict[str, Any]:
    return {
        "change_id": r.change_id,
        "resource_code": r.resource_code,
        "provider_code": r.provider_code,
        "rule": r.rule,
        "detail": r.detail,
    }


async def catalog_entry_published(event: Event, uow: UnitOfWork) -> None:
    """The catalog published (a version of) an entry: its data items are what records must fit."""
    p = event.payload
    async with uow() as tx:
        published = publication_stands(p["version"], await tx.withdrawn_version(p["resource_code"]))
        schema = ResourceSchema(
            p["resource_code"],
            p["provider_code"],
            p["name"],
            tuple(
                ItemSpec(i["name"], i["type"], i.get("length"), i.get("share_type"), i.get("sensitive", False))
                for i in p["data_items"]
            ),
            p.get("update_cycle"),
            published,
            p["version"],
            p.get("share_type") or "CONDITIONAL",
            p.get("not_shared_basis"),
            tuple(p.get("share_methods") or ()),  # none named: no channel, never API by default
            p.get("confidentiality_reviewed_on"),
        )
        await tx.put_schema(schema, p["version"], event.occurred_at)


async def catalog_entry_withdrawn(event: Event, uow: UnitOfWork) -> None:
    async with uow() as tx:
        await tx.withdraw(event.payload["resource_code"], event.payload["version"])


# -- reads -------------------------------------------------------------------------------------------------


async def current_record(resource_code: str, subject_key: str, principal: Principal, uow: UnitOfWork) -> SubjectRecord:
    record = await uow.record(resource_code, subject_key.upper())
    if record is None or record.deleted:
        raise RecordNotFound("subject_key", f"resource {resource_code} holds no record for this subject")
    authorize(principal, "exchange.record.read", Target(department_code=record.provider_code))
    return record


async def record_history(resource_code: str, subject_key: str, principal: Principal, uow: UnitOfWork) -> list[dict]:
    history = await uow.history(resource_code, subject_key.upper())
    for change in history:
        authorize(principal, "exchange.record.read", Target(department_code=change["provider_code"]))
    return history


async def subject_records(subject_key: str, principal: Principal, uow: UnitOfWork) -> list[SubjectRecord]:
    """One subject across every resource the principal may read (others are left out, not refused)."""
    try:
        _, key = validate_subject_key(subject_key)
    except InvalidIdentifier as exc:
        raise Invalid("subject_key", str(exc)) from None
    found = []
    for record in await uow.subject_records(key):
        try:
            authorize(principal, "exchange.record.read", Target(department_code=record.provider_code))
        except AccessDenied:
            continue
        found.append(record)
    return found


async def resource_state(resource_code: str, uow: UnitOfWork) -> ResourceState:
    state = await uow.resource(resource_code)
    if state is None:
        raise ResourceNotFound("resource_code", f"the exchange knows no published resource {resource_code}")
    return state


async def _readable(resource_code: str, principal: Principal, uow: UnitOfWork) -> ResourceState:
    state = await resource_state(resource_code, uow)
    authorize(principal, "exchange.record.read", Target(department_code=state.schema.provider_code))
    return state


async def changes_since(
    resource_code: str, sequence: int, limit: int, principal: Principal, uow: UnitOfWork
) -> list[dict]:
    """The resource's change feed after `sequence`, in order."""
    await _readable(resource_code, principal, uow)
    return await uow.changes_since(resource_code, sequence, limit)


async def digest(resource_code: str, principal: Principal, uow: UnitOfWork) -> ResourceDigest:
    await _readable(resource_code, principal, uow)
    return ResourceDigest(await uow.leaves(resource_code))


def check_tops(tops: list[int]) -> list[int]:
    if any(not 0 <= t < TOPS for t in tops):
        raise Invalid("top", f"top nodes are numbered 0 to {TOPS - 1}")
    return tops


async def bucket_records(
    resource_code: str, buckets: list[int], principal: Principal, uow: UnitOfWork
) -> list[SubjectRecord]:
    """The center's records in the given key ranges, to repair a copy found to differ there."""
    if len(buckets) > 1024:
        raise Invalid("bucket", "at most 1024 key ranges per request")
    check_tops([top_of(b) for b in buckets])
    await _readable(resource_code, principal, uow)
    return await uow.bucket_records(resource_code, buckets)


async def stale_resources(uow: UnitOfWork, now: datetime) -> list[ResourceState]:
    """Published resources whose update cycle passed without any change."""
    return [r for r in await uow.resources() if r.schema.stale(r.last_change_at, r.published_at, now)]


async def refusals(provider_code: str | None, principal: Principal, uow: UnitOfWork, limit: int) -> list[RefusedChange]:
    authorize(principal, "exchange.rejections.read", Target(department_code=provider_code))
    if provider_code is None and not principal.roles & OVERSIGHT:
        provider_code = principal.department_code  # a department sees its own
    return await uow.refusals(provider_code, limit)


# -- file uploads ------------------------------------------------------------------------------------------


UPLOAD_BATCH = 500  # events sent at a time
SHOWN_PROBLEMS = 50


async def upload_rows(
    resource_code: str,
    table: UploadedTable,
    deletions: list[str],
    principal: Principal,
    uow: UnitOfWork,
    uploads: UploadSender,
) -> int:
    """A department without an adapter uploads records: checked row by row (all or nothing), then sent as
    the same DataChanged events an adapter sends, signed by the exchange in the uploader's name (her
    credentials stay here: nothing that opens anything goes onto the bus)."""
    state = await resource_state(resource_code, uow)
    schema = state.schema
    authorize(principal, "exchange.data.upload", Target(department_code=schema.provider_code))
    if schema.key_item is None:
        raise Invalid("resource_code", f"{resource_code} has no key data item (统一社会信用代码 or 公民身份号码)")
    version = int(datetime.now(UTC).timestamp() * 1000)
    return await uploads.send(schema, table, deletions, version, principal.subject)


def problems_refused(shown: list[str], problems: int) -> Invalid:
    """What an upload with problems is refused with: the first ones, each naming its row, and how many."""
    more = f"; … {problems - len(shown)} more" if problems > len(shown) else ""
    return Invalid("rows", "; ".join(shown) + more)


def _checked_rows(
    schema: ResourceSchema, rows: Iterable[dict[str, Any]], deletions: list[str]
) -> Iterator[tuple[str, str, dict[str, Any] | None, list[str]]]:
    """(where, subject key, fields or None for a deletion, problems) of each row, then of each deletion."""
    key_item = schema.key_item or ""
    types = {i.name: i.type for i in schema.items}
    for number, row in enumerate(rows, start=2):
        try:
            fields = typed_record(row, types)
            _, key = schema.identify(str(fields.get(key_item) or ""))
        except (SourceError, InvalidIdentifier) as exc:
            yield f"row {number}", "", None, [str(exc)]
            continue
        clean = {k: v for k, v in fields.items() if v not in (None, "")} | {key_item: key}
        yield f"row {number}", key, clean, [f"{p.rule}: {p.detail}" for p in schema.problems(key, clean)]
    for given in deletions:
        try:
            yield f"delete {given}", schema.identify(given)[1], None, []
        except InvalidIdentifier as exc:
            yield f"delete {given}", "", None, [str(exc)]


def upload_problems(
    schema: ResourceSchema, rows: Iterable[dict[str, Any]], deletions: list[str]
) -> tuple[list[str], int]:
    """The first problems of an upload, each naming its row, and how many there are in all."""
    shown: list[str] = []
    count = 0
    seen: set[str] = set()
    for where, key, _, found in _checked_rows(schema, rows, deletions):
        # All rows of an upload carry one version: a second row of a subject would be taken for the first.
        problems = [*found, f"{key} is named more than once; one row per subject"] if key and key in seen else found
        seen.add(key)
        count += len(problems)
        shown += [f"{where}: {p}" for p in problems[: SHOWN_PROBLEMS - len(shown)]]
    return shown, count


def upload_batches(
    schema: ResourceSchema, rows: Iterable[dict[str, Any]], deletions: list[str], version: int, uploaded_by: str
) -> Iterator[list[Event]]:
    """An upload found without problems as DataChanged events, UPLOAD_BATCH at a time."""
    batch: list[Event] = []
    for where, key, fields, problems in _checked_rows(schema, rows, deletions):
        if problems:
            raise Invalid("file", f"{where} changed while it was read: {problems[0]}")
        operation = Operation.DELETE if fields is None else Operation.UPSERT
        batch.append(_data_changed(schema, key, operation, fields or {}, version, uploaded_by))
        if len(batch) == UPLOAD_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _data_changed(
    schema: ResourceSchema, key: str, operation: Operation, fields: dict[str, Any], version: int, uploaded_by: str
) -> Event:
    payload = {
        "change_id": change_id(schema.resource_code, key, version, operation.value),
        "resource_code": schema.resource_code,
        "provider_code": schema.provider_code,
        "operation": operation.value,
        "subject_key": key,
        "fields": fields,
        "source_version": version,
        "changed_at": datetime.now(UTC),
    }
    return Event("DataChanged", f"{schema.resource_code}|{key}", payload, UPLOADED_BY + uploaded_by)
