"""Searching the catalog (Art. 10, 14): what is indexed of an entry, what a query asks, who may see what,
which words mean the same, and what comes back.

The index itself (word segmentation, postings, traditional characters, pinyin) is an adapter behind the
`SearchIndex` port; the groups of words that mean the same come from `AliasSource` ports (a maintained list
of synonyms and abbreviations, the data-element dictionary's aliases) merged into `Synonyms`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from common.errors import Invalid
from services.catalog.domain.entries import (
    CatalogEntry,
    Category,
    ShareMethod,
    ShareType,
    UpdateCycle,
    VersionStatus,
)
from services.catalog.domain.wording import worded

MAX_LIMIT = 100
ONLY_STOP_WORDS = "only_stop_words"  # the note of a query whose words are all stop words


class Facet(StrEnum):
    """Fields a search can be filtered and counted by."""

    PROVIDER = "provider_code"
    CATEGORY = "category"
    SHARE_TYPE = "share_type"
    SHARE_METHOD = "share_method"
    UPDATE_CYCLE = "update_cycle"
    STATUS = "status"


# Chinese labels of the enumerated facets' values, as the compilation guide writes them; filters accept the
# label, the short forms people type and the value itself.
LABELS: dict[Facet, dict[str, str]] = {
    Facet.CATEGORY: {Category.BASE: "基础", Category.THEME: "主题", Category.DEPARTMENT: "部门"},
    Facet.SHARE_TYPE: {
        ShareType.UNCONDITIONAL: "无条件共享",
        ShareType.CONDITIONAL: "有条件共享",
        ShareType.NOT_SHARED: "不予共享",
    },
    Facet.SHARE_METHOD: {
        ShareMethod.API: "接口",
        ShareMethod.FILE_DOWNLOAD: "文件下载",
        ShareMethod.ONLINE_BROWSE: "在线浏览",
        ShareMethod.OFFLINE: "离线交换",
    },
    Facet.UPDATE_CYCLE: {
        UpdateCycle.REAL_TIME: "实时",
        UpdateCycle.DAILY: "每日",
        UpdateCycle.WEEKLY: "每周",
        UpdateCycle.MONTHLY: "每月",
        UpdateCycle.QUARTERLY: "每季度",
        UpdateCycle.HALF_YEARLY: "每半年",
        UpdateCycle.YEARLY: "每年",
    },
    Facet.STATUS: {
        VersionStatus.DRAFT: "草稿",
        VersionStatus.SUBMITTED: "待审核",
        VersionStatus.RETURNED: "已退回",
        VersionStatus.PUBLISHED: "已发布",
        VersionStatus.SUPERSEDED: "已被替代",
        VersionStatus.WITHDRAWN: "已撤销",
    },
}
SHORT_LABELS: dict[Facet, dict[str, str]] = {
    Facet.CATEGORY: {
        "基础信息资源": Category.BASE,
        "主题信息资源": Category.THEME,
        "部门信息资源": Category.DEPARTMENT,
    },
    Facet.SHARE_TYPE: {
        "无条件": ShareType.UNCONDITIONAL,
        "有条件": ShareType.CONDITIONAL,
        "不共享": ShareType.NOT_SHARED,
    },
    Facet.SHARE_METHOD: {"API": ShareMethod.API, "接口服务": ShareMethod.API, "下载": ShareMethod.FILE_DOWNLOAD},
    Facet.UPDATE_CYCLE: {"每天": UpdateCycle.DAILY, "每季": UpdateCycle.QUARTERLY, "半年": UpdateCycle.HALF_YEARLY},
    Facet.STATUS: {
        "已提交": VersionStatus.SUBMITTED,
        "已发布": VersionStatus.PUBLISHED,
        "已撤回": VersionStatus.WITHDRAWN,
    },
}


def label_of(facet: Facet, value: str) -> str:
    """The Chinese label of a facet's value; a provider's has none here (its department name is looked up)."""
    return LABELS.get(facet, {}).get(value, "")


def filter_value(facet: Facet, given: str) -> str:
    """A filter value as typed — the value (`BASE`), its label (`基础`) or a short form (`无条件`) — as stored."""
    labels = LABELS.get(facet)
    if labels is None:
        return given
    text = given.strip()
    if text.upper() in labels:
        return text.upper()
    for value, label in labels.items():
        if text == label:
            return value
    if text in SHORT_LABELS[facet]:
        return SHORT_LABELS[facet][text]
    accepted = "、".join(f"{label}（{value}）" for value, label in labels.items())
    raise Invalid(facet.value, f"“{given}”不是可选的值，可选：{accepted}")


@dataclass(frozen=True)
class Viewer:
    """Who searches, as far as visibility goes: published entries are everyone's; an entry that is not (a
    draft, one under review or returned, a withdrawn one) is seen by its own department only, and by oversight
    (the IT office, auditors, the leadership group) when it asks for such a status explicitly."""

    department_code: str | None  # None for a machine identity: machines read the published catalog only
    oversight: bool = False

    def sees_all(self, filters: Mapping[Facet, frozenset[str]]) -> bool:
        asked = filters.get(Facet.STATUS, frozenset())
        return self.oversight and any(s != VersionStatus.PUBLISHED for s in asked)

    def sees_unpublished(self, provider_code: str) -> bool:
        """Whether the viewer reads an entry's versions that are not in force: its own department's entries
        and, for oversight, everyone's."""
        return self.oversight or (self.department_code is not None and provider_code == self.department_code)


def as_seen_by(entry: CatalogEntry, viewer: Viewer) -> CatalogEntry | None:
    """The entry as the viewer may read it outside search: whole for its own department and oversight; for
    anyone else only the version in force (the draft in progress, earlier and withdrawn versions hidden), and
    nothing when no version is in force — as if there were no such entry. Nor does anyone else read the
    provider's own business with the IT office: a reported change and its deadline, the yearly maintenance
    records and when the next is due, the source exceptions (so such an entry is overdue for nobody else)."""
    if viewer.sees_unpublished(entry.provider_code):
        return entry
    in_force = entry.in_force
    if in_force is None:
        return None
    return replace(
        entry,
        versions=(in_force,),
        pending_update=None,
        overdue_notices=(),
        source_exceptions=(),
        excepted_clashes=(),
        maintenance=(),
        withheld=True,
    )


class Synonyms:
    """Words that mean the same, merged from several sources: a word in two groups joins them (社保 = 社会保险
    from the list and 社会保险 = 社会保障 from the dictionary make one group). Words are kept lower-case."""

    def __init__(self, groups: Iterable[Iterable[str]] = ()) -> None:
        self._group: dict[str, frozenset[str]] = {}
        for group in groups:
            self._add({w.strip().lower() for w in group if w.strip()})

    def _add(self, words: set[str]) -> None:
        if len(words) < 2:
            return
        merged = set(words)
        for word in words:
            merged |= self._group.get(word, frozenset())
        group = frozenset(merged)
        for word in group:
            self._group[word] = group

    def words(self) -> frozenset[str]:
        """Every word of every group, lower-case."""
        return frozenset(self._group)

    def of_word(self, word: str) -> frozenset[str]:
        """The other words meaning the same as `word` (not `word` itself)."""
        return self._group.get(word.lower(), frozenset()) - {word.lower()}

    def __len__(self) -> int:
        return len(set(self._group.values()))


@dataclass(frozen=True)
class SearchDocument:
    """What the index knows of an entry: the version in force, or the one being worked on if none is."""

    resource_code: str
    provider_code: str
    revision: int
    version: int
    name: str
    abstract: str
    item_names: tuple[str, ...]
    item_descriptions: tuple[str, ...]
    status: VersionStatus
    category: Category | None
    share_type: ShareType
    share_methods: frozenset[ShareMethod]
    update_cycle: UpdateCycle | None

    def facet_values(self, facet: Facet) -> tuple[str, ...]:
        match facet:
            case Facet.PROVIDER:
                return (self.provider_code,)
            case Facet.CATEGORY:
                return (self.category,) if self.category else ()
            case Facet.SHARE_TYPE:
                return (self.share_type,)
            case Facet.SHARE_METHOD:
                return tuple(sorted(self.share_methods))
            case Facet.UPDATE_CYCLE:
                return (self.update_cycle,) if self.update_cycle else ()
            case Facet.STATUS:
                return (self.status,)


def document_of(entry: CatalogEntry) -> SearchDocument:
    shown = entry.in_force or entry.latest
    content = shown.content
    return SearchDocument(
        resource_code=entry.resource_code,
        provider_code=entry.provider_code,
        revision=entry.revision,
        version=shown.version,
        name=content.name,
        abstract=content.abstract,
        item_names=tuple(i.name for i in content.data_items),
        item_descriptions=tuple(i.description for i in content.data_items if i.description),
        status=shown.status,
        category=content.category,
        share_type=content.share_type,
        share_methods=content.share_methods,
        update_cycle=content.update_cycle,
    )


@dataclass(frozen=True)
class SearchQuery:
    """Words to find plus filters. Within one facet the values are alternatives; facets combine with AND.

    By default any word will do and entries holding more of the words rank higher; `match_all` asks for entries
    holding every word. `viewer` limits the entries to those the viewer may see (none: all, for the service's
    own use)."""

    text: str = ""
    filters: dict[Facet, frozenset[str]] = field(default_factory=dict)
    match_all: bool = False
    offset: int = 0
    limit: int = 20
    viewer: Viewer | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise worded(Invalid("limit", f"between 1 and {MAX_LIMIT}"), "catalog.search.limit", max=MAX_LIMIT)
        if self.offset < 0:
            raise worded(Invalid("offset", "zero or more"), "catalog.search.offset")
        if len(self.text) > 200:
            raise worded(Invalid("q", "at most 200 characters"), "catalog.search.query_too_long")


@dataclass(frozen=True)
class SearchHit:
    resource_code: str
    provider_code: str
    name: str
    status: VersionStatus
    score: float
    matched: int = 1  # how many of the query's words the entry holds (ranked first)


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: tuple[SearchHit, ...]
    facets: dict[Facet, dict[str, int]]  # per facet: value → entries, counted with the other facets' filters
    terms: tuple[str, ...]  # the words the text was segmented into
    expanded: dict[str, tuple[str, ...]] = field(default_factory=dict)  # word → other words also searched
    note: str | None = None  # why nothing was searched, e.g. ONLY_STOP_WORDS


NOTES = {ONLY_STOP_WORDS: "查询内容只有停用词（如“的”“和”“及”），请输入要查找的词"}
