"""REST routes of the file-download channel and of publication consents (Art. 16, 18): a download is asked
for, followed while it runs, fetched; the IT office traces a leaked file back to its download; consumers ask
providers' consent to publish outside government, providers decide."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import AwareDatetime, BaseModel, Field

from common.fields import Code, Name, Text
from common.guard import Guard
from common.limits import MAX_ITEMS
from common.policy import Principal
from services.exchange.sharing import consents as consent_handlers
from services.exchange.sharing.adapters.download_files import rows_of
from services.exchange.sharing.consents import AskConsent, Consents, DecideConsent, PublicationConsent
from services.exchange.sharing.downloads import (
    MAX_SUBJECT_KEYS,
    Download,
    Downloads,
    ExportRequest,
    FileFormat,
    JobStatus,
    TraceMatch,
)

TRACE_MAX_BYTES = 16 << 20  # a traced file (or part of one) at most; rows beyond TRACE_ROWS are not read
TRACE_MAX_BODY = TRACE_MAX_BYTES + (64 << 10)  # the request: the file and its multipart framing, refused unread
MEDIA = {
    FileFormat.CSV: "text/csv; charset=utf-8",
    FileFormat.JSONL: "application/jsonl",
    FileFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    FileFormat.PACKAGE: "application/octet-stream",
}


async def provided_downloads(request: Request) -> Downloads:
    downloads: Downloads = request.app.state.downloads
    return downloads


async def provided_consents(request: Request) -> Consents:
    consents: Consents = request.app.state.consents
    return consents


DownloadsDep = Annotated[Downloads, Depends(provided_downloads)]
ConsentsDep = Annotated[Consents, Depends(provided_consents)]
Reader = Annotated[Principal, Depends(Guard("exchange.share.read"))]
Tracer = Annotated[Principal, Depends(Guard("exchange.download.trace"))]
Asker = Annotated[Principal, Depends(Guard("exchange.request.file"))]
ConsentReader = Annotated[Principal, Depends(Guard("exchange.request.read"))]
Decider = Annotated[Principal, Depends(Guard("exchange.request.decide"))]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=100_000)]


class DownloadIn(BaseModel):
    resource_code: Code
    grant_id: Code
    purpose: Annotated[Text, Field(min_length=1, description="the grant's purpose")]
    format: Literal[FileFormat.CSV, FileFormat.XLSX, FileFormat.JSONL] = FileFormat.CSV
    items: Annotated[list[Name], Field(max_length=MAX_ITEMS, description="default: every item the grant opens")] = []
    subject_keys: Annotated[
        list[Code], Field(max_length=MAX_SUBJECT_KEYS, description="only these subjects (default: all in scope)")
    ] = []
    changed_since: AwareDatetime | None = Field(default=None, description="only records changed since then")


class DownloadView(BaseModel):
    download_id: str
    resource_code: str
    grant_id: str
    format: FileFormat
    status: JobStatus
    rows_total: int = Field(description="records to look at (before the grant's row scope)")
    rows_done: int
    rows_written: int
    items: list[str]
    notice: str = Field(description="仅限政务内部使用, or the publication consent that covers the file")
    consent_id: str | None
    made_at: datetime
    expires_at: datetime | None = Field(description="when the file and this job are deleted")
    size: int
    sha256: str
    error: str | None
    file: str = Field(description="where to fetch the file once READY")

    @classmethod
    def of(cls, d: Download) -> DownloadView:
        w = d.watermark
        return cls(
            download_id=d.download_id, resource_code=w.resource_code, grant_id=w.grant_id, format=d.file_format,
            status=d.status, rows_total=d.rows_total, rows_done=d.rows_done, rows_written=d.rows_written,
            items=list(d.items), notice=w.notice, consent_id=w.consent_id, made_at=w.made_at,
            expires_at=d.expires_at, size=d.size, sha256=d.sha256, error=d.error,
            file=f"/downloads/{d.download_id}/file",
        )  # fmt: skip


class TracedDownload(BaseModel):
    download_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    grant_id: str
    requested_by: str
    made_at: datetime
    notice: str
    rows_matched: int = Field(description="rows whose mark is this download's for their subject")
    rows_marked: int = Field(description="rows of the file carrying a mark")
    row_numbers: list[int] = Field(description="the first matching rows, counted from 1 as the file was read")

    @classmethod
    def of(cls, m: TraceMatch) -> TracedDownload:
        w = m.download
        return cls(
            download_id=w.download_id, resource_code=w.resource_code, provider_code=w.provider_code,
            consumer_code=w.consumer_code, grant_id=w.grant_id, requested_by=w.requested_by, made_at=w.made_at,
            notice=w.notice, rows_matched=m.rows_matched, rows_marked=m.rows_marked,
            row_numbers=list(m.row_numbers),
        )  # fmt: skip


class TraceView(BaseModel):
    rows_read: int
    downloads: list[TracedDownload]


downloads = APIRouter(prefix="/downloads", tags=["file download"])


@downloads.post("", status_code=202, response_model=DownloadView, summary="Export granted data to a file (a job)")
async def start_download(body: DownloadIn, principal: Reader, channel: DownloadsDep) -> DownloadView:
    request = ExportRequest(
        body.resource_code, body.grant_id, body.purpose, body.format, tuple(body.items), tuple(body.subject_keys),
        body.changed_since,
    )  # fmt: skip
    return DownloadView.of(await channel.start(request, principal))


@downloads.get("", response_model=list[DownloadView], summary="My department's downloads not yet expired")
async def list_downloads(
    principal: Reader, channel: DownloadsDep, offset: Offset = 0, limit: Limit = 50
) -> list[DownloadView]:
    return [DownloadView.of(d) for d in await channel.store.downloads(principal.department_code, offset, limit)]


@downloads.post(
    "/trace",
    response_model=TraceView,
    summary="The IT office: which download(s) a file, or part of one, came from",
    max_body_size=TRACE_MAX_BODY,
)
async def trace(file: UploadFile, _: Tracer, channel: DownloadsDep) -> TraceView:
    content = await file.read(TRACE_MAX_BYTES + 1)
    if len(content) > TRACE_MAX_BYTES:
        raise HTTPException(413, f"a traced file may have at most {TRACE_MAX_BYTES >> 20} MiB; send a part of it")
    try:
        rows = await asyncio.to_thread(rows_of, content)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    matches = await channel.trace(rows)
    return TraceView(rows_read=len(rows), downloads=[TracedDownload.of(m) for m in matches])


@downloads.get("/{download_id}", response_model=DownloadView, summary="A download's (or package's) progress")
async def get_download(download_id: Code, principal: Reader, channel: DownloadsDep) -> DownloadView:
    return DownloadView.of(await channel.status(download_id, principal))


@downloads.get(
    "/{download_id}/file",
    response_class=FileResponse,
    summary="The finished file: checked against its grant again and recorded as an access",
)
async def fetch_download(download_id: Code, principal: Reader, channel: DownloadsDep) -> FileResponse:
    download, path = await channel.fetch(download_id, principal)
    return FileResponse(path, media_type=MEDIA[download.file_format], filename=download.file_name)


# -- publication consents (Art. 18) ------------------------------------------------------------------------


class ConsentIn(BaseModel):
    grant_id: Code
    items: Annotated[list[Name], Field(max_length=MAX_ITEMS, description="default: every item of the grant")] = []
    audience: Annotated[Text, Field(min_length=1, description="where it would be published")]
    purpose: Annotated[Text, Field(min_length=1, description="why")]


class ConsentDecisionIn(BaseModel):
    decision: Literal["APPROVED", "DENIED"]
    reasons: Annotated[Text, Field(min_length=1)]


class ConsentView(BaseModel):
    consent_id: str
    grant_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    items: list[str]
    audience: str
    purpose: str
    requested_by: str
    requested_on: date
    decide_by: date = Field(description="working days after the request (the platform's calendar)")
    status: str
    reasons: str | None
    decided_by: str | None
    decided_on: date | None
    late: bool

    @classmethod
    def of(cls, c: PublicationConsent) -> ConsentView:
        return cls(
            consent_id=c.consent_id, grant_id=c.grant_id, resource_code=c.resource_code,
            provider_code=c.provider_code, consumer_code=c.consumer_code, items=list(c.items), audience=c.audience,
            purpose=c.purpose, requested_by=c.requested_by, requested_on=c.requested_on, decide_by=c.decide_by,
            status=c.status.value, reasons=c.reasons, decided_by=c.decided_by, decided_on=c.decided_on,
            late=c.late,
        )  # fmt: skip


consents = APIRouter(prefix="/consents", tags=["publication consent"])


@consents.post("", status_code=201, response_model=ConsentView, summary="Ask the provider's consent to publish")
async def ask_consent(body: ConsentIn, principal: Asker, held: ConsentsDep) -> ConsentView:
    command = AskConsent(body.grant_id, tuple(body.items), body.audience, body.purpose)
    return ConsentView.of(await consent_handlers.ask(command, principal, held))


@consents.get("", response_model=list[ConsentView], summary="Consents: my department's, or all for oversight")
async def list_consents(
    principal: ConsentReader,
    held: ConsentsDep,
    side: Annotated[Literal["consumer", "provider"] | None, Query(alias="as")] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> list[ConsentView]:
    found = await consent_handlers.listed(side, principal, held, offset, limit)
    return [ConsentView.of(c) for c in found]


@consents.get("/{consent_id}", response_model=ConsentView, summary="A consent: its two departments or oversight")
async def get_consent(consent_id: Code, principal: ConsentReader, held: ConsentsDep) -> ConsentView:
    return ConsentView.of(await consent_handlers.get(consent_id, principal, held))


@consents.post("/{consent_id}/decision", response_model=ConsentView, summary="The provider decides, with reasons")
async def decide_consent(
    consent_id: Code, body: ConsentDecisionIn, principal: Decider, held: ConsentsDep
) -> ConsentView:
    command = DecideConsent(consent_id, body.decision == "APPROVED", body.reasons)
    return ConsentView.of(await consent_handlers.decide(command, principal, held))


ROUTERS = [downloads, consents]
