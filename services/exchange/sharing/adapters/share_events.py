"""The sharing lifecycle's events as they travel on exchange.share-events: this adapter alone knows their
Avro payloads and the topic. It writes through a transaction's `emit` (the outbox), so each event commits
with the state that caused it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from common.events import Event
from services.exchange.sharing.grants import Grant, RowScope
from services.exchange.sharing.ports import SHARE_EVENTS
from services.exchange.sharing.requests import RulingLevel, ShareRequest, Step, granted_terms

PRODUCER = "exchange"


def describe(scope: RowScope) -> str:
    """A row scope in words; named subjects are counted, never listed (their keys are personal data)."""
    if scope.everything:
        return "all subjects"
    parts = []
    if scope.regions:
        parts.append("regions " + ", ".join(scope.regions))
    if scope.subjects:
        parts.append(f"{len(scope.subjects)} named subjects")
    return "; ".join(parts)


def _key(g: Grant) -> str:
    """A grant's events share their request's partition: its decision and rulings come before them."""
    return g.request_id or g.grant_id


class BusShareEvents:
    def __init__(self, emit: Callable[[str, Event], None]) -> None:
        self.emit = emit

    def _send(self, event_type: str, key: str, payload: dict[str, Any]) -> None:
        self.emit(SHARE_EVENTS, Event(event_type, key, payload, PRODUCER))

    def request_filed(self, r: ShareRequest) -> None:
        self._send(
            "ShareRequested",
            r.request_id,
            {
                "request_id": r.request_id,
                "resource_code": r.resource_code,
                "provider_code": r.provider_code,
                "consumer_code": r.consumer_code,
                "purpose": r.purpose,
                "scope": describe(r.asked.scope),
                "data_items": list(r.asked.items),
                "period_from": r.asked.valid_from,
                "period_to": r.asked.valid_to,
                "requested_by": r.requested_by,
                "decide_by": r.decide_by,
                "consumer_system": r.consumer_system,
                "channels": sorted(c.value for c in r.channels),
                "regions": list(r.asked.scope.regions),
                "named_subjects": len(r.asked.scope.subjects),
                "requested_on": r.requested_on,
                "entry_version": r.entry_version,
                "unmasked": sorted(r.asked.unmasked),
            },
        )

    def request_refused(self, r: ShareRequest) -> None:
        self._send(
            "ShareRefused",
            r.request_id,
            {
                "request_id": r.request_id,
                "resource_code": r.resource_code,
                "consumer_code": r.consumer_code,
                "legal_basis": r.refusal or "",
                "provider_code": r.provider_code,
                "data_items": list(r.asked.items),
                "requested_by": r.requested_by,
                "refused_on": r.requested_on,
            },
        )

    def request_decided(self, r: ShareRequest) -> None:
        d = r.decision
        assert d is not None
        terms = d.terms
        self._send(
            "ShareDecided",
            r.request_id,
            {
                "request_id": r.request_id,
                "resource_code": r.resource_code,
                "provider_code": r.provider_code,
                "consumer_code": r.consumer_code,
                "decision": "APPROVED" if d.approved else "REJECTED",
                "reasons": d.reasons,
                "decided_by": d.decided_by,
                "decided_on": d.decided_on,
                "data_items": list(terms.items) if terms else [],
                "scope": describe(terms.scope) if terms else "",
                "valid_from": terms.valid_from if terms else None,
                "valid_to": terms.valid_to if terms else None,
                "narrowed": r.narrowed,
                "decide_by": r.decide_by,
                "overdue": d.overdue,
            },
        )

    def step_overdue(self, r: ShareRequest, step: Step, due: date, today: date) -> None:
        self._send(
            "ShareDecisionOverdue",
            r.request_id,
            {
                "request_id": r.request_id,
                "resource_code": r.resource_code,
                "provider_code": r.provider_code,
                "consumer_code": r.consumer_code,
                "step": step.value,
                "responsible_code": r.responsible_for(step),
                "due_on": due,
                "detected_on": today,
            },
        )

    def request_disputed(self, r: ShareRequest) -> None:
        dispute = r.dispute
        assert dispute is not None
        self._send(
            "ShareDisputed",
            r.request_id,
            {
                "dispute_id": dispute.dispute_id,
                "request_id": r.request_id,
                "consumer_code": r.consumer_code,
                "provider_code": r.provider_code,
                "grounds": dispute.grounds,
                "raised_by": dispute.raised_by,
                "resource_code": r.resource_code,
                "raised_on": dispute.raised_on,
                "rule_by": dispute.rule_by,
            },
        )

    def dispute_ruled(self, r: ShareRequest, level: RulingLevel) -> None:
        dispute = r.dispute
        assert dispute is not None
        ruling = dispute.final_ruling if level is RulingLevel.LEADERSHIP_GROUP else dispute.ruling
        assert ruling is not None
        terms = granted_terms(r)
        self._send(
            "DisputeRuled",
            r.request_id,
            {
                "dispute_id": dispute.dispute_id,
                "request_id": r.request_id,
                "level": level.value,
                "outcome": "DECISION_OVERTURNED" if ruling.overturned else "DECISION_UPHELD",
                "reasons": ruling.reasons,
                "ruled_by": ruling.ruled_by,
                "final": ruling.final,
                "resource_code": r.resource_code,
                "consumer_code": r.consumer_code,
                "provider_code": r.provider_code,
                "ruled_on": ruling.ruled_on,
                "data_items": list(terms.items) if terms else [],
            },
        )

    def dispute_escalated(self, r: ShareRequest) -> None:
        dispute = r.dispute
        assert dispute is not None and dispute.escalation is not None
        e = dispute.escalation
        self._send(
            "DisputeEscalated",
            r.request_id,
            {
                "dispute_id": dispute.dispute_id,
                "request_id": r.request_id,
                "resource_code": r.resource_code,
                "consumer_code": r.consumer_code,
                "provider_code": r.provider_code,
                "escalated_by": e.escalated_by,
                "escalated_by_department": e.department_code,
                "grounds": e.grounds,
                "escalated_on": e.escalated_on,
                "rule_by": e.rule_by,
            },
        )

    def grant_issued(self, g: Grant) -> None:
        self._send(
            "GrantIssued",
            _key(g),
            {
                "grant_id": g.grant_id,
                "request_id": g.request_id,
                "resource_code": g.resource_code,
                "provider_code": g.provider_code,
                "consumer_code": g.consumer_code,
                "purpose": g.purpose,
                "data_items": list(g.items),
                "valid_from": g.valid_from,
                "valid_to": g.valid_to,
                "consumer_system": g.consumer_system,
                "channels": sorted(c.value for c in g.channels),
                "scope": describe(g.scope),
                "unmasked": sorted(g.unmasked),
                "entry_version": g.entry_version,
            },
        )

    def grant_revoked(self, g: Grant, revoked_by: str, today: date) -> None:
        self._send(
            "GrantRevoked",
            _key(g),
            {
                "grant_id": g.grant_id,
                "resource_code": g.resource_code,
                "consumer_code": g.consumer_code,
                "reason": g.ended_reason or "",
                "revoked_by": revoked_by,
                "provider_code": g.provider_code,
                "request_id": g.request_id,
                "revoked_on": today,
            },
        )

    def grant_ended(self, g: Grant, cause: str, today: date) -> None:
        self._send(
            "GrantEnded",
            _key(g),
            {
                "grant_id": g.grant_id,
                "request_id": g.request_id,
                "resource_code": g.resource_code,
                "provider_code": g.provider_code,
                "consumer_code": g.consumer_code,
                "cause": cause,
                "reason": g.ended_reason or "",
                "ended_on": today,
            },
        )
