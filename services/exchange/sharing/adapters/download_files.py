"""Download files on disk (a folder of the configuration: a volume on Kubernetes, shared by the API replicas):
written row by row in a thread — CSV and JSON Lines line by line, XLSX in openpyxl's write-only mode (rows go
to the file as they come, strings inline) — under a temporary name, then moved into place. And the reading of
a file handed in for tracing, whatever its format.

A provider's value is data, never a formula: XLSX cells are written as strings (type "s") whatever they start
with, and a CSV value that a spreadsheet would take for a formula (starting with = + - @, a tab or a carriage
return) is prefixed with ' (OWASP's advice on CSV injection). Characters an XLSX cannot hold (control
characters) are dropped; a sheet holds at most XLSX_ROWS rows, the next ones go to a new sheet.

A traced file is read within bounds: TRACE_ROWS rows, and an XLSX only when its members' uncompressed sizes
stay under XLSX_MAX_UNPACKED (a small zip can unpack to gigabytes, and openpyxl reads shared strings whole)."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from services.exchange.sharing.downloads import PART, TRACE_ROWS, WORK, Download, FileFormat

CELL_CHARS = 200  # characters of a traced cell kept (a mark is 24, a subject key 18)
XLSX_ROWS = 1_048_576  # rows of a sheet, its header included (the format's limit)
XLSX_MAX_UNPACKED = 256 << 20  # uncompressed bytes of a traced XLSX at most
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _csv_cell(value: Any) -> str:
    text = _text(value)
    return "'" + text if isinstance(value, str) and text.startswith(FORMULA_START) else text


class _Writer:
    def __init__(self, final: Path, file_format: FileFormat, columns: list[str], metadata: list[tuple[str, str]]):
        self.final = final
        self.part = final.with_suffix(final.suffix + ".part")
        self.format = file_format
        self.columns = columns
        self.out: TextIO | None = None
        self.book: Workbook | None = None
        if file_format is FileFormat.XLSX:
            self.book = Workbook(write_only=True)
            info = dict(metadata)
            props = self.book.properties
            props.title = f"{info['资源代码']} 数据下载 {info['下载编号']}"
            props.subject = info["说明"]
            props.creator = "吉安市大数据中心"
            props.description = "; ".join(f"{k}: {v}" for k, v in metadata)
            props.keywords = info["下载编号"]
            props.identifier = info["下载编号"]
            props.category = info["说明"]
            self.rows_per_sheet = XLSX_ROWS
            self.sheets = 1
            self.sheet_rows = 0
            self.sheet = self.book.create_sheet("数据")
            self._append(columns)
            about = self.book.create_sheet("说明")
            for row in metadata:
                about.append([self._cell(about, v) for v in row])
        else:
            self.out = open(self.part, "w", encoding="utf-8", newline="")
            if file_format is FileFormat.CSV:
                self.out.write("# " + " | ".join(f"{k}: {v}" for k, v in metadata) + "\n")
                self.csv = csv.writer(self.out)
                self.csv.writerow([_csv_cell(c) for c in columns])
            else:
                self.out.write(json.dumps({"_download": dict(metadata)}, ensure_ascii=False) + "\n")

    def _cell(self, sheet: Any, value: Any) -> Any:
        """A string cell whatever the text (never a formula), without the characters XLSX cannot hold."""
        if value is None or isinstance(value, bool | int | float):
            return value
        cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", _text(value)))
        cell.data_type = "s"
        return cell

    def _append(self, row: list[Any]) -> None:
        self.sheet.append([self._cell(self.sheet, v) for v in row])
        self.sheet_rows += 1

    def write(self, rows: list[list[Any]]) -> None:
        if self.book is not None:
            for row in rows:
                if self.sheet_rows >= self.rows_per_sheet:  # the sheet is full: the next one, its header again
                    self.sheets += 1
                    self.sheet = self.book.create_sheet(f"数据{self.sheets}")
                    self.sheet_rows = 0
                    self._append(self.columns)
                self._append(row)
        elif self.format is FileFormat.CSV:
            self.csv.writerows([_csv_cell(v) for v in row] for row in rows)
        else:
            assert self.out is not None
            for row in rows:
                record = {c: _json(v) for c, v in zip(self.columns, row, strict=True)}
                self.out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    def finish(self) -> tuple[int, str]:
        if self.book is not None:
            self.book.save(self.part)
        elif self.out is not None:
            self.out.close()
        digest = hashlib.sha256()
        with open(self.part, "rb") as done:
            while chunk := done.read(1 << 20):
                digest.update(chunk)
        os.replace(self.part, self.final)
        return self.final.stat().st_size, digest.hexdigest()

    def discard(self) -> None:
        if self.out is not None:
            self.out.close()
        self.part.unlink(missing_ok=True)


class FolderFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def writer(self, download: Download, columns: list[str]) -> _Writer:
        return _Writer(self.folder / download.file_name, download.file_format, columns, download.watermark.lines())

    def path(self, download: Download) -> str:
        return str(self.folder / download.file_name)

    def remove(self, file_name: str) -> None:
        (self.folder / (file_name + PART)).unlink(missing_ok=True)
        shutil.rmtree(self.folder / (file_name + WORK), ignore_errors=True)
        (self.folder / file_name).unlink(missing_ok=True)

    def parts(self, older_than: datetime) -> list[str]:
        limit = older_than.timestamp()
        found = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                part = entry.name.endswith(PART) and entry.is_file(follow_symlinks=False)
                if part or (entry.name.endswith(WORK) and entry.is_dir(follow_symlinks=False)):
                    with contextlib.suppress(FileNotFoundError):  # moved into place meanwhile
                        if entry.stat().st_mtime < limit:
                            found.append(entry.name)
        return found


# -- a file handed in for tracing --------------------------------------------------------------------------


def rows_of(content: bytes) -> list[list[str]]:
    """The rows of a CSV, XLSX or JSON Lines file (or a part of one), each as its cells' text; ValueError when
    it is none of them. Blocking."""
    if content.startswith(b"PK"):
        return _xlsx_rows(content)
    text = content.decode("utf-8-sig", errors="replace")
    if text.lstrip().startswith("{"):
        return _jsonl_rows(text)
    text = text.replace("\0", "")
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(text))
    try:
        return [[c[:CELL_CHARS] for c in row] for _, row in zip(range(TRACE_ROWS), reader, strict=False)]
    except csv.Error as exc:  # a field beyond the csv module's limit (128 KiB): no row of a download
        raise ValueError(f"not a readable CSV file: {exc}") from None


def _delimiter(text: str) -> str:
    """The CSV's delimiter, sniffed from its first lines (a tab when rows were pasted from a spreadsheet)."""
    lines = [line for line in text[:65536].splitlines()[:50] if line and not line.startswith("#")]
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def _unpacked_size(content: bytes) -> int:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as packed:
            return sum(member.file_size for member in packed.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return 0  # not a whole zip: openpyxl refuses it below


def _xlsx_rows(content: bytes) -> list[list[str]]:
    rows: list[list[str]] = []
    unpacked = _unpacked_size(content)
    if unpacked > XLSX_MAX_UNPACKED:
        raise ValueError(f"not a readable XLSX file: it unpacks to {unpacked} bytes (at most {XLSX_MAX_UNPACKED})")
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        for sheet in book.worksheets:
            for row in sheet.iter_rows(values_only=True):
                rows.append([_text(v)[:CELL_CHARS] for v in row])
                if len(rows) >= TRACE_ROWS:
                    return rows
    except Exception as exc:  # openpyxl raises many kinds for a damaged or truncated file: all mean unreadable
        raise ValueError(f"not a readable XLSX file: {type(exc).__name__}: {exc}"[:300]) from None
    return rows


def _jsonl_rows(text: str) -> list[list[str]]:
    rows: list[list[str]] = []
    for line in text.splitlines():
        if len(rows) >= TRACE_ROWS:
            break
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut off where the part handed in ends
        if isinstance(record, dict):
            rows.append([_text(v)[:CELL_CHARS] for v in record.values() if not isinstance(v, dict | list)])
    return rows
