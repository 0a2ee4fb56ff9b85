"""Catalog entries after the national 政务信息资源目录编制指南, and their life (Art. 9–11).

An entry is a sequence of versions. At most one version is in force (published); at most one is being
worked on (draft, submitted or returned). Changing a published entry starts a new version that goes
through review while the old one stays in force.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from common.errors import Conflict, Invalid, NotFound
from common.identifiers import InvalidIdentifier, validate_credit_code

RESOURCE_CODE = re.compile(r"(\d)(\d{2})(\d{3})/(\d{6})")  # 类 1, 项 2, 目 3 / 顺序码 6
CLASSIFICATION = re.compile(r"\d{6}")


class ShareType(StrEnum):
    UNCONDITIONAL = "UNCONDITIONAL"  # 无条件共享
    CONDITIONAL = "CONDITIONAL"  # 有条件共享
    NOT_SHARED = "NOT_SHARED"  # 不予共享


class Category(StrEnum):
    BASE = "BASE"  # 基础信息资源 (人口, 法人, 自然资源和空间地理, 电子证照 …)
    THEME = "THEME"  # 主题信息资源
    DEPARTMENT = "DEPARTMENT"  # 部门信息资源


CLASS_OF_CATEGORY = {"1": Category.BASE, "2": Category.THEME, "3": Category.DEPARTMENT}  # 类: the code's first digit

# 信息资源格式: the format classes of the national compilation guide (政务信息资源目录编制指南（试行）). The city's
# measures (Art. 10) ask for the data format but give no list of their own.
RESOURCE_FORMATS = ("电子文件", "电子表格", "数据库", "图形图像", "流媒体", "自描述格式", "接口", "其他")


class ShareMethod(StrEnum):
    API = "API"
    FILE_DOWNLOAD = "FILE_DOWNLOAD"
    ONLINE_BROWSE = "ONLINE_BROWSE"
    OFFLINE = "OFFLINE"


class UpdateCycle(StrEnum):
    REAL_TIME = "REAL_TIME"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    HALF_YEARLY = "HALF_YEARLY"
    YEARLY = "YEARLY"


class OpenAttribute(StrEnum):
    OPEN = "OPEN"  # 向社会开放
    CONDITIONALLY_OPEN = "CONDITIONALLY_OPEN"
    NOT_OPEN = "NOT_OPEN"


class ItemType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    BINARY = "binary"


class VersionStatus(StrEnum):
    DRAFT = "DRAFT"
    SUBMITTED = "SUBMITTED"
    RETURNED = "RETURNED"
    PUBLISHED = "PUBLISHED"  # in force
    SUPERSEDED = "SUPERSEDED"  # was in force, replaced by a later version
    WITHDRAWN = "WITHDRAWN"


class InvalidEntry(Invalid):
    pass


class EntryExists(Conflict):
    pass


class EntryNotFound(NotFound):
    pass


class TransitionNotAllowed(Conflict):
    pass


class VersionConflict(Conflict):
    pass


class DuplicateSource(Conflict):
    pass


@dataclass(frozen=True)
class DataItem:
    """信息项."""

    name: str
    type: ItemType
    description: str = ""
    length: int | None = None
    share_type: ShareType | None = None  # where the entry is shared only in part
    sensitive: bool = False
    not_shared_basis: str = ""  # the legal basis where this item is not shared


@dataclass(frozen=True)
class ConfidentialityReview:
    """The department's confidentiality review of the resource (Art. 20)."""

    reviewed_by: str
    reviewed_on: date
    conclusion: str


@dataclass(frozen=True)
class EntryContent:
    """What a compiler writes. A draft may be incomplete; submission needs every mandatory element."""

    name: str
    abstract: str = ""
    category: Category | None = None
    format: str = ""
    data_items: tuple[DataItem, ...] = ()
    share_type: ShareType = ShareType.CONDITIONAL
    share_conditions: str = ""
    not_shared_basis: str = ""
    share_methods: frozenset[ShareMethod] = frozenset()
    open_attribute: OpenAttribute = OpenAttribute.NOT_OPEN
    update_cycle: UpdateCycle | None = None
    related_codes: tuple[str, ...] = ()
    confidentiality_review: ConfidentialityReview | None = None

    def consistency_problems(self) -> list[tuple[str, str]]:
        """Rules that hold for drafts too."""
        problems = []
        if not self.name.strip():
            problems.append(("name", "must not be empty"))
        names = [item.name.strip() for item in self.data_items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(("data_items", f"item names must be unique; repeated: {', '.join(duplicates)}"))
        if any(not n for n in names):
            problems.append(("data_items", "every item needs a name"))
        if self.share_type is ShareType.NOT_SHARED and not self.not_shared_basis.strip():
            problems.append(("not_shared_basis", "a not-shared entry must cite its legal basis"))
        if self.format.strip() and self.format.strip() not in RESOURCE_FORMATS:
            problems.append(
                ("format", f"{self.format!r} is not one of the guide's formats: {'、'.join(RESOURCE_FORMATS)}")
            )
        for item in self.data_items:
            if item.length is not None and item.length <= 0:
                problems.append(("data_items", f"{item.name}: length must be positive"))
            if item.share_type is ShareType.NOT_SHARED and not (item.not_shared_basis or self.not_shared_basis).strip():
                problems.append(
                    ("data_items", f"{item.name}: a not-shared item cites its legal basis (or the entry's covers it)")
                )
        for code in self.related_codes:
            if not RESOURCE_CODE.fullmatch(code):
                problems.append(("related_codes", f"{code!r} is not a resource code"))
        return problems

    def completeness_problems(self) -> list[tuple[str, str]]:
        """Mandatory elements a submitted entry must have."""
        problems = self.consistency_problems()
        for name, missing in [
            ("abstract", not self.abstract.strip()),
            ("category", self.category is None),
            ("format", not self.format.strip()),
            ("data_items", not self.data_items),
            ("update_cycle", self.update_cycle is None),
        ]:
            if missing:
                problems.append((name, "is mandatory"))
        if self.share_type is not ShareType.NOT_SHARED:
            if not self.share_methods:
                problems.append(("share_methods", "a shared entry names at least one share method"))
            if self.confidentiality_review is None:
                problems.append(("confidentiality_review", "a resource is shared only after its review (Art. 20)"))
        if self.share_type is ShareType.CONDITIONAL and not self.share_conditions.strip():
            problems.append(("share_conditions", "a conditional entry states its conditions"))
        return problems


def check(problems: list[tuple[str, str]]) -> None:
    """Refuse with every problem at once, naming the fields."""
    if problems:
        names = ", ".join(dict.fromkeys(f for f, _ in problems))
        raise InvalidEntry(names, "; ".join(f"{f} {r}" for f, r in problems))


@dataclass(frozen=True)
class Finding:
    """A reviewer's finding on one field (accuracy, completeness, compliance)."""

    field: str
    finding: str


@dataclass(frozen=True)
class Withdrawal:
    """Why, by whom and when an entry left the catalog."""

    reason: str
    withdrawn_by: str
    withdrawn_on: date


@dataclass(frozen=True)
class EntryVersion:
    """`compiled_by` is who saved last; `edited_by` everyone who wrote or submitted this version, in order:
    each of them is its compiler for the four-eyes rule."""

    version: int
    content: EntryContent
    status: VersionStatus
    compiled_by: str
    updated_at: datetime
    reviewed_by: str | None = None
    findings: tuple[Finding, ...] = ()
    published_on: date | None = None
    edited_by: tuple[str, ...] = ()
    withdrawal: Withdrawal | None = None

    def touched_by(self, person: str) -> EntryVersion:
        editors = self.edited_by or (self.compiled_by,)
        return self if person in editors else replace(self, edited_by=(*editors, person))

    @property
    def editors(self) -> frozenset[str]:
        return frozenset(self.edited_by) | {self.compiled_by}


UPDATE_WORKING_DAYS = 5  # Art. 11: updated within 5 working days after the data or elements change


class OverdueKind(StrEnum):
    UPDATE_AFTER_CHANGE = "UPDATE_AFTER_CHANGE"
    YEARLY_MAINTENANCE = "YEARLY_MAINTENANCE"


@dataclass(frozen=True)
class PendingUpdate:
    """The provider reported (or the exchange found) that the resource changed: the entry must follow."""

    changed_on: date
    due_on: date
    reason: str


@dataclass(frozen=True)
class Overdue:
    kind: OverdueKind
    due_on: date

    @property
    def notice(self) -> str:
        return f"{self.kind.value}:{self.due_on.isoformat()}"


def one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


@dataclass(frozen=True)
class CatalogEntry:
    """The aggregate. `revision` increases with every change and guards against concurrent edits."""

    resource_code: str
    provider_code: str
    versions: tuple[EntryVersion, ...]
    revision: int = 1
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    pending_update: PendingUpdate | None = None
    overdue_notices: tuple[str, ...] = ()  # overdue states already announced, so each is announced once
    source_exceptions: tuple[tuple[str, str], ...] = ()  # (data element, legal basis) recorded by the IT office
    withdrawal: Withdrawal | None = None

    # -- reading -----------------------------------------------------------------------------------

    @property
    def in_force(self) -> EntryVersion | None:
        return next((v for v in self.versions if v.status is VersionStatus.PUBLISHED), None)

    @property
    def working(self) -> EntryVersion | None:
        open_statuses = (VersionStatus.DRAFT, VersionStatus.SUBMITTED, VersionStatus.RETURNED)
        return next((v for v in self.versions if v.status in open_statuses), None)

    @property
    def latest(self) -> EntryVersion:
        return self.versions[-1]

    def version(self, number: int) -> EntryVersion:
        for v in self.versions:
            if v.version == number:
                return v
        raise EntryNotFound("version", f"{self.resource_code} has no version {number}")

    def maintenance_due(self) -> date | None:
        """A published entry is fully reviewed (republished) at least once a year."""
        return one_year_after(self.in_force.published_on) if self.in_force and self.in_force.published_on else None

    def overdue(self, today: date) -> list[Overdue]:
        if self.in_force is None:  # a draft has no deadline yet, a withdrawn entry none any more
            return []
        found = []
        if self.pending_update is not None and today > self.pending_update.due_on:
            found.append(Overdue(OverdueKind.UPDATE_AFTER_CHANGE, self.pending_update.due_on))
        due = self.maintenance_due()
        if due is not None and today > due:
            found.append(Overdue(OverdueKind.YEARLY_MAINTENANCE, due))
        return found

    # -- changing ----------------------------------------------------------------------------------

    def report_change(self, changed_on: date, today: date, due_on: date, reason: str) -> CatalogEntry:
        """`due_on` is UPDATE_WORKING_DAYS working days after `changed_on` (the caller's calendar)."""
        if self.in_force is None:
            raise TransitionNotAllowed("status", "only a published entry has to follow changes of its resource")
        if changed_on > today:
            raise InvalidEntry("changed_on", "a change cannot be reported before it happens")
        published_on = self.in_force.published_on
        if published_on is not None and changed_on < published_on:
            raise InvalidEntry(
                "changed_on",
                f"the version in force was published on {published_on.isoformat()}, after this change: "
                "it already follows it",
            )
        if not reason.strip():
            raise InvalidEntry("reason", "say what changed")
        if self.pending_update is not None and self.pending_update.changed_on <= changed_on:
            return self  # the earlier, still open report sets the deadline
        return replace(
            self, pending_update=PendingUpdate(changed_on, due_on, reason.strip()), revision=self.revision + 1
        )

    def except_source(self, element: str, legal_basis: str) -> CatalogEntry:
        if not legal_basis.strip():
            raise InvalidEntry("legal_basis", "an exception to one data, one source cites its legal basis")
        kept = tuple((e, b) for e, b in self.source_exceptions if e != element)
        return replace(self, source_exceptions=(*kept, (element, legal_basis.strip())), revision=self.revision + 1)

    def announce(self, overdue: list[Overdue]) -> tuple[CatalogEntry, list[Overdue]]:
        """The overdue states not announced before, and the entry that remembers them."""
        new = [o for o in overdue if o.notice not in self.overdue_notices]
        if not new:
            return self, []
        notices = (*self.overdue_notices, *(o.notice for o in new))
        return replace(self, overdue_notices=notices, revision=self.revision + 1), new

    @classmethod
    def draft(cls, resource_code: str, provider_code: str, content: EntryContent, compiled_by: str) -> CatalogEntry:
        validate_resource_code(resource_code)
        provider = validate_provider_code(provider_code)
        check(content.consistency_problems() + class_problems(resource_code, content))
        first = EntryVersion(1, content, VersionStatus.DRAFT, compiled_by, datetime.now(UTC), edited_by=(compiled_by,))
        return cls(resource_code, provider, (first,))

    def _expect(self, revision: int | None) -> None:
        if revision is not None and revision != self.revision:
            raise VersionConflict(
                "revision", f"the entry changed meanwhile (now revision {self.revision}, you sent {revision})"
            )

    def _with(self, version: EntryVersion) -> CatalogEntry:
        versions = tuple(version if v.version == version.version else v for v in self.versions)
        if version.version not in {v.version for v in self.versions}:
            versions = (*self.versions, version)
        return replace(self, versions=versions, revision=self.revision + 1)

    def edit(self, content: EntryContent, compiled_by: str, revision: int | None) -> CatalogEntry:
        """Change the working version, or start a new one from the version in force."""
        self._expect(revision)
        check(content.consistency_problems() + class_problems(self.resource_code, content))
        working = self.working
        now = datetime.now(UTC)
        if working is None:
            if self.in_force is None:
                raise TransitionNotAllowed("status", "a withdrawn entry cannot be edited")
            number = self.latest.version + 1
            return self._with(
                EntryVersion(number, content, VersionStatus.DRAFT, compiled_by, now, edited_by=(compiled_by,))
            )
        if working.status is VersionStatus.SUBMITTED:
            raise TransitionNotAllowed("status", f"version {working.version} is under review; wait for the reviewer")
        return self._with(
            replace(
                working.touched_by(compiled_by),
                content=content,
                status=VersionStatus.DRAFT,
                compiled_by=compiled_by,
                updated_at=now,
                findings=(),
            )
        )

    def submit(self, revision: int | None, submitted_by: str | None = None) -> tuple[CatalogEntry, EntryVersion]:
        """The submitter answers for the version as much as its writers: she joins its compilers."""
        self._expect(revision)
        working = self.working
        if working is None or working.status is VersionStatus.SUBMITTED:
            raise TransitionNotAllowed("status", "only a draft or returned version can be submitted")
        check(working.content.completeness_problems())
        if submitted_by is not None:
            working = working.touched_by(submitted_by)
        submitted = replace(working, status=VersionStatus.SUBMITTED, updated_at=datetime.now(UTC))
        return self._with(submitted), submitted

    def _under_review(self) -> EntryVersion:
        working = self.working
        if working is None or working.status is not VersionStatus.SUBMITTED:
            raise TransitionNotAllowed("status", "no version of this entry is waiting for review")
        return working

    def return_for_changes(
        self, reviewer: str, findings: tuple[Finding, ...], revision: int | None
    ) -> tuple[CatalogEntry, EntryVersion]:
        self._expect(revision)
        version = self._under_review()
        if not findings:
            raise InvalidEntry("findings", "a returned entry carries at least one finding")
        known = {f.name for f in fields(EntryContent)}
        unknown = sorted({f.field for f in findings} - known)
        if unknown:
            raise InvalidEntry("findings", f"findings name unknown fields: {', '.join(unknown)}")
        returned = replace(
            version,
            status=VersionStatus.RETURNED,
            reviewed_by=reviewer,
            findings=findings,
            updated_at=datetime.now(UTC),
        )
        return self._with(returned), returned

    def approve(self, reviewer: str, today: date, revision: int | None) -> tuple[CatalogEntry, EntryVersion]:
        """Publish the version under review; the one in force until now is superseded."""
        self._expect(revision)
        version = self._under_review()
        check(version.content.completeness_problems())
        published = replace(
            version,
            status=VersionStatus.PUBLISHED,
            reviewed_by=reviewer,
            published_on=today,
            findings=(),
            updated_at=datetime.now(UTC),
        )
        entry = self
        if self.in_force is not None:
            entry = entry._with(replace(self.in_force, status=VersionStatus.SUPERSEDED))
        entry = replace(entry, pending_update=None)  # the entry followed the change
        return entry._with(published), published

    def withdraw(
        self, reason: str, withdrawn_by: str, today: date, revision: int | None
    ) -> tuple[CatalogEntry, EntryVersion]:
        self._expect(revision)
        version = self.in_force
        if version is None:
            raise TransitionNotAllowed("status", "only a published entry can be withdrawn")
        if not reason.strip():
            raise InvalidEntry("reason", "say why the entry is withdrawn")
        withdrawal = Withdrawal(reason.strip(), withdrawn_by, today)
        now = datetime.now(UTC)
        withdrawn = replace(version, status=VersionStatus.WITHDRAWN, updated_at=now, withdrawal=withdrawal)
        entry = self._with(withdrawn)
        if entry.working is not None:  # a pending change of a withdrawn entry has nothing left to change
            entry = entry._with(
                replace(entry.working, status=VersionStatus.WITHDRAWN, updated_at=now, withdrawal=withdrawal)
            )
        return replace(entry, withdrawal=withdrawal, pending_update=None), withdrawn


def validate_provider_code(code: str) -> str:
    try:
        return validate_credit_code(code)
    except InvalidIdentifier as exc:
        raise InvalidEntry("provider_code", str(exc)) from None


CLASS_RULE = "the class digit (类) is 1 基础, 2 主题 or 3 部门"


def validate_resource_code(code: str) -> None:
    if not RESOURCE_CODE.fullmatch(code):
        raise InvalidEntry("resource_code", "must be 6 classification digits (类1 项2 目3), '/', a 6-digit 顺序码")
    if code[0] not in CLASS_OF_CATEGORY:
        raise InvalidEntry("resource_code", CLASS_RULE)


def class_problems(resource_code: str, content: EntryContent) -> list[tuple[str, str]]:
    """The code's class digit and the entry's category say the same thing."""
    expected = CLASS_OF_CATEGORY.get(resource_code[:1])
    if content.category is None or expected is None or content.category is expected:
        return []
    return [
        (
            "category",
            f"{content.category.value} does not agree with class {resource_code[0]} of {resource_code} "
            f"({expected.value}); {CLASS_RULE}",
        )
    ]


def resource_code(classification: str, sequence: int) -> str:
    if not CLASSIFICATION.fullmatch(classification) or classification[0] not in CLASS_OF_CATEGORY:
        raise InvalidEntry("classification", f"must be 6 digits: 类 1, 项 2, 目 3; {CLASS_RULE}")
    if not 0 < sequence < 1_000_000:
        raise InvalidEntry("classification", "this classification has no sequence numbers left")
    return f"{classification}/{sequence:06d}"


def diff(older: EntryContent, newer: EntryContent) -> dict[str, dict[str, Any]]:
    """Field by field: {field: {"from": old, "to": new}} for the fields that differ."""
    changes = {}
    for f in fields(EntryContent):
        before, after = getattr(older, f.name), getattr(newer, f.name)
        if before != after:
            changes[f.name] = {"from": before, "to": after}
    return changes
