"""Tables in and out: XLSX (openpyxl) and CSV (UTF-8 with BOM, so spreadsheet programs read the Chinese)."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook, load_workbook

from common.errors import Invalid

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
    if filename.lower().endswith(".xlsx"):
        try:
            sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
        except Exception as exc:  # a damaged or mislabelled file
            raise Invalid("file", f"not a readable XLSX workbook: {exc}") from None
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    if filename.lower().endswith(".csv"):
        try:
            return [list(row) for row in csv.reader(io.StringIO(data.decode("utf-8-sig")))]
        except UnicodeDecodeError:
            raise Invalid("file", "a CSV file must be UTF-8 encoded") from None
    raise Invalid("file", "upload an .xlsx or a .csv file")
