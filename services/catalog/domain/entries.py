"""Catalog entries after the national 政务信息资源目录编制指南, and their life (Art. 9–11).

An entry is a sequence of versions. At most one version is in force (published); at most one is being
worked on (draft, submitted or returned). Changing a published entry starts a new version that goes
through review while the old one stays in force.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from common.errors import Conflict, Invalid, NotFound
from common.identifiers import InvalidIdentifier, validate_credit_code
from services.catalog.domain.problems import Problem, refuse
from services.catalog.domain.wording import field_label, label, worded

RESOURCE_CODE = re.compile(r"(\d)(\d{2})(\d{3})/(\d{6})")  # 类 1, 项 2, 目 3 / 顺序码 6
CLASSIFICATION = re.compile(r"\d{6}")
# An entry's stored document holds every version's content and must stay under the database's 16 MiB per
# document: half a mebibyte per content (several hundred fully described items) leaves room for 30 versions.
MAX_CONTENT_BYTES = 512 * 1024


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


class SourceStillReferred(Conflict):
    pass


class ContentNotKept(Conflict):
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
    # One data, one source (Art. 12): a dictionary element this item is the source of, or one it refers to
    # (a key or join column provided by another department). Neither: a new item.
    source_of: str = ""
    refers_to: str = ""


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

    def consistency_problems(self) -> list[Problem]:
        """Rules that hold for drafts too."""
        problems = []
        if not self.name.strip():
            problems.append(Problem("name", "must not be empty", "catalog.entry.name_missing"))
        names = [item.name.strip() for item in self.data_items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            repeated = ", ".join(duplicates)
            problems.append(
                Problem(
                    "data_items",
                    f"item names must be unique; repeated: {repeated}",
                    "catalog.entry.items_repeated",
                    {"names": "、".join(duplicates)},
                )
            )
        size = len(canonical_content(self))
        if size > MAX_CONTENT_BYTES:
            problems.append(
                Problem(
                    "content",
                    f"the content takes {size} bytes, over the {MAX_CONTENT_BYTES} an entry may hold; "
                    "shorten descriptions or split the resource",
                    "catalog.entry.too_large",
                    {"size": size // 1024, "limit": MAX_CONTENT_BYTES // 1024},
                )
            )
        if any(not n for n in names):
            problems.append(Problem("data_items", "every item needs a name", "catalog.entry.item_unnamed"))
        if self.share_type is ShareType.NOT_SHARED and not self.not_shared_basis.strip():
            problems.append(
                Problem(
                    "not_shared_basis",
                    "a not-shared entry must cite its legal basis",
                    "catalog.entry.not_shared_basis_missing",
                )
            )
        if self.format.strip() and self.format.strip() not in RESOURCE_FORMATS:
            problems.append(
                Problem(
                    "format",
                    f"{self.format!r} is not one of the guide's formats: {'、'.join(RESOURCE_FORMATS)}",
                    "catalog.entry.format_unknown",
                    {"format": self.format.strip(), "formats": "、".join(RESOURCE_FORMATS)},
                )
            )
        for item in self.data_items:
            if item.length is not None and item.length <= 0:
                problems.append(
                    Problem(
                        "data_items",
                        f"{item.name}: length must be positive",
                        "catalog.entry.item_length",
                        {"item": item.name},
                    )
                )
            if item.share_type is ShareType.NOT_SHARED and not (item.not_shared_basis or self.not_shared_basis).strip():
                problems.append(
                    Problem(
                        "data_items",
                        f"{item.name}: a not-shared item cites its legal basis (or the entry's covers it)",
                        "catalog.entry.item_not_shared_basis_missing",
                        {"item": item.name},
                    )
                )
            if item.source_of and item.refers_to:
                problems.append(
                    Problem(
                        "data_items",
                        f"{item.name}: is the source of an element or refers to one, not both",
                        "catalog.entry.item_source_and_reference",
                        {"item": item.name},
                    )
                )
        for code in self.related_codes:
            if not RESOURCE_CODE.fullmatch(code):
                problems.append(
                    Problem(
                        "related_codes",
                        f"{code!r} is not a resource code",
                        "catalog.entry.related_code",
                        {"code": code},
                    )
                )
        return problems

    def completeness_problems(self) -> list[Problem]:
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
                problems.append(Problem(name, "is mandatory", "catalog.entry.mandatory", {"field": field_label(name)}))
        if self.share_type is not ShareType.NOT_SHARED:
            if not self.share_methods:
                problems.append(
                    Problem(
                        "share_methods",
                        "a shared entry names at least one share method",
                        "catalog.entry.share_methods_missing",
                    )
                )
            if self.confidentiality_review is None:
                problems.append(
                    Problem(
                        "confidentiality_review",
                        "a resource is shared only after its review (Art. 20)",
                        "catalog.entry.review_missing",
                    )
                )
        if self.share_type is ShareType.CONDITIONAL and not self.share_conditions.strip():
            problems.append(
                Problem(
                    "share_conditions", "a conditional entry states its conditions", "catalog.entry.conditions_missing"
                )
            )
        return problems


def check(problems: list[Problem]) -> None:
    """Refuse with every problem at once, naming the fields, and their codes and messages in the same order."""
    refuse(problems, InvalidEntry)


@dataclass(frozen=True)
class Finding:
    """A reviewer's finding (accuracy, completeness, compliance) on a field, a data item or one element of a
    data item: `abstract`, `data_items[企业名称]`, `data_items[企业名称].length` (an item by name, or by its
    position from 0: `data_items[1].length`, kept by name)."""

    field: str
    finding: str


ITEM_PATH = re.compile(r"data_items\[([^\]]+)\](?:\.(\w+))?")
ITEM_ELEMENTS = tuple(f.name for f in fields(DataItem))
REVIEW_ELEMENTS = tuple(f.name for f in fields(ConfidentialityReview))


def finding_path(content: EntryContent, path: str) -> str | None:
    """The path a finding is kept under (an item named, not numbered), or None when it names nothing."""
    path = path.strip()
    if path in {f.name for f in fields(EntryContent)}:
        return path
    if path.startswith("confidentiality_review.") and path.split(".", 1)[1] in REVIEW_ELEMENTS:
        return path
    matched = ITEM_PATH.fullmatch(path)
    if matched is None:
        return None
    key, element = matched.groups()
    names = [i.name for i in content.data_items]
    if key.isdigit():
        if int(key) >= len(names):
            return None
        key = names[int(key)]
    if key not in names or (element is not None and element not in ITEM_ELEMENTS):
        return None
    return f"data_items[{key}]" + (f".{element}" if element else "")


def finding_paths(content: EntryContent) -> list[str]:
    """What a finding on this content may name."""
    items = [f"data_items[{i.name}]" for i in content.data_items]
    return [
        *(f.name for f in fields(EntryContent)),
        *(f"confidentiality_review.{e}" for e in REVIEW_ELEMENTS),
        *items,
        *(f"data_items[…].{e}" for e in ITEM_ELEMENTS if items),
    ]


@dataclass(frozen=True)
class ReviewRound:
    """A return for changes, kept in the version's history: who, when, the findings and the digest of what was
    returned (enough to refuse it resubmitted unchanged; a full copy per return would grow the entry without
    bound)."""

    reviewed_by: str
    returned_at: datetime
    findings: tuple[Finding, ...]
    content_digest: str


def canonical_content(content: EntryContent) -> bytes:
    """The content as UTF-8 JSON with sorted keys: equal contents, equal bytes (and about its stored size)."""
    return json.dumps(asdict(content), sort_keys=True, ensure_ascii=False, default=_canonical).encode()


def content_digest(content: EntryContent) -> str:
    return hashlib.sha256(canonical_content(content)).hexdigest()


def _canonical(value: object) -> object:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} has no canonical form")


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
    findings: tuple[Finding, ...] = ()  # of the latest return, until the version is published
    published_on: date | None = None
    edited_by: tuple[str, ...] = ()
    withdrawal: Withdrawal | None = None
    returns: tuple[ReviewRound, ...] = ()
    # An old version's full content is not kept (CatalogEntry.keeping_contents): `content` then holds its name
    # only, `content_digest` the SHA-256 of what it was.
    content_kept: bool = True
    content_digest: str = ""

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
class MaintenanceConfirmed:
    """The yearly full maintenance (Art. 11 ¶3) found the entry still right: nothing changed."""

    confirmed_on: date
    confirmed_by: str
    note: str


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
    source_exceptions: tuple[tuple[str, str], ...] = ()  # (data item, legal basis) recorded by the IT office
    # What each exception covers: (data item, element, clash kind) as flagged when it was recorded, so the same
    # item name linked to another element, or clashing another way, in a later version is not excepted.
    excepted_clashes: tuple[tuple[str, str, str], ...] = ()
    withdrawal: Withdrawal | None = None
    maintenance: tuple[MaintenanceConfirmed, ...] = ()
    # The entry as another department reads it (search.as_seen_by): its version in force only, without the
    # provider's deadlines, maintenance records and source exceptions. Never stored.
    withheld: bool = False

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
        raise worded(
            EntryNotFound("version", f"{self.resource_code} has no version {number}"),
            "catalog.entry.version_not_found",
            code=self.resource_code,
            version=number,
        )

    def keeping_contents(self, keep: int) -> CatalogEntry:
        """The entry with the full contents of its last `keep` versions, and of the versions in force and being
        worked on whatever their age; any older version keeps its metadata (status, who, when, review rounds),
        its name and the digest of its content. The history's size is then bounded, not its length."""
        kept = {v.version for v in self.versions[-keep:]} | {v.version for v in (self.in_force, self.working) if v}
        return replace(
            self,
            versions=tuple(
                v
                if v.version in kept or not v.content_kept
                else replace(
                    v,
                    content=EntryContent(v.content.name),
                    content_kept=False,
                    content_digest=content_digest(v.content),
                )
                for v in self.versions
            ),
        )

    def content_of(self, number: int) -> EntryContent:
        """The full content of a version, refused when the history no longer keeps it."""
        version = self.version(number)
        if not version.content_kept:
            raise worded(
                ContentNotKept(
                    "version", f"the content of version {number} is no longer kept, only its metadata and digest"
                ),
                "catalog.entry.content_not_kept",
                code=self.resource_code,
                version=number,
            )
        return version.content

    def maintenance_due(self) -> date | None:
        """A published entry is fully maintained at least once a year (Art. 11 ¶3): republished, or confirmed
        unchanged. Not shown to other departments (`withheld`)."""
        if self.withheld or self.in_force is None or self.in_force.published_on is None:
            return None
        last = max([self.in_force.published_on, *(m.confirmed_on for m in self.maintenance)])
        return one_year_after(last)

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
            raise worded(
                TransitionNotAllowed("status", "only a published entry has to follow changes of its resource"),
                "catalog.entry.not_published",
            )
        if changed_on > today:
            raise worded(
                InvalidEntry("changed_on", "a change cannot be reported before it happens"),
                "catalog.entry.change_in_future",
            )
        published_on = self.in_force.published_on
        if published_on is not None and changed_on < published_on:
            raise worded(
                InvalidEntry(
                    "changed_on",
                    f"the version in force was published on {published_on.isoformat()}, after this change: "
                    "it already follows it",
                ),
                "catalog.entry.change_before_publication",
                published_on=published_on.isoformat(),
            )
        if not reason.strip():
            raise worded(InvalidEntry("reason", "say what changed"), "catalog.entry.change_reason_missing")
        if self.pending_update is not None and self.pending_update.changed_on <= changed_on:
            return self  # the earlier, still open report sets the deadline
        return replace(
            self, pending_update=PendingUpdate(changed_on, due_on, reason.strip()), revision=self.revision + 1
        )

    def confirm_maintenance(
        self, confirmed_by: str, today: date, note: str, revision: int | None
    ) -> tuple[CatalogEntry, EntryVersion]:
        """The yearly maintenance found the version in force still right: recorded, the next is due a year on."""
        self._expect(revision)
        version = self.in_force
        if version is None:
            raise worded(
                TransitionNotAllowed("status", "only a published entry is maintained yearly"),
                "catalog.entry.maintenance_unpublished",
            )
        if self.pending_update is not None:
            pending = self.pending_update
            raise worded(
                TransitionNotAllowed(
                    "pending_update",
                    f"a change of {pending.changed_on} was reported; update the entry by {pending.due_on}",
                ),
                "catalog.entry.maintenance_change_pending",
                changed_on=pending.changed_on.isoformat(),
                due_on=pending.due_on.isoformat(),
            )
        # One record per calendar year: confirming again within the year replaces that year's record (the latest
        # confirmation and its note stand), so repeated confirmations cannot grow the entry without bound.
        confirmed = MaintenanceConfirmed(today, confirmed_by, note.strip())
        kept = tuple(m for m in self.maintenance if m.confirmed_on.year != today.year)
        return replace(self, maintenance=(*kept, confirmed), revision=self.revision + 1), version

    def except_source(self, item: str, legal_basis: str, clashes: tuple[tuple[str, str], ...]) -> CatalogEntry:
        """The IT office excepts the item's flagged `clashes` ((element, kind) pairs) on a legal basis."""
        if not legal_basis.strip():
            raise worded(
                InvalidEntry("legal_basis", "an exception to one data, one source cites its legal basis"),
                "catalog.source.exception_basis_missing",
            )
        kept = tuple((i, b) for i, b in self.source_exceptions if i != item)
        covered = tuple(c for c in self.excepted_clashes if c[0] != item) + tuple((item, e, k) for e, k in clashes)
        return replace(
            self,
            source_exceptions=(*kept, (item, legal_basis.strip())),
            excepted_clashes=covered,
            revision=self.revision + 1,
        )

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
            raise worded(
                VersionConflict(
                    "revision", f"the entry changed meanwhile (now revision {self.revision}, you sent {revision})"
                ),
                "catalog.entry.stale",
                current=self.revision,
                sent=revision,
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
                raise worded(
                    TransitionNotAllowed("status", "a withdrawn entry cannot be edited"),
                    "catalog.entry.withdrawn_not_editable",
                )
            number = self.latest.version + 1
            return self._with(
                EntryVersion(number, content, VersionStatus.DRAFT, compiled_by, now, edited_by=(compiled_by,))
            )
        if working.status is VersionStatus.SUBMITTED:
            raise worded(
                TransitionNotAllowed("status", f"version {working.version} is under review; wait for the reviewer"),
                "catalog.entry.under_review",
                version=working.version,
            )
        # the findings stay with the version while the compiler works through them
        return self._with(
            replace(
                working.touched_by(compiled_by),
                content=content,
                status=VersionStatus.DRAFT,
                compiled_by=compiled_by,
                updated_at=now,
            )
        )

    def submit(self, revision: int | None, submitted_by: str | None = None) -> tuple[CatalogEntry, EntryVersion]:
        """The submitter answers for the version as much as its writers: she joins its compilers."""
        self._expect(revision)
        working = self.working
        if working is None or working.status is VersionStatus.SUBMITTED:
            raise worded(
                TransitionNotAllowed("status", "only a draft or returned version can be submitted"),
                "catalog.entry.not_submittable",
            )
        if working.returns and working.returns[-1].content_digest == content_digest(working.content):
            raise worded(
                TransitionNotAllowed(
                    "content", f"version {working.version} is unchanged since it was returned; address the findings"
                ),
                "catalog.entry.unchanged_after_return",
                version=working.version,
            )
        check(working.content.completeness_problems())
        if submitted_by is not None:
            working = working.touched_by(submitted_by)
        submitted = replace(working, status=VersionStatus.SUBMITTED, updated_at=datetime.now(UTC))
        return self._with(submitted), submitted

    def _under_review(self) -> EntryVersion:
        working = self.working
        if working is None or working.status is not VersionStatus.SUBMITTED:
            raise worded(
                TransitionNotAllowed("status", "no version of this entry is waiting for review"),
                "catalog.entry.nothing_to_review",
            )
        return working

    def return_for_changes(
        self, reviewer: str, findings: tuple[Finding, ...], revision: int | None
    ) -> tuple[CatalogEntry, EntryVersion]:
        self._expect(revision)
        version = self._under_review()
        if not findings:
            raise worded(
                InvalidEntry("findings", "a returned entry carries at least one finding"),
                "catalog.entry.findings_missing",
            )
        paths = {f.field: finding_path(version.content, f.field) for f in findings}
        unknown = sorted(name for name, path in paths.items() if path is None)
        if unknown:
            valid = finding_paths(version.content)
            raise worded(
                InvalidEntry(
                    "findings", f"findings name unknown fields: {', '.join(unknown)}; valid: {', '.join(valid)}"
                ),
                "catalog.entry.finding_unknown_field",
                unknown="、".join(unknown),
                valid="、".join(valid),
            )
        kept = tuple(replace(f, field=paths[f.field] or f.field) for f in findings)
        now = datetime.now(UTC)
        returned = replace(
            version,
            status=VersionStatus.RETURNED,
            reviewed_by=reviewer,
            findings=kept,
            updated_at=now,
            returns=(*version.returns, ReviewRound(reviewer, now, kept, content_digest(version.content))),
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
            raise worded(
                TransitionNotAllowed("status", "only a published entry can be withdrawn"),
                "catalog.entry.not_withdrawable",
            )
        if not reason.strip():
            raise worded(InvalidEntry("reason", "say why the entry is withdrawn"), "catalog.entry.withdrawal_reason")
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
        raise worded(InvalidEntry("provider_code", str(exc)), "catalog.entry.provider_code", reason=str(exc)) from None


CLASS_RULE = "the class digit (类) is 1 基础, 2 主题 or 3 部门"


def validate_resource_code(code: str) -> None:
    if not RESOURCE_CODE.fullmatch(code):
        raise worded(
            InvalidEntry("resource_code", "must be 6 classification digits (类1 项2 目3), '/', a 6-digit 顺序码"),
            "catalog.entry.resource_code_format",
        )
    if code[0] not in CLASS_OF_CATEGORY:
        raise worded(InvalidEntry("resource_code", CLASS_RULE), "catalog.entry.resource_code_class")


def class_problems(resource_code: str, content: EntryContent) -> list[Problem]:
    """The code's class digit and the entry's category say the same thing."""
    expected = CLASS_OF_CATEGORY.get(resource_code[:1])
    if content.category is None or expected is None or content.category is expected:
        return []
    return [
        Problem(
            "category",
            f"{content.category.value} does not agree with class {resource_code[0]} of {resource_code} "
            f"({expected.value}); {CLASS_RULE}",
            "catalog.entry.class_category",
            {"category": label(content.category), "code": resource_code, "expected": label(expected)},
        )
    ]


def resource_code(classification: str, sequence: int) -> str:
    if not CLASSIFICATION.fullmatch(classification) or classification[0] not in CLASS_OF_CATEGORY:
        raise worded(
            InvalidEntry("classification", f"must be 6 digits: 类 1, 项 2, 目 3; {CLASS_RULE}"),
            "catalog.entry.classification_format",
        )
    if not 0 < sequence < 1_000_000:
        raise worded(
            InvalidEntry("classification", "this classification has no sequence numbers left"),
            "catalog.entry.classification_full",
        )
    return f"{classification}/{sequence:06d}"


def diff(older: EntryContent, newer: EntryContent) -> dict[str, dict[str, Any]]:
    """Field by field: {field: {"from": old, "to": new}} for the fields that differ; the data items besides
    item by item (by name): the items added, removed, and changed with their changed elements."""
    changes = {}
    for f in fields(EntryContent):
        before, after = getattr(older, f.name), getattr(newer, f.name)
        if before != after:
            changes[f.name] = {"from": before, "to": after}
    if "data_items" in changes:
        changes["data_items"] |= item_diff(older.data_items, newer.data_items)
    return changes


def item_diff(older: tuple[DataItem, ...], newer: tuple[DataItem, ...]) -> dict[str, Any]:
    before = {i.name: i for i in older}
    after = {i.name: i for i in newer}
    changed = []
    for name in (n for n in after if n in before and after[n] != before[n]):
        elements = {
            e: {"from": getattr(before[name], e), "to": getattr(after[name], e)}
            for e in ITEM_ELEMENTS
            if getattr(before[name], e) != getattr(after[name], e)
        }
        changed.append({"name": name, "changes": elements})
    common = [n for n in after if n in before]
    return {
        "added": [i for n, i in after.items() if n not in before],
        "removed": [i for n, i in before.items() if n not in after],
        "changed": changed,
        "reordered": [n for n in before if n in after] != common,
    }
