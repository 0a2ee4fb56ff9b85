"""The file-download channel (Art. 16, 18): a consumer exports what its grant opens as a CSV, XLSX or JSON
Lines file, built by a job that streams the records (a cursor in, a writer thread out: memory stays bounded
whatever the size), kept for a while and then deleted. Standard library only: the adapters store jobs,
write and read files.

Each file is watermarked for its download (consumer, grant, time):
- in its metadata: a first comment line (CSV), a first metadata record (JSON Lines), document properties
  and a 说明 sheet (XLSX), with the notice "仅限政务内部使用" unless an approved publication consent covers
  the file's items (then the consent, named);
- in every row: the column 水印校验码 = "WM" + the first 64 bits of HMAC-SHA256(K_d, row key), where K_d =
  HMAC-SHA256(secret, "download:" + download id) and the row key is the subject column's value (the subject
  key, or the grant's pseudonym of it when the grant does not show the key in clear). A row copied into any
  other file — with other rows, in any order, as CSV, XLSX or JSON Lines — still carries its download: the
  trace recomputes the mark for each download it knows and counts the rows that agree. It does not survive
  dropping the mark or subject column, nor a subject key retyped (an all-digit citizen ID turned into a
  number by a spreadsheet).

Every access goes through the API channel's one check (`ApiChannel.open`, channel FILE_DOWNLOAD): the grant's
items, rows, purpose and period; asking for a file and fetching it are each checked, and a fetch is recorded
as a DataAccessed with the number of subjects in the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from common.errors import Conflict, Invalid, NotFound
from common.identifiers import InvalidIdentifier
from common.policy import Principal
from services.exchange.domain.records import SubjectRecord
from services.exchange.sharing.access import AccessResult, ApiChannel, Call, Opened, Operation
from services.exchange.sharing.consents import PublicationConsent
from services.exchange.sharing.grants import Channel, pseudonym

log = logging.getLogger(__name__)

INTERNAL_ONLY = "仅限政务内部使用"
SUBJECT_COLUMN = "主体标识"
MARK_COLUMN = "水印校验码"
MARK = re.compile(r"^WM[0-9a-f]{16}$")
JOBS_AT_ONCE = 2  # exports run at once per process
ROWS_PER_TURN = 1000  # rows handed to the writer thread at once, and between two progress saves
MAX_SUBJECT_KEYS = 10_000
TRACE_SAMPLE = 20  # marked rows tried against every known download to find the ones the file came from
TRACE_ROWS = 100_000  # rows of a traced file read at most
TRACE_DOWNLOADS = 20_000  # known downloads tried at most (the most recent)


class FileFormat(StrEnum):
    CSV = "CSV"
    XLSX = "XLSX"
    JSONL = "JSONL"

    @property
    def suffix(self) -> str:
        return {"CSV": "csv", "XLSX": "xlsx", "JSONL": "jsonl"}[self.value]


class JobStatus(StrEnum):
    RUNNING = "RUNNING"
    READY = "READY"
    FAILED = "FAILED"


# -- the watermark -----------------------------------------------------------------------------------------


def download_key(secret: bytes, download_id: str) -> bytes:
    return hmac.new(secret, f"download:{download_id}".encode(), hashlib.sha256).digest()


def row_mark(key: bytes, row_key: str) -> str:
    return "WM" + hmac.new(key, row_key.encode(), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class Watermark:
    """Who a file was made for: kept (as the trace's ledger) after the file and its job are gone."""

    download_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    grant_id: str
    requested_by: str
    made_at: datetime
    notice: str
    consent_id: str | None = None

    def lines(self) -> list[tuple[str, str]]:
        return [
            ("说明", self.notice),
            ("下载编号", self.download_id),
            ("资源代码", self.resource_code),
            ("提供部门", self.provider_code),
            ("使用部门", self.consumer_code),
            ("授权编号", self.grant_id),
            ("下载人", self.requested_by),
            ("生成时间", self.made_at.isoformat(timespec="seconds")),
        ]


def notice_of(consent: PublicationConsent | None) -> str:
    if consent is None:
        return f"{INTERNAL_ONLY}（internal use only; publishing outside government needs the provider's consent)"
    return f"经提供部门同意可对外发布（公开发布同意书 {consent.consent_id}：{consent.audience}）"


@dataclass(frozen=True)
class TraceMatch:
    download: Watermark
    rows_matched: int
    rows_marked: int  # rows of the file carrying a mark at all
    row_numbers: tuple[int, ...]  # the first matching rows, counted from 1 in the file as read


def trace(rows: Sequence[Sequence[str]], known: Iterable[Watermark], secret: bytes) -> list[TraceMatch]:
    """The downloads the rows came from: a few marked rows are tried in every column against every known
    download, then each download found is counted over all rows. CPU-bound: run it in a thread."""
    marked = [(n, row, cell) for n, row in enumerate(rows, 1) for cell in row if MARK.match(cell.strip())]
    if not marked:
        return []
    found: dict[str, tuple[Watermark, bytes]] = {}
    sample = marked[:TRACE_SAMPLE]
    for watermark in known:
        key = download_key(secret, watermark.download_id)
        if any(row_mark(key, value.strip()) == mark.strip() for _, row, mark in sample for value in row):
            found[watermark.download_id] = (watermark, key)
    matches = []
    for watermark, key in found.values():
        numbers = [n for n, row, mark in marked if any(row_mark(key, v.strip()) == mark.strip() for v in row)]
        matches.append(TraceMatch(watermark, len(numbers), len(marked), tuple(numbers[:20])))
    return sorted(matches, key=lambda m: -m.rows_matched)


# -- the job -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    download_id: str
    watermark: Watermark
    purpose: str
    file_format: FileFormat
    items: tuple[str, ...]
    subject_keys: tuple[str, ...]  # empty: every subject the grant opens
    changed_since: datetime | None
    status: JobStatus
    rows_total: int  # records to look at (before the grant's row scope)
    rows_done: int = 0  # records looked at so far
    rows_written: int = 0
    size: int = 0
    sha256: str = ""
    error: str | None = None
    expires_at: datetime | None = None

    @property
    def file_name(self) -> str:
        return f"{self.download_id}.{self.file_format.suffix}"


@dataclass(frozen=True)
class ExportRequest:
    resource_code: str
    grant_id: str
    purpose: str
    file_format: FileFormat
    items: tuple[str, ...] = ()
    subject_keys: tuple[str, ...] = ()
    changed_since: datetime | None = None


class RowWriter(Protocol):
    """A file being written, row by row; its methods block (the job calls them in a thread)."""

    def write(self, rows: list[list[Any]]) -> None: ...

    def finish(self) -> tuple[int, str]:
        """Close and move the file into place; its size and SHA-256."""
        ...

    def discard(self) -> None: ...


class DownloadFiles(Protocol):
    def writer(self, download: Download, columns: list[str]) -> RowWriter:
        """Start the file (blocking: called in a thread), its metadata written first."""
        ...

    def path(self, download: Download) -> str: ...

    def remove(self, file_name: str) -> None: ...


class DownloadStore(Protocol):
    async def add(self, download: Download) -> None:
        """Store the job and its watermark (the ledger the trace reads, kept after the job)."""
        ...

    async def download(self, download_id: str) -> Download | None: ...

    async def downloads(self, consumer_code: str, offset: int, limit: int) -> list[Download]: ...

    async def progress(self, download_id: str, rows_done: int, rows_written: int) -> None: ...

    async def finish(self, download: Download) -> None:
        """Store the job's end (READY or FAILED) with its expiry."""
        ...

    async def expired(self, now: datetime) -> list[Download]: ...

    async def next_expiry(self) -> datetime | None: ...

    async def forget(self, download_id: str) -> None:
        """Delete the job (its watermark stays in the ledger)."""
        ...

    async def watermarks(self, limit: int) -> list[Watermark]:
        """The most recent downloads' watermarks."""
        ...


class Approved(Protocol):
    async def approved(self, resource_code: str, consumer_code: str) -> list[PublicationConsent]: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class RecordCounts(Protocol):
    async def record_count(self, resource_code: str) -> int:
        """How many current records the center holds of the resource."""
        ...


class NotReady(Conflict):
    pass


@dataclass
class Downloads:
    """The download channel's handlers with what they need, built once in the service's bootstrap."""

    channel: ApiChannel  # the one check of token, grant, purpose, items, rows and period, and the access log
    store: DownloadStore
    files: DownloadFiles
    consents: Approved
    counts: RecordCounts
    clock: Clock
    secret: bytes
    keep: timedelta  # how long a finished file is kept
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    running: set[asyncio.Task] = field(default_factory=set)
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(JOBS_AT_ONCE))
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, request: ExportRequest, principal: Principal) -> Download:
        """Check the grant as every channel does, then start the job; its state is read at GET /downloads/<id>."""
        call = Call(
            principal, request.resource_code, request.grant_id, request.purpose, request.items, Channel.FILE_DOWNLOAD
        )
        keys = tuple(k.strip().upper() for k in request.subject_keys)
        if len(keys) > MAX_SUBJECT_KEYS:
            reason = f"at most {MAX_SUBJECT_KEYS} subjects per download; this one names {len(keys)}"
            await self.channel.refuse(call, Operation.DOWNLOAD, reason, subjects=len(keys))
            raise Invalid("subject_keys", reason)
        opened = await self.channel.open(call, Operation.DOWNLOAD, len(keys), keys)
        for position, key in enumerate(keys):
            try:
                opened.schema.identify(key)
            except InvalidIdentifier as exc:
                raise Invalid(
                    "subject_keys", f"#{position + 1} is not a subject key of this resource: {exc.rule}"
                ) from None
        consent = await self._covering(request.resource_code, principal.department_code, opened.items)
        now = self.clock.now()
        download_id = self.new_id()
        watermark = Watermark(
            download_id, request.resource_code, opened.schema.provider_code, principal.department_code,
            opened.grant.grant_id, principal.subject, now, notice_of(consent),
            consent.consent_id if consent else None,
        )  # fmt: skip
        total = len(keys) if keys else await self.counts.record_count(request.resource_code)
        download = Download(
            download_id, watermark, call.purpose or "", request.file_format, opened.items, keys,
            request.changed_since, JobStatus.RUNNING, total, expires_at=now + self.keep,
        )  # fmt: skip
        await self.store.add(download)
        task = asyncio.create_task(self._run(download, opened), name=f"download-{download_id}")
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return download

    async def _covering(
        self, resource_code: str, consumer_code: str, items: tuple[str, ...]
    ) -> PublicationConsent | None:
        """An approved publication consent covering every item of the file, if there is one."""
        approved = await self.consents.approved(resource_code, consumer_code)
        return next((c for c in approved if c.covers(resource_code, consumer_code, items)), None)

    async def _run(self, download: Download, opened: Opened) -> None:
        async with self.slots:  # a few jobs at once per process: the others wait, RUNNING at 0 rows
            await self._export(download, opened)

    async def _export(self, download: Download, opened: Opened) -> None:
        columns = [SUBJECT_COLUMN, *download.items, MARK_COLUMN]
        key = download_key(self.secret, download.download_id)
        writer: RowWriter | None = None
        done = written = 0
        try:
            writer = await asyncio.to_thread(self.files.writer, download, columns)
            turn: list[SubjectRecord] = []
            async for record in self._records(download):
                turn.append(record)
                if len(turn) >= ROWS_PER_TURN:
                    done += len(turn)
                    written += await asyncio.to_thread(self._write, writer, turn, opened, download, key)
                    turn = []
                    await self.store.progress(download.download_id, done, written)
            done += len(turn)
            written += await asyncio.to_thread(self._write, writer, turn, opened, download, key)
            size, digest = await asyncio.to_thread(writer.finish)
            ended = replace(
                download, status=JobStatus.READY, rows_done=done, rows_written=written, size=size, sha256=digest,
                expires_at=self.clock.now() + self.keep,
            )  # fmt: skip
        except Exception as exc:  # the job's end is stored whatever happened: no job stays RUNNING for ever
            log.exception("download %s failed", download.download_id)
            if writer is not None:
                await asyncio.to_thread(writer.discard)
            ended = replace(
                download, status=JobStatus.FAILED, rows_done=done, rows_written=written, error=str(exc)[:500],
                expires_at=self.clock.now() + self.keep,
            )  # fmt: skip
        await self.store.finish(ended)
        self.woken.set()

    def _write(
        self, writer: RowWriter, turn: list[SubjectRecord], opened: Opened, download: Download, key: bytes
    ) -> int:
        """One turn's rows, in the writer's thread: the scope, the view and the marks are computed off the loop."""
        rows = [
            self._row(record, opened, download, key)
            for record in turn
            if opened.covers(record) and _changed_since(record, download.changed_since)
        ]
        writer.write(rows)
        return len(rows)

    def _records(self, download: Download) -> AsyncIterator[SubjectRecord]:
        if download.subject_keys:
            return _listed(self.channel, download.watermark.resource_code, list(download.subject_keys))
        return self.channel.data.records_in(download.watermark.resource_code)

    def _row(self, record: SubjectRecord, opened: Opened, download: Download, key: bytes) -> list[Any]:
        subject = (
            record.subject_key
            if opened.keys_in_clear
            else pseudonym(record.subject_key, opened.grant.grant_id, self.secret)
        )
        fields = opened.view(record.fields)
        return [subject, *(fields.get(name) for name in download.items), row_mark(key, subject)]

    async def status(self, download_id: str, principal: Principal) -> Download:
        download = await self.store.download(download_id)
        if download is None or download.watermark.consumer_code != principal.department_code:
            raise NotFound("download_id", "no download of your department has this id (or it expired)")
        return download

    async def fetch(self, download_id: str, principal: Principal) -> tuple[Download, str]:
        """The finished file, checked against the grant again (revoked or expired since: refused) and recorded
        as an access of the file's subjects."""
        download = await self.status(download_id, principal)
        watermark = download.watermark
        call = Call(
            principal, watermark.resource_code, watermark.grant_id, download.purpose, download.items,
            Channel.FILE_DOWNLOAD,
        )  # fmt: skip
        opened = await self.channel.open(call, Operation.DOWNLOAD, len(download.subject_keys), download.subject_keys)
        if download.status is not JobStatus.READY:
            raise NotReady("download_id", f"the file is {download.status.value}: {download.error or 'not ready'}")
        count = download.rows_written
        await self.channel._log(call, Operation.DOWNLOAD, opened, AccessResult.SERVED, (), count, count)
        return download, self.files.path(download)

    async def trace(self, rows: Sequence[Sequence[str]]) -> list[TraceMatch]:
        known = await self.store.watermarks(TRACE_DOWNLOADS)
        return await asyncio.to_thread(trace, rows, known, self.secret)

    # -- expiry ----------------------------------------------------------------------------------------------

    async def expire(self) -> None:
        """For as long as the service runs: delete files and jobs past their time, then sleep until the next
        one is due or a job ends here. A job ended on another replica is seen at the latest `keep` later."""
        while True:
            self.woken.clear()
            for download in await self.store.expired(self.clock.now()):
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(self.files.remove, download.file_name)
                await self.store.forget(download.download_id)
            upcoming = await self.store.next_expiry()
            now = self.clock.now()
            wait = self.keep.total_seconds() if upcoming is None else (upcoming - now).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.woken.wait(), max(0.05, min(wait, self.keep.total_seconds())))


def _changed_since(record: SubjectRecord, since: datetime | None) -> bool:
    if since is None:
        return True
    changed = record.changed_at
    if changed is None:
        return False
    if changed.tzinfo is None:  # stored in UTC
        changed = changed.replace(tzinfo=UTC)
    return changed >= since


async def _listed(channel: ApiChannel, resource_code: str, keys: list[str]) -> AsyncIterator[SubjectRecord]:
    for start in range(0, len(keys), ROWS_PER_TURN):
        for record in await channel.data.records_of(resource_code, keys[start : start + ROWS_PER_TURN]):
            yield record
