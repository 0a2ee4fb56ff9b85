"""Where a department's records come from: a CSV or XLSX file, or a SQL table; and how text cells become
the typed values the catalog's data items declare."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

TRUE = {"1", "true", "yes", "是", "y"}
FALSE = {"0", "false", "no", "否", "n"}


class SourceError(ValueError):
    pass


def read_table(data: bytes, filename: str) -> list[dict[str, Any]]:
    """Rows of a CSV (UTF-8, with or without BOM) or XLSX file as dicts keyed by the header row."""
    return list(iter_table(io.BytesIO(data), filename))


def iter_table(stream: BinaryIO, filename: str) -> Iterator[dict[str, Any]]:
    """The rows of a CSV or XLSX file read from `stream` one at a time, so that a big file is never held in
    memory whole; raises SourceError where the file turns out broken. Leaves `stream` open."""
    name = filename.lower()
    if name.endswith(".xlsx"):
        return _xlsx_rows(stream)
    if name.endswith(".csv"):
        return _csv_rows(stream)
    raise SourceError("upload a .csv or .xlsx file")


def _csv_rows(stream: BinaryIO) -> Iterator[dict[str, Any]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from _keyed(csv.reader(text))
    except UnicodeDecodeError:
        raise SourceError("a CSV file must be UTF-8") from None
    except csv.Error as exc:
        raise SourceError(f"not a readable CSV file: {exc}") from None
    finally:
        text.detach()  # the caller's stream stays open


def _xlsx_rows(stream: BinaryIO) -> Iterator[dict[str, Any]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken file
        raise SourceError(f"not a readable XLSX workbook: {exc}") from None
    try:
        sheet = workbook.active
        if sheet is None:
            raise SourceError("the workbook has no sheet")
        yield from _keyed(list(r) for r in sheet.iter_rows(values_only=True))
    finally:
        workbook.close()


def _keyed(rows: Iterator[list[Any]]) -> Iterator[dict[str, Any]]:
    first = next(rows, None)
    if first is None:
        raise SourceError("the file is empty")
    header = [str(h).strip() if h is not None else "" for h in first]
    for r in rows:
        if any(c not in (None, "") for c in r):
            yield dict(zip(header, r, strict=False))


def read_file(path: Path) -> list[dict[str, Any]]:
    return read_table(path.read_bytes(), path.name)


def read_sql(database: Path, table: str) -> Iterator[dict[str, Any]]:
    """Rows of a table in a SQLite database (the example's register; any DB-API source works alike)."""
    if not table.replace("_", "").isalnum():
        raise SourceError(f"not a table name: {table!r}")
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        for row in connection.execute(f'SELECT * FROM "{table}"'):  # the name was checked above
            yield dict(row)
    finally:
        connection.close()


def typed(value: Any, item_type: str) -> Any:
    """A cell as the value the data item's type asks for; raises SourceError if it cannot be one."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    try:
        match item_type:
            case "integer":
                return int(value) if isinstance(value, int) and not isinstance(value, bool) else int(text)
            case "decimal":
                return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float(text)
            case "boolean":
                if isinstance(value, bool):
                    return value
                if text.lower() in TRUE | FALSE:
                    return text.lower() in TRUE
                raise ValueError(text)
            case "date":
                return text[:10]
            case _:
                return text
    except ValueError:
        raise SourceError(f"{text!r} is not a {item_type}") from None


def typed_record(row: Mapping[str, Any], item_types: Mapping[str, str]) -> dict[str, Any]:
    """The row's cells that are data items, typed; other columns are the caller's to reject or ignore."""
    out = {}
    for name, value in row.items():
        if name in item_types:
            try:
                out[name] = typed(value, item_types[name])
            except SourceError as exc:
                raise SourceError(f"{name}: {exc}") from None
        else:
            out[name] = value
    return out
