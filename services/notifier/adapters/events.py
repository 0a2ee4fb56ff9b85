"""Inbound events: each Avro payload becomes the typed event of its type (domain/events.py) before a handler
sees it. Fields are taken by name, so a field a producer adds later is ignored until the class names it.
A payload that can never be handled is refused (dead-lettered at once, with the reason): it lacks a field,
carries an unknown enum symbol, names a department by something that is not a unified social credit code (no
department will ever have it: its inbox, topic and webhooks could never be reached) or a day outside
DAYS_TAKEN. A well-formed code of a department the notifier has not heard of is taken: its
DepartmentRegistered may still be on its way on directory.events, and its notices wait in its inbox."""

from __future__ import annotations

import enum
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import MISSING, fields, is_dataclass
from datetime import date
from functools import partial
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from common.auth import Unauthenticated, verify_signed_event
from common.errors import RejectedEvent
from common.events import Event
from common.identifiers import InvalidIdentifier, validate_credit_code
from common.keys import KeySource
from services.notifier import handlers
from services.notifier.domain import notifications
from services.notifier.domain.events import (
    AuditFindingCorrected,
    AuditFindingEscalated,
    AuditFindingRaised,
    AuditFindingReported,
    AuditFindingReportRejected,
    CatalogEntryChangeReported,
    CatalogEntryMaintenanceConfirmed,
    CatalogEntryOverdue,
    CatalogEntryPublished,
    CatalogEntryWithdrawn,
    DepartmentRegistered,
    DisputeEscalated,
    DisputeRuled,
    DuplicateSourceFlagged,
    GrantEnded,
    GrantIssued,
    GrantRevoked,
    PublicationConsentDecided,
    PublicationConsentRequested,
    ResourceChanged,
    ShareDecided,
    ShareDecisionOverdue,
    ShareDemandFiled,
    ShareDemandUnmatched,
    ShareDisputed,
    ShareRefused,
    ShareRequested,
)
from services.notifier.domain.notifications import RULES

T = TypeVar("T")
TypedHandler = Callable[[str, Any], Awaitable[None]]
# The fields that name a department: whoever they name may receive a notice.
DEPARTMENT_FIELDS = frozenset(
    {
        "department_code",
        "provider_code",
        "consumer_code",
        "requester_code",
        "existing_provider_code",
        "new_provider_code",
        "escalated_by_department",
    }
)
# Deadlines, periods and publication days are reckoned a year or more either way (reminders, the yearly
# maintenance): a day far outside the platform's life is a producer's error, not a date to schedule.
DAYS_TAKEN = (date(1900, 1, 1), date(2999, 12, 31))


def typed(cls: type[T], payload: Mapping[str, Any]) -> T:
    """The event `cls` from its Avro payload; RejectedEvent names what is missing or wrong."""
    return _build(cls, payload, cls.__name__)


def subscriptions(n: handlers.Notifier) -> dict[str, Callable[[Event], Awaitable[None]]]:
    """Event type → handler, for the consumer: every rule of RULES, and the handlers that need more."""
    by_class: dict[type, TypedHandler] = {cls: partial(handlers.notify, n=n, rule=rule) for cls, rule in RULES.items()}
    group = n.leadership_group_code  # has the final word on escalated disputes
    # the rules below also take the IT office's code from the settings: it coordinates, owes the rulings, keeps
    # the leadership group's office, settles duplicate sources and matches demands
    for cls, rule in (
        (ShareDecisionOverdue, partial(notifications.share_overdue, leadership_group_code=group)),
        (DisputeEscalated, partial(notifications.dispute_escalated, leadership_group_code=group)),
        (DuplicateSourceFlagged, notifications.duplicate_source),
        (ShareDemandFiled, notifications.demand_filed),
        (ShareDemandUnmatched, notifications.demand_unmatched),
        (CatalogEntryOverdue, notifications.entry_overdue),
    ):
        by_class[cls] = partial(handlers.notify, n=n, rule=partial(rule, it_office_code=n.it_office_code))
    by_class |= {
        ShareDisputed: partial(handlers.dispute_raised, n=n),
        DisputeRuled: partial(handlers.dispute_ruled, n=n),
        ShareRequested: partial(handlers.share_requested, n=n),
        ShareDecided: partial(handlers.share_answered, n=n, rule=notifications.share_decided),
        ShareRefused: partial(handlers.share_answered, n=n, rule=notifications.share_refused),
        GrantIssued: partial(handlers.grant_issued, n=n),
        GrantRevoked: partial(handlers.grant_gone, n=n, rule=notifications.grant_revoked),
        GrantEnded: partial(handlers.grant_gone, n=n, rule=notifications.grant_ended),
        CatalogEntryPublished: partial(handlers.entry_published, n=n),
        CatalogEntryWithdrawn: partial(handlers.entry_withdrawn, n=n),
        CatalogEntryChangeReported: partial(handlers.change_reported, n=n),
        CatalogEntryMaintenanceConfirmed: partial(handlers.maintenance_confirmed, n=n),
        PublicationConsentRequested: partial(handlers.consent_requested, n=n),
        PublicationConsentDecided: partial(handlers.consent_decided, n=n),
        AuditFindingRaised: partial(handlers.finding_raised, n=n),
        AuditFindingCorrected: partial(handlers.finding_closed, n=n),
        AuditFindingEscalated: partial(handlers.finding_closed, n=n),
        AuditFindingReported: partial(handlers.finding_reported, n=n),
        AuditFindingReportRejected: partial(handlers.report_rejected, n=n),
    }
    return {cls.__name__: _inbound(cls, handler) for cls, handler in by_class.items()}


def directory_subscriptions(n: handlers.Notifier, keys: KeySource) -> dict[str, Callable[[Event], Awaitable[None]]]:
    """A new department's topic is made on the directory's word only: an event its keys did not sign is
    dead-lettered with the reason."""
    made = _inbound(DepartmentRegistered, partial(handlers.department_registered, n=n))

    async def registered(event: Event) -> None:
        if keys.verifier is None:  # the directory's JWKS not read yet: an outage, retried for as long as it lasts
            raise ConnectionError("the directory's token signing keys are not loaded yet")
        try:
            verify_signed_event(keys.verifier.keys, event)
        except Unauthenticated as exc:
            raise RejectedEvent("signature", f"not signed by the directory: {exc}") from None
        await made(event)

    return {"DepartmentRegistered": registered}


def resource_changes(n: handlers.Notifier) -> Callable[[list[Event]], Awaitable[dict[str, str]]]:
    """The batch handler of exchange.resource-changes: a payload that does not fit is refused alone."""

    async def handle(events: list[Event]) -> dict[str, str]:
        typed_events, refused = [], {}
        for event in events:
            if event.event_type != "ResourceChanged":
                continue  # refused data changes are the provider's business, told by the exchange
            try:
                typed_events.append((event.event_id, typed(ResourceChanged, event.payload)))
            except RejectedEvent as exc:
                refused[event.event_id] = str(exc)
        if typed_events:
            await handlers.resource_changes(typed_events, n)
        return refused

    return handle


def _inbound(cls: type, handler: TypedHandler) -> Callable[[Event], Awaitable[None]]:
    async def handle(event: Event) -> None:
        await handler(event.event_id, typed(cls, event.payload))

    return handle


def _build(cls: type[T], payload: Any, path: str) -> T:
    if not isinstance(payload, Mapping):
        raise RejectedEvent("payload", f"{path}: expected a record, got {type(payload).__name__}")
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        required = f.default is MISSING and f.default_factory is MISSING
        if f.name in payload:
            values[f.name] = _value(hints[f.name], payload[f.name], f"{path}.{f.name}")
            if f.name in DEPARTMENT_FIELDS and (required or values[f.name]):  # an optional one may be left empty
                _department(values[f.name], f"{path}.{f.name}")
        elif required:
            raise RejectedEvent("payload", f"{path}.{f.name} is missing")
    return cls(**values)


def _department(code: Any, path: str) -> None:
    try:
        validate_credit_code(str(code))
    except InvalidIdentifier as exc:
        raise RejectedEvent("department", f"{path}: {code!r} names no department: {exc}") from None


def _day(day: date, path: str) -> date:
    first, last = DAYS_TAKEN
    if not first <= day <= last:
        raise RejectedEvent("payload", f"{path}: {day.isoformat()} is outside {first.year}–{last.year}")
    return day


def _value(hint: Any, raw: Any, path: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if raw is None:
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
        origin = get_origin(hint)
    if origin is tuple:
        item = get_args(hint)[0]
        return tuple(_value(item, v, f"{path}[{n}]") for n, v in enumerate(raw))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(raw)
        except ValueError:
            raise RejectedEvent("payload", f"{path}: {raw!r} is not one of {[m.value for m in hint]}") from None
    if isinstance(hint, type) and is_dataclass(hint):
        return _build(hint, raw, path)
    if hint is date and isinstance(raw, date):
        return _day(raw, path)
    return raw
