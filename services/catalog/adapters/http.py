"""Catalog REST routes: translate HTTP to commands and results back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response, UploadFile
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from common.clock import today_in_china
from common.fields import Code, EventInt, Name, Position, Text
from common.guard import Guard
from common.limits import MAX_ITEMS
from common.paging import Page, PageOf
from common.policy import OVERSIGHT, Principal
from common.workdays import WorkingCalendar
from services.catalog import demands, handlers
from services.catalog.adapters import sheets
from services.catalog.adapters.retry import retried
from services.catalog.domain.demands import DemandStatus
from services.catalog.domain.entries import (
    RESOURCE_FORMATS,
    CatalogEntry,
    Category,
    ConfidentialityReview,
    DataItem,
    EntryContent,
    EntryVersion,
    Finding,
    ItemType,
    OpenAttribute,
    OverdueKind,
    ShareMethod,
    ShareType,
    UpdateCycle,
    VersionStatus,
    Withdrawal,
)
from services.catalog.domain.search import (
    NOTES,
    Facet,
    SearchQuery,
    SearchResult,
    Viewer,
    document_of,
    filter_value,
    label_of,
)
from services.catalog.domain.sources import ClashKind
from services.catalog.domain.wording import label
from services.catalog.ports import DepartmentNames, FindingsCache, SearchIndex, UnitOfWork

Compiler = Annotated[Principal, Depends(Guard("catalog.entry.draft"))]
Reviewer = Annotated[Principal, Depends(Guard("catalog.entry.review"))]
Reporter = Annotated[Principal, Depends(Guard("catalog.entry.report_change"))]
DemandFiler = Annotated[Principal, Depends(Guard("catalog.demand.file"))]
SourceExcepter = Annotated[Principal, Depends(Guard("catalog.source.exception"))]
Matcher = Annotated[Principal, Depends(Guard("catalog.demand.match"))]
Settler = Annotated[Principal, Depends(Guard("catalog.demand.settle"))]
Withdrawer = Annotated[Principal, Depends(Guard("catalog.entry.withdraw"))]
Reader = Annotated[Principal, Depends(Guard("catalog.entry.read"))]


class DataItemView(BaseModel):
    name: str = Field(examples=["统一社会信用代码"])
    type: ItemType = ItemType.STRING
    description: str = ""
    length: int | None = None
    share_type: ShareType | None = Field(None, description="where the entry is shared only in part")
    sensitive: bool = False
    not_shared_basis: str = Field(
        "", description="the legal basis where this item is not shared; else the entry's not_shared_basis applies"
    )
    source_of: str = Field("", description="the dictionary element (数据元) this item is the authoritative source of")
    refers_to: str = Field(
        "", description="the dictionary element this item refers to (a key or join column provided elsewhere)"
    )


class ReviewView(BaseModel):
    reviewed_by: str
    reviewed_on: date
    conclusion: str


class ContentView(BaseModel):
    """The entry's elements after the national compilation guide. Drafts may leave some out."""

    name: str = Field(examples=["企业登记基本信息"])
    abstract: str = ""
    category: Category | None = None
    format: str = Field("", examples=["数据库"], description="one of " + "、".join(RESOURCE_FORMATS))
    data_items: Sequence[DataItemView] = ()
    share_type: ShareType = ShareType.CONDITIONAL
    share_conditions: str = ""
    not_shared_basis: str = ""
    share_methods: list[ShareMethod] = []
    open_attribute: OpenAttribute = OpenAttribute.NOT_OPEN
    update_cycle: UpdateCycle | None = None
    related_codes: list[str] = []
    confidentiality_review: ReviewView | None = None


# Request bodies bound what a client may send; the views above show what is stored, limits or not.
class DataItemBody(DataItemView):
    name: Name = Field(examples=["统一社会信用代码"])
    description: Text = ""
    length: EventInt | None = None
    not_shared_basis: Text = ""
    source_of: Code = ""
    refers_to: Code = ""


class ReviewBody(ReviewView):
    reviewed_by: Name
    conclusion: Text


class ContentBody(ContentView):
    name: Name = Field(examples=["企业登记基本信息"])
    abstract: Text = ""
    format: Name = Field("", examples=["数据库"])
    data_items: list[DataItemBody] = Field([], max_length=MAX_ITEMS)
    share_conditions: Text = ""
    not_shared_basis: Text = ""
    share_methods: list[ShareMethod] = Field([], max_length=len(ShareMethod))
    related_codes: list[Code] = Field([], max_length=MAX_ITEMS)
    confidentiality_review: ReviewBody | None = None

    def content(self) -> EntryContent:
        review = self.confidentiality_review
        return EntryContent(
            name=self.name,
            abstract=self.abstract,
            category=self.category,
            format=self.format,
            data_items=tuple(DataItem(**i.model_dump()) for i in self.data_items),
            share_type=self.share_type,
            share_conditions=self.share_conditions,
            not_shared_basis=self.not_shared_basis,
            share_methods=frozenset(self.share_methods),
            open_attribute=self.open_attribute,
            update_cycle=self.update_cycle,
            related_codes=tuple(self.related_codes),
            confidentiality_review=ConfidentialityReview(**review.model_dump()) if review else None,
        )


class DraftBody(ContentBody):
    provider_code: Code = Field(description="Unified social credit code of the provider department")
    resource_code: Code | None = Field(None, description="given, e.g. when migrating; else generated")
    classification: Code | None = Field(None, description="类1 项2 目3, e.g. 101001: the 顺序码 is assigned")


class EditBody(ContentBody):
    revision: Position = Field(description="the revision you read; a concurrent change makes this a 409")


class TransitionBody(BaseModel):
    revision: Position


class FindingView(BaseModel):
    field: str = Field(
        description="a field (abstract), a data item by name or position from 0 (data_items[企业名称], "
        "data_items[1]) or one element of it (data_items[企业名称].length); kept with the item's name"
    )
    finding: str


class FindingBody(FindingView):
    field: Name
    finding: Text


class ReviewRoundView(BaseModel):
    reviewed_by: str
    returned_at: datetime
    findings: list[FindingView]
    content_digest: str = Field(description="SHA-256 of the content as it was returned (resubmitting it is refused)")


class MaintenanceBody(TransitionBody):
    note: Text = Field("", examples=["年度全面维护：数据项、共享条件均无变化"])


class MaintenanceView(BaseModel):
    confirmed_on: date
    confirmed_by: str
    note: str


class PendingUpdateView(BaseModel):
    changed_on: date
    due_on: date = Field(description="5 working days after the change (Art. 11), by the Chinese calendar")
    reason: str


class ReturnBody(TransitionBody):
    findings: list[FindingBody] = Field(max_length=MAX_ITEMS)


class WithdrawBody(TransitionBody):
    reason: Text


class WithdrawalView(BaseModel):
    reason: str
    withdrawn_by: str
    withdrawn_on: date


class VersionView(BaseModel):
    version: int
    status: VersionStatus
    compiled_by: str = Field(description="who saved the version last")
    edited_by: list[str] = Field(description="everyone who wrote or submitted it: none of them may review it")
    updated_at: datetime
    reviewed_by: str | None
    findings: list[FindingView] = Field(description="of the latest return, until the version is published")
    published_on: date | None
    withdrawal: WithdrawalView | None = None
    content: ContentView = Field(
        description="the version's content; of an old version whose content is no longer kept, its name only"
    )
    content_kept: bool = Field(
        True,
        description="false for an old version: an entry keeps the full content of its latest versions "
        "(CATALOG_VERSION_CONTENTS_KEPT, default 20) and of those in force and being worked on; of the others "
        "their metadata, name and content_digest",
    )
    content_digest: str = Field("", description="SHA-256 of the content no longer kept")
    returns: list[ReviewRoundView] = Field(description="every return for changes, oldest first")

    @classmethod
    def of(cls, v: EntryVersion) -> VersionView:
        return cls.model_validate(
            {**jsonable_encoder(v, custom_encoder={frozenset: sorted}), "content": _content(v.content)}
        )


class SourceExceptionView(BaseModel):
    item: str
    legal_basis: str


class EntryView(BaseModel):
    resource_code: str
    provider_code: str
    revision: int
    in_force: VersionView | None
    working: VersionView | None
    versions: list[int]
    withdrawal: WithdrawalView | None = None
    pending_update: PendingUpdateView | None = Field(description="a reported change the entry must follow, and by when")
    maintenance_due: date | None = Field(description="the yearly full maintenance is due by this day (Art. 11)")
    maintenance: list[MaintenanceView] = Field(description="yearly maintenances that found nothing to change")
    source_exceptions: list[SourceExceptionView] = Field(
        description="flagged data items the IT office lets stay, with the legal basis (one data, one source)"
    )

    @classmethod
    def of(cls, e: CatalogEntry) -> EntryView:
        return cls(
            resource_code=e.resource_code,
            provider_code=e.provider_code,
            revision=e.revision,
            in_force=VersionView.of(e.in_force) if e.in_force else None,
            working=VersionView.of(e.working) if e.working else None,
            versions=[v.version for v in e.versions],
            withdrawal=_withdrawal(e.withdrawal),
            pending_update=PendingUpdateView.model_validate(e.pending_update, from_attributes=True)
            if e.pending_update
            else None,
            maintenance_due=e.maintenance_due(),
            maintenance=[MaintenanceView.model_validate(m, from_attributes=True) for m in e.maintenance],
            source_exceptions=[SourceExceptionView(item=i, legal_basis=b) for i, b in e.source_exceptions],
        )


def _withdrawal(w: Withdrawal | None) -> WithdrawalView | None:
    return None if w is None else WithdrawalView.model_validate(w, from_attributes=True)


def _content(c: EntryContent) -> dict[str, Any]:
    return jsonable_encoder(c, custom_encoder={frozenset: sorted})


class ChangeBody(BaseModel):
    reason: Text = Field(examples=["新增经营范围字段"])
    changed_on: date | None = Field(None, description="when the data or elements changed; today if left out")


class OverdueView(BaseModel):
    resource_code: str
    provider_code: str
    provider_name: str = Field(description="the department's name, as the directory registered it")
    name: str
    kind: OverdueKind
    due_on: date


class DemandBody(BaseModel):
    title: Name = Field(examples=["企业登记信息"])
    description: Text = ""
    wanted_items: list[Name] = Field([], max_length=MAX_ITEMS, examples=[["统一社会信用代码", "企业名称"]])


class DemandView(BaseModel):
    title: str
    description: str
    wanted_items: list[str]
    demand_id: str
    requester_code: str
    filed_by: str
    filed_on: date
    status: DemandStatus
    resource_code: str | None
    confirmed_by: str | None
    covered_items: list[str]
    match_reason: str
    closed_by: str | None
    reason: str
    legal_basis: str


class CandidateView(BaseModel):
    resource_code: str
    name: str
    provider_code: str
    covered_items: list[str]
    score: float


class SourceExceptionBody(BaseModel):
    item: Name = Field(description="a flagged data item of the entry")
    legal_basis: Text


class DuplicateSourceView(BaseModel):
    resource_code: str
    provider_code: str
    item: str = Field(description="the entry's data item")
    kind: ClashKind
    element: str = Field(description="the dictionary element it collects again")
    element_name: str
    existing_provider_code: str
    existing_provider_name: str
    existing_resource_code: str
    legal_exception: str | None


class MatchBody(BaseModel):
    resource_code: Code
    reason: Text = Field("", description="required when the entry carries none of the wanted items")


class ReasonBody(BaseModel):
    reason: Text


class UnmeetableBody(ReasonBody):
    legal_basis: Text = Field(description="the legal grounds on which the demand cannot be met (Art. 14)")


class SearchHitView(BaseModel):
    resource_code: str
    provider_code: str
    provider_name: str = Field(description="the provider department's name, as the directory registered it")
    name: str
    status: VersionStatus
    status_label: str = Field(examples=["已发布"])
    score: float
    matched: int = Field(description="how many of the query's words the entry holds; more rank first")


class FacetValueView(BaseModel):
    value: str
    label: str = Field(description="Chinese label of the value, or the department's name for providers")
    count: int


class SearchNoteView(BaseModel):
    rule: str = Field(examples=["only_stop_words"])
    message: str


class SearchView(BaseModel):
    total: int
    terms: list[str] = Field(description="the words the query was segmented into")
    expanded: dict[str, list[str]] = Field(
        description="per word, the other words also searched: synonyms, the words its pinyin spells, longer words"
    )
    note: SearchNoteView | None = Field(None, description="why nothing was searched")
    hits: list[SearchHitView]
    facets: dict[Facet, list[FacetValueView]] = Field(
        description="per facet, entries per value under the other facets' filters, most first"
    )
    labels: dict[Facet, dict[str, str]] = Field(
        description="per facet, the Chinese label of each value counted (a provider's department name)"
    )

    @classmethod
    def of(cls, r: SearchResult, names: dict[str, str]) -> SearchView:
        def label(facet: Facet, value: str) -> str:
            return names.get(value, "") if facet is Facet.PROVIDER else label_of(facet, value)

        return cls(
            total=r.total,
            terms=list(r.terms),
            expanded={word: list(others) for word, others in r.expanded.items()},
            note=SearchNoteView(rule=r.note, message=NOTES[r.note]) if r.note else None,
            hits=[
                SearchHitView(
                    resource_code=h.resource_code,
                    provider_code=h.provider_code,
                    provider_name=names.get(h.provider_code, ""),
                    name=h.name,
                    status=h.status,
                    status_label=label_of(Facet.STATUS, h.status),
                    score=h.score,
                    matched=h.matched,
                )
                for h in r.hits
            ],
            labels={facet: facet_labels(facet, counts, names) for facet, counts in r.facets.items()},
            facets={
                facet: [
                    FacetValueView(value=v, label=label(facet, v), count=c)
                    for v, c in sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))
                ]
                for facet, counts in r.facets.items()
            },
        )


FACET_ENUMS: dict[Facet, type[StrEnum]] = {
    Facet.CATEGORY: Category,
    Facet.SHARE_TYPE: ShareType,
    Facet.SHARE_METHOD: ShareMethod,
    Facet.UPDATE_CYCLE: UpdateCycle,
    Facet.STATUS: VersionStatus,
}


def facet_labels(facet: Facet, counts: dict[str, int], department_names: dict[str, str]) -> dict[str, str]:
    if facet is Facet.PROVIDER:
        return {code: department_names.get(code, code) for code in counts}
    enum = FACET_ENUMS[facet]
    return {value: label(enum(value)) for value in counts}


def viewer_of(principal: Principal) -> Viewer:
    """What of the catalog a caller may read: a person her own department's entries whole, oversight every
    entry whole, anyone else (machines too) the versions in force."""
    department = None if principal.machine else principal.department_code
    return Viewer(department, oversight=bool(principal.roles & OVERSIGHT))


def routers(
    uow: UnitOfWork, calendar: WorkingCalendar, index: SearchIndex, names: DepartmentNames, findings: FindingsCache
) -> list[APIRouter]:
    api = APIRouter(prefix="/entries", tags=["catalog entries"])

    def written(entry: CatalogEntry) -> EntryView:
        """The writer finds its change at once; other replicas get it from the change stream."""
        index.put(document_of(entry))
        findings.invalidate()
        return EntryView.of(entry)

    @api.post("", status_code=201, response_model=EntryView, summary="Compile a new entry (a draft)")
    async def draft(body: DraftBody, principal: Compiler) -> EntryView:
        command = handlers.DraftEntry(body.provider_code, body.content(), body.resource_code, body.classification)
        return written(await retried(lambda: handlers.draft_entry(command, principal, uow)))

    @api.post(
        "/import",
        status_code=201,
        response_model=list[EntryView],
        summary="Bulk compilation from an XLSX or CSV table in the 共享目录 layout: all rows or none",
    )
    async def import_table(file: UploadFile, principal: Compiler) -> list[EntryView]:
        table = sheets.read_table(await file.read(), file.filename or "")
        return [written(e) for e in await retried(lambda: handlers.import_entries(table, principal, uow))]

    @api.get("", response_model=Page[EntryView], summary="Entries by resource code, optionally of one provider")
    async def entries(principal: Reader, page: PageOf, provider_code: Code | None = None) -> Page[EntryView]:
        found, total = await handlers.list_entries(uow, provider_code, page.offset, page.limit, viewer_of(principal))
        return Page[EntryView].of([EntryView.of(e) for e in found], total, page)

    @api.put(
        "/{resource_code:path}/draft",
        response_model=EntryView,
        summary="Change the working version, or start a new version of a published entry",
    )
    async def edit(resource_code: Code, body: EditBody, principal: Compiler) -> EntryView:
        return written(
            await retried(lambda: handlers.edit_entry(resource_code, body.content(), body.revision, principal, uow))
        )

    @api.post("/{resource_code:path}/submit", response_model=EntryView, summary="Submit for review")
    async def submit(resource_code: Code, body: TransitionBody, principal: Compiler) -> EntryView:
        return written(await retried(lambda: handlers.submit_entry(resource_code, body.revision, principal, uow)))

    @api.post("/{resource_code:path}/return", response_model=EntryView, summary="Return with findings per field")
    async def give_back(resource_code: Code, body: ReturnBody, principal: Reviewer) -> EntryView:
        findings = tuple(Finding(f.field, f.finding) for f in body.findings)
        return written(
            await retried(lambda: handlers.return_entry(resource_code, findings, body.revision, principal, uow))
        )

    @api.post("/{resource_code:path}/approve", response_model=EntryView, summary="Approve and publish")
    async def approve(resource_code: Code, body: TransitionBody, principal: Reviewer) -> EntryView:
        today = today_in_china()
        return written(
            await retried(lambda: handlers.approve_entry(resource_code, body.revision, principal, uow, today))
        )

    @api.post("/{resource_code:path}/withdraw", response_model=EntryView, summary="Withdraw from the catalog")
    async def withdraw(resource_code: Code, body: WithdrawBody, principal: Withdrawer) -> EntryView:
        entry = await retried(
            lambda: handlers.withdraw_entry(resource_code, body.reason, body.revision, principal, uow, today_in_china())
        )
        return written(entry)

    @api.post(
        "/{resource_code:path}/changes",
        response_model=EntryView,
        summary="Report that the resource changed: the entry must follow within 5 working days",
    )
    async def report_change(resource_code: Code, body: ChangeBody, principal: Reporter) -> EntryView:
        today = today_in_china()
        entry = await retried(
            lambda: handlers.report_change(
                resource_code, body.changed_on or today, body.reason, principal, uow, calendar, today
            )
        )
        return written(entry)

    @api.post(
        "/{resource_code:path}/maintenance",
        response_model=EntryView,
        summary="The yearly full maintenance found nothing to change: recorded, the next is due a year on",
    )
    async def confirm_maintenance(resource_code: Code, body: MaintenanceBody, principal: Reporter) -> EntryView:
        entry = await retried(
            lambda: handlers.confirm_maintenance(
                resource_code, body.note, body.revision, principal, uow, today_in_china()
            )
        )
        return written(entry)

    @api.post(
        "/{resource_code:path}/source-exceptions",
        response_model=EntryView,
        summary="The IT office records the legal basis for sourcing an element provided elsewhere",
    )
    async def source_exception(resource_code: Code, body: SourceExceptionBody, principal: SourceExcepter) -> EntryView:
        entry = await retried(
            lambda: handlers.record_source_exception(resource_code, body.item, body.legal_basis, principal, uow)
        )
        return written(entry)

    @api.get("/{resource_code:path}/versions/{number}", response_model=VersionView, summary="One version")
    async def version(resource_code: Code, number: Position, principal: Reader) -> VersionView:
        return VersionView.of((await handlers.get_entry(resource_code, uow, viewer_of(principal))).version(number))

    @api.get(
        "/{resource_code:path}/diff",
        summary="What changed between two versions, field by field and data item by data item",
    )
    async def compare(
        resource_code: Code,
        principal: Reader,
        older: Annotated[Position, Query(alias="from")],
        newer: Annotated[Position, Query(alias="to")],
    ) -> dict[str, Any]:
        changes = await handlers.compare_versions(resource_code, older, newer, uow, viewer_of(principal))
        return jsonable_encoder(changes, custom_encoder={frozenset: sorted})

    @api.get("/{resource_code:path}", response_model=EntryView, summary="One entry: in force, being worked on")
    async def get(resource_code: Code, principal: Reader) -> EntryView:
        return EntryView.of(await handlers.get_entry(resource_code, uow, viewer_of(principal)))

    overdue = APIRouter(tags=["catalog entries"])

    @overdue.get(
        "/overdue",
        response_model=Page[OverdueView],
        summary="Entries not updated 5 working days after a change, or not maintained for a year; "
        "longest overdue first",
        description="A department sees its own entries' deadlines, oversight (the IT office, auditors, the "
        "leadership group) everyone's; another department's reported changes and maintenance are not shown.",
    )
    async def overdue_list(
        principal: Reader,
        page: PageOf,
        provider_code: Code | None = None,
        on: Annotated[date | None, Query(description="default today")] = None,
    ) -> Page[OverdueView]:
        found = await handlers.overdue_entries(uow, on or today_in_china(), provider_code, viewer_of(principal))
        names = await uow.department_names()
        views = [
            OverdueView(
                resource_code=e.resource_code,
                provider_code=e.provider_code,
                provider_name=names.get(e.provider_code, ""),
                name=(e.in_force or e.latest).content.name,
                kind=o.kind,
                due_on=o.due_on,
            )
            for e, o in page.cut(found)
        ]
        return Page[OverdueView].of(views, len(found), page)

    @overdue.get("/search", response_model=SearchView, summary="Full-text search in Chinese, with filters and facets")
    async def search(
        principal: Reader,
        q: Annotated[
            Name,
            Query(
                description="words to find in names, abstracts and data items: simplified or traditional characters, "
                "abbreviations (社保), pinyin (qiye) or its initials, the beginning of a word (不动)"
            ),
        ] = "",
        provider_code: Annotated[list[Code], Query(max_length=MAX_ITEMS)] = [],  # noqa: B006 — FastAPI copies query defaults
        category: Annotated[list[Name], Query(description="BASE or 基础 …")] = [],  # noqa: B006
        share_type: Annotated[list[Name], Query(description="CONDITIONAL or 有条件共享 …")] = [],  # noqa: B006
        share_method: Annotated[list[Name], Query(description="API or 接口 …")] = [],  # noqa: B006
        update_cycle: Annotated[list[Name], Query(description="DAILY or 每日 …")] = [],  # noqa: B006
        status: Annotated[
            list[Name],
            Query(
                description="PUBLISHED or 已发布 …; another department's entries that are not published are shown "
                "to oversight only"
            ),
        ] = [],  # noqa: B006
        match: Annotated[
            Literal["all", "any"], Query(description="entries with any of the words, most words first; or all")
        ] = "any",
        offset: Annotated[Position, Query()] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> SearchView:
        chosen: dict[Facet, Sequence[str]] = {
            Facet.PROVIDER: provider_code,
            Facet.CATEGORY: category,
            Facet.SHARE_TYPE: share_type,
            Facet.SHARE_METHOD: share_method,
            Facet.UPDATE_CYCLE: update_cycle,
            Facet.STATUS: status,
        }
        filters = {
            facet: frozenset(filter_value(facet, v) for v in values) for facet, values in chosen.items() if values
        }
        query = SearchQuery(q, filters, match == "all", offset, limit, viewer_of(principal))
        result, known = await handlers.search_catalog(query, index, names)
        return SearchView.of(result, known)

    @overdue.get("/catalog.xlsx", summary="The published catalog (共享目录) as a workbook", response_class=Response)
    async def catalog_xlsx(_: Reader) -> Response:
        return Response(
            sheets.to_xlsx(await handlers.export_catalog(uow)),
            media_type=sheets.XLSX,
            headers={"Content-Disposition": 'attachment; filename="catalog.xlsx"'},
        )

    @overdue.get("/catalog.csv", summary="The published catalog (共享目录) as CSV", response_class=Response)
    async def catalog_csv(_: Reader) -> Response:
        return Response(
            sheets.to_csv(await handlers.export_catalog(uow)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="catalog.csv"'},
        )

    @overdue.get(
        "/duplicate-sources",
        response_model=Page[DuplicateSourceView],
        summary="Entries that source a data element another department already provides (Art. 12); "
        "by resource code and data item",
    )
    async def duplicate_sources(principal: Reader, page: PageOf) -> Page[DuplicateSourceView]:
        found = await handlers.duplicate_sources(uow, viewer_of(principal), findings)
        names = await uow.department_names()
        views = [
            DuplicateSourceView(
                resource_code=e.resource_code,
                provider_code=e.provider_code,
                item=c.item,
                kind=c.kind,
                element=c.element,
                element_name=c.element_name,
                existing_provider_code=c.existing_provider,
                existing_provider_name=names.get(c.existing_provider, ""),
                existing_resource_code=c.existing_resource,
                legal_exception=basis,
            )
            for e, c, basis in page.cut(found)
        ]
        return Page[DuplicateSourceView].of(views, len(found), page)

    demand_api = APIRouter(prefix="/demands", tags=["share demands"])

    @demand_api.post("", status_code=201, response_model=DemandView, summary="Record what the department needs")
    async def file_demand(body: DemandBody, principal: DemandFiler) -> DemandView:
        demand = await retried(
            lambda: demands.file_demand(
                body.title, body.description, tuple(body.wanted_items), principal, uow, today_in_china()
            )
        )
        return DemandView.model_validate(demand, from_attributes=True)

    @demand_api.get(
        "", response_model=Page[DemandView], summary="Demands, oldest first; status=OPEN lists the unmet ones"
    )
    async def list_demands(
        _: Reader, page: PageOf, status: DemandStatus | None = None, requester_code: Code | None = None
    ) -> Page[DemandView]:
        found, total = await demands.list_demands(uow, status, requester_code, page.offset, page.limit)
        return Page[DemandView].of([DemandView.model_validate(d, from_attributes=True) for d in found], total, page)

    @demand_api.get("/{demand_id}", response_model=DemandView, summary="One demand")
    async def get_demand(demand_id: Code, _: Reader) -> DemandView:
        return DemandView.model_validate(await demands.get_demand(demand_id, uow), from_attributes=True)

    @demand_api.get(
        "/{demand_id}/candidates",
        response_model=Page[CandidateView],
        summary="Published entries that may meet the demand, best first (ties by resource code), paged",
        description=f"The best {demands.MAX_CANDIDATES} entries search finds for the demand's words and wanted "
        "items, ranked by the wanted items they carry; each as the caller may read it (its version in force).",
    )
    async def candidates(demand_id: Code, principal: Reader, page: PageOf) -> Page[CandidateView]:
        found, total = await demands.suggest(demand_id, uow, index, viewer_of(principal), page.offset, page.limit)
        return Page[CandidateView].of(
            [CandidateView.model_validate(c, from_attributes=True) for c in found], total, page
        )

    @demand_api.post("/{demand_id}/match", response_model=DemandView, summary="The IT office confirms a match")
    async def match(demand_id: Code, body: MatchBody, principal: Matcher) -> DemandView:
        demand = await retried(
            lambda: demands.confirm_match(demand_id, body.resource_code, body.reason, principal, uow)
        )
        return DemandView.model_validate(demand, from_attributes=True)

    @demand_api.post("/{demand_id}/unmatch", response_model=DemandView, summary="The IT office undoes a match")
    async def unmatch(demand_id: Code, body: ReasonBody, principal: Settler) -> DemandView:
        demand = await retried(lambda: demands.undo_match(demand_id, body.reason, principal, uow))
        return DemandView.model_validate(demand, from_attributes=True)

    @demand_api.post("/{demand_id}/cancel", response_model=DemandView, summary="The requester withdraws its demand")
    async def cancel(demand_id: Code, body: ReasonBody, principal: DemandFiler) -> DemandView:
        demand = await retried(lambda: demands.cancel_demand(demand_id, body.reason, principal, uow))
        return DemandView.model_validate(demand, from_attributes=True)

    @demand_api.post(
        "/{demand_id}/unmeetable",
        response_model=DemandView,
        summary="The IT office finds the demand cannot be met, citing the legal grounds",
    )
    async def unmeetable(demand_id: Code, body: UnmeetableBody, principal: Settler) -> DemandView:
        demand = await retried(
            lambda: demands.declare_unmeetable(demand_id, body.reason, body.legal_basis, principal, uow)
        )
        return DemandView.model_validate(demand, from_attributes=True)

    return [api, overdue, demand_api]
