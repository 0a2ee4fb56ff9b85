"""Share requests and their lifecycle (Art. 9, 14, 15, 19, 20): an application for conditional data, the
provider's decision within its deadline, the consumer's dispute, the IT office's ruling and the leadership
group's final one. Pure functions over frozen values; standard library only."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from common.policy import Principal
from services.exchange.domain.resources import ResourceSchema
from services.exchange.sharing.commands import FileRequest, Subscribe
from services.exchange.sharing.grants import Channel, Grant, GrantStatus, RowScope

MAX_PERIOD_DAYS = 5 * 366  # a grant lasts at most five years; a longer need is applied for again
MAX_LEAD_DAYS = 366  # a grant starts at most a year ahead
LAST_DAY = date(2999, 12, 31)  # no period ends later: the notifier refuses events dated after it
SHARE_TYPES = ("UNCONDITIONAL", "CONDITIONAL", "NOT_SHARED")  # from the most open to the strictest
ART_20 = "《吉安市政务数据共享管理暂行办法》第二十条"


class ShareRefusedError(Exception):
    """Not an error of the applicant's input: the entry's rules refuse the data (recorded as ShareRefused)."""


class RequestStatus(StrEnum):
    PENDING = "PENDING"  # awaiting the provider's decision
    APPROVED = "APPROVED"  # a grant exists (or existed) from it
    DENIED = "DENIED"
    REFUSED = "REFUSED"  # refused at once: not shared, or no confidentiality review


@dataclass(frozen=True)
class RequestTally:
    """The city's requests counted: how many are in each state, and per provider department how many still
    await its decision after their deadline."""

    on: date
    by_status: dict[RequestStatus, int]
    overdue_by_provider: dict[str, int]


class Step(StrEnum):
    """A step with a working-day deadline, and who answers for it when it passes."""

    PROVIDER_DECISION = "PROVIDER_DECISION"
    IT_OFFICE_RULING = "IT_OFFICE_RULING"
    LEADERSHIP_RULING = "LEADERSHIP_RULING"


class RulingLevel(StrEnum):
    IT_OFFICE = "IT_OFFICE"
    LEADERSHIP_GROUP = "LEADERSHIP_GROUP"


@dataclass(frozen=True)
class Terms:
    """What a grant from a request opens: items, rows and period; `unmasked`: the sensitive items asked for
    in clear, or granted in clear (a decision grants no other)."""

    items: tuple[str, ...]
    scope: RowScope
    valid_from: date
    valid_to: date
    unmasked: frozenset[str] = frozenset()

    def within(self, other: Terms) -> bool:
        """Never wider than `other`: no item, row or day more."""
        return (
            set(self.items) <= set(other.items)
            and self.scope.within(other.scope)
            and self.unmasked <= other.unmasked
            and other.valid_from <= self.valid_from <= self.valid_to <= other.valid_to
        )

    def opens(self) -> tuple[tuple[str, ...], RowScope, date, date]:
        """What a grant of these terms opens (a decision naming sensitive items changes what is masked only)."""
        return self.items, self.scope, self.valid_from, self.valid_to


@dataclass(frozen=True)
class Decision:
    approved: bool
    reasons: str
    decided_by: str
    decided_on: date
    overdue: bool
    terms: Terms | None  # what is granted when approved


@dataclass(frozen=True)
class Ruling:
    level: RulingLevel
    overturned: bool  # the provider's decision overturned
    reasons: str
    ruled_by: str
    ruled_on: date
    terms: Terms | None  # what is granted when overturned

    @property
    def final(self) -> bool:
        return self.level is RulingLevel.LEADERSHIP_GROUP


@dataclass(frozen=True)
class Escalation:
    escalated_by: str
    department_code: str  # the consumer's or the provider's
    grounds: str
    escalated_on: date
    rule_by: date


@dataclass(frozen=True)
class Dispute:
    dispute_id: str
    raised_by: str
    grounds: str
    raised_on: date
    rule_by: date  # the IT office's deadline
    ruling: Ruling | None = None
    escalation: Escalation | None = None
    final_ruling: Ruling | None = None

    @property
    def step(self) -> Step | None:
        """The step awaited, if any."""
        if self.ruling is None:
            return Step.IT_OFFICE_RULING
        if self.escalation is not None and self.final_ruling is None:
            return Step.LEADERSHIP_RULING
        return None


@dataclass(frozen=True)
class ShareRequest:
    request_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    consumer_system: str | None
    purpose: str
    channels: frozenset[Channel]
    asked: Terms
    requested_by: str
    requested_on: date
    decide_by: date
    entry_version: int
    status: RequestStatus = RequestStatus.PENDING
    refusal: str | None = None  # why it was refused at once
    decision: Decision | None = None
    dispute: Dispute | None = None
    grant_id: str | None = None  # the grant its decision or a ruling issued, while one does
    overdue: frozenset[Step] = frozenset()  # steps whose deadline passed unanswered, each announced once
    revision: int = 0

    @property
    def awaiting(self) -> tuple[Step, date] | None:
        """The step awaited and its deadline."""
        if self.status is RequestStatus.PENDING:
            return Step.PROVIDER_DECISION, self.decide_by
        if self.dispute is None:
            return None
        step = self.dispute.step
        if step is Step.IT_OFFICE_RULING:
            return step, self.dispute.rule_by
        if step is Step.LEADERSHIP_RULING and self.dispute.escalation is not None:
            return step, self.dispute.escalation.rule_by
        return None

    @property
    def narrowed(self) -> bool:
        """Approved, but with less than asked for."""
        d = self.decision
        return d is not None and d.approved and d.terms is not None and d.terms.opens() != self.asked.opens()

    def responsible_for(self, step: Step) -> str:
        """Whom a missed deadline counts against: the provider; the rulings' bodies are not departments that
        are evaluated, so their misses are counted against the step (and reported to oversight)."""
        return self.provider_code if step is Step.PROVIDER_DECISION else step.value


# -- what an entry lets be shared --------------------------------------------------------------------------


def _strictness(share_type: str) -> int:
    return SHARE_TYPES.index(share_type) if share_type in SHARE_TYPES else len(SHARE_TYPES)


def unknown_items(schema: ResourceSchema, items: tuple[str, ...]) -> list[str]:
    names = {i.name for i in schema.items}
    return [i for i in items if i not in names]


def unconditional_items(schema: ResourceSchema) -> tuple[str, ...]:
    return tuple(i.name for i in schema.items if schema.item_share_type(i.name) == "UNCONDITIONAL")


def refusal(schema: ResourceSchema, items: tuple[str, ...]) -> str | None:
    """Why the entry's rules refuse the items at once (Art. 9, 20), citing the basis; None when they may be
    applied for."""
    if schema.share_type == "NOT_SHARED":
        return f"{schema.resource_code} is not shared (不予共享): {schema.not_shared_basis or 'no basis recorded'}"
    closed = [i for i in items if schema.item_share_type(i) == "NOT_SHARED"]
    if closed:
        basis = schema.not_shared_basis or "the entry marks them not shared (不予共享)"
        return f"data items {', '.join(closed)} are not shared: {basis}"
    if schema.confidentiality_reviewed_on is None:
        return (
            f"{schema.resource_code} has no recorded confidentiality review: it is shared only after its "
            f"department's review ({ART_20})"
        )
    return None


def stricter_rule(
    grant: Grant, schema: ResourceSchema, entry_share_type: str, item_types: dict[str, str]
) -> str | None:
    """Why a new catalog version makes the rule `grant` came from stricter (the entry's share type and its
    granted items' as they were then: `entry_share_type`, `item_types`), so the grant ends; None if not."""
    if not schema.published:
        return f"the entry was withdrawn (version {schema.version})"
    if _strictness(schema.share_type) > _strictness(entry_share_type):
        return f"version {schema.version} of the entry is {schema.share_type}, stricter than {entry_share_type}"
    if schema.confidentiality_reviewed_on is None:
        return f"version {schema.version} of the entry carries no confidentiality review ({ART_20})"
    dropped = sorted(c.value for c in grant.channels if c.value not in schema.share_methods)
    if dropped:  # the channels check the entry in force too; the grant ends rather than stay open on paper
        return f"version {schema.version} of the entry is no longer shared by {', '.join(dropped)}"
    names = {i.name for i in schema.items}
    for item in grant.items:
        if item not in names:
            return f"version {schema.version} of the entry no longer has the data item {item}"
        before = item_types.get(item, entry_share_type)
        now = schema.item_share_type(item)
        if _strictness(now) > _strictness(before):
            return f"version {schema.version} of the entry makes the data item {item} {now}, stricter than {before}"
    return None


# -- commands' checks and transitions ---------------------------------------------------------------------


def check_period(valid_from: date, valid_to: date, today: date) -> str | None:
    if valid_to < valid_from:
        return "valid_to is before valid_from"
    if valid_to < today:
        return f"the period ended before today ({today.isoformat()})"
    if (valid_to - valid_from).days > MAX_PERIOD_DAYS:
        return f"a grant lasts at most {MAX_PERIOD_DAYS} days; apply again for a longer need"
    if valid_to > LAST_DAY:
        return f"a grant ends by {LAST_DAY.isoformat()} at the latest"  # the platform's events end there
    if (valid_from - today).days > MAX_LEAD_DAYS:
        return f"a grant starts at most {MAX_LEAD_DAYS} days ahead; apply nearer the time"
    return None


def check_channels(schema: ResourceSchema, channels: frozenset[Channel]) -> str | None:
    offered = set(schema.share_methods)
    missing = sorted(c.value for c in channels if c.value not in offered)
    if not channels:
        return "name at least one channel"
    if missing:
        return f"{schema.resource_code} is not shared by {', '.join(missing)}; it is by {', '.join(sorted(offered))}"
    return None


def check_scope(scope: RowScope) -> str | None:
    bad = [r for r in scope.regions if not (r.isdigit() and 2 <= len(r) <= 6 and len(r) % 2 == 0)]
    if bad:
        return f"regions are division code prefixes of 2, 4 or 6 digits (GB/T 2260), not {', '.join(bad)}"
    return None


def decided(request: ShareRequest, decision: Decision) -> ShareRequest:
    return replace(
        request,
        status=RequestStatus.APPROVED if decision.approved else RequestStatus.DENIED,
        decision=decision,
    )


def disputable(request: ShareRequest) -> str | None:
    """Why the request cannot be disputed; None when it can (a denial or a narrowing, once)."""
    if request.dispute is not None:
        return "the request is disputed already"
    if request.decision is None:
        return "only a decision can be disputed; this request has none"
    if request.decision.approved and not request.narrowed:
        return "the request was approved as applied for"
    return None


def granted_terms(request: ShareRequest) -> Terms | None:
    """What the request grants now: the last ruling's terms when it overturned the decision, else the
    decision's."""
    dispute = request.dispute
    last = None if dispute is None else dispute.final_ruling or dispute.ruling
    if last is not None and last.overturned:
        return last.terms
    d = request.decision
    return d.terms if d is not None and d.approved else None


def overturned(request: ShareRequest) -> bool:
    """Whether the last ruling on the request overturned the provider's decision."""
    dispute = request.dispute
    last = None if dispute is None else dispute.final_ruling or dispute.ruling
    return last is not None and last.overturned


def awaiting_overdue(request: ShareRequest, today: date) -> tuple[Step, date] | None:
    """The awaited step whose deadline passed and was not yet announced."""
    awaiting = request.awaiting
    if awaiting is None:
        return None
    step, due = awaiting
    return (step, due) if today > due and step not in request.overdue else None


def grant_from(request: ShareRequest, terms: Terms, grant_id: str, schema: ResourceSchema, today: date) -> Grant:
    """The grant a request's decision or a ruling issues, bound to the entry version in force and its rule."""
    return Grant(
        grant_id=grant_id,
        request_id=request.request_id,
        resource_code=request.resource_code,
        provider_code=request.provider_code,
        consumer_code=request.consumer_code,
        consumer_system=request.consumer_system,
        items=terms.items,
        scope=terms.scope,
        purpose=request.purpose,
        channels=request.channels,
        valid_from=max(terms.valid_from, today),
        valid_to=terms.valid_to,
        entry_version=schema.version,
        unmasked=terms.unmasked,
        extra=rule_of(schema, terms.items),
    )


def subscription(
    command: Subscribe,
    items: tuple[str, ...],
    purpose: str,
    schema: ResourceSchema,
    principal: Principal,
    grant_id: str,
    today: date,
) -> Grant:
    """The grant a subscription to unconditional items is: all rows, nothing unmasked."""
    return Grant(
        grant_id=grant_id,
        request_id=None,
        resource_code=schema.resource_code,
        provider_code=schema.provider_code,
        consumer_code=principal.department_code,
        consumer_system=command.consumer_system,
        items=items,
        scope=RowScope(),
        purpose=purpose,
        channels=command.channels,
        valid_from=command.valid_from or today,
        valid_to=command.valid_to,
        entry_version=schema.version,
        extra=rule_of(schema, items) | {"granted_by": principal.subject},
    )


def application(
    command: FileRequest,
    scope: RowScope,
    purpose: str,
    schema: ResourceSchema,
    principal: Principal,
    request_id: str,
    today: date,
    decide_by: date,
) -> ShareRequest:
    return ShareRequest(
        request_id=request_id,
        resource_code=schema.resource_code,
        provider_code=schema.provider_code,
        consumer_code=principal.department_code,
        consumer_system=command.consumer_system,
        purpose=purpose,
        channels=command.channels,
        asked=Terms(command.items, scope, command.valid_from or today, command.valid_to, frozenset(command.unmasked)),
        requested_by=principal.subject,
        requested_on=today,
        decide_by=decide_by,
        entry_version=schema.version,
    )


def rule_of(schema: ResourceSchema, items: tuple[str, ...]) -> dict[str, object]:
    """The rule a grant came from, kept with it: a later version is compared with it (see stricter_rule)."""
    return {
        "rule_share_type": schema.share_type,
        "rule_item_share_types": [[i, schema.item_share_type(i)] for i in items],
    }


def rule_kept(grant: Grant) -> tuple[str, dict[str, str]]:
    """The entry's and the items' share types a grant came from (a grant without them: as conditional)."""
    pairs = grant.extra.get("rule_item_share_types") or []
    return str(grant.extra.get("rule_share_type") or "CONDITIONAL"), {str(k): str(v) for k, v in pairs}


def ended(grant: Grant, reason: str) -> Grant:
    return replace(grant, status=GrantStatus.ENDED, ended_reason=reason)


def revoked(grant: Grant, reason: str) -> Grant:
    return replace(grant, status=GrantStatus.REVOKED, ended_reason=reason)


@dataclass(frozen=True)
class Deadlines:
    """Working days each step has (configuration, 10 by default)."""

    decision: int = 10
    ruling: int = 10
    final_ruling: int = 10
