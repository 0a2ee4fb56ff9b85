"""Exchange REST routes: records, one subject across resources, the change feed, consistency digests,
freshness, refused changes and file uploads."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO

from datashare_adapter.digest import BUCKETS, TOPS
from fastapi import APIRouter, Depends, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from common.fields import Code, Position
from common.guard import Guard
from common.http import RETRY_AFTER_SECONDS
from common.policy import Principal
from services.exchange import handlers
from services.exchange.ports import ResourceState, UnitOfWork, UploadSender

RecordReader = Annotated[Principal, Depends(Guard("exchange.record.read"))]
ResourceReader = Annotated[Principal, Depends(Guard("exchange.resource.read"))]
Uploader = Annotated[Principal, Depends(Guard("exchange.data.upload"))]
RefusalReader = Annotated[Principal, Depends(Guard("exchange.rejections.read"))]
Top = Annotated[int, Field(ge=0, lt=TOPS)]
Bucket = Annotated[int, Field(ge=0, lt=BUCKETS)]
MAX_BUCKETS = 1024  # key ranges per request


class RecordView(BaseModel):
    resource_code: str
    provider_code: str
    subject_key: str
    subject_kind: str
    fields: dict[str, Any]
    source_version: int
    changed_at: datetime | None


class ItemView(BaseModel):
    name: str
    type: str
    length: int | None


class ResourceView(BaseModel):
    resource_code: str
    provider_code: str
    name: str
    items: list[ItemView]
    key_item: str | None = Field(description="the data item holding the subject's identifier")
    key_kind: str | None = Field(
        description="the identifier the key item declares: credit_code (GB 32100) or citizen_id (GB 11643)"
    )
    update_cycle: str | None
    published: bool
    published_at: datetime
    last_change_at: datetime | None
    records: int
    sequence: int = Field(description="the last sequence number of the resource's change feed")

    @classmethod
    def of(cls, s: ResourceState) -> ResourceView:
        return cls(
            resource_code=s.schema.resource_code,
            provider_code=s.schema.provider_code,
            name=s.schema.name,
            items=[ItemView(name=i.name, type=i.type, length=i.length) for i in s.schema.items],
            key_item=s.schema.key_item,
            key_kind=s.schema.key_kind,
            update_cycle=s.schema.update_cycle,
            published=s.schema.published,
            published_at=s.published_at,
            last_change_at=s.last_change_at,
            records=s.records,
            sequence=s.sequence,
        )


class DigestView(BaseModel):
    records: int
    tops: list[str] = Field(description="256 top nodes; compare, then fetch the leaves under those that differ")


class RefusalView(BaseModel):
    change_id: str
    resource_code: str
    provider_code: str
    subject_key: str
    rule: str
    detail: str


class UploadView(BaseModel):
    sent: int


@dataclass(frozen=True)
class UploadedFile:
    """An uploaded CSV or XLSX file, copied to a file of its own that the upload worker process can open
    (the server keeps an upload in an unnamed temporary file)."""

    path: Path
    filename: str


@asynccontextmanager
async def kept(file: UploadFile) -> AsyncIterator[UploadedFile]:
    with tempfile.TemporaryDirectory(prefix="datashare-upload-") as folder:
        copy = UploadedFile(Path(folder) / "table", file.filename or "")
        await asyncio.to_thread(_copy, file.file, copy.path)
        yield copy


def _copy(source: BinaryIO, target: Path) -> None:
    source.seek(0)
    with target.open("wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)


def _record(r: Any) -> RecordView:
    return RecordView.model_validate(r, from_attributes=True)


def _uploads_busy() -> JSONResponse:
    """All upload slots taken: 503 in the shape of a missing dependency's, to be retried as that is."""
    body = {
        "detail": "as many uploads as the exchange takes at once are under way; retry later",
        "error": "ServiceUnavailable",
        "dependency": "uploads",
        "reason": "all upload slots taken",
    }
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def routers(uow: UnitOfWork, uploads: UploadSender, upload_slots: asyncio.Semaphore) -> list[APIRouter]:
    api = APIRouter(prefix="/resources", tags=["resources"])

    @api.get("", response_model=list[ResourceView], summary="Published resources the exchange holds")
    async def resources(_: ResourceReader) -> list[ResourceView]:
        return [ResourceView.of(s) for s in await uow.resources()]

    @api.get(
        "/stale",
        response_model=list[ResourceView],
        summary="Resources whose declared update cycle passed without any change",
    )
    async def stale(_: ResourceReader) -> list[ResourceView]:
        return [ResourceView.of(s) for s in await handlers.stale_resources(uow, datetime.now(UTC))]

    @api.get("/{resource_code:path}/changes", summary="The change feed: every stored change after `since`")
    async def changes(
        resource_code: Code,
        principal: RecordReader,
        since: Annotated[Position, Query(description="the last sequence number the caller holds")] = 0,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> list[dict[str, Any]]:
        return await handlers.changes_since(resource_code, since, limit, principal, uow)

    @api.get("/{resource_code:path}/digest/leaves", summary="Leaves under the given top nodes: [sum, count]")
    async def leaves(
        resource_code: Code, principal: RecordReader, top: Annotated[list[Top], Query(max_length=TOPS)]
    ) -> dict[int, list[list[int]]]:
        digest = await handlers.digest(resource_code, principal, uow)
        return {t: [list(leaf) for leaf in digest.leaves_under(t)] for t in handlers.check_tops(top)}

    @api.get("/{resource_code:path}/digest", response_model=DigestView, summary="The center's consistency digest")
    async def digest(resource_code: Code, principal: RecordReader) -> DigestView:
        found = await handlers.digest(resource_code, principal, uow)
        return DigestView(records=found.records, tops=found.tops())

    @api.get(
        "/{resource_code:path}/records/{subject_key}/history",
        summary="Every change the center received for a subject, applied or not",
    )
    async def history(resource_code: Code, subject_key: Code, principal: RecordReader) -> list[dict[str, Any]]:
        return await handlers.record_history(resource_code, subject_key, principal, uow)

    @api.get(
        "/{resource_code:path}/records/{subject_key}", response_model=RecordView, summary="A subject's current record"
    )
    async def record(resource_code: Code, subject_key: Code, principal: RecordReader) -> RecordView:
        return _record(await handlers.current_record(resource_code, subject_key, principal, uow))

    @api.get(
        "/{resource_code:path}/records",
        response_model=list[RecordView],
        summary="Records in the given key ranges (buckets), to repair a copy that differs there",
    )
    async def bucket_records(
        resource_code: Code, principal: RecordReader, bucket: Annotated[list[Bucket], Query(max_length=MAX_BUCKETS)]
    ) -> list[RecordView]:
        return [_record(r) for r in await handlers.bucket_records(resource_code, bucket, principal, uow)]

    @api.post(
        "/{resource_code:path}/uploads",
        status_code=202,
        response_model=UploadView,
        summary="Upload records as CSV or XLSX (for departments without an adapter); all rows or none",
    )
    async def upload(
        resource_code: str,
        file: UploadFile,
        principal: Uploader,
        delete: Annotated[list[str], Query(description="subject keys to delete")] = [],  # noqa: B006
    ) -> UploadView | JSONResponse:
        # Each upload is a worker process and a copy of the file: one more than the slots is refused at once.
        if upload_slots.locked():
            return _uploads_busy()
        # the guard authenticated the uploader; the changes go out signed by the exchange, in her name
        async with upload_slots, kept(file) as table:
            sent = await handlers.upload_rows(resource_code, table, delete, principal, uow, uploads)
        return UploadView(sent=sent)

    @api.get("/{resource_code:path}", response_model=ResourceView, summary="What the exchange holds of a resource")
    async def resource(resource_code: Code, _: ResourceReader) -> ResourceView:
        return ResourceView.of(await handlers.resource_state(resource_code, uow))

    others = APIRouter(tags=["records"])

    @others.get(
        "/subjects/{subject_key}/records",
        response_model=list[RecordView],
        summary="One subject's records across every resource the caller may read",
    )
    async def subject(subject_key: Code, principal: RecordReader) -> list[RecordView]:
        return [_record(r) for r in await handlers.subject_records(subject_key, principal, uow)]

    @others.get(
        "/refusals",
        response_model=list[RefusalView],
        summary="Data changes the center refused: findings against the provider (Art. 24(3))",
    )
    async def refusals(
        principal: RefusalReader,
        provider_code: Code | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[RefusalView]:
        found = await handlers.refusals(provider_code, principal, uow, limit)
        return [RefusalView.model_validate(r, from_attributes=True) for r in found]

    return [api, others]
