"""The city catalog (《共享目录》) as a table in the compilation guide's column layout: one row per data item,
the entry's elements repeated on each of its rows. Reading a table checks every row and reports every
error with its row number; a table with errors imports nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from common.errors import Invalid
from common.limits import MAX_AVRO_INT, NAME_LENGTH, TEXT_LENGTH
from services.catalog.domain.entries import (
    CatalogEntry,
    Category,
    ConfidentialityReview,
    DataItem,
    EntryContent,
    ItemType,
    OpenAttribute,
    ShareMethod,
    ShareType,
    UpdateCycle,
    validate_provider_code,
    validate_resource_code,
)

COLUMNS = [
    "资源代码",
    "资源名称",
    "资源提供方代码",
    "资源提供方",
    "资源摘要",
    "资源分类",
    "资源格式",
    "共享类型",
    "共享条件",
    "不予共享依据",
    "共享方式",
    "开放属性",
    "更新周期",
    "发布日期",
    "版本",
    "关联资源代码",
    "保密审查人",
    "保密审查日期",
    "保密审查结论",
    "信息项名称",
    "数据类型",
    "数据长度",
    "信息项描述",
    "信息项共享类型",
    "是否敏感",
]
NAME_COLUMNS = {"资源名称", "资源提供方", "资源格式", "保密审查人", "信息项名称"}  # as long as a name; others as a text
CATEGORY = {"基础": Category.BASE, "主题": Category.THEME, "部门": Category.DEPARTMENT}
SHARE = {"无条件共享": ShareType.UNCONDITIONAL, "有条件共享": ShareType.CONDITIONAL, "不予共享": ShareType.NOT_SHARED}
METHOD = {
    "接口": ShareMethod.API,
    "文件下载": ShareMethod.FILE_DOWNLOAD,
    "在线浏览": ShareMethod.ONLINE_BROWSE,
    "离线交换": ShareMethod.OFFLINE,
}
OPEN = {"开放": OpenAttribute.OPEN, "有条件开放": OpenAttribute.CONDITIONALLY_OPEN, "不开放": OpenAttribute.NOT_OPEN}
CYCLE = {
    "实时": UpdateCycle.REAL_TIME,
    "每日": UpdateCycle.DAILY,
    "每周": UpdateCycle.WEEKLY,
    "每月": UpdateCycle.MONTHLY,
    "每季度": UpdateCycle.QUARTERLY,
    "每半年": UpdateCycle.HALF_YEARLY,
    "每年": UpdateCycle.YEARLY,
}
TYPES = {
    "字符型": ItemType.STRING,
    "整型": ItemType.INTEGER,
    "数值型": ItemType.DECIMAL,
    "日期型": ItemType.DATE,
    "日期时间型": ItemType.DATETIME,
    "布尔型": ItemType.BOOLEAN,
    "二进制": ItemType.BINARY,
}


def _limit(column: str) -> int:
    return NAME_LENGTH if column in NAME_COLUMNS else TEXT_LENGTH


def _label(mapping: dict, value: object) -> str:
    return next((k for k, v in mapping.items() if v == value), "")


def rows(entries: list[CatalogEntry], provider_names: dict[str, str]) -> list[list[object]]:
    """The published catalog as table rows (entries in force only)."""
    table: list[list[object]] = []
    for entry in entries:
        version = entry.in_force
        if version is None:
            continue
        c = version.content
        head: list[object] = [
            entry.resource_code,
            c.name,
            entry.provider_code,
            provider_names.get(entry.provider_code, ""),
            c.abstract,
            _label(CATEGORY, c.category),
            c.format,
            _label(SHARE, c.share_type),
            c.share_conditions,
            c.not_shared_basis,
            "、".join(_label(METHOD, m) for m in sorted(c.share_methods)),
            _label(OPEN, c.open_attribute),
            _label(CYCLE, c.update_cycle),
            version.published_on.isoformat() if version.published_on else "",
            version.version,
            "、".join(c.related_codes),
            *_review_cells(c.confidentiality_review),
        ]
        for item in c.data_items or (DataItem("", ItemType.STRING),):
            table.append(
                [
                    *head,
                    item.name,
                    _label(TYPES, item.type),
                    item.length or "",
                    item.description,
                    _label(SHARE, item.share_type),
                    "是" if item.sensitive else "否",
                ]
            )
    return table


def _review_cells(review: ConfidentialityReview | None) -> list[object]:
    if review is None:
        return ["", "", ""]
    return [review.reviewed_by, review.reviewed_on.isoformat(), review.conclusion]


def _review(row: dict[str, str], number: int, errors: list[str]) -> ConfidentialityReview | None:
    """The confidentiality review (Art. 20): all three columns, or none."""
    cells = (row["保密审查人"], row["保密审查日期"], row["保密审查结论"])
    if not any(cells):
        return None
    if not all(cells):
        errors.append(f"row {number}: 保密审查人, 保密审查日期 and 保密审查结论 go together")
        return None
    try:
        reviewed_on = date.fromisoformat(cells[1])
    except ValueError:
        errors.append(f"row {number}: 保密审查日期 {cells[1]!r} is not a date (YYYY-MM-DD)")
        return None
    return ConfidentialityReview(cells[0], reviewed_on, cells[2])


@dataclass(frozen=True)
class ImportedEntry:
    resource_code: str
    provider_code: str
    content: EntryContent


class SheetErrors(Invalid):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("rows", "; ".join(errors))
        self.errors = errors


def _pick(mapping: dict, value: str, column: str, row: int, errors: list[str], required: bool = False):
    text = value.strip()
    if not text:
        if required:
            errors.append(f"row {row}: {column} is mandatory")
        return None
    if text not in mapping:
        errors.append(f"row {row}: {column} {text!r} is not one of {', '.join(mapping)}")
        return None
    return mapping[text]


def read(table: list[list[object]]) -> list[ImportedEntry]:
    """Entries from a table with the header row first. Raises SheetErrors listing every bad row."""
    if not table or [str(h).strip() for h in table[0][: len(COLUMNS)]] != COLUMNS:
        raise SheetErrors([f"row 1: the header must be the columns {', '.join(COLUMNS)}"])
    errors: list[str] = []
    grouped: dict[str, dict] = {}
    for number, raw in enumerate(table[1:], start=2):
        cells = [("" if v is None else str(v)).strip() for v in raw] + [""] * len(COLUMNS)
        row = dict(zip(COLUMNS, cells, strict=False))
        if not any(cells):
            continue
        too_long = [
            f"row {number}: {c} is longer than {_limit(c)} characters" for c, t in row.items() if len(t) > _limit(c)
        ]
        if too_long:
            errors += too_long
            continue
        code = row["资源代码"]
        try:
            validate_resource_code(code)
            provider = validate_provider_code(row["资源提供方代码"])
        except Invalid as exc:
            errors.append(f"row {number}: {exc}")
            continue
        entry = grouped.setdefault(code, {"row": number, "provider": provider, "head": row, "items": []})
        if entry["provider"] != provider or entry["head"]["资源名称"] != row["资源名称"]:
            errors.append(f"row {number}: rows of {code} disagree on 资源名称 or 资源提供方代码")
        if row["信息项名称"]:
            length = row["数据长度"]
            if length and not (length.isascii() and length.isdigit() and 0 < int(length) <= MAX_AVRO_INT):
                errors.append(f"row {number}: 数据长度 {length!r} is not a whole number from 1 to {MAX_AVRO_INT}")
                length = ""
            entry["items"].append(
                DataItem(
                    row["信息项名称"],
                    _pick(TYPES, row["数据类型"] or "字符型", "数据类型", number, errors) or ItemType.STRING,
                    row["信息项描述"],
                    int(length) if length else None,
                    _pick(SHARE, row["信息项共享类型"], "信息项共享类型", number, errors),
                    row["是否敏感"] == "是",
                )
            )
    imported = []
    for code, entry in grouped.items():
        head, number = entry["head"], entry["row"]
        methods = [
            _pick(METHOD, m, "共享方式", number, errors) for m in head["共享方式"].replace("，", "、").split("、") if m
        ]
        content = EntryContent(
            name=head["资源名称"],
            abstract=head["资源摘要"],
            category=_pick(CATEGORY, head["资源分类"], "资源分类", number, errors),
            format=head["资源格式"],
            data_items=tuple(entry["items"]),
            share_type=_pick(SHARE, head["共享类型"], "共享类型", number, errors, required=True)
            or ShareType.CONDITIONAL,
            share_conditions=head["共享条件"],
            not_shared_basis=head["不予共享依据"],
            share_methods=frozenset(m for m in methods if m),
            open_attribute=_pick(OPEN, head["开放属性"], "开放属性", number, errors) or OpenAttribute.NOT_OPEN,
            update_cycle=_pick(CYCLE, head["更新周期"], "更新周期", number, errors),
            related_codes=tuple(c for c in head["关联资源代码"].replace("，", "、").split("、") if c),
            confidentiality_review=_review(head, number, errors),
        )
        errors += [f"row {number}: {field} {rule}" for field, rule in content.consistency_problems()]
        imported.append(ImportedEntry(code, entry["provider"], content))
    if errors:
        raise SheetErrors(errors)
    return imported
