"""The console's forms as the services' request bodies, and back: plain functions over the posted fields.
Strings are cut to the services' bounds here only so that a page never sends more than they accept; the
services check everything again."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from common import limits
from services.console.labels import FIELDS

MAX_ITEM_ROWS = 200  # data items one form carries (the form parser takes at most FORM_FIELDS fields)
MAX_FINDING_ROWS = 20
BLANK_ITEM_ROWS = 3
FORM_FIELDS = 12 * MAX_ITEM_ROWS + 100
ITEM_ELEMENTS = ("name", "type", "description", "length", "sensitive", "share_type", "not_shared_basis")
ITEM_KEPT = ("source_of", "refers_to")  # elements the form does not edit but carries through unchanged


class Form(Protocol):
    """A posted form (Starlette's FormData): one value, or all values, of a field."""

    def get(self, key: str, /) -> object: ...
    def getlist(self, key: str, /) -> list[Any]: ...


def text(form: Form, key: str, limit: int = limits.TEXT_LENGTH) -> str:
    value = form.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _codes(raw: str) -> list[str]:
    return [c for c in re.split(r"[\s,，、;；]+", raw) if c][: limits.MAX_ITEMS]


def codes(raw: str) -> list[str]:
    """Codes typed into one field, separated by spaces, commas or 、."""
    return _codes(raw)


def names(raw: str) -> list[str]:
    """Data item names typed into one field, one a line (or separated by commas, 、 or ;)."""
    found = [n.strip()[: limits.NAME_LENGTH] for n in re.split(r"[\r\n,，、;；]+", raw)]
    return [n for n in found if n][: limits.MAX_ITEMS]


def _item(form: Form, row: int) -> dict[str, Any] | None:
    name = text(form, f"item_name_{row}", limits.NAME_LENGTH)
    if not name:
        return None
    item: dict[str, Any] = {
        "name": name,
        "type": text(form, f"item_type_{row}", 20) or "string",
        "description": text(form, f"item_description_{row}"),
        "sensitive": form.get(f"item_sensitive_{row}") == "on",
        "not_shared_basis": text(form, f"item_not_shared_basis_{row}"),
    }
    length = text(form, f"item_length_{row}", 12)
    item["length"] = int(length) if length.isdigit() else None
    share_type = text(form, f"item_share_type_{row}", 20)
    item["share_type"] = share_type or None
    for element in ITEM_KEPT:
        item[element] = text(form, f"item_{element}_{row}", limits.CODE_LENGTH)
    return item


def content_of(form: Form) -> dict[str, Any]:
    """The entry's content (the catalog's ContentBody) from the entry form."""
    rows = min(int(text(form, "item_rows", 4) or 0) if text(form, "item_rows", 4).isdigit() else 0, MAX_ITEM_ROWS)
    content: dict[str, Any] = {
        "name": text(form, "name", limits.NAME_LENGTH),
        "abstract": text(form, "abstract"),
        "category": text(form, "category", 20) or None,
        "format": text(form, "format", limits.NAME_LENGTH),
        "share_type": text(form, "share_type", 20) or "CONDITIONAL",
        "share_conditions": text(form, "share_conditions"),
        "not_shared_basis": text(form, "not_shared_basis"),
        "share_methods": [m for m in form.getlist("share_methods") if isinstance(m, str)][:4],
        "open_attribute": text(form, "open_attribute", 30) or "NOT_OPEN",
        "update_cycle": text(form, "update_cycle", 20) or None,
        "related_codes": _codes(text(form, "related_codes")),
        "data_items": [item for row in range(rows) if (item := _item(form, row)) is not None],
    }
    reviewed_by, reviewed_on = text(form, "review_by", limits.NAME_LENGTH), text(form, "review_on", 10)
    conclusion = text(form, "review_conclusion")
    if reviewed_by or reviewed_on or conclusion:
        content["confidentiality_review"] = {
            "reviewed_by": reviewed_by,
            "reviewed_on": reviewed_on or None,
            "conclusion": conclusion,
        }
    return content


def revision_of(form: Form) -> int:
    raw = text(form, "revision", 20)
    return int(raw) if raw.isdigit() else 0


def findings_of(form: Form) -> list[dict[str, str]]:
    """The findings a reviewer wrote, one per row with both a field and a finding."""
    found = []
    for row in range(MAX_FINDING_ROWS):
        field = text(form, f"finding_field_{row}", limits.NAME_LENGTH)
        finding = text(form, f"finding_text_{row}")
        if field and finding:
            found.append({"field": field, "finding": finding})
    return found


def item_rows(content: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The data items a form shows: the entry's, then a few blank rows to add more."""
    items: Sequence[Mapping[str, Any]] = list((content or {}).get("data_items") or [])[:MAX_ITEM_ROWS]
    blanks = max(0, min(BLANK_ITEM_ROWS, MAX_ITEM_ROWS - len(items)))
    return [*items, *({} for _ in range(blanks))]


def finding_fields(content: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The fields a reviewer may attach a finding to: the entry's elements, and each data item by name."""
    elements = [
        (f, FIELDS[f])
        for f in (
            "name",
            "abstract",
            "category",
            "format",
            "share_type",
            "share_conditions",
            "not_shared_basis",
            "share_methods",
            "open_attribute",
            "update_cycle",
            "related_codes",
            "confidentiality_review",
            "data_items",
        )
    ]
    items = [(f"data_items[{i['name']}]", f"信息项：{i['name']}") for i in (content or {}).get("data_items") or []]
    return elements + items


def row_problems(message: str) -> list[str]:
    """The catalog's refusal of a table, row by row where its message lists them (“…：第2行…；第3行…”)."""
    _, colon, listed = message.partition("：")
    rows = [row for row in listed.split("；") if row.strip()] if colon else []
    return rows if len(rows) > 1 else []
