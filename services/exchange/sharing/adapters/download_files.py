"""Download files on disk (a folder of the configuration: a volume on Kubernetes, shared by the API replicas):
written row by row in a thread — CSV and JSON Lines line by line, XLSX in openpyxl's write-only mode (rows go
to the file as they come, strings inline) — under a temporary name, then moved into place. And the reading of
a file handed in for tracing, whatever its format."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from openpyxl import Workbook, load_workbook

from services.exchange.sharing.downloads import TRACE_ROWS, Download, FileFormat

CELL_CHARS = 200  # characters of a traced cell kept (a mark is 18, a subject key 18)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


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
            self.sheet = self.book.create_sheet("数据")
            self.sheet.append(columns)
            about = self.book.create_sheet("说明")
            for row in metadata:
                about.append(list(row))
        else:
            self.out = open(self.part, "w", encoding="utf-8", newline="")
            if file_format is FileFormat.CSV:
                self.out.write("# " + " | ".join(f"{k}: {v}" for k, v in metadata) + "\n")
                self.csv = csv.writer(self.out)
                self.csv.writerow(columns)
            else:
                self.out.write(json.dumps({"_download": dict(metadata)}, ensure_ascii=False) + "\n")

    def write(self, rows: list[list[Any]]) -> None:
        if self.book is not None:
            for row in rows:
                self.sheet.append([_json(v) for v in row])
        elif self.format is FileFormat.CSV:
            self.csv.writerows([_text(v) for v in row] for row in rows)
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
        (self.folder / file_name).unlink()
        (self.folder / (file_name + ".part")).unlink(missing_ok=True)


# -- a file handed in for tracing --------------------------------------------------------------------------


def rows_of(content: bytes) -> list[list[str]]:
    """The rows of a CSV, XLSX or JSON Lines file (or a part of one), each as its cells' text; ValueError when
    it is none of them. Blocking."""
    if content.startswith(b"PK"):
        return _xlsx_rows(content)
    text = content.decode("utf-8-sig", errors="replace")
    if text.lstrip().startswith("{"):
        return _jsonl_rows(text)
    reader = csv.reader(io.StringIO(text.replace("\0", "")))
    try:
        return [[c[:CELL_CHARS] for c in row] for _, row in zip(range(TRACE_ROWS), reader, strict=False)]
    except csv.Error as exc:  # a field beyond the csv module's limit (128 KiB): no row of a download
        raise ValueError(f"not a readable CSV file: {exc}") from None


def _xlsx_rows(content: bytes) -> list[list[str]]:
    rows: list[list[str]] = []
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
