"""A catalog entry and the rules for drafting one (Art. 9–11)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from common.errors import Conflict, Invalid, NotFound
from common.identifiers import InvalidIdentifier, validate_credit_code

RESOURCE_CODE = re.compile(r"\d{6}/\d{6}")  # 类1 项2 目3 / 顺序码 6


class ShareType(StrEnum):
    UNCONDITIONAL = "UNCONDITIONAL"  # 无条件共享
    CONDITIONAL = "CONDITIONAL"  # 有条件共享
    NOT_SHARED = "NOT_SHARED"  # 不予共享


class EntryStatus(StrEnum):
    DRAFT = "DRAFT"
    SUBMITTED = "SUBMITTED"
    RETURNED = "RETURNED"
    PUBLISHED = "PUBLISHED"
    WITHDRAWN = "WITHDRAWN"


class InvalidEntry(Invalid):
    pass


class EntryExists(Conflict):
    pass


class EntryNotFound(NotFound):
    pass


@dataclass(frozen=True)
class DraftEntry:
    """Command: a compiler saves a new entry as a draft."""

    resource_code: str
    name: str
    provider_code: str
    share_type: ShareType
    compiled_by: str
    not_shared_basis: str | None = None


@dataclass
class CatalogEntry:
    resource_code: str
    name: str
    provider_code: str
    share_type: ShareType
    compiled_by: str
    not_shared_basis: str | None = None
    version: int = 1
    status: EntryStatus = EntryStatus.DRAFT
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def draft(cls, command: DraftEntry) -> CatalogEntry:
        if not RESOURCE_CODE.fullmatch(command.resource_code):
            raise InvalidEntry("resource_code", "must be 6 classification digits, '/', then a 6-digit sequence number")
        if not command.name.strip():
            raise InvalidEntry("name", "must not be empty")
        try:
            provider = validate_credit_code(command.provider_code)
        except InvalidIdentifier as exc:
            raise InvalidEntry("provider_code", str(exc)) from None
        if command.share_type is ShareType.NOT_SHARED and not (command.not_shared_basis or "").strip():
            raise InvalidEntry("not_shared_basis", "a not-shared entry must cite its legal basis")
        return cls(
            resource_code=command.resource_code,
            name=command.name.strip(),
            provider_code=provider,
            share_type=command.share_type,
            compiled_by=command.compiled_by,
            not_shared_basis=command.not_shared_basis,
        )

    def drafted_payload(self) -> dict[str, object]:
        return {
            "resource_code": self.resource_code,
            "version": self.version,
            "name": self.name,
            "provider_code": self.provider_code,
            "share_type": self.share_type.value,
            "compiled_by": self.compiled_by,
        }
