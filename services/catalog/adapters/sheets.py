"""Tables in and out: XLSX (openpyxl) and CSV (written as UTF-8 with BOM, so spreadsheet programs read the
Chinese; read as UTF-8 or, as Excel saves it on Chinese Windows, GBK)."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook, load_workbook

from common.errors import Invalid
from services.catalog.domain.sheet import SheetErrors, row_error
from services.catalog.domain.wording import worded

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def to_xlsx(table: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "共享目录"
    for row in table:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_csv(table: list[list[object]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(table)
    return out.getvalue().encode("utf-8-sig")


def read_table(data: bytes, filename: str) -> list[list[object]]:
    """The table's rows; a file that cannot be read is Invalid, naming the row where reading stopped."""
    if filename.lower().endswith(".xlsx"):
        return _xlsx_rows(data)
    if filename.lower().endswith(".csv"):
        return _csv_rows(_decoded(data))
    raise worded(Invalid("file", "upload an .xlsx or a .csv file"), "catalog.import.file_type")


def _decoded(data: bytes) -> str:
    """UTF-8 with or without a BOM; else GB18030 (a superset of the GBK that Excel on Chinese Windows saves)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise worded(
            Invalid("file", "a CSV file must be encoded in UTF-8 or GBK/GB18030"), "catalog.import.not_utf8"
        ) from None


def _xlsx_rows(data: bytes) -> list[list[object]]:
    try:
        sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
    except Exception as exc:  # a damaged or mislabelled file
        raise worded(
            Invalid("file", f"not a readable XLSX workbook: {exc}"), "catalog.import.unreadable_xlsx"
        ) from None
    rows: list[list[object]] = []
    try:  # a read-only workbook is parsed lazily: a damaged sheet fails while its rows are read
        for row in sheet.iter_rows(values_only=True):
            rows.append(list(row))
    except Exception as exc:
        raise SheetErrors([row_error(len(rows) + 1, f"not readable: {exc}", "无法读取")]) from None
    return rows


def _csv_rows(text: str) -> list[list[object]]:
    rows: list[list[object]] = []
    try:
        for row in csv.reader(io.StringIO(text)):
            rows.append(list(row))
    except csv.Error as exc:  # e.g. a cell over the reader's field limit (128 KiB)
        raise SheetErrors([row_error(len(rows) + 1, f"not readable as CSV: {exc}", "无法按 CSV 读取")]) from None
    return rows
