"""Searching the catalog (Art. 10, 14): what is indexed of an entry, what a query asks, what comes back.

The index itself (word segmentation, postings) is an adapter behind the `SearchIndex` port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


class Facet(StrEnum):
    """Fields a search can be filtered and counted by."""

    PROVIDER = "provider_code"
    CATEGORY = "category"
    SHARE_TYPE = "share_type"
    SHARE_METHOD = "share_method"
    UPDATE_CYCLE = "update_cycle"
    STATUS = "status"


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

    `match_all` asks for entries holding every word of the text; otherwise any word will do and entries
    holding more words rank higher."""

    text: str = ""
    filters: dict[Facet, frozenset[str]] = field(default_factory=dict)
    match_all: bool = True
    offset: int = 0
    limit: int = 20

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


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: tuple[SearchHit, ...]
    facets: dict[Facet, dict[str, int]]  # per facet: value → entries, counted with the other facets' filters
    terms: tuple[str, ...]  # the words the text was segmented into
