"""REST routes of the sharing lifecycle: subscriptions, requests (and their printable application) and their
decisions, disputes and rulings, grants. Each route translates its body into a command, calls its handler and
shapes the answer; the guard applies the rule's role part and the handler the department part."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from common.fields import Code, Name, Text
from common.guard import Guard
from common.limits import MAX_ITEMS
from common.policy import Principal
from services.exchange.sharing import handlers, queries
from services.exchange.sharing.commands import (
    Decide,
    Escalate,
    FileRequest,
    Narrowing,
    RaiseDispute,
    RevokeGrant,
    RuleOnDispute,
    Subscribe,
)
from services.exchange.sharing.form import render_application_form_async
from services.exchange.sharing.grants import Channel, Grant, GrantStatus, RowScope
from services.exchange.sharing.handlers import Sharing
from services.exchange.sharing.ports import DepartmentNames
from services.exchange.sharing.requests import Dispute, RequestStatus, Ruling, ShareRequest, Step, Terms


async def provided_sharing(request: Request) -> Sharing:
    """The handlers' dependencies, built once by the exchange's bootstrap (main.py puts them on the app)."""
    sharing: Sharing | None = getattr(request.app.state, "sharing", None)
    if sharing is None:
        raise RuntimeError("the sharing routes are used without the exchange's bootstrap")
    return sharing


async def provided_departments(request: Request) -> DepartmentNames:
    """The departments' names the exchange learnt from the directory (main.py puts them on the app)."""
    departments: DepartmentNames | None = getattr(request.app.state, "departments", None)
    if departments is None:
        raise RuntimeError("the sharing routes are used without the exchange's bootstrap")
    return departments


SharingDep = Annotated[Sharing, Depends(provided_sharing)]
DepartmentsDep = Annotated[DepartmentNames, Depends(provided_departments)]
Subscriber = Annotated[Principal, Depends(Guard("exchange.subscribe"))]
Applicant = Annotated[Principal, Depends(Guard("exchange.request.file"))]
RequestReader = Annotated[Principal, Depends(Guard("exchange.request.read"))]
Tallier = Annotated[Principal, Depends(Guard("exchange.request_tally.read"))]
Decider = Annotated[Principal, Depends(Guard("exchange.request.decide"))]
Disputer = Annotated[Principal, Depends(Guard("exchange.request.dispute"))]
Coordinator = Annotated[Principal, Depends(Guard("exchange.dispute.coordinate"))]
Escalator = Annotated[Principal, Depends(Guard("exchange.dispute.escalate"))]
Leader = Annotated[Principal, Depends(Guard("exchange.dispute.final_ruling"))]
GrantReader = Annotated[Principal, Depends(Guard("exchange.grant.read"))]
Revoker = Annotated[Principal, Depends(Guard("exchange.grant.revoke"))]

Reasons = Annotated[Text, Field(min_length=1, description="always required")]
Items = Annotated[list[Name], Field(max_length=MAX_ITEMS)]
Regions = Annotated[
    list[Annotated[str, Field(pattern=r"^\d{2,6}$", max_length=6)]],
    Field(max_length=100, description="division code prefixes (GB/T 2260): 36 province, 3608 city, 360821 county"),
]
Subjects = Annotated[list[Code], Field(max_length=MAX_ITEMS, description="subject keys the rows are limited to")]
Channels = Annotated[list[Channel], Field(min_length=1, max_length=len(Channel))]
Side = Literal["applicant", "provider"]
GrantSide = Literal["consumer", "provider"]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=100_000)]

# -- bodies ------------------------------------------------------------------------------------------------


class SubscriptionIn(BaseModel):
    resource_code: Code
    items: Items = Field(default=[], description="empty: every unconditional item of the entry")
    purpose: Annotated[Text, Field(min_length=1)]
    channels: Channels
    consumer_system: Code | None = Field(
        default=None,
        description="the client_id of the consumer system that will call (the `sub` of its tokens); "
        "none: any of the department's systems and people",
    )
    valid_from: date | None = Field(default=None, description="default today")
    valid_to: date


class RequestIn(BaseModel):
    resource_code: Code
    items: Annotated[list[Name], Field(min_length=1, max_length=MAX_ITEMS)]
    regions: Regions = []
    subjects: Subjects = []
    purpose: Annotated[Text, Field(min_length=1)]
    channels: Channels
    consumer_system: Code | None = Field(
        default=None,
        description="the client_id of the consumer system that will call (the `sub` of its tokens); "
        "none: any of the department's systems and people",
    )
    valid_from: date | None = Field(default=None, description="default today")
    valid_to: date
    unmasked: Items = Field(default=[], description="sensitive items asked for in clear (明文); others are masked")


class NarrowingIn(BaseModel):
    """Less than applied for, never more; what is left out stays as applied for."""

    items: Items | None = None
    regions: Regions | None = None
    subjects: Subjects | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    unmasked: Items = Field(default=[], description="sensitive items the grant serves in clear: applied for so")

    def narrowing(self) -> Narrowing:
        return Narrowing(
            items=tuple(self.items) if self.items is not None else None,
            regions=tuple(self.regions) if self.regions is not None else None,
            subjects=tuple(self.subjects) if self.subjects is not None else None,
            valid_from=self.valid_from,
            valid_to=self.valid_to,
            unmasked=tuple(self.unmasked),
        )


class DecisionIn(NarrowingIn):
    decision: Literal["APPROVED", "DENIED"]
    reasons: Reasons


class RulingIn(NarrowingIn):
    outcome: Literal["DECISION_UPHELD", "DECISION_OVERTURNED"]
    reasons: Reasons


class GroundsIn(BaseModel):
    grounds: Reasons


class RevocationIn(BaseModel):
    reason: Reasons


# -- answers -----------------------------------------------------------------------------------------------


class ScopeView(BaseModel):
    regions: list[str]
    subjects: list[str]

    @classmethod
    def of(cls, s: RowScope) -> ScopeView:
        return cls(regions=list(s.regions), subjects=sorted(s.subjects))


class TermsView(BaseModel):
    items: list[str]
    scope: ScopeView
    valid_from: date
    valid_to: date
    unmasked: list[str]

    @classmethod
    def of(cls, t: Terms | None) -> TermsView | None:
        if t is None:
            return None
        return cls(
            items=list(t.items),
            scope=ScopeView.of(t.scope),
            valid_from=t.valid_from,
            valid_to=t.valid_to,
            unmasked=sorted(t.unmasked),
        )


class DecisionView(BaseModel):
    decision: Literal["APPROVED", "DENIED"]
    reasons: str
    decided_by: str
    decided_on: date
    overdue: bool
    granted: TermsView | None


class RulingView(BaseModel):
    level: str
    outcome: Literal["DECISION_UPHELD", "DECISION_OVERTURNED"]
    reasons: str
    ruled_by: str
    ruled_on: date
    final: bool
    granted: TermsView | None

    @classmethod
    def of(cls, r: Ruling | None) -> RulingView | None:
        if r is None:
            return None
        return cls(
            level=r.level.value,
            outcome="DECISION_OVERTURNED" if r.overturned else "DECISION_UPHELD",
            reasons=r.reasons,
            ruled_by=r.ruled_by,
            ruled_on=r.ruled_on,
            final=r.final,
            granted=TermsView.of(r.terms),
        )


class EscalationView(BaseModel):
    escalated_by: str
    department_code: str
    grounds: str
    escalated_on: date
    rule_by: date


class DisputeView(BaseModel):
    dispute_id: str
    raised_by: str
    grounds: str
    raised_on: date
    rule_by: date = Field(description="the IT office's deadline")
    ruling: RulingView | None
    escalation: EscalationView | None
    final_ruling: RulingView | None

    @classmethod
    def of(cls, d: Dispute | None) -> DisputeView | None:
        if d is None:
            return None
        e = d.escalation
        return cls(
            dispute_id=d.dispute_id,
            raised_by=d.raised_by,
            grounds=d.grounds,
            raised_on=d.raised_on,
            rule_by=d.rule_by,
            ruling=RulingView.of(d.ruling),
            escalation=None
            if e is None
            else EscalationView(
                escalated_by=e.escalated_by,
                department_code=e.department_code,
                grounds=e.grounds,
                escalated_on=e.escalated_on,
                rule_by=e.rule_by,
            ),
            final_ruling=RulingView.of(d.final_ruling),
        )


class RequestView(BaseModel):
    request_id: str = Field(description="the request number, also on the printed application")
    resource_code: str
    provider_code: str
    consumer_code: str
    consumer_system: str | None
    purpose: str
    channels: list[Channel]
    asked: TermsView
    requested_by: str
    requested_on: date
    decide_by: date = Field(description="10 working days after the application (Chinese calendar with 调休)")
    status: RequestStatus
    refusal: str | None = Field(description="why it was refused at once, citing the basis")
    decision: DecisionView | None
    dispute: DisputeView | None
    grant_id: str | None = Field(description="the grant the request issued last (see its status)")
    overdue: list[str] = Field(description="steps whose deadline passed unanswered")
    revision: int

    @classmethod
    def of(cls, r: ShareRequest) -> RequestView:
        d = r.decision
        asked = TermsView.of(r.asked)
        assert asked is not None
        return cls(
            request_id=r.request_id,
            resource_code=r.resource_code,
            provider_code=r.provider_code,
            consumer_code=r.consumer_code,
            consumer_system=r.consumer_system,
            purpose=r.purpose,
            channels=sorted(r.channels),
            asked=asked,
            requested_by=r.requested_by,
            requested_on=r.requested_on,
            decide_by=r.decide_by,
            status=r.status,
            refusal=r.refusal,
            decision=None
            if d is None
            else DecisionView(
                decision="APPROVED" if d.approved else "DENIED",
                reasons=d.reasons,
                decided_by=d.decided_by,
                decided_on=d.decided_on,
                overdue=d.overdue,
                granted=TermsView.of(d.terms),
            ),
            dispute=DisputeView.of(r.dispute),
            grant_id=r.grant_id,
            overdue=sorted(s.value for s in r.overdue),
            revision=r.revision,
        )


class GrantView(BaseModel):
    grant_id: str
    request_id: str | None = Field(description="null for a subscription to unconditional data")
    resource_code: str
    provider_code: str
    consumer_code: str
    consumer_system: str | None
    items: list[str]
    scope: ScopeView
    purpose: str
    channels: list[Channel]
    valid_from: date
    valid_to: date
    entry_version: int
    unmasked: list[str]
    status: GrantStatus
    ended_reason: str | None

    @classmethod
    def of(cls, g: Grant) -> GrantView:
        return cls(
            grant_id=g.grant_id,
            request_id=g.request_id,
            resource_code=g.resource_code,
            provider_code=g.provider_code,
            consumer_code=g.consumer_code,
            consumer_system=g.consumer_system,
            items=list(g.items),
            scope=ScopeView.of(g.scope),
            purpose=g.purpose,
            channels=sorted(g.channels),
            valid_from=g.valid_from,
            valid_to=g.valid_to,
            entry_version=g.entry_version,
            unmasked=sorted(g.unmasked),
            status=g.status,
            ended_reason=g.ended_reason,
        )


# -- routes ------------------------------------------------------------------------------------------------

subscriptions = APIRouter(prefix="/subscriptions", tags=["sharing"])
requests = APIRouter(prefix="/requests", tags=["sharing"])
grants = APIRouter(prefix="/grants", tags=["sharing"])


@subscriptions.post(
    "", status_code=201, response_model=GrantView, summary="Subscribe to unconditional data: a grant at once"
)
async def subscribe(body: SubscriptionIn, principal: Subscriber, sharing: SharingDep) -> GrantView:
    command = Subscribe(
        resource_code=body.resource_code,
        items=tuple(body.items),
        purpose=body.purpose,
        channels=frozenset(body.channels),
        consumer_system=body.consumer_system,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
    )
    return GrantView.of(await handlers.subscribe(command, principal, sharing))


@requests.post(
    "",
    status_code=201,
    response_model=RequestView,
    summary="Apply for conditional data; not-shared items or an unreviewed entry are refused at once",
)
async def file_request(body: RequestIn, principal: Applicant, sharing: SharingDep) -> RequestView:
    command = FileRequest(
        resource_code=body.resource_code,
        items=tuple(body.items),
        regions=tuple(body.regions),
        subjects=tuple(body.subjects),
        purpose=body.purpose,
        channels=frozenset(body.channels),
        consumer_system=body.consumer_system,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        unmasked=tuple(body.unmasked),
    )
    return RequestView.of(await handlers.file_request(command, principal, sharing))


@requests.get("", response_model=list[RequestView], summary="My department's requests, as applicant or provider")
async def list_requests(
    principal: RequestReader,
    sharing: SharingDep,
    side: Annotated[Side, Query(alias="as")] = "applicant",
    department_code: Annotated[Code | None, Query(description="oversight only: another department")] = None,
    status: RequestStatus | None = None,
    awaiting: Annotated[
        Literal["IT_OFFICE_RULING", "LEADERSHIP_RULING"] | None,
        Query(description="oversight only: every department's requests whose dispute awaits this ruling"),
    ] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> list[RequestView]:
    found = await queries.list_requests(
        principal,
        sharing.store,
        as_provider=side == "provider",
        department_code=department_code,
        status=status,
        offset=offset,
        limit=limit,
        awaiting=Step(awaiting) if awaiting else None,
    )
    return [RequestView.of(r) for r in found]


class TallyView(BaseModel):
    on: date = Field(description="the exchange's today, against which deadlines are counted")
    by_status: dict[RequestStatus, int] = Field(description="every department's requests per state")
    overdue_by_provider: dict[str, int] = Field(
        description="per provider department, the pending requests whose decision deadline has passed"
    )


@requests.get("/tally", response_model=TallyView, summary="The city's requests by state and overdue decisions")
async def request_tally(_: Tallier, sharing: SharingDep) -> TallyView:
    tally = await queries.request_tally(sharing.store, sharing.clock.today())
    return TallyView(on=tally.on, by_status=tally.by_status, overdue_by_provider=tally.overdue_by_provider)


@requests.get("/{request_id}", response_model=RequestView, summary="A request: its applicant, provider or oversight")
async def get_request(request_id: Code, principal: RequestReader, sharing: SharingDep) -> RequestView:
    return RequestView.of(await queries.get_request(request_id, principal, sharing.store))


@requests.get(
    "/{request_id}/form.pdf",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the application as a PDF (A4), named after the request number",
        }
    },
    summary="The printable application (需求申请表): its applicant, provider or oversight",
)
async def application_form(
    request_id: Code, principal: RequestReader, sharing: SharingDep, departments: DepartmentsDep
) -> Response:
    form = await queries.get_application_form(request_id, principal, sharing.store, departments)
    pdf = await render_application_form_async(form)  # laid out in a worker thread, off the event loop
    return Response(
        pdf, media_type="application/pdf", headers={"Content-Disposition": attachment(f"{form.request_id}.pdf")}
    )


def attachment(filename: str) -> str:
    """A Content-Disposition naming `filename` (RFC 6266): a plain ASCII `filename`, and beside it the exact
    name in UTF-8 (`filename*`, RFC 5987) when it has other characters."""
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    if plain == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


@requests.post(
    "/{request_id}/decision",
    response_model=RequestView,
    summary="The provider's data administrator approves (possibly narrower) or denies, with reasons",
)
async def decide(request_id: Code, body: DecisionIn, principal: Decider, sharing: SharingDep) -> RequestView:
    command = Decide(request_id, body.decision == "APPROVED", body.reasons, body.narrowing())
    return RequestView.of(await handlers.decide(command, principal, sharing))


@requests.post(
    "/{request_id}/dispute",
    response_model=RequestView,
    summary="The applicant disputes a denial or a narrowing; the IT office coordinates",
)
async def dispute(request_id: Code, body: GroundsIn, principal: Disputer, sharing: SharingDep) -> RequestView:
    return RequestView.of(await handlers.raise_dispute(RaiseDispute(request_id, body.grounds), principal, sharing))


@requests.post("/{request_id}/dispute/ruling", response_model=RequestView, summary="The IT office rules")
async def rule(request_id: Code, body: RulingIn, principal: Coordinator, sharing: SharingDep) -> RequestView:
    command = RuleOnDispute(request_id, body.outcome == "DECISION_OVERTURNED", body.reasons, body.narrowing())
    return RequestView.of(await handlers.rule_on_dispute(command, principal, sharing))


@requests.post(
    "/{request_id}/dispute/escalation",
    response_model=RequestView,
    summary="Either side takes the IT office's ruling to the leadership group",
)
async def escalate(request_id: Code, body: GroundsIn, principal: Escalator, sharing: SharingDep) -> RequestView:
    return RequestView.of(await handlers.escalate(Escalate(request_id, body.grounds), principal, sharing))


@requests.post(
    "/{request_id}/dispute/final-ruling", response_model=RequestView, summary="The leadership group's final ruling"
)
async def final_ruling(request_id: Code, body: RulingIn, principal: Leader, sharing: SharingDep) -> RequestView:
    command = RuleOnDispute(request_id, body.outcome == "DECISION_OVERTURNED", body.reasons, body.narrowing())
    return RequestView.of(await handlers.final_ruling(command, principal, sharing))


@grants.get("", response_model=list[GrantView], summary="My department's grants, as consumer or provider")
async def list_grants(
    principal: GrantReader,
    sharing: SharingDep,
    side: Annotated[GrantSide, Query(alias="as")] = "consumer",
    department_code: Annotated[Code | None, Query(description="oversight only: another department")] = None,
    status: GrantStatus | None = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> list[GrantView]:
    found = await queries.list_grants(
        principal,
        sharing.store,
        as_provider=side == "provider",
        department_code=department_code,
        status=status,
        offset=offset,
        limit=limit,
    )
    return [GrantView.of(g) for g in found]


@grants.get("/{grant_id}", response_model=GrantView, summary="A grant: its consumer, provider or oversight")
async def get_grant(grant_id: Code, principal: GrantReader, sharing: SharingDep) -> GrantView:
    return GrantView.of(await queries.get_grant(grant_id, principal, sharing.store))


@grants.post("/{grant_id}/revoke", response_model=GrantView, summary="The provider revokes a grant, with a reason")
async def revoke(grant_id: Code, body: RevocationIn, principal: Revoker, sharing: SharingDep) -> GrantView:
    return GrantView.of(await handlers.revoke_grant(RevokeGrant(grant_id, body.reason), principal, sharing))


ROUTERS = [subscriptions, requests, grants]
