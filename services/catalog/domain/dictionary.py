"""The data-element dictionary (数据元) kept by the IT office: what each shared datum is, under which names
people know it, and which department is its authoritative source (Art. 12). One data, one source, demand
matching and search compare names through it, never bare item names against each other."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property

from common.errors import Conflict, Invalid, NotFound
from common.identifiers import InvalidIdentifier, validate_credit_code
from common.limits import NAME_LENGTH, TEXT_LENGTH
from services.catalog.domain.entries import ItemType
from services.catalog.domain.problems import Problem, refuse
from services.catalog.domain.sheet import TYPES, RowError, SheetErrors, cells_of, data_rows, row_error
from services.catalog.domain.wording import worded

IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
MAX_ALIASES = 50  # aliases of one element: every one is a synonym each search and demand match may try
MAX_SHEET_ROWS = 5000  # elements of one imported table, all checked and stored in one transaction


class InvalidElement(Invalid):
    pass


class ElementNotFound(NotFound):
    pass


class ElementConflict(Conflict):
    pass


def normal(name: str) -> str:
    """Names compare width-, case- and white-space-blind: 「 统一社会信用代码 」 == 「统一社会信用代码」."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", name)).casefold()


@dataclass(frozen=True)
class DataElement:
    """数据元: identifier, standard name, aliases, definition, type and the authoritative source department
    (a credit code; empty until the IT office assigns one)."""

    identifier: str
    name: str
    aliases: tuple[str, ...] = ()
    definition: str = ""
    type: ItemType = ItemType.STRING
    source_code: str = ""
    version: int = 1

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @classmethod
    def define(
        cls,
        identifier: str,
        name: str,
        aliases: Iterable[str] = (),
        definition: str = "",
        type: ItemType = ItemType.STRING,
        source_code: str = "",
    ) -> DataElement:
        aliases = list(aliases)
        if len(aliases) > MAX_ALIASES or any(len(a) > NAME_LENGTH for a in aliases):
            raise worded(
                InvalidElement("aliases", f"at most {MAX_ALIASES} aliases of at most {NAME_LENGTH} characters"),
                "catalog.element.aliases_too_many",
                max=MAX_ALIASES,
                length=NAME_LENGTH,
            )
        problems = []
        if not IDENTIFIER.fullmatch(identifier):
            rule = "1–32 letters, digits, '.', '_' or '-', e.g. DE0001"
            problems.append(Problem("identifier", rule, "catalog.element.identifier"))
        if not name.strip():
            problems.append(Problem("name", "an element has a standard name", "catalog.element.name_missing"))
        kept = tuple(dict.fromkeys(a.strip() for a in aliases if a.strip() and normal(a) != normal(name)))
        if len({normal(a) for a in kept}) != len(kept):
            problems.append(Problem("aliases", "an alias is listed twice", "catalog.element.alias_repeated"))
        if len(name) > NAME_LENGTH:
            rule = f"is longer than {NAME_LENGTH} characters"
            problems.append(Problem("name", rule, "catalog.element.name_too_long", {"max": NAME_LENGTH}))
        if len(definition) > TEXT_LENGTH:
            rule = f"is longer than {TEXT_LENGTH} characters"
            problems.append(Problem("definition", rule, "catalog.element.definition_too_long", {"max": TEXT_LENGTH}))
        if source_code.strip():
            try:
                source_code = validate_credit_code(source_code.strip())
            except InvalidIdentifier as exc:
                problems.append(Problem("source_code", str(exc), "catalog.element.source_code", {"reason": str(exc)}))
        refuse(problems, InvalidElement)
        return cls(identifier, name.strip(), kept, definition.strip(), type, source_code.strip())


@dataclass(frozen=True)
class SourceClaim:
    """A published entry of `provider_code` declares itself the source of an element."""

    element: str
    provider_code: str
    resource_code: str


@dataclass(frozen=True)
class Dictionary:
    """The elements, looked up by identifier and by normalised name through tables built once, on first use:
    one data, one source and demand matching ask for every item of every entry."""

    elements: tuple[DataElement, ...] = ()

    @cached_property
    def _by_identifier(self) -> dict[str, DataElement]:
        return {e.identifier: e for e in self.elements}

    @cached_property
    def _normal_names(self) -> dict[str, frozenset[str]]:
        """Identifier → the element's names, normalised."""
        return {e.identifier: frozenset(normal(n) for n in e.names) for e in self.elements}

    @cached_property
    def _by_name(self) -> dict[str, tuple[DataElement, ...]]:
        """Normalised name → the elements it names (one, unless stored data predates the one-name rule)."""
        found: dict[str, list[DataElement]] = {}
        for e in self.elements:
            for key in self._normal_names[e.identifier]:
                found.setdefault(key, []).append(e)
        return {key: tuple(named) for key, named in found.items()}

    def get(self, identifier: str) -> DataElement | None:
        return self._by_identifier.get(identifier)

    def require(self, identifier: str) -> DataElement:
        element = self.get(identifier)
        if element is None:
            raise ElementNotFound("identifier", f"the dictionary has no element {identifier}")
        return element

    def matching(self, name: str) -> list[DataElement]:
        """Elements whose standard name or an alias is `name`."""
        return list(self._by_name.get(normal(name), ()))

    def equivalents(self, name: str) -> set[str]:
        """`name` and every name of the elements it names, normalised: 身份证号 → {身份证号, 公民身份号码, …}."""
        key = normal(name)
        return {key}.union(*(self._normal_names[e.identifier] for e in self._by_name.get(key, ())))

    def alias_groups(self) -> list[tuple[str, ...]]:
        """Each element's standard name followed by its aliases: the synonyms search and matching may use."""
        return [e.names for e in self.elements if e.aliases]

    def admit(self, element: DataElement) -> Dictionary:
        """The dictionary with `element` added or replaced; a name or alias may name only one element."""
        return self.admit_all([element])

    def admit_all(self, elements: Iterable[DataElement]) -> Dictionary:
        """The dictionary with each of `elements` added or replaced (the last of one identifier wins), its
        names checked in one pass: a name or alias may name only one element."""
        fresh = {e.identifier: e for e in elements}
        owner: dict[str, str] = {}  # normalised name → the fresh element it names
        for identifier, element in fresh.items():
            for n in element.names:
                key = normal(n)
                clash = owner.setdefault(key, identifier)
                if clash == identifier:
                    stored = (e for e in self._by_name.get(key, ()) if e.identifier not in fresh)
                    clash = next((e.identifier for e in stored), identifier)
                if clash != identifier:
                    known = fresh.get(clash) or self._by_identifier[clash]
                    raise ElementConflict(
                        "aliases", f"{n} already names element {known.identifier} ({known.name}); one name, one element"
                    )
        kept = tuple(e for e in self.elements if e.identifier not in fresh)
        return Dictionary((*kept, *fresh.values()))


def check_source(element: DataElement, departments: dict[str, str]) -> None:
    """An element's source is a department the catalog knows (`departments`: code → name), or none yet."""
    if element.source_code and element.source_code not in departments:
        raise worded(
            InvalidElement("source_code", f"{element.source_code} is not a department the catalog knows"),
            "catalog.element.source_unknown",
            code=element.source_code,
        )


def revise(current: DataElement | None, new: DataElement, expected_version: int | None) -> DataElement:
    """The next version of an element; `expected_version` is the version the editor read (None: a new one)."""
    if current is None:
        if expected_version not in (None, 0):
            raise ElementNotFound("identifier", f"the dictionary has no element {new.identifier}")
        return replace(new, version=1)
    if expected_version is not None and expected_version != current.version:
        raise ElementConflict(
            "version", f"the element changed meanwhile (now version {current.version}, you sent {expected_version})"
        )
    return replace(new, version=current.version + 1)


@dataclass(frozen=True)
class ElementVersion:
    """One recorded state of an element: who changed it, and whether it was removed."""

    element: DataElement
    changed_by: str
    removed: bool = False
    changed_at: datetime | None = None


SHEET_COLUMNS = ["标识符", "标准名称", "同义名称", "定义", "数据类型", "权威来源部门代码", "权威来源部门"]
ALIAS_SEPARATORS = re.compile(r"[、;；,，|]")
TYPE_LABELS = TYPES  # the data types as the catalog table writes them


def read_sheet(table: list[list[object]], departments: dict[str, str]) -> list[DataElement]:
    """Elements from a table in SHEET_COLUMNS layout (header first). The source department is given by its
    credit code or, left blank, by its name (`departments`: code → name, every department the catalog knows; a
    code not among them is refused, and a name two departments share must be given as a code). Every broken
    row is reported."""
    if not table or cells_of(table[0][: len(SHEET_COLUMNS)]) != SHEET_COLUMNS:
        header = "、".join(SHEET_COLUMNS)
        raise SheetErrors([row_error(1, f"the header must be {header}", f"表头应为：{header}")])
    rows = data_rows(table, len(SHEET_COLUMNS))
    if not rows:
        raise SheetErrors([row_error(2, "the table has no elements", "表格没有数据元")])
    if len(rows) > MAX_SHEET_ROWS:
        raise worded(
            SheetErrors(
                [
                    row_error(
                        None,
                        f"the table has {len(rows)} elements; at most {MAX_SHEET_ROWS} are imported at once",
                        f"表格有 {len(rows)} 个数据元，一次最多导入 {MAX_SHEET_ROWS} 个",
                    )
                ]
            ),
            "catalog.element.rows_too_many",
            count=len(rows),
            max=MAX_SHEET_ROWS,
        )
    errors: list[RowError] = []
    found: list[DataElement] = []
    seen: dict[str, int] = {}
    by_name: dict[str, list[str]] = {}
    for known_code, known_name in departments.items():
        by_name.setdefault(known_name, []).append(known_code)
    for number, cells in rows:
        identifier, name, aliases, definition, type_label, code, department = cells[: len(SHEET_COLUMNS)]
        if identifier in seen:
            errors.append(
                row_error(
                    number,
                    f"{identifier} is already on row {seen[identifier]}",
                    f"标识符 {identifier} 与第 {seen[identifier]} 行重复",
                )
            )
            continue
        seen[identifier] = number
        item_type = TYPES.get(type_label) or next((t for t in ItemType if t.value == type_label), None)
        if type_label and item_type is None:
            labels = "、".join(TYPES)
            errors.append(
                row_error(
                    number,
                    f"数据类型 {type_label!r} is not one of {labels}",
                    f"数据类型“{type_label}”不是可选的值：{labels}",
                )
            )
            continue
        if not code and department:
            codes = by_name.get(department, [])
            if len(codes) > 1:
                errors.append(
                    row_error(
                        number,
                        f"权威来源部门 {department!r} names {len(codes)} departments; give its code",
                        f"权威来源部门“{department}”对应 {len(codes)} 个部门，请填写部门代码",
                    )
                )
                continue
            code = codes[0] if codes else ""
            if not code:
                errors.append(
                    row_error(
                        number,
                        f"权威来源部门 {department!r} is not a known department",
                        f"权威来源部门“{department}”不是已登记的部门",
                    )
                )
                continue
        elif code and code not in departments:
            errors.append(
                row_error(
                    number,
                    f"权威来源部门代码 {code} is not a department the catalog knows",
                    f"权威来源部门代码 {code} 不是目录已登记的部门",
                )
            )
            continue
        try:
            found.append(
                DataElement.define(
                    identifier, name, ALIAS_SEPARATORS.split(aliases), definition, item_type or ItemType.STRING, code
                )
            )
        except Invalid as exc:
            errors.append(row_error(number, exc.rule, exc.message or exc.rule))
    if errors:
        raise SheetErrors(errors)
    return found


def sheet_rows(dictionary: Dictionary, names: dict[str, str]) -> list[list[object]]:
    """The dictionary in SHEET_COLUMNS layout, header first (`names`: code → department name)."""
    labels = {t: label for label, t in TYPE_LABELS.items()}
    rows: list[list[object]] = [list(SHEET_COLUMNS)]
    for e in sorted(dictionary.elements, key=lambda e: e.identifier):
        rows.append(
            [
                e.identifier,
                e.name,
                "、".join(e.aliases),
                e.definition,
                labels[e.type],
                e.source_code,
                names.get(e.source_code, ""),
            ]
        )
    return rows
