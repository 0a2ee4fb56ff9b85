"""The city catalog (《共享目录》) as a table in the compilation guide's column layout: one row per data item,
the entry's elements repeated on each of its rows. Reading a table checks every row and reports every
error with its row number; a table with errors imports nothing. The rows of one entry must agree on the
entry's elements. A row may leave 资源代码 blank and give the classification (分类码, 类1 项2 目3) instead:
the 顺序码 is then assigned on import, as when drafting over the JSON API."""

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
    class_problems,
    resource_code,
    validate_provider_code,
    validate_resource_code,
)
from services.catalog.domain.wording import worded

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
    "信息项不予共享依据",
    "是否敏感",
    "来源数据元",  # one data, one source: the dictionary element the item is the source of
    "引用数据元",  # or the element it refers to (provided by another department)
]
ENTRY_COLUMNS = COLUMNS[: COLUMNS.index("信息项名称")]  # the entry's elements: the same on each of its rows
OPTIONAL = {"信息项不予共享依据", "来源数据元", "引用数据元"}  # columns a table from an earlier layout may lack
CLASSIFICATION = "分类码"  # import only: where 资源代码 is blank, the classification to number the entry in
NAME_COLUMNS = {
    "资源名称",
    "资源提供方",
    "资源格式",
    "保密审查人",
    "信息项名称",
    "来源数据元",
    "引用数据元",
}  # as long as a name; others as a text
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
                    item.not_shared_basis,
                    "是" if item.sensitive else "否",
                    item.source_of,
                    item.refers_to,
                ]
            )
    return table


def _review_cells(review: ConfidentialityReview | None) -> list[object]:
    if review is None:
        return ["", "", ""]
    return [review.reviewed_by, review.reviewed_on.isoformat(), review.conclusion]


def _review(row: dict[str, str], number: int, errors: list[RowError]) -> ConfidentialityReview | None:
    """The confidentiality review (Art. 20): all three columns, or none."""
    cells = (row["保密审查人"], row["保密审查日期"], row["保密审查结论"])
    if not any(cells):
        return None
    if not all(cells):
        errors.append(
            row_error(
                number,
                "保密审查人, 保密审查日期 and 保密审查结论 go together",
                "保密审查人、保密审查日期、保密审查结论须一并填写",
            )
        )
        return None
    try:
        reviewed_on = date.fromisoformat(cells[1])
    except ValueError:
        errors.append(
            row_error(
                number,
                f"保密审查日期 {cells[1]!r} is not a date (YYYY-MM-DD)",
                f"保密审查日期“{cells[1]}”不是日期（YYYY-MM-DD）",
            )
        )
        return None
    return ConfidentialityReview(cells[0], reviewed_on, cells[2])


@dataclass(frozen=True)
class ImportedEntry:
    """`resource_code` is None where the table left it to be assigned in `classification`."""

    resource_code: str | None
    provider_code: str
    content: EntryContent
    classification: str | None = None


@dataclass(frozen=True)
class RowError:
    """What is wrong with a row of an imported table (or with the table): in English, as `SheetErrors.errors`
    lists it, and in Chinese, as its message says it."""

    text: str
    words: str


def row_error(number: int | None, text: str, words: str) -> RowError:
    """An error of row `number` (counted from 1, the header), or of the whole table when None."""
    if number is None:
        return RowError(text, words)
    return RowError(f"row {number}: {text}", f"第 {number} 行：{words}")


class SheetErrors(Invalid):
    """Every broken row of a table: `errors` in English, the message in Chinese."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("rows", "; ".join(e.text for e in errors))
        self.errors = [e.text for e in errors]
        worded(self, "catalog.import.rows", count=len(errors), errors="；".join(e.words for e in errors))


def cells_of(raw: list[object] | tuple[object, ...], width: int = 0) -> list[str]:
    """A row's cells as trimmed text (an empty cell is ""), padded to `width`."""
    cells = [("" if c is None else str(c)).strip() for c in raw]
    return cells + [""] * (width - len(cells))


def data_rows(table: list[list[object]], width: int = 0) -> list[tuple[int, list[str]]]:
    """The rows after the header with their numbers as a spreadsheet shows them (the header is row 1), blank
    rows left out."""
    return [(number, cells) for number, raw in enumerate(table[1:], start=2) if any(cells := cells_of(raw, width))]


def _pick(mapping: dict, value: str, column: str, row: int, errors: list[RowError], required: bool = False):
    text = value.strip()
    if not text:
        if required:
            errors.append(row_error(row, f"{column} is mandatory", f"{column}为必填项"))
        return None
    if text not in mapping:
        errors.append(
            row_error(
                row,
                f"{column} {text!r} is not one of {', '.join(mapping)}",
                f"{column}“{text}”不是可选的值：{'、'.join(mapping)}",
            )
        )
        return None
    return mapping[text]


def _columns(header: list[object]) -> dict[str, int]:
    """Where each known column is; raises SheetErrors naming the guide's columns that are missing."""
    names = cells_of(header)
    found = {name: names.index(name) for name in (*COLUMNS, CLASSIFICATION) if name in names}
    missing = [c for c in COLUMNS if c not in found and c not in OPTIONAL]
    if missing:
        raise SheetErrors(
            [
                row_error(
                    1,
                    f"the header must have the columns {', '.join(COLUMNS)}; missing: {', '.join(missing)}",
                    f"表头须有以下各列：{'、'.join(COLUMNS)}；缺少：{'、'.join(missing)}",
                )
            ]
        )
    return found


def _key(row: dict[str, str], number: int, errors: list[RowError]) -> tuple[str, str | None, str] | None:
    """(resource code or classification, classification if the code is to be assigned, provider)."""
    try:
        provider = validate_provider_code(row["资源提供方代码"])
        code = row["资源代码"]
        if code:
            validate_resource_code(code)
            return code, None, provider
        classification = row.get(CLASSIFICATION, "")
        if not classification:
            errors.append(
                row_error(
                    number,
                    f"资源代码 is blank: give the {CLASSIFICATION} (类1 项2 目3) to have one assigned",
                    f"资源代码为空：请填写{CLASSIFICATION}（类1位、项2位、目3位），以便分配资源代码",
                )
            )
            return None
        resource_code(classification, 1)  # checks the classification
        return f"{classification}/{row['资源名称']}", classification, provider
    except Invalid as exc:
        errors.append(row_error(number, str(exc), exc.message or str(exc)))
        return None


def _provider_name_problem(
    row: dict[str, str], number: int, provider: str, departments: dict[str, str]
) -> RowError | None:
    name, known = row["资源提供方"], departments.get(provider)
    if not name or name == known:
        return None
    if known is None:
        return row_error(
            number,
            f"资源提供方代码 {provider} is not a department the catalog knows, "
            f"so 资源提供方 {name!r} cannot be checked",
            f"资源提供方代码 {provider} 不是目录已登记的部门，无法核对资源提供方“{name}”",
        )
    return row_error(
        number,
        f"资源提供方 {name!r} is not the department of 资源提供方代码 {provider} ({known})",
        f"资源提供方“{name}”与资源提供方代码 {provider} 的部门（{known}）不符",
    )


def read(table: list[list[object]], departments: dict[str, str] | None = None) -> list[ImportedEntry]:
    """Entries from a table with the header row first. Raises SheetErrors listing every bad row. With
    `departments` (credit code → name), a provider's name must be the name of its code."""
    if not table:
        raise SheetErrors(
            [
                row_error(
                    1,
                    f"the header must have the columns {', '.join(COLUMNS)}",
                    f"表头须有以下各列：{'、'.join(COLUMNS)}",
                )
            ]
        )
    where = _columns(table[0])
    errors: list[RowError] = []
    grouped: dict[str, dict] = {}
    for number, values in data_rows(table):
        row = {c: values[i] if i < len(values) else "" for c, i in where.items()} | {
            c: "" for c in OPTIONAL if c not in where
        }
        if not any(row.values()):
            continue
        too_long = [
            row_error(number, f"{c} is longer than {_limit(c)} characters", f"{c}超过 {_limit(c)} 个字")
            for c, t in row.items()
            if len(t) > _limit(c)
        ]
        if too_long:
            errors += too_long
            continue
        key = _key(row, number, errors)
        if key is None:
            continue
        code, classification, provider = key
        entry = grouped.setdefault(
            code, {"row": number, "provider": provider, "classification": classification, "head": row, "items": []}
        )
        if entry["row"] == number and departments is not None:
            problem = _provider_name_problem(row, number, provider, departments)
            if problem:
                errors.append(problem)
        differing = [c for c in ENTRY_COLUMNS if row[c] != entry["head"][c]]
        if differing:
            first, which = entry["row"], row["资源代码"] or row["资源名称"]
            errors.append(
                RowError(
                    f"rows {first} and {number} of {which} disagree on "
                    + "; ".join(f"{c} ({entry['head'][c]!r} / {row[c]!r})" for c in differing),
                    f"第 {first} 行与第 {number} 行（{which}）的条目信息不一致："
                    + "；".join(f"{c}（“{entry['head'][c]}”/“{row[c]}”）" for c in differing),
                )
            )
        if row["信息项名称"]:
            length = row["数据长度"]
            if length and not (length.isascii() and length.isdigit() and 0 < int(length) <= MAX_AVRO_INT):
                errors.append(
                    row_error(
                        number,
                        f"数据长度 {length!r} is not a whole number from 1 to {MAX_AVRO_INT}",
                        f"数据长度“{length}”应为 1 至 {MAX_AVRO_INT} 的整数",
                    )
                )
                length = ""
            entry["items"].append(
                DataItem(
                    row["信息项名称"],
                    _pick(TYPES, row["数据类型"] or "字符型", "数据类型", number, errors) or ItemType.STRING,
                    row["信息项描述"],
                    int(length) if length else None,
                    _pick(SHARE, row["信息项共享类型"], "信息项共享类型", number, errors),
                    row["是否敏感"] == "是",
                    row["信息项不予共享依据"],
                    source_of=row["来源数据元"],
                    refers_to=row["引用数据元"],
                )
            )
    if not grouped and not errors:
        raise SheetErrors(
            [row_error(None, "the table has a header but no entries: nothing to import", "表格只有表头，没有条目")]
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
        classification = entry["classification"]
        problems = content.consistency_problems() + class_problems(classification or code, content)
        errors += [row_error(number, f"{p.field} {p.rule}", p.words) for p in problems]
        given = None if classification else code
        imported.append(ImportedEntry(given, entry["provider"], content, classification))
    if errors:
        raise SheetErrors(errors)
    return imported
