"""What the exchange knows of a published resource — its data items from the catalog — and the checks a
reported record must pass against them (Art. 13, 24(3)). A failed check is a finding against the provider."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from common.identifiers import InvalidIdentifier, key_kind, validate_subject_key
from services.exchange.domain.records import DataChange, Operation

# Data items that carry the subject's own identifier (common.identifiers.KEY_ITEMS): a record that has one
# must name its subject there, and its subject key is the identifier that item declares.

# How long an update cycle may pass without a change before the resource is reported as stale.
CYCLE_DAYS = {
    "REAL_TIME": 1,
    "DAILY": 1,
    "WEEKLY": 7,
    "MONTHLY": 31,
    "QUARTERLY": 92,
    "HALF_YEARLY": 183,
    "YEARLY": 366,
}
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class ItemSpec:
    name: str
    type: str  # the catalog's item types: string, integer, decimal, date, datetime, boolean, binary
    length: int | None = None
    share_type: str | None = None  # UNCONDITIONAL, CONDITIONAL or NOT_SHARED; None: as the entry
    sensitive: bool = False  # masked unless a grant names it


@dataclass(frozen=True)
class Rejection:
    rule: str  # e.g. field.unknown, field.type, key.missing, subject_key.check_character
    detail: str


@dataclass(frozen=True)
class ResourceSchema:
    resource_code: str
    provider_code: str
    name: str
    items: tuple[ItemSpec, ...]
    update_cycle: str | None
    published: bool = True
    version: int = 0  # the catalog entry version in force
    share_type: str = "CONDITIONAL"  # UNCONDITIONAL, CONDITIONAL, NOT_SHARED (Art. 9)
    not_shared_basis: str | None = None  # the legal basis of NOT_SHARED
    share_methods: tuple[str, ...] = ()  # API, FILE_DOWNLOAD, ONLINE_BROWSE, OFFLINE; none: shared by no channel
    confidentiality_reviewed_on: date | None = None  # Art. 20: nothing is granted without it

    def item_share_type(self, name: str) -> str:
        """How an item is shared: its own share type, else the entry's."""
        item = next((i for i in self.items if i.name == name), None)
        return (item.share_type if item is not None and item.share_type else None) or self.share_type

    @property
    def key_item(self) -> str | None:
        return next((i.name for i in self.items if key_kind(i.name)), None)

    @property
    def key_kind(self) -> str | None:
        """The identifier the key item declares: a credit code (GB 32100) or a citizen ID (GB 11643)."""
        key = self.key_item
        return key_kind(key) if key else None

    def identify(self, subject_key: str) -> tuple[str, str]:
        """(kind, normalised key) of a subject of this resource, checked as the identifier its key item
        declares; a resource without a key item takes either. Raises InvalidIdentifier."""
        return validate_subject_key(subject_key, self.key_kind)

    def problems(self, subject_key: str, fields: dict[str, Any]) -> list[Rejection]:
        """Why an upserted record does not fit the entry's data items; empty when it does."""
        found = []
        by_name = {i.name: i for i in self.items}
        for name, value in fields.items():
            spec = by_name.get(name)
            if spec is None:
                found.append(Rejection("field.unknown", f"{name!r} is not a data item of {self.resource_code}"))
            elif value is not None and not _fits(spec, value):
                found.append(Rejection("field.type", f"{name!r} = {value!r} is not a {spec.type}" + _length(spec)))
        key = self.key_item
        if key is not None:
            if fields.get(key) in (None, ""):
                found.append(Rejection("key.missing", f"the key item {key!r} is missing"))
            elif str(fields[key]).strip().upper() != subject_key:
                found.append(Rejection("key.mismatch", f"the key item {key!r} names another subject"))
        return found

    def stale(self, last_change: datetime | None, published_at: datetime, now: datetime) -> bool:
        """True when the declared update cycle passed without any change (Art. 8: kept current)."""
        if self.update_cycle is None or not self.published:
            return False
        since = last_change or published_at
        return now - since > timedelta(days=CYCLE_DAYS[self.update_cycle])


def _length(spec: ItemSpec) -> str:
    return f" of at most {spec.length} characters" if spec.length and spec.type == "string" else ""


def _fits(spec: ItemSpec, value: Any) -> bool:
    match spec.type:
        case "string" | "binary":
            return isinstance(value, str) and (spec.length is None or len(value) <= spec.length)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "decimal":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "date":
            return isinstance(value, str) and ISO_DATE.fullmatch(value) is not None and _parses(date, value)
        case "datetime":
            return isinstance(value, str) and _parses(datetime, value)
    return False


def _parses(kind: type[date] | type[datetime], value: str) -> bool:
    try:
        kind.fromisoformat(value)
    except ValueError:
        return False
    return True


def admit(schema: ResourceSchema | None, change: DataChange) -> DataChange | Rejection:
    """The change with its subject identified as the resource's key item declares, or the first reason the
    center refuses it."""
    if schema is None or not schema.published:
        return Rejection("resource.not_published", f"{change.resource_code} is not in the published catalog")
    if schema.provider_code != change.provider_code:
        return Rejection("resource.provider", f"{change.resource_code} is provided by another department")
    try:
        kind, key = schema.identify(change.subject_key)
    except InvalidIdentifier as exc:
        return Rejection(f"subject_key.{exc.rule}", str(exc))
    if change.operation is Operation.UPSERT:
        problems = schema.problems(key, change.fields)
        if problems:
            return problems[0]
    return replace(change, subject_key=key, subject_kind=kind)


def publication_stands(version: int, withdrawn_version: int | None) -> bool:
    """Whether a published version of an entry is in force, given the latest version seen withdrawn: the
    catalog announces publications and withdrawals on different topics, so either may arrive first."""
    return withdrawn_version is None or version > withdrawn_version
