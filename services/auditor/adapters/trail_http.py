"""REST routes of the access trail: entries by who, what, why and when (paged, or as a streamed CSV),
verification of any range, a proof file for outside verification, and the checkpoints' public key."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from common.fields import Code, Name, Position
from common.guard import Guard
from common.paging import Page, PageOf
from common.policy import OVERSIGHT, Principal
from services.auditor import handlers
from services.auditor.adapters import trail_metrics
from services.auditor.adapters.checkpoints import CheckpointSigner
from services.auditor.domain.trail import CSV_COLUMNS, TrailEntry, csv_row, entry_view
from services.auditor.ports import TrailQuery, TrailStore

MAX_EXPORT = 1_000_000  # rows one CSV export streams at most


@dataclass(frozen=True)
class TrailApi:
    """What the trail's routes need, built once by the auditor's bootstrap (main.py puts it on the app)."""

    store: TrailStore
    signer: CheckpointSigner


async def provided_trail(request: Request) -> TrailApi:
    trail: TrailApi | None = getattr(request.app.state, "trail", None)
    if trail is None:
        raise RuntimeError("the trail routes are used without the auditor's bootstrap")
    return trail


TrailDep = Annotated[TrailApi, Depends(provided_trail)]
Oversight = Annotated[Principal, Depends(Guard("auditor.trail.read"))]
Searcher = Annotated[Principal, Depends(Guard("auditor.trail.entries.read"))]


class TrailEntryView(BaseModel):
    sequence: int
    event_id: str
    event_type: str
    action: str
    occurred_at: str
    producer: str
    key: str
    actor: str
    actor_kind: str
    actor_department: str | None
    owner_department: str | None
    departments: list[str]
    resource: str | None
    items: list[str]
    subjects: int
    subject_hashes: list[str]
    purpose: str | None
    grant: str | None
    result: str
    reason: str | None
    payload: dict[str, Any]
    previous_hash: str
    hash: str


class ChainReportView(BaseModel):
    intact: bool
    first: int
    last: int
    anchor: int
    entries: int
    checkpoints: int
    signed_through: int
    first_broken_sequence: int | None
    problem: str | None


class PublicKeyView(BaseModel):
    algorithm: str
    key_id: str
    public_key_pem: str
    message: str


def _view(entry: TrailEntry) -> TrailEntryView:
    return TrailEntryView.model_validate(entry_view(entry))


def trail_query(
    department: Annotated[
        Code | None, Query(description="acting department, or the one whose data it concerns")
    ] = None,
    person: Annotated[Code | None, Query(description="the person who acted")] = None,
    system: Annotated[Code | None, Query(description="the machine identity or service that acted")] = None,
    resource: Annotated[Code | None, Query(description="resource code")] = None,
    purpose: Annotated[Name | None, Query(description="the purpose stated")] = None,
    action: Annotated[Code | None, Query(description="data.access, share.decision, grant.change, ...")] = None,
    event_type: Annotated[Code | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="occurred at or after")] = None,
    until: Annotated[datetime | None, Query(description="occurred before")] = None,
) -> TrailQuery:
    return TrailQuery(department, person, system, resource, purpose, action, event_type, since, until)


QueryOf = Annotated[TrailQuery, Depends(trail_query)]


def _scoped(query: TrailQuery, principal: Principal) -> TrailQuery:
    """Oversight sees all; a department the entries that concern it: its own accesses and actions and
    those on its data."""
    if principal.roles & OVERSIGHT:
        return query
    return replace(query, visible_to=principal.department_code)


router = APIRouter(tags=["access trail"])


@router.get("/trail", response_model=list[TrailEntryView], summary="Trail entries in order, paged by sequence")
async def entries_after(
    _: Oversight,
    trail: TrailDep,
    after_sequence: Position = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    event_type: Code | None = None,
) -> list[TrailEntryView]:
    found = await trail.store.after(after_sequence=after_sequence, limit=limit, event_type=event_type)
    return [_view(e) for e in found]


@router.get(
    "/trail/entries",
    response_model=Page[TrailEntryView],
    summary="Trail entries by department, person, system, resource, purpose and time, in sequence order",
    description="Oversight (IT office, auditors, leadership) sees every entry; anyone else the entries of "
    "their department's accesses and actions and those on its data.",
)
async def search(principal: Searcher, trail: TrailDep, query: QueryOf, paging: PageOf) -> Page[TrailEntryView]:
    found, total = await handlers.search_trail(
        trail.store, _scoped(query, principal), offset=paging.offset, limit=paging.limit
    )
    return Page[TrailEntryView].of([_view(e) for e in found], total, paging)


@router.get(
    "/trail/entries.csv",
    summary="The same entries as CSV (streamed, at most 1,000,000 rows)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export(principal: Searcher, trail: TrailDep, query: QueryOf) -> StreamingResponse:
    rows = trail.store.export(_scoped(query, principal), most=MAX_EXPORT)
    return StreamingResponse(
        _csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="trail.csv"'},
    )


async def _csv(entries: AsyncIterator[TrailEntry]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # Excel reads the Chinese text as UTF-8 only with the byte-order mark
    writer.writerow(CSV_COLUMNS)
    n = 0
    async for entry in entries:
        writer.writerow(csv_row(entry))
        n += 1
        if n % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


@router.get(
    "/trail/verify",
    response_model=ChainReportView,
    summary="Verify entries first..last from the nearest signed checkpoint before them",
    description="Recomputes every hash and link from the checkpoint on, checks each signed checkpoint passed, "
    "and reports the first broken link. Without `last`, up to the end of the trail.",
)
async def verify(
    _: Oversight, trail: TrailDep, first: Annotated[Position, Query(ge=1)] = 1, last: Position | None = None
) -> ChainReportView:
    report = await handlers.verify_trail(trail.store, trail.signer.valid, first, last)
    trail_metrics.verified(report)
    return ChainReportView.model_validate(report, from_attributes=True)


@router.get(
    "/trail/proof",
    summary="Entries first..last with the checkpoints that vouch for them, as JSON lines, for outside verification",
    description="The first line is the nearest signed checkpoint before `first` (if any), then every entry from "
    "it on and every checkpoint in the range. `python -m services.auditor.verify --public-key key.pem proof.jsonl` "
    "checks such a file with the public key alone.",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
async def proof(
    _: Oversight, trail: TrailDep, first: Annotated[Position, Query(ge=1)] = 1, last: Position | None = None
) -> StreamingResponse:
    return StreamingResponse(_proof(trail.store, first, last), media_type="application/x-ndjson")


async def _proof(store: TrailStore, first: int, last: int | None) -> AsyncIterator[bytes]:
    end = await store.last_sequence()
    last = end if last is None else min(last, end)
    anchor = await store.anchor(before=first)
    start = anchor.sequence if anchor else 0
    yield _line({"range": {"first": first, "last": last}})
    if anchor is not None:
        yield _line({"checkpoint": asdict(anchor)})
    for checkpoint in await store.checkpoints(start + 1, last):
        yield _line({"checkpoint": asdict(checkpoint)})
    async for batch in store.entries(start + 1, last):
        yield b"".join(_line({"entry": entry_view(e)}) for e in batch)


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@router.get(
    "/.well-known/trail-checkpoint-key",
    response_model=PublicKeyView,
    summary="The public key the trail's checkpoints are signed with (Ed25519)",
    dependencies=[Depends(Guard("public"))],
)
async def public_key(trail: TrailDep) -> PublicKeyView:
    return PublicKeyView(
        algorithm="Ed25519",
        key_id=trail.signer.key_id,
        public_key_pem=trail.signer.pem(),
        message="a checkpoint's signature covers UTF-8 'datashare-audit-trail-checkpoint/v1\\n<sequence>\\n<hash>\\n"
        "<signed_at>'; an entry's hash is SHA-256 of its canonical JSON (sorted keys, no spaces) without 'hash'",
    )
