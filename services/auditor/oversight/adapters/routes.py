"""REST routes of the oversight: a department's figures and how they were computed, the ranking, the monthly
and quarterly reports (HTML, PDF), the scoring formula, and the findings with their notices of criticism.
Each route translates, calls its handler and shapes the answer; the guard applies the rule's role part and
the handler the department part."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, StringConstraints

from common import limits
from common.errors import Invalid
from common.fields import Code, Name
from common.guard import Guard
from common.paging import Page, PageOf
from common.policy import Principal
from services.auditor.domain.findings import Answer, Category, ClosedBy, Finding, RectificationReport, Status
from services.auditor.domain.scoring import FORMULA, INDICATORS, Figures, Period, Ranked
from services.auditor.domain.trends import MAX_MONTHS
from services.auditor.oversight import handlers
from services.auditor.oversight.adapters.reports import in_thread, notice_html, pdf_of, report_html
from services.auditor.oversight.handlers import Oversight


async def provided_oversight(request: Request) -> Oversight:
    """The handlers' dependencies, built once by the auditor's bootstrap (it puts them on the app)."""
    oversight: Oversight | None = getattr(request.app.state, "oversight", None)
    if oversight is None:
        raise RuntimeError("the oversight routes are used without the auditor's bootstrap")
    return oversight


OversightDep = Annotated[Oversight, Depends(provided_oversight)]
FiguresReader = Annotated[Principal, Depends(Guard("auditor.evaluation.read"))]
ReportReader = Annotated[Principal, Depends(Guard("auditor.report.read"))]
FindingReader = Annotated[Principal, Depends(Guard("auditor.finding.read"))]
FindingRaiser = Annotated[Principal, Depends(Guard("auditor.finding.raise"))]
FindingCorrector = Annotated[Principal, Depends(Guard("auditor.finding.correct"))]
FindingReporter = Annotated[Principal, Depends(Guard("auditor.finding.report"))]
# what a person writes (a report, a reason, a description): something besides white space, bounded
Written = Annotated[str, StringConstraints(min_length=1, max_length=limits.TEXT_LENGTH, pattern=r"\S")]
WrittenName = Annotated[str, StringConstraints(min_length=1, max_length=limits.NAME_LENGTH, pattern=r"\S")]
WrittenCode = Annotated[str, StringConstraints(min_length=1, max_length=limits.CODE_LENGTH, pattern=r"\S")]
PeriodLabel = Annotated[
    str, Path(max_length=7, description="a month (2026-10) or a quarter (2026-Q4)", examples=["2026-10"])
]


def period_of(label: str) -> Period:
    try:
        return Period.parse(label)
    except ValueError as exc:
        raise Invalid("period", str(exc)) from None


# -- views -------------------------------------------------------------------------------------------------


class IndicatorView(BaseModel):
    name: str
    label: str
    meaning: str = Field(description="what is counted, and of what")
    counted: int
    out_of: int = Field(description="0: nothing to count in the period; the indicator does not apply")
    rate: float | None
    weight: float
    applies: bool
    evidence: list[str] = Field(description="what fell short (the first 20)")


class FiguresView(BaseModel):
    department_code: str
    period: str
    start: date
    end: date
    score: float
    formula: str
    indicators: list[IndicatorView]
    entries_in_force: int
    changes_stored: int
    changes_refused: int
    uses: int = Field(description="data accesses served to other departments")
    consumers: list[str] = Field(description="the departments served")

    @classmethod
    def of(cls, f: Figures) -> FiguresView:
        return cls(
            department_code=f.department_code,
            period=f.period.label,
            start=f.period.start,
            end=f.period.end,
            score=f.score,
            formula=FORMULA,
            indicators=[
                IndicatorView(
                    name=i.name,
                    label=i.label,
                    meaning=i.meaning,
                    counted=i.counted,
                    out_of=i.out_of,
                    rate=i.rate,
                    weight=i.weight,
                    applies=i.applies,
                    evidence=list(i.evidence),
                )
                for i in f.indicators
            ],
            entries_in_force=f.entries_in_force,
            changes_stored=f.changes_stored,
            changes_refused=f.changes_refused,
            uses=f.uses,
            consumers=list(f.consumers),
        )


class RankedView(BaseModel):
    rank: int
    department_code: str
    score: float
    rates: dict[str, float | None]

    @classmethod
    def of(cls, r: Ranked) -> RankedView:
        f = r.figures
        return cls(
            rank=r.rank, department_code=f.department_code, score=f.score, rates={i.name: i.rate for i in f.indicators}
        )


class FormulaView(BaseModel):
    formula: str
    weights: dict[str, float]
    meanings: dict[str, str]
    labels: dict[str, str] = Field(description="each indicator's Chinese name, as the reports print it")
    usage_target: int


class MonthTotalsView(BaseModel):
    month: str = Field(examples=["2026-10"])
    accesses: int = Field(description="data served to another department")
    changes_stored: int = Field(description="data changes the center stored")
    entries_published: int = Field(description="catalog versions that came into force (approved)")


class ReportView(BaseModel):
    text: str
    reference: str | None
    submitted_by: str
    submitted_on: date = Field(description="the day it came (Beijing)")
    answer: Answer = Field(
        description="AWAITED: the IT office has not answered yet; SUPERSEDED: an event proved the matter made "
        "good before the answer"
    )
    answered_by: str | None
    answered_on: date | None
    reason: str | None = Field(description="why the IT office rejected it")
    submitted_by_department: str | None = Field(description="the department of the person who filed it")
    on_behalf: bool | None = Field(
        description="filed by the IT office on the department's behalf; null: not known (a report kept before "
        "the filer's department was)"
    )

    @classmethod
    def of(cls, r: RectificationReport) -> ReportView:
        return cls(**vars(r))


class FindingView(BaseModel):
    finding_id: str
    department_code: str
    category: Category
    article: str
    matter: str
    description: str
    detected_on: date
    correct_by: date
    raised_by: str
    evidence: list[str]
    occurrences: int
    status: Status
    corrected_on: date | None
    proof: str | None
    escalated_on: date | None
    reports: list[ReportView] = Field(description="the department's rectification reports, the latest last")
    held: bool = Field(description="a report that came in time awaits the IT office's answer: no escalation")
    awaiting: bool = Field(description="its latest report awaits the IT office's answer")
    closed_by: ClosedBy | None = Field(
        description="REPORT: the department's report, accepted; IT_OFFICE: the IT office's own correction; "
        "EVENT: a later event proved it"
    )
    closed_by_person: str | None = Field(description="the IT office person who closed it (None for an event)")
    corrected_by_department: bool | None = Field(
        description="closed by the department's own report; null: a corrected finding kept before what closed it "
        "was, not by an accepted report (the IT office's correction or an event, not known which)"
    )
    later_occurrences: int = Field(
        description="occurrences since the awaited report came, kept apart: the report does not answer them"
    )
    later_evidence: list[str]
    continued: str | None = Field(description="the finding the occurrences after the accepted report became")

    @classmethod
    def of(cls, f: Finding) -> FindingView:
        return cls(
            finding_id=f.finding_id,
            department_code=f.department_code,
            category=f.category,
            article=f.article,
            matter=f.matter,
            description=f.description,
            detected_on=f.detected_on,
            correct_by=f.correct_by,
            raised_by=f.raised_by,
            evidence=list(f.evidence),
            occurrences=f.occurrences,
            status=f.status,
            corrected_on=f.corrected_on,
            proof=f.proof,
            escalated_on=f.escalated_on,
            reports=[ReportView.of(r) for r in f.reports],
            held=f.held,
            awaiting=f.awaiting is not None,
            closed_by=f.closed_by,
            closed_by_person=f.closed_by_person,
            corrected_by_department=f.corrected_by_department,
            later_occurrences=f.later_occurrences,
            later_evidence=list(f.later),
            continued=f.continued,
        )


class FindingIn(BaseModel):
    department_code: WrittenCode
    category: Category
    matter: WrittenName = Field(description="what it is about: an entry, a resource, a grant, a request")
    description: Written
    evidence: Written
    request_id: WrittenCode = Field(description="the caller's id of this call: a retried call raises nothing new")


class CorrectionIn(BaseModel):
    proof: Written = Field(description="what shows the finding was corrected")


class ReportIn(BaseModel):
    text: Written = Field(description="what the department did to correct the finding")
    reference: Name | None = Field(default=None, description="a document number, a file or a record to check")


class RejectionIn(BaseModel):
    reason: Written = Field(description="why the report does not show the finding corrected")


PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}, "description": "PDF (A4)"}
}
HTML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "an HTML document"}
}

# -- routes ------------------------------------------------------------------------------------------------

evaluation = APIRouter(prefix="/evaluation", tags=["evaluation"])
findings = APIRouter(prefix="/findings", tags=["findings"])


@evaluation.get("/formula", response_model=FormulaView, summary="The scoring formula and its weights")
async def formula(principal: FiguresReader, oversight: OversightDep) -> FormulaView:
    return FormulaView(
        formula=FORMULA,
        weights=dict(oversight.scoring.weights),
        meanings={n: m for n, (_, m) in INDICATORS.items()},
        labels={n: label for n, (label, _) in INDICATORS.items()},
        usage_target=oversight.scoring.usage_target,
    )


@evaluation.get(
    "/trends",
    response_model=list[MonthTotalsView],
    summary="The city's accesses, stored changes and published versions per month, oldest first",
)
async def trends(
    principal: ReportReader,
    oversight: OversightDep,
    months: Annotated[int, Query(ge=1, le=MAX_MONTHS, description="the last months, this one included")] = 12,
) -> list[MonthTotalsView]:
    found = await handlers.trends(months, oversight)
    return [MonthTotalsView(**vars(m)) for m in found]


@evaluation.get(
    "/periods/{period}/departments/{department_code}",
    response_model=FiguresView,
    summary="A department's figures for a month or quarter and how each was counted: its own, or any for oversight",
)
async def department_figures(
    period: PeriodLabel, department_code: Code, principal: FiguresReader, oversight: OversightDep
) -> FiguresView:
    figures = await handlers.department_figures(principal, department_code, period_of(period), oversight)
    return FiguresView.of(figures)


@evaluation.get("/periods/{period}/ranking", response_model=list[RankedView], summary="The departments ranked")
async def ranking(period: PeriodLabel, principal: ReportReader, oversight: OversightDep) -> list[RankedView]:
    return [RankedView.of(r) for r in await handlers.ranking(period_of(period), oversight)]


@evaluation.get(
    "/periods/{period}/report.html", response_class=Response, responses=HTML, summary="The report, with charts"
)
async def report_page(period: PeriodLabel, principal: ReportReader, oversight: OversightDep) -> HTMLResponse:
    report = await handlers.evaluation_report(period_of(period), oversight)
    return HTMLResponse(await in_thread(lambda: report_html(report)))


@evaluation.get("/periods/{period}/report.pdf", response_class=Response, responses=PDF, summary="The report as PDF")
async def report_pdf(period: PeriodLabel, principal: ReportReader, oversight: OversightDep) -> Response:
    report = await handlers.evaluation_report(period_of(period), oversight)
    pdf = await in_thread(lambda: pdf_of(report_html(report)))
    name = f"evaluation-{report.period.label}.pdf"
    return Response(
        pdf, media_type="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@findings.post("", status_code=201, response_model=FindingView, summary="The IT office raises a finding (Art. 24)")
async def raise_finding(body: FindingIn, principal: FindingRaiser, oversight: OversightDep) -> FindingView:
    finding = await handlers.raise_finding(
        principal,
        department_code=body.department_code,
        category=body.category,
        matter=body.matter,
        description=body.description,
        evidence=body.evidence,
        request_id=body.request_id,
        oversight=oversight,
    )
    return FindingView.of(finding)


@findings.get("", response_model=Page[FindingView], summary="Findings: one's own department's, or any for oversight")
async def list_findings(
    principal: FindingReader,
    oversight: OversightDep,
    paging: PageOf,
    department_code: Annotated[Code | None, Query()] = None,
    status: Annotated[Status | None, Query()] = None,
    awaiting: Annotated[
        bool | None, Query(description="true: those whose report awaits the IT office's answer; false: the others")
    ] = None,
) -> Page[FindingView]:
    found, total = await handlers.findings_for(
        principal,
        department_code=department_code,
        status=status,
        awaiting=awaiting,
        offset=paging.offset,
        limit=paging.limit,
        oversight=oversight,
    )
    return Page.of([FindingView.of(f) for f in found], total, paging)


@findings.get("/{finding_id}", response_model=FindingView, summary="A finding with its evidence")
async def get_finding(finding_id: Code, principal: FindingReader, oversight: OversightDep) -> FindingView:
    return FindingView.of(await handlers.finding_for(principal, finding_id, oversight))


@findings.post(
    "/{finding_id}/correction", response_model=FindingView, summary="Close a corrected finding with its proof"
)
async def correct(
    finding_id: Code, body: CorrectionIn, principal: FindingCorrector, oversight: OversightDep
) -> FindingView:
    return FindingView.of(await handlers.correct_finding(principal, finding_id, body.proof, oversight))


@findings.post(
    "/{finding_id}/report",
    response_model=FindingView,
    summary="The department hands in its rectification report (its data administrator, or the IT office for it)",
)
async def report(finding_id: Code, body: ReportIn, principal: FindingReporter, oversight: OversightDep) -> FindingView:
    reference = (body.reference or "").strip() or None
    finding = await handlers.report_finding(principal, finding_id, body.text, reference, oversight)
    return FindingView.of(finding)


@findings.post(
    "/{finding_id}/report/acceptance",
    response_model=FindingView,
    summary="The IT office accepts the awaited report: the finding is corrected with it as proof",
)
async def accept_report(finding_id: Code, principal: FindingCorrector, oversight: OversightDep) -> FindingView:
    return FindingView.of(await handlers.accept_report(principal, finding_id, oversight))


@findings.post(
    "/{finding_id}/report/rejection",
    response_model=FindingView,
    summary="The IT office rejects the awaited report with its reason: the finding stays open",
)
async def reject_report(
    finding_id: Code, body: RejectionIn, principal: FindingCorrector, oversight: OversightDep
) -> FindingView:
    return FindingView.of(await handlers.reject_report(principal, finding_id, body.reason, oversight))


@findings.get(
    "/{finding_id}/notice.html",
    response_class=Response,
    responses=HTML,
    summary="The notice of criticism (通报批评)",
)
async def notice_page(finding_id: Code, principal: FindingReader, oversight: OversightDep) -> HTMLResponse:
    finding, name = await handlers.notice_for(principal, finding_id, oversight)
    return HTMLResponse(notice_html(finding, name))


@findings.get(
    "/{finding_id}/notice.pdf", response_class=Response, responses=PDF, summary="The notice of criticism as PDF"
)
async def notice_pdf(finding_id: Code, principal: FindingReader, oversight: OversightDep) -> Response:
    finding, name = await handlers.notice_for(principal, finding_id, oversight)
    pdf = await in_thread(lambda: pdf_of(notice_html(finding, name)))
    headers = {"Content-Disposition": f'attachment; filename="notice-{finding.finding_id}.pdf"'}
    return Response(pdf, media_type="application/pdf", headers=headers)


ROUTERS = [evaluation, findings]
