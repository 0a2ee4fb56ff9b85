"""Records of a resource keyed by subject, and how a reported change applies to them (Art. 8, 13, 17)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from datashare_adapter.digest import bucket_of, record_hash

FieldValue = str | int | float | bool | None


class Operation(StrEnum):
    UPSERT = "UPSERT"
    DELETE = "DELETE"


@dataclass(frozen=True)
class DataChange:
    change_id: str
    resource_code: str
    provider_code: str
    operation: Operation
    subject_key: str
    subject_kind: str
    fields: dict[str, FieldValue]
    source_version: int
    changed_at: datetime
    sent_by: str = ""  # the adapter whose key signed it, or the person whose upload the exchange signed

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> DataChange:
        """The change as reported; its subject is identified (`subject_kind`) once checked against the
        resource's key item (resources.admit)."""
        return cls(
            change_id=payload["change_id"],
            resource_code=payload["resource_code"],
            provider_code=payload["provider_code"],
            operation=Operation(payload["operation"]),
            subject_key=payload["subject_key"].strip().upper(),
            subject_kind="",
            fields=dict(payload["fields"]),
            source_version=payload["source_version"],
            changed_at=payload["changed_at"],
        )


@dataclass
class SubjectRecord:
    """The center's current copy of one subject's record in one resource."""

    resource_code: str
    provider_code: str
    subject_key: str
    subject_kind: str
    fields: dict[str, FieldValue] = field(default_factory=dict)
    source_version: int = 0
    deleted: bool = False
    last_change_id: str = ""
    changed_at: datetime | None = None
    digest: int = 0  # the record's hash in the consistency digest; 0 once deleted
    bucket: int = 0  # the digest's key range the subject falls in

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_code, self.subject_key


def apply_change(current: SubjectRecord | None, change: DataChange) -> SubjectRecord | None:
    """The record after `change`, or None when the change is older than what the center holds
    (last source version wins; a late older change is kept in history only)."""
    if current is not None and change.source_version <= current.source_version:
        return None
    deleted = change.operation is Operation.DELETE
    return SubjectRecord(
        resource_code=change.resource_code,
        provider_code=change.provider_code,
        subject_key=change.subject_key,
        subject_kind=change.subject_kind,
        fields={} if deleted else dict(change.fields),
        source_version=change.source_version,
        deleted=deleted,
        last_change_id=change.change_id,
        changed_at=change.changed_at,
        digest=0 if deleted else record_hash(change.subject_key, change.fields),
        bucket=bucket_of(change.subject_key),
    )


@dataclass(frozen=True)
class Outcome:
    """What one change did: `after` is None when it arrived later than a newer version (history only)."""

    change: DataChange
    before: SubjectRecord | None
    after: SubjectRecord | None


def apply_in_order(changes: list[DataChange], current: dict[tuple[str, str], SubjectRecord]) -> list[Outcome]:
    """Apply a batch of changes to the records they touch, in arrival order."""
    state = dict(current)
    outcomes = []
    for change in changes:
        key = (change.resource_code, change.subject_key)
        before = state.get(key)
        after = apply_change(before, change)
        if after is not None:
            state[key] = after
        outcomes.append(Outcome(change, before, after))
    return outcomes
