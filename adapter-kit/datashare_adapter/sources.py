"""Where a department's records come from: a CSV or XLSX file, or a SQL table; and how text cells become
the typed values the catalog's data items declare."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

TRUE = {"1", "true", "yes", "是", "y"}
FALSE = {"0", "false", "no", "否", "n"}


class SourceError(ValueError):
    pass


def read_table(data: bytes, filename: str) -> list[dict[str, Any]]:
    """Rows of a CSV (UTF-8, with or without BOM) or XLSX file as dicts keyed by the header row."""
    name = filename.lower()
    if name.endswith(".xlsx"):
        from openpyxl import load_workbook

        try:
            sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).active
        except Exception as exc:  # openpyxl raises many kinds for a broken file
            raise SourceError(f"not a readable XLSX workbook: {exc}") from None
        if sheet is None:
            raise SourceError("the workbook has no sheet")
        rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    elif name.endswith(".csv"):
        try:
            rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        except UnicodeDecodeError:
            raise SourceError("a CSV file must be UTF-8") from None
    else:
        raise SourceError("upload a .csv or .xlsx file")
    if not rows:
        raise SourceError("the file is empty")
    header = [str(h).strip() if h is not None else "" for h in rows[0]]
    return [dict(zip(header, r, strict=False)) for r in rows[1:] if any(c not in (None, "") for c in r)]


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
