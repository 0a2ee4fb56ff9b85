"""The events the notifier hears, as typed values: the inbound adapter builds them from the Avro payloads
(schemas/avro/<class name>.avsc) by field name, so a field added to a schema later is ignored until one of
these names it. A new event is a class here, a rule in `notifications.RULES`, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Decision(StrEnum):
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class RulingLevel(StrEnum):
    IT_OFFICE = "IT_OFFICE"
    LEADERSHIP_GROUP = "LEADERSHIP_GROUP"


class RulingOutcome(StrEnum):
    DECISION_UPHELD = "DECISION_UPHELD"
    DECISION_OVERTURNED = "DECISION_OVERTURNED"


@dataclass(frozen=True)
class ShareRequested:
    request_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    purpose: str
    scope: str
    data_items: tuple[str, ...]
    period_from: date
    period_to: date
    requested_by: str
    decide_by: date


@dataclass(frozen=True)
class ShareRefused:
    request_id: str
    resource_code: str
    consumer_code: str
    legal_basis: str


@dataclass(frozen=True)
class ShareDecided:
    request_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    decision: Decision
    reasons: str
    decided_by: str
    decided_on: date


@dataclass(frozen=True)
class ShareDisputed:
    dispute_id: str
    request_id: str
    consumer_code: str
    provider_code: str
    grounds: str
    raised_by: str


@dataclass(frozen=True)
class DisputeRuled:
    dispute_id: str
    request_id: str
    level: RulingLevel
    outcome: RulingOutcome
    reasons: str
    ruled_by: str
    final: bool
    consumer_code: str = ""  # empty in rulings written before they named the parties
    provider_code: str = ""

    def parties(self) -> Dispute | None:
        """The dispute as the ruling names it; None for a ruling that does not name both parties."""
        if not (self.consumer_code and self.provider_code):
            return None
        return Dispute(self.dispute_id, self.request_id, self.consumer_code, self.provider_code)


@dataclass(frozen=True)
class GrantIssued:
    grant_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    purpose: str
    data_items: tuple[str, ...]
    valid_from: date
    valid_to: date
    request_id: str | None = None  # None: a subscription to an unconditional resource


@dataclass(frozen=True)
class GrantRevoked:
    grant_id: str
    resource_code: str
    consumer_code: str
    reason: str
    revoked_by: str


class GrantEndCause(StrEnum):
    PERIOD_ENDED = "PERIOD_ENDED"
    ENTRY_WITHDRAWN = "ENTRY_WITHDRAWN"
    ENTRY_TIGHTENED = "ENTRY_TIGHTENED"
    SUPERSEDED = "SUPERSEDED"


@dataclass(frozen=True)
class GrantEnded:
    grant_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    cause: GrantEndCause
    reason: str
    ended_on: date
    request_id: str | None = None


class OverdueStep(StrEnum):
    PROVIDER_DECISION = "PROVIDER_DECISION"
    IT_OFFICE_RULING = "IT_OFFICE_RULING"
    LEADERSHIP_RULING = "LEADERSHIP_RULING"


@dataclass(frozen=True)
class ShareDecisionOverdue:
    request_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    step: OverdueStep
    due_on: date
    detected_on: date


@dataclass(frozen=True)
class DisputeEscalated:
    dispute_id: str
    request_id: str
    resource_code: str
    consumer_code: str
    provider_code: str
    escalated_by_department: str
    grounds: str
    rule_by: date


@dataclass(frozen=True)
class ReviewFinding:
    field: str
    finding: str


@dataclass(frozen=True)
class CatalogEntryReturned:
    resource_code: str
    version: int
    provider_code: str
    findings: tuple[ReviewFinding, ...]


@dataclass(frozen=True)
class Dispute:
    """What the notifier keeps of a dispute it heard of: a ruling names only the dispute, and both parties
    are told of it."""

    dispute_id: str
    request_id: str
    consumer_code: str
    provider_code: str


class ChangeOperation(StrEnum):
    UPSERT = "UPSERT"
    DELETE = "DELETE"


@dataclass(frozen=True)
class ResourceChanged:
    """One stored change of a resource; `sequence` numbers a resource's changes consecutively."""

    resource_code: str
    provider_code: str
    sequence: int
    change_id: str
    operation: ChangeOperation


@dataclass(frozen=True)
class CatalogEntrySubmitted:
    resource_code: str
    version: int
    provider_code: str
    submitted_by: str


class ShareType(StrEnum):
    UNCONDITIONAL = "UNCONDITIONAL"
    CONDITIONAL = "CONDITIONAL"
    NOT_SHARED = "NOT_SHARED"


@dataclass(frozen=True)
class PublishedItem:
    name: str
    share_type: ShareType | None = None
    sensitive: bool = False


@dataclass(frozen=True)
class CatalogEntryPublished:
    resource_code: str
    version: int
    name: str
    provider_code: str
    share_type: ShareType
    share_methods: tuple[str, ...]
    data_items: tuple[PublishedItem, ...]
    published_on: date
    reviewed_by: str


@dataclass(frozen=True)
class CatalogEntryWithdrawn:
    resource_code: str
    version: int
    provider_code: str
    reason: str


@dataclass(frozen=True)
class CatalogEntryChangeReported:
    resource_code: str
    provider_code: str
    reported_on: date
    due_on: date
    reason: str


class OverdueKind(StrEnum):
    UPDATE_AFTER_CHANGE = "UPDATE_AFTER_CHANGE"
    YEARLY_MAINTENANCE = "YEARLY_MAINTENANCE"


@dataclass(frozen=True)
class CatalogEntryOverdue:
    resource_code: str
    provider_code: str
    kind: OverdueKind
    due_on: date
    detected_on: date


@dataclass(frozen=True)
class CatalogEntryMaintenanceConfirmed:
    resource_code: str
    version: int
    provider_code: str
    confirmed_on: date
    next_due_on: date


@dataclass(frozen=True)
class DuplicateSourceFlagged:
    resource_code: str
    data_element: str
    existing_provider_code: str
    existing_resource_code: str
    new_provider_code: str
    element_id: str = ""
    element_name: str = ""
    existing_provider_name: str = ""


@dataclass(frozen=True)
class ShareDemandFiled:
    demand_id: str
    requester_code: str
    title: str
    wanted_items: tuple[str, ...]


@dataclass(frozen=True)
class ShareDemandMatched:
    demand_id: str
    requester_code: str
    resource_code: str
    covered_items: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class ShareDemandUnmatched:
    demand_id: str
    requester_code: str
    resource_code: str
    reason: str


@dataclass(frozen=True)
class ShareDemandUnmeetable:
    demand_id: str
    requester_code: str
    reason: str
    legal_basis: str


@dataclass(frozen=True)
class DepartmentRegistered:
    department_code: str
    name: str


class FindingCategory(StrEnum):
    CATALOG_NOT_MAINTAINED = "CATALOG_NOT_MAINTAINED"
    DATA_NOT_PROVIDED_IN_TIME = "DATA_NOT_PROVIDED_IN_TIME"
    DATA_INCONSISTENT_OR_UNUSABLE = "DATA_INCONSISTENT_OR_UNUSABLE"
    USE_OUTSIDE_PURPOSE = "USE_OUTSIDE_PURPOSE"


@dataclass(frozen=True)
class PublicationConsentRequested:
    """A consumer asks the provider's consent to publish data it obtained outside government (Art. 18)."""

    consent_id: str
    grant_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    audience: str
    purpose: str
    items: tuple[str, ...]
    decide_by: date | None = None  # absent in events written before consents had deadlines


@dataclass(frozen=True)
class PublicationConsentDecided:
    consent_id: str
    provider_code: str
    consumer_code: str
    granted: bool
    reasons: str
    resource_code: str
    audience: str
    decided_on: date | None = None


@dataclass(frozen=True)
class AuditFindingRaised:
    """An Art. 24 finding against a department, to be corrected by `correct_by`."""

    finding_id: str
    department_code: str
    category: FindingCategory
    description: str
    correct_by: date
    reference: str | None = None


@dataclass(frozen=True)
class AuditFindingCorrected:
    finding_id: str
    department_code: str
    corrected_on: date


@dataclass(frozen=True)
class AuditFindingReported:
    """The department handed in its rectification report; the IT office is to accept or reject it."""

    finding_id: str
    department_code: str
    report: str
    reported_on: date
    correct_by: date
    reference: str | None = None


@dataclass(frozen=True)
class AuditFindingReportRejected:
    """The IT office rejected the department's rectification report: the finding stays open."""

    finding_id: str
    department_code: str
    reason: str
    rejected_on: date
    correct_by: date


@dataclass(frozen=True)
class AuditFindingEscalated:
    """Not corrected in time: a notice of criticism (通报批评)."""

    finding_id: str
    department_code: str
    escalated_on: date
    notice: str
