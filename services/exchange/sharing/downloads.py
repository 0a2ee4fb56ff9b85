"""The file-download channel (Art. 16, 18): a consumer exports what its grant opens as a CSV, XLSX or JSON
Lines file, built by a job that streams the records (a cursor in, a writer thread out: memory stays bounded
whatever the size), kept for a while and then deleted. Standard library only: the adapters store jobs,
write and read files.

Each file is watermarked for its download (consumer, grant, time):
- in its metadata: a first comment line (CSV), a first metadata record (JSON Lines), document properties
  and a 说明 sheet (XLSX), with the notice "仅限政务内部使用" unless an approved publication consent covers
  the file's items (then the consent, named);
- in every row: the column 水印校验码 = "WM" + the download's tag (24 bits of SHA-256 of its id, 6 hex digits)
  + the first 64 bits of HMAC-SHA256(K_d, row key), where K_d = HMAC-SHA256(secret, "download:" + download
  id) and the row key is the subject column's value (the subject key, or the grant's pseudonym of it when the
  grant does not show the key in clear). A row copied into any other file — with other rows, in any order, as
  CSV, XLSX, JSON Lines or text pasted with tabs — still carries its download: the trace finds the marks in
  every row, looks the tags up in the ledger (an index: a tag names a handful of downloads among millions)
  and keeps the rows whose HMAC proves them, so every download ever made is traced, each with its rows, in
  time proportional to the rows. It does not survive dropping the mark or subject column, nor a subject key
  retyped (an all-digit citizen ID turned into a number by a spreadsheet).

Every access goes through the API channel's one check (`ApiChannel.open`, channel FILE_DOWNLOAD): the grant's
items, rows, purpose and period; asking for a file and fetching it are each checked, and a fetch is recorded
as a DataAccessed with the number of subjects in the file.

An offline package (sharing.packages) is made by the same job, kept and deleted as a file is: its format is
PACKAGE, its rows go into a package instead of a table (a `JobFile`), and it is checked and recorded through
the OFFLINE channel.
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
from services.exchange.sharing.access import ApiChannel, Call, Opened, Operation
from services.exchange.sharing.consents import Approved, PublicationConsent, covering, notice_of
from services.exchange.sharing.grants import Channel, pseudonym

log = logging.getLogger(__name__)

SUBJECT_COLUMN = "主体标识"
MARK_COLUMN = "水印校验码"
TAG_DIGITS = 6  # hex digits of a download's tag: 24 bits
MARK = re.compile(r"(?<![0-9A-Za-z])WM([0-9a-f]{6})([0-9a-f]{16})(?![0-9A-Za-z])")
SEPARATORS = re.compile(r"[\t,;|]")  # cells pasted as text into one cell: split again to find the subject
JOBS_AT_ONCE = 2  # exports run at once per process
ROWS_PER_TURN = 1000  # rows handed to the writer thread at once, and between two progress saves
MAX_SUBJECT_KEYS = 10_000
TRACE_ROWS = 100_000  # rows of a traced file read at most
TRACE_ROW_NUMBERS = 100  # matching rows named per download found (all are counted)
PART = ".part"  # a file being written, next to where it will be
WORK = ".work"  # a job's work folder (a package's parts before they are sealed), next to its file
STALE_BEATS = 3  # a RUNNING job whose process has not said it is alive for this many beats is abandoned


class FileFormat(StrEnum):
    CSV = "CSV"
    XLSX = "XLSX"
    JSONL = "JSONL"
    PACKAGE = "PACKAGE"  # an offline exchange package (sharing.packages)

    @property
    def suffix(self) -> str:
        return {"CSV": "csv", "XLSX": "xlsx", "JSONL": "jsonl", "PACKAGE": "dspkg"}[self.value]

    @property
    def access(self) -> tuple[Channel, Operation]:
        """The channel a job of this format is checked through, and the operation its fetch is recorded as."""
        if self is FileFormat.PACKAGE:
            return Channel.OFFLINE, Operation.PACKAGE
        return Channel.FILE_DOWNLOAD, Operation.DOWNLOAD


class JobStatus(StrEnum):
    RUNNING = "RUNNING"
    READY = "READY"
    FAILED = "FAILED"


# -- the watermark -----------------------------------------------------------------------------------------


def download_key(secret: bytes, download_id: str) -> bytes:
    return hmac.new(secret, f"download:{download_id}".encode(), hashlib.sha256).digest()


def download_tag(download_id: str) -> str:
    """24 bits naming the download among others (not a secret: the download's id is in the file's metadata);
    the trace looks candidates up by it instead of trying every download."""
    return hashlib.sha256(f"download-tag:{download_id}".encode()).hexdigest()[:TAG_DIGITS]


def row_mark(key: bytes, tag: str, row_key: str) -> str:
    return "WM" + tag + hmac.new(key, row_key.encode(), hashlib.sha256).hexdigest()[:16]


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

    @property
    def tag(self) -> str:
        return download_tag(self.download_id)

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


@dataclass(frozen=True)
class TraceMatch:
    download: Watermark
    rows_matched: int
    rows_marked: int  # rows of the file carrying a mark at all
    row_numbers: tuple[int, ...]  # the first matching rows, counted from 1 in the file as read


def tags_in(rows: Sequence[Sequence[str]]) -> set[str]:
    """The download tags the rows' marks carry: what the trace looks up in the ledger."""
    return {m.group(1) for row in rows for cell in row for m in MARK.finditer(cell)}


def trace(rows: Sequence[Sequence[str]], known: Iterable[Watermark], secret: bytes) -> list[TraceMatch]:
    """The downloads the rows came from, each with its rows: every mark of every row, checked only against
    the downloads its tag names (`known` need hold no other: the ledger's index finds them). A row counts for
    a download when one of its values — a cell, or a piece of a cell holding pasted text — is the subject the
    mark was computed for. CPU-bound: run it in a thread."""
    by_tag: dict[str, list[tuple[Watermark, bytes]]] = {}
    for watermark in known:
        by_tag.setdefault(watermark.tag, []).append((watermark, download_key(secret, watermark.download_id)))
    marked = 0
    numbers: dict[str, list[int]] = {}
    found: dict[str, Watermark] = {}
    for n, row in enumerate(rows, 1):
        marks = [m for cell in row for m in MARK.finditer(cell)]
        if not marks:
            continue
        marked += 1
        values = {v.strip() for cell in row for v in (cell, *SEPARATORS.split(cell))} - {""}
        for m in marks:
            for watermark, key in by_tag.get(m.group(1), ()):
                if any(hmac.compare_digest(row_mark(key, m.group(1), v), m.group(0)) for v in values):
                    found[watermark.download_id] = watermark
                    rows_of_it = numbers.setdefault(watermark.download_id, [])
                    if not rows_of_it or rows_of_it[-1] != n:
                        rows_of_it.append(n)
    matches = [TraceMatch(w, len(numbers[d]), marked, tuple(numbers[d][:TRACE_ROW_NUMBERS])) for d, w in found.items()]
    return sorted(matches, key=lambda m: (-m.rows_matched, m.download.download_id))


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
    alive_at: datetime | None = None  # when the process running the job last said it was alive
    named: tuple[str, ...] = ()  # the subjects its fetch names (a package's first rows'), else `subject_keys`

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

    def write(self, rows: list[Any]) -> None: ...

    def finish(self) -> tuple[int, str]:
        """Close and move the file into place; its size and SHA-256."""
        ...

    def discard(self) -> None: ...


class JobFile(Protocol):
    """What a job's rows become: a download's table (`TableFile`) or an offline package (sharing.packages)."""

    def open(self) -> RowWriter:
        """Start the file (blocking: called in a thread)."""
        ...

    def row(self, record: SubjectRecord) -> Any:
        """A record in the grant's scope as the file holds it (called in the writer's thread)."""
        ...

    @property
    def named(self) -> tuple[str, ...]:
        """The subjects the file's access names (empty: those the download listed)."""
        ...


class DownloadFiles(Protocol):
    def writer(self, download: Download, columns: list[str]) -> RowWriter:
        """Start the file (blocking: called in a thread), its metadata written first."""
        ...

    def path(self, download: Download) -> str: ...

    def remove(self, file_name: str) -> None:
        """Delete the file, its part and its work folder, whichever exist."""
        ...

    def parts(self, older_than: datetime) -> list[str]:
        """Names of the parts (files being written) and work folders last changed before then."""
        ...


class DownloadStore(Protocol):
    async def add(self, download: Download) -> None:
        """Store the job and its watermark (the ledger the trace reads, kept after the job)."""
        ...

    async def download(self, download_id: str) -> Download | None: ...

    async def downloads(self, consumer_code: str, offset: int, limit: int) -> list[Download]: ...

    async def progress(self, download_id: str, rows_done: int, rows_written: int, at: datetime) -> None: ...

    async def alive(self, download_ids: list[str], at: datetime) -> None:
        """The jobs this process runs (or holds waiting for a slot) are alive."""
        ...

    async def abandoned(self, before: datetime) -> list[Download]:
        """RUNNING jobs not said alive since then: their process stopped (killed, restarted) mid-job."""
        ...

    async def finish(self, download: Download) -> None:
        """Store the job's end (READY or FAILED) with its expiry."""
        ...

    async def expired(self, now: datetime) -> list[Download]:
        """Jobs past their expiry that are not RUNNING (a running job's file is not yet in place)."""
        ...

    async def next_expiry(self) -> datetime | None: ...

    async def forget(self, download_id: str) -> None:
        """Delete the job (its watermark stays in the ledger)."""
        ...

    async def tagged(self, tags: set[str]) -> list[Watermark]:
        """The watermarks of every download ever made whose tag is one of these (an index)."""
        ...


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
    beat: timedelta = timedelta(minutes=10)  # how often running jobs are said alive (and abandoned ones looked for)
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    running: set[asyncio.Task] = field(default_factory=set)
    held: set[str] = field(default_factory=set)  # ids of the jobs this process runs or holds waiting
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(JOBS_AT_ONCE))
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, request: ExportRequest, principal: Principal) -> Download:
        """Check the grant as every channel does, then start the job; its state is read at GET /downloads/<id>."""
        if request.file_format is FileFormat.PACKAGE:
            raise Invalid("format", "a package is made at POST /offline/packages/<resource code>")
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
                reason = f"#{position + 1} is not a subject key of this resource: {exc.rule}"
                await self.channel.refuse(call, Operation.DOWNLOAD, reason, subjects=len(keys))
                raise Invalid("subject_keys", reason) from None
        consent = await self.covering(opened, principal.department_code)
        return await self.launch(
            opened, principal, call.purpose or "", request.file_format, consent,
            lambda download: TableFile(download, opened, self.files, self.secret), keys, request.changed_since,
        )  # fmt: skip

    async def launch(
        self,
        opened: Opened,
        principal: Principal,
        purpose: str,
        file_format: FileFormat,
        consent: PublicationConsent | None,
        file_of: Callable[[Download], JobFile],
        keys: tuple[str, ...] = (),
        changed_since: datetime | None = None,
    ) -> Download:
        """Store the job of a call the grant opened and start it: its rows go into `file_of(job)`."""
        now = self.clock.now()
        download_id = self.new_id()
        watermark = Watermark(
            download_id, opened.schema.resource_code, opened.schema.provider_code, principal.department_code,
            opened.grant.grant_id, principal.subject, now, notice_of(consent),
            consent.consent_id if consent else None,
        )  # fmt: skip
        total = len(keys) if keys else await self.counts.record_count(opened.schema.resource_code)
        download = Download(
            download_id, watermark, purpose, file_format, opened.items, keys,
            changed_since, JobStatus.RUNNING, total, expires_at=now + self.keep, alive_at=now,
        )  # fmt: skip
        await self.store.add(download)
        self.held.add(download_id)
        task = asyncio.create_task(self._run(download, opened, file_of(download)), name=f"download-{download_id}")
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return download

    async def covering(self, opened: Opened, consumer_code: str) -> PublicationConsent | None:
        """An approved publication consent of the grant covering every item of the file, if there is one."""
        approved = await self.consents.approved(opened.schema.resource_code, consumer_code)
        return covering(approved, opened.grant.grant_id, opened.schema.resource_code, consumer_code, items_held(opened))

    async def _run(self, download: Download, opened: Opened, file: JobFile) -> None:
        try:
            async with self.slots:  # a few jobs at once per process: the others wait, RUNNING at 0 rows
                await self._export(download, opened, file)
        finally:
            self.held.discard(download.download_id)

    async def _export(self, download: Download, opened: Opened, file: JobFile) -> None:
        writer: RowWriter | None = None
        done = written = 0
        try:
            writer = await asyncio.to_thread(file.open)
            turn: list[SubjectRecord] = []
            async for record in self._records(download):
                turn.append(record)
                if len(turn) >= ROWS_PER_TURN:
                    done += len(turn)
                    written += await asyncio.to_thread(self._write, writer, turn, opened, download, file)
                    turn = []
                    await self.store.progress(download.download_id, done, written, self.clock.now())
            done += len(turn)
            written += await asyncio.to_thread(self._write, writer, turn, opened, download, file)
            size, digest = await asyncio.to_thread(writer.finish)
            ended = replace(
                download, status=JobStatus.READY, rows_done=done, rows_written=written, size=size, sha256=digest,
                expires_at=self.clock.now() + self.keep, named=file.named,
            )  # fmt: skip
        except Exception as exc:  # the job's end is stored whatever happened: no job stays RUNNING for ever
            log.exception("download %s failed", download.download_id)
            if writer is not None:
                await asyncio.to_thread(writer.discard)
            ended = replace(
                download, status=JobStatus.FAILED, rows_done=done, rows_written=written, error=str(exc)[:500],
                expires_at=self.clock.now() + self.keep,
            )  # fmt: skip
        except BaseException:  # cancelled (the service stopping): the part goes, the job's end is stored
            await self._cancelled(download, writer, done, written)
            raise
        await self.store.finish(ended)
        self.woken.set()

    async def _cancelled(self, download: Download, writer: RowWriter | None, done: int, written: int) -> None:
        ended = replace(
            download, status=JobStatus.FAILED, rows_done=done, rows_written=written,
            error="cancelled: the service stopped during the job", expires_at=self.clock.now() + self.keep,
        )  # fmt: skip
        try:
            if writer is not None:
                await asyncio.to_thread(writer.discard)
            else:
                await asyncio.to_thread(self.files.remove, download.file_name)
            await self.store.finish(ended)
        except Exception:  # the database may be gone already: the abandoned-job sweep ends it later
            log.exception("download %s: its cancellation was not recorded", download.download_id)

    @staticmethod
    def _write(writer: RowWriter, turn: list[SubjectRecord], opened: Opened, download: Download, file: JobFile) -> int:
        """One turn's rows, in the writer's thread: the scope, the view and the marks are computed off the loop."""
        rows = [
            file.row(record)
            for record in turn
            if opened.covers(record) and _changed_since(record, download.changed_since)
        ]
        writer.write(rows)
        return len(rows)

    def _records(self, download: Download) -> AsyncIterator[SubjectRecord]:
        if download.subject_keys:
            return _listed(self.channel, download.watermark.resource_code, list(download.subject_keys))
        return self.channel.data.records_in(download.watermark.resource_code)

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
        via, operation = download.file_format.access
        call = Call(principal, watermark.resource_code, watermark.grant_id, download.purpose, download.items, via)
        opened = await self.channel.open(call, operation, len(download.subject_keys), download.subject_keys)
        if download.status is not JobStatus.READY:
            raise NotReady("download_id", f"the file is {download.status.value}: {download.error or 'not ready'}")
        named = download.named or download.subject_keys
        await self.channel.served(call, operation, opened, named, download.rows_written)
        return download, self.files.path(download)

    async def trace(self, rows: Sequence[Sequence[str]]) -> list[TraceMatch]:
        tags = await asyncio.to_thread(tags_in, rows)
        known = await self.store.tagged(tags) if tags else []
        return await asyncio.to_thread(trace, rows, known, self.secret)

    # -- expiry ----------------------------------------------------------------------------------------------

    async def expire(self) -> None:
        """For as long as the service runs: delete files and jobs past their time, say this process's jobs are
        alive and end those whose process died (several replicas share the folder and the jobs: a job is
        abandoned only when no process has said it alive for STALE_BEATS beats), then sleep until the next
        expiry, the next beat, or a job ending here. A job ended on another replica is seen at the latest a
        beat later."""
        while True:
            self.woken.clear()
            now = self.clock.now()
            if self.held:
                await self.store.alive(sorted(self.held), now)
            await self._end_abandoned(now - self.beat * STALE_BEATS)
            for download in await self.store.expired(now):
                await asyncio.to_thread(self.files.remove, download.file_name)
                await self.store.forget(download.download_id)
            upcoming = await self.store.next_expiry()
            now = self.clock.now()
            wait = self.beat.total_seconds() if upcoming is None else (upcoming - now).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.woken.wait(), max(0.05, min(wait, self.beat.total_seconds())))

    async def _end_abandoned(self, before: datetime) -> None:
        """Jobs whose process stopped mid-job (killed, restarted) are FAILED and their parts deleted; a part
        or work folder left with no running job behind it (by a process that died before this sweep existed)
        goes too."""
        for download in await self.store.abandoned(before):
            if download.download_id in self.held:
                continue
            await asyncio.to_thread(self.files.remove, download.file_name)
            ended = replace(
                download, status=JobStatus.FAILED, error="the process running the job stopped before it ended",
                expires_at=self.clock.now() + self.keep,
            )  # fmt: skip
            await self.store.finish(ended)
        for part in await asyncio.to_thread(self.files.parts, before):
            download_id = part.split(".", 1)[0]
            job = await self.store.download(download_id)
            if download_id not in self.held and (job is None or job.status is not JobStatus.RUNNING):
                await asyncio.to_thread(self.files.remove, part.removesuffix(PART).removesuffix(WORK))


@dataclass
class TableFile:
    """A download's rows as a table: the subject column, the grant's items, and each row's watermark."""

    download: Download
    opened: Opened
    files: DownloadFiles
    secret: bytes
    named: tuple[str, ...] = ()  # a download's access names the subjects it listed
    key: bytes = b""

    def open(self) -> RowWriter:
        self.key = download_key(self.secret, self.download.download_id)
        return self.files.writer(self.download, [SUBJECT_COLUMN, *self.download.items, MARK_COLUMN])

    def row(self, record: SubjectRecord) -> list[Any]:
        opened = self.opened
        subject = (
            record.subject_key
            if opened.keys_in_clear
            else pseudonym(record.subject_key, opened.grant.grant_id, self.secret)
        )
        fields = opened.view(record.fields)
        mark = row_mark(self.key, self.download.watermark.tag, subject)
        return [subject, *(fields.get(name) for name in self.download.items), mark]


def items_held(opened: Opened) -> tuple[str, ...]:
    """The items a file of this grant holds: its items, and the key item when the subject column carries the
    key in clear (a consent that does not cover the key does not cover the file)."""
    key = opened.schema.key_item
    if opened.keys_in_clear and key is not None and key not in opened.items:
        return (*opened.items, key)
    return opened.items


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
