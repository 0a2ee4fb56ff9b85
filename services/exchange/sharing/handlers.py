"""One handler per sharing command or catalog event: subscriptions, applications, decisions, disputes,
rulings, grants' revocation and end, and the periodic sweep of deadlines and periods (Art. 9, 14, 15, 19, 20).
Each writes its state and announces it in one transaction."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import ParamSpec, TypeVar

from common.errors import Conflict, Invalid, NotFound
from common.identifiers import CITIZEN_ID, CREDIT_CODE, InvalidIdentifier
from common.policy import Principal, Target, authorize
from services.exchange.domain.resources import ResourceSchema
from services.exchange.sharing.commands import (
    Decide,
    DepartmentNamed,
    EntryPublished,
    EntryWithdrawn,
    Escalate,
    FileRequest,
    Narrowing,
    RaiseDispute,
    RevokeGrant,
    RuleOnDispute,
    Subscribe,
)
from services.exchange.sharing.grants import Grant, GrantStatus, RowScope
from services.exchange.sharing.ports import (
    ChangedMeanwhile,
    Clock,
    DepartmentNames,
    SharingStore,
    SharingTransaction,
    WorkingDays,
)
from services.exchange.sharing.queries import GrantNotFound, RequestNotFound
from services.exchange.sharing.requests import (
    Deadlines,
    Decision,
    Dispute,
    Escalation,
    RequestStatus,
    Ruling,
    RulingLevel,
    ShareRequest,
    Terms,
    application,
    awaiting_overdue,
    check_channels,
    check_period,
    check_scope,
    decided,
    disputable,
    ended,
    grant_from,
    granted_terms,
    overturned,
    refusal,
    revoked,
    rule_kept,
    stricter_rule,
    subscription,
    unconditional_items,
    unknown_items,
)

SWEEP_BATCH = 500  # grants and requests handled per sweep transaction

P = ParamSpec("P")
T = TypeVar("T")


class ResourceNotShared(NotFound):
    pass


class AlreadyDecided(Conflict):
    pass


class NotDisputable(Conflict):
    pass


class SubscriptionRefused(Conflict):
    pass


class NotGrantable(Conflict):
    pass


@dataclass(frozen=True)
class Sharing:
    """What the handlers need, built once by the exchange's bootstrap (main.py)."""

    store: SharingStore
    clock: Clock
    calendar: WorkingDays
    deadlines: Deadlines = field(default_factory=Deadlines)
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)


def _once_more_if_raced(handler: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A step that lost to a concurrent one on the same request or grant runs once more from a fresh read:
    it then sees what won (the request decided, the grant revoked) and answers that, not a failure."""

    @functools.wraps(handler)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await handler(*args, **kwargs)
        except ChangedMeanwhile:
            return await handler(*args, **kwargs)

    return run


# -- subscriptions and applications ------------------------------------------------------------------------


async def subscribe(command: Subscribe, principal: Principal, sharing: Sharing) -> Grant:
    """A subscription to an unconditional entry, or to its unconditional items, is a grant at once: no
    decision is needed, but every access still has a stated purpose (Art. 15)."""
    authorize(principal, "exchange.subscribe", Target(department_code=principal.department_code))
    today = sharing.clock.today()
    async with sharing.store() as tx:
        schema = await _schema(tx, command.resource_code)
        items = command.items or unconditional_items(schema)
        if not items:
            raise Invalid("items", f"{schema.resource_code} has no unconditional data item: apply (POST /requests)")
        _check_terms(schema, items, command.channels, command.valid_from or today, command.valid_to, today)
        if reason := refusal(schema, items):
            raise SubscriptionRefused("resource_code", reason)
        conditional = [i for i in items if schema.item_share_type(i) != "UNCONDITIONAL"]
        if conditional:
            raise Invalid("items", f"{', '.join(conditional)} are shared on conditions: apply (POST /requests)")
        purpose = _required("purpose", command.purpose)
        grant = subscription(command, items, purpose, schema, principal, sharing.new_id(), today)
        await tx.put_grant(grant)
        tx.events.grant_issued(grant)
    return grant


async def file_request(command: FileRequest, principal: Principal, sharing: Sharing) -> ShareRequest:
    """An application for conditional data: the provider must decide within 10 working days. Items the entry
    does not share, or an entry without a confidentiality review, are refused at once, citing why."""
    authorize(principal, "exchange.request.file", Target(department_code=principal.department_code))
    today = sharing.clock.today()
    async with sharing.store() as tx:
        schema = await _schema(tx, command.resource_code)
        if schema.provider_code == principal.department_code:
            raise Invalid("resource_code", "your department provides this resource; it needs no request")
        if not command.items:
            raise Invalid("items", "name the data items applied for")
        valid_from = command.valid_from or today
        _check_terms(schema, command.items, command.channels, valid_from, command.valid_to, today)
        if all(schema.item_share_type(i) == "UNCONDITIONAL" for i in command.items):
            raise Invalid("items", "these items are shared unconditionally: subscribe (POST /subscriptions)")
        _check_unmasked(schema, command.items, command.unmasked)
        scope = _scope(schema, command.regions, command.subjects)
        purpose = _required("purpose", command.purpose)
        decide_by = sharing.calendar.add_working_days(today, sharing.deadlines.decision)
        request_id = f"{today:%Y%m%d}-{sharing.new_id()[:10]}"  # the request number on the printed form
        request = application(command, scope, purpose, schema, principal, request_id, today, decide_by)
        if reason := refusal(schema, command.items):
            request = replace(request, status=RequestStatus.REFUSED, refusal=reason)
            await tx.add_request(request)
            tx.events.request_refused(request)
        else:
            await tx.add_request(request)
            tx.events.request_filed(request)
    # the printable application (需求申请表) is rendered from this request: queries.get_application_form
    return request


# -- the provider's decision -------------------------------------------------------------------------------


@_once_more_if_raced
async def decide(command: Decide, principal: Principal, sharing: Sharing) -> ShareRequest:
    """The provider's data administrator approves — possibly narrower, never wider — or denies, always with
    reasons. Late is still possible, but the request is marked overdue and that is announced once."""
    today = sharing.clock.today()
    async with sharing.store() as tx:
        request = await _request(tx, command.request_id)
        authorize(principal, "exchange.request.decide", Target(department_code=request.provider_code))
        if request.status is not RequestStatus.PENDING:
            raise AlreadyDecided("request_id", f"the request is {request.status.value} already; a decision is final")
        reasons = _required("reasons", command.reasons)
        terms = await _granting(tx, request, command.narrowing, today) if command.approve else None
        late = today > request.decide_by
        current = _announce_overdue(tx, request, today)
        decision = Decision(command.approve, reasons, principal.subject, today, late, terms)
        current = decided(current, decision)
        tx.events.request_decided(current)
        current = await _settle(tx, current, sharing, today, "")
        return await _save(tx, current, request)


# -- disputes ----------------------------------------------------------------------------------------------


@_once_more_if_raced
async def raise_dispute(command: RaiseDispute, principal: Principal, sharing: Sharing) -> ShareRequest:
    """The applicant department disputes a denial or a narrowing; the IT office coordinates."""
    today = sharing.clock.today()
    async with sharing.store() as tx:
        request = await _request(tx, command.request_id)
        authorize(principal, "exchange.request.dispute", Target(department_code=request.consumer_code))
        if reason := disputable(request):
            raise NotDisputable("request_id", reason)
        dispute = Dispute(
            dispute_id=sharing.new_id(),
            raised_by=principal.subject,
            grounds=_required("grounds", command.grounds),
            raised_on=today,
            rule_by=sharing.calendar.add_working_days(today, sharing.deadlines.ruling),
        )
        current = await _save(tx, replace(request, dispute=dispute), request)
        tx.events.request_disputed(current)
    return current


@_once_more_if_raced
async def rule_on_dispute(command: RuleOnDispute, principal: Principal, sharing: Sharing) -> ShareRequest:
    """The IT office upholds or overturns the provider's decision; overturned, the grant is as applied for or
    as the ruling says."""
    authorize(principal, "exchange.dispute.coordinate")
    today = sharing.clock.today()
    async with sharing.store() as tx:
        request = await _request(tx, command.request_id)
        dispute = request.dispute
        if dispute is None or dispute.ruling is not None:
            raise NotDisputable("request_id", "no dispute of this request awaits the IT office's ruling")
        ruling = await _ruling(tx, command, RulingLevel.IT_OFFICE, principal, request, today)
        current = _announce_overdue(tx, request, today)
        current = replace(current, dispute=replace(dispute, ruling=ruling))
        tx.events.dispute_ruled(current, RulingLevel.IT_OFFICE)
        current = await _settle(tx, current, sharing, today, "the IT office's ruling")
        return await _save(tx, current, request)


@_once_more_if_raced
async def escalate(command: Escalate, principal: Principal, sharing: Sharing) -> ShareRequest:
    """Either side takes the IT office's ruling to the leadership group."""
    today = sharing.clock.today()
    async with sharing.store() as tx:
        request = await _request(tx, command.request_id)
        side = principal.department_code
        department = side if side in (request.consumer_code, request.provider_code) else request.consumer_code
        authorize(principal, "exchange.dispute.escalate", Target(department_code=department))
        dispute = request.dispute
        if dispute is None or dispute.ruling is None or dispute.escalation is not None:
            raise NotDisputable("request_id", "only an IT office's ruling not escalated yet can be escalated")
        escalation = Escalation(
            escalated_by=principal.subject,
            department_code=department,
            grounds=_required("grounds", command.grounds),
            escalated_on=today,
            rule_by=sharing.calendar.add_working_days(today, sharing.deadlines.final_ruling),
        )
        current = await _save(tx, replace(request, dispute=replace(dispute, escalation=escalation)), request)
        tx.events.dispute_escalated(current)
    return current


@_once_more_if_raced
async def final_ruling(command: RuleOnDispute, principal: Principal, sharing: Sharing) -> ShareRequest:
    """The leadership group's ruling on the provider's decision is final."""
    authorize(principal, "exchange.dispute.final_ruling")
    today = sharing.clock.today()
    async with sharing.store() as tx:
        request = await _request(tx, command.request_id)
        dispute = request.dispute
        if dispute is None or dispute.escalation is None or dispute.final_ruling is not None:
            raise NotDisputable("request_id", "no escalated dispute of this request awaits the leadership group")
        ruling = await _ruling(tx, command, RulingLevel.LEADERSHIP_GROUP, principal, request, today)
        current = _announce_overdue(tx, request, today)
        current = replace(current, dispute=replace(dispute, final_ruling=ruling))
        tx.events.dispute_ruled(current, RulingLevel.LEADERSHIP_GROUP)
        current = await _settle(tx, current, sharing, today, "the leadership group's final ruling")
        return await _save(tx, current, request)


# -- grants ------------------------------------------------------------------------------------------------


@_once_more_if_raced
async def revoke_grant(command: RevokeGrant, principal: Principal, sharing: Sharing) -> Grant:
    """The provider's data administrator revokes a grant of her department's data, with a reason."""
    today = sharing.clock.today()
    async with sharing.store() as tx:
        grant = await tx.grant(command.grant_id)
        if grant is None:
            raise GrantNotFound("grant_id", f"no grant {command.grant_id}")
        authorize(principal, "exchange.grant.revoke", Target(department_code=grant.provider_code))
        if grant.status is not GrantStatus.ACTIVE:
            raise Conflict("grant_id", f"the grant is {grant.status.value} already")
        current = revoked(grant, _required("reason", command.reason))
        await tx.put_grant(current)
        tx.events.grant_revoked(current, principal.subject, today)
    return current


async def entry_published(event: EntryPublished, sharing: Sharing) -> int:
    """A new catalog version: grants from an earlier one whose rule it makes stricter end (a grant never
    outlives the rule it came from). Returns how many ended."""
    schema = event.schema
    today = sharing.clock.today()
    count = 0
    async with sharing.store() as tx:
        for grant in await tx.active_grants(schema.resource_code):
            if grant.entry_version >= schema.version:
                continue
            if reason := stricter_rule(grant, schema, *rule_kept(grant)):
                await _end(tx, grant, reason, "ENTRY_TIGHTENED", today)
                count += 1
    return count


async def entry_withdrawn(event: EntryWithdrawn, sharing: Sharing) -> int:
    """The entry left the catalog: every grant from that version or an earlier one ends."""
    today = sharing.clock.today()
    count = 0
    async with sharing.store() as tx:
        for grant in await tx.active_grants(event.resource_code):
            if grant.entry_version <= event.version:
                await _end(tx, grant, f"the entry was withdrawn (version {event.version})", "ENTRY_WITHDRAWN", today)
                count += 1
    return count


async def sweep(sharing: Sharing) -> tuple[int, int]:
    """The periodic check: grants whose period ended end, and each deadline passed unanswered is announced
    once. Returns (grants ended, deadlines announced)."""
    today = sharing.clock.today()
    async with sharing.store() as tx:
        expired = await tx.active_grants(valid_before=today)
        for grant in expired[:SWEEP_BATCH]:
            await _end(tx, grant, f"the period ended on {grant.valid_to.isoformat()}", "PERIOD_ENDED", today)
        late = await tx.awaiting_requests(due_before=today)
        for request in late[:SWEEP_BATCH]:
            await _save(tx, _announce_overdue(tx, request, today), request)
    return min(len(expired), SWEEP_BATCH), min(len(late), SWEEP_BATCH)


# -- the directory -----------------------------------------------------------------------------------------


async def department_named(event: DepartmentNamed, departments: DepartmentNames) -> bool:
    """The directory registered or renamed a department: the name its applications print from now on."""
    return await departments.record(event)


# -- helpers -----------------------------------------------------------------------------------------------


def _required(name: str, text: str) -> str:
    if not text.strip():
        raise Invalid(name, f"{name} must be given")
    return text.strip()


async def _schema(tx: SharingTransaction, resource_code: str) -> ResourceSchema:
    schema = await tx.schema(resource_code)
    if schema is None or not schema.published:
        raise ResourceNotShared("resource_code", f"{resource_code} is not in the published catalog")
    return schema


async def _request(tx: SharingTransaction, request_id: str) -> ShareRequest:
    request = await tx.request(request_id)
    if request is None:
        raise RequestNotFound("request_id", f"no request {request_id}")
    return request


def _check_terms(
    schema: ResourceSchema,
    items: tuple[str, ...],
    channels: frozenset,
    valid_from: date,
    valid_to: date,
    today: date,
) -> None:
    if unknown := unknown_items(schema, items):
        raise Invalid("items", f"{', '.join(unknown)} are not data items of {schema.resource_code}")
    if len(set(items)) != len(items):
        raise Invalid("items", "a data item is named twice")
    if problem := check_channels(schema, channels):
        raise Invalid("channels", problem)
    if problem := check_period(valid_from, valid_to, today):
        raise Invalid("valid_to", problem)


def _scope(schema: ResourceSchema, regions: tuple[str, ...], subjects: tuple[str, ...]) -> RowScope:
    scope = RowScope(tuple(regions), frozenset())
    if problem := check_scope(scope):
        raise Invalid("regions", problem)
    if regions and schema.key_kind not in (CITIZEN_ID, CREDIT_CODE):
        # no division code to read from its subjects' keys: a region scope would open no row, or every one
        raise Invalid("regions", f"{schema.resource_code} has no key item placing its subjects: name the subjects")
    keys = set()
    for given in subjects:
        try:
            keys.add(schema.identify(given)[1])
        except InvalidIdentifier as exc:
            raise Invalid("subjects", f"{given[:24]}: {exc}") from None
    return RowScope(tuple(regions), frozenset(keys))


def _narrowed(schema: ResourceSchema, asked: Terms, narrowing: Narrowing) -> Terms:
    """The terms a decision or ruling grants: the asked ones, narrowed as it says; never wider."""
    items = narrowing.items if narrowing.items is not None else asked.items
    if unknown := [i for i in items if i not in asked.items]:
        raise Invalid("items", f"{', '.join(unknown)} were not applied for: a decision only narrows")
    if not items:
        raise Invalid("items", "an approval grants at least one data item; deny instead")
    # the grant keeps only its own scope: dropping the applied-for regions would open subjects outside them
    regions = narrowing.regions or asked.scope.regions
    subjects = narrowing.subjects if narrowing.subjects is not None else tuple(asked.scope.subjects)
    scope = _scope(schema, regions, subjects)
    if not scope.within(asked.scope):
        raise Invalid("regions", "the row scope must lie within the one applied for")
    valid_from = narrowing.valid_from or asked.valid_from
    valid_to = narrowing.valid_to or asked.valid_to
    if not asked.valid_from <= valid_from <= valid_to <= asked.valid_to:
        raise Invalid("valid_to", "the period must lie within the one applied for")
    _check_unmasked(schema, items, narrowing.unmasked)
    if wrong := [i for i in narrowing.unmasked if i not in asked.unmasked]:
        raise Invalid("unmasked", f"{', '.join(wrong)} were not applied for in clear: a decision only narrows")
    return Terms(tuple(items), scope, valid_from, valid_to, frozenset(narrowing.unmasked))


def _check_unmasked(schema: ResourceSchema, items: tuple[str, ...], unmasked: tuple[str, ...]) -> None:
    sensitive = {i.name for i in schema.items if i.sensitive}
    if wrong := [i for i in unmasked if i not in items or i not in sensitive]:
        raise Invalid("unmasked", f"{', '.join(wrong)}: only items named that the entry marks sensitive are unmasked")


async def _granting(tx: SharingTransaction, request: ShareRequest, narrowing: Narrowing, today: date) -> Terms:
    """What an approval or an overturning ruling grants, checked against the entry in force and today."""
    schema = await _schema(tx, request.resource_code)
    if problem := check_channels(schema, request.channels):
        raise Invalid("channels", f"{problem}: deny, or the applicant applies again")
    terms = _narrowed(schema, request.asked, narrowing)
    if terms.valid_to < today:
        raise Invalid("valid_to", f"the period ended on {terms.valid_to.isoformat()}: nothing is left to grant")
    return terms


async def _ruling(
    tx: SharingTransaction,
    command: RuleOnDispute,
    level: RulingLevel,
    principal: Principal,
    request: ShareRequest,
    today: date,
) -> Ruling:
    reasons = _required("reasons", command.reasons)
    terms = await _granting(tx, request, command.narrowing, today) if command.overturn else None
    return Ruling(level, command.overturn, reasons, principal.subject, today, terms)


def _announce_overdue(tx: SharingTransaction, request: ShareRequest, today: date) -> ShareRequest:
    """Announce the awaited step's passed deadline, once; the request remembers it."""
    found = awaiting_overdue(request, today)
    if found is None:
        return request
    step, due = found
    tx.events.step_overdue(request, step, due, today)
    return replace(request, overdue=request.overdue | {step})


async def _settle(
    tx: SharingTransaction, request: ShareRequest, sharing: Sharing, today: date, by: str
) -> ShareRequest:
    """Make the request's grant what its decision and rulings grant now: issue one, keep it, or end it. A
    grant revoked or ended stays so: only a ruling that overturns the decision issues one again."""
    terms = granted_terms(request)
    last = await tx.grant(request.grant_id) if request.grant_id else None
    current = last if last is not None and last.status is GrantStatus.ACTIVE else None
    if current is not None and terms is not None and _same(current, terms):
        return request
    if current is not None:
        await _end(tx, current, f"superseded by {by}", "SUPERSEDED", today)
    if terms is None or terms.valid_to < today:
        return request
    if last is not None and current is None and not overturned(request):
        return request
    schema = await _schema(tx, request.resource_code)
    if reason := refusal(schema, terms.items):
        raise NotGrantable("resource_code", reason)
    grant = grant_from(request, terms, sharing.new_id(), schema, today)
    await tx.put_grant(grant)
    tx.events.grant_issued(grant)
    return replace(request, grant_id=grant.grant_id)


async def _save(tx: SharingTransaction, changed: ShareRequest, read: ShareRequest) -> ShareRequest:
    """Store a request changed since it was read; a concurrent change of it is a Conflict."""
    saved = replace(changed, revision=read.revision + 1)
    await tx.save_request(saved, read.revision)
    return saved


def _same(grant: Grant, terms: Terms) -> bool:
    return (grant.items, grant.scope, grant.valid_to, grant.unmasked) == (
        terms.items,
        terms.scope,
        terms.valid_to,
        terms.unmasked,
    )


async def _end(tx: SharingTransaction, grant: Grant, reason: str, cause: str, today: date) -> None:
    current = ended(grant, reason)
    await tx.put_grant(current)
    tx.events.grant_ended(current, cause, today)
