"""The events the oversight reads, translated from Avro into typed facts here, at the edge: catalog entries'
lifecycle, share decisions, stored and refused data changes, data accesses and the directory's departments.
A batch of them goes to `handlers.observe` in one call; an event whose payload lacks what its schema
promises, whose day lies outside DAYS_TAKEN, or a directory event the directory did not sign, is refused
(dead-lettered at once) with the reason."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import fields
from datetime import date, datetime
from functools import partial

from common.auth import verify_signed_event
from common.clock import CHINA
from common.events import Event
from common.keys import KeySource
from common.logs import mask_identifiers
from common.policy import Unauthenticated
from services.auditor.domain.activity import (
    DailyCount,
    DecisionFact,
    DecisionStep,
    DepartmentFact,
    EntryFact,
    EntryStep,
    Fact,
    Measure,
    Observed,
    OutOfPurposeAccess,
    RefusedChange,
    UpdateCycle,
)
from services.auditor.oversight import handlers
from services.auditor.oversight.handlers import Oversight

log = logging.getLogger(__name__)
# The topics whose events are known as projected by their partition's mark (an offset) instead of a record
# per event id: only one whose events are each written once. The data accesses are sent by the exchange's
# idempotent producer and never sent again under the same id; every other topic is relayed from an outbox,
# at least once, so the same event may stand at two offsets (and is recognised by its id).
MARKED_TOPICS = frozenset({"exchange.data-accesses"})

EVALUATED_LEVELS = frozenset({"CITY", "COUNTY", "ZONE"})
# Deliveries and deadlines are reckoned months and working days on from a fact's days: a day far outside the
# platform's life is a producer's error (year 9999 overflowed the calendar, and the batch failed five times).
DAYS_TAKEN = (date(1900, 1, 1), date(2999, 12, 31))
OUT_OF_PURPOSE = "the stated purpose is not the grant's"  # the exchange's refusal (services.exchange.sharing.grants)


def _city_day(moment: datetime) -> date:
    return moment.astimezone(CHINA).date()


def _entry(step: EntryStep, e: Event, day: date, **more: object) -> list[Fact]:
    p = e.payload
    return [EntryFact(step, p["resource_code"], p["provider_code"], day, **more)]  # type: ignore[arg-type]


def facts_of(e: Event) -> list[Fact]:
    """The facts an event adds (none for the events the oversight does not count)."""
    p, day = e.payload, _city_day(e.occurred_at)
    match e.event_type:
        case "CatalogEntryPublished":
            return _entry(
                EntryStep.PUBLISHED,
                e,
                p["published_on"],
                version=p["version"],
                update_cycle=UpdateCycle(p["update_cycle"]),
            )
        case "CatalogEntryMaintenanceConfirmed":
            return _entry(EntryStep.MAINTAINED, e, p["confirmed_on"], version=p["version"])
        case "CatalogEntryWithdrawn":
            return _entry(EntryStep.WITHDRAWN, e, day, version=p["version"])
        case "CatalogEntryChangeReported":
            return _entry(EntryStep.CHANGE_REPORTED, e, p["reported_on"], due_on=p["due_on"])
        case "CatalogEntryOverdue":
            return _entry(EntryStep.OVERDUE, e, p["detected_on"], due_on=p["due_on"], overdue_kind=p["kind"])
        case "ShareDecided":
            late = bool(p.get("overdue")) or bool(p.get("decide_by") and p["decided_on"] > p["decide_by"])
            return [
                DecisionFact(
                    DecisionStep.DECIDED, p["request_id"], p["provider_code"], p["decided_on"], p.get("decide_by"), late
                )
            ]
        case "ShareDecisionOverdue" if p["step"] == "PROVIDER_DECISION":
            return [
                DecisionFact(
                    DecisionStep.OVERDUE, p["request_id"], p["responsible_code"], p["detected_on"], p["due_on"]
                )
            ]
        case "ResourceChanged":
            return [DailyCount(Measure.DELIVERED, p["provider_code"], _city_day(p["changed_at"]), p["resource_code"])]
        case "DataRejected":
            return [
                DailyCount(Measure.REJECTED, p["provider_code"], day, p["resource_code"]),
                # the detail may quote the refused subject's key: findings keep it masked, as logs do
                RefusedChange(
                    p["change_id"],
                    p["resource_code"],
                    p["provider_code"],
                    p["rule"],
                    mask_identifiers(p["detail"]),
                    day,
                ),
            ]
        case "DataAccessed":
            return _access(p)
    return []


def _access(p: dict) -> list[Fact]:
    day = _city_day(p["accessed_at"])
    result = p.get("result", "SERVED")
    if result == "SERVED" and p["consumer_code"] != p["provider_code"]:
        return [DailyCount(Measure.USED, p["provider_code"], day, p["resource_code"], p["consumer_code"])]
    if result == "REFUSED" and (p.get("reason") or "").startswith(OUT_OF_PURPOSE):
        return [
            OutOfPurposeAccess(
                p["access_id"],
                p["resource_code"],
                p["provider_code"],
                p["consumer_code"],
                p.get("grant_id"),
                mask_identifiers(p["purpose"]),
                day,
            )
        ]
    return []


def department_of(e: Event, keys: KeySource) -> list[Fact]:
    """A department as the directory announced it; only events the directory signed count."""
    if keys.verifier is None:  # the directory's JWKS not read yet: an outage, retried for as long as it lasts
        raise ConnectionError("the directory's token signing keys are not loaded yet")
    try:
        verify_signed_event(keys.verifier.keys, e)
    except Unauthenticated as exc:
        raise ValueError(f"not signed by the directory: {exc}") from None
    p = e.payload
    if e.event_type == "DepartmentRegistered":
        return [DepartmentFact(p["department_code"], p["name"], p["level"] in EVALUATED_LEVELS)]
    return [DepartmentFact(p["department_code"], p["name"], None, p["active"])]


def within_reach(facts: list[Fact]) -> list[Fact]:
    """`facts`, or ValueError naming a day outside DAYS_TAKEN."""
    first, last = DAYS_TAKEN
    for fact in facts:
        for name in _field_names(type(fact)):
            day = getattr(fact, name)
            if isinstance(day, date) and not first <= day <= last:
                raise ValueError(f"{type(fact).__name__}.{name}: {day} is outside {first.year}–{last.year}")
    return facts


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    """A fact type's fields, found once (every data access has its fact checked)."""
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


async def observe_batch(events: list[Event], oversight: Oversight, keys: KeySource) -> dict[str, str]:
    """The consumer's batch handler: translate, hand over, and say which events were refused and why."""
    observed: list[Observed] = []
    refused: dict[str, str] = {}
    taken: set[str] = set()
    for e in events:
        if e.event_id in taken:  # relayed twice and read in one batch: the first copy stands for both
            continue
        taken.add(e.event_id)
        try:
            if e.event_type in ("DepartmentRegistered", "DepartmentChanged"):
                facts = department_of(e, keys)
            else:
                facts = within_reach(facts_of(e))
        except (KeyError, ValueError, TypeError) as exc:
            refused[e.event_id] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        position = e.position if e.position is not None and e.position[0] in MARKED_TOPICS else None
        observed.extend(Observed(e.event_id, f, position) for f in facts)
    if observed:
        await handlers.observe(observed, oversight)
    return refused


def batch_handler(oversight: Oversight, keys: KeySource) -> Callable:
    return partial(observe_batch, oversight=oversight, keys=keys)
