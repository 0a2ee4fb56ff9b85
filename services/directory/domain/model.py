"""Who acts for which department (Art. 4, 11, 19, 22)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from common.errors import Conflict, Invalid, NotFound
from common.identifiers import InvalidIdentifier, validate_credit_code

__all__ = ["Conflict", "InvalidRequest", "NotFound"]
from common.policy import MachineKind, Principal, Role


class DepartmentLevel(StrEnum):
    CITY = "CITY"  # the city government and its bureaus
    COUNTY = "COUNTY"  # the 13 county-level units: tenants, no data center of their own (Art. 7)
    ZONE = "ZONE"  # 井冈山经开区, 庐陵新区
    IT_OFFICE = "IT_OFFICE"  # 市信息化工作办公室
    LEADERSHIP_GROUP = "LEADERSHIP_GROUP"  # 领导小组


class InvalidRequest(Invalid):
    pass


@dataclass
class Department:
    code: str
    name: str
    level: DepartmentLevel
    parent_code: str | None = None
    active: bool = True

    @classmethod
    def register(cls, code: str, name: str, level: DepartmentLevel, parent_code: str | None) -> Department:
        try:
            valid = validate_credit_code(code)
        except InvalidIdentifier as exc:
            raise InvalidRequest("code", str(exc)) from None
        if not name.strip():
            raise InvalidRequest("name", "must not be empty")
        if parent_code is not None and parent_code.upper() == valid:
            raise InvalidRequest("parent_code", "a department cannot be its own parent")
        return cls(valid, name.strip(), level, parent_code.upper() if parent_code else None)


@dataclass
class Person:
    person_id: str
    name: str
    department_code: str
    roles: frozenset[Role] = frozenset()
    active: bool = True
    password_hash: str = ""
    generation: int = 0  # raised by every change that must end the tokens issued before it

    def principal(self) -> Principal:
        return Principal(self.person_id, self.department_code, self.roles, generation=self.generation)

    def next_generation(self, **changes: Any) -> Person:
        """The person after a change that ends her current tokens."""
        return replace(self, generation=self.generation + 1, **changes)


def check_roles(roles: frozenset[Role], department: Department) -> None:
    """Roles that only make sense in one kind of department."""
    if Role.IT_OFFICE_OPERATOR in roles and department.level is not DepartmentLevel.IT_OFFICE:
        raise InvalidRequest("roles", "it_office_operator is a role of the IT office's staff only")
    if Role.LEADERSHIP_MEMBER in roles and department.level is not DepartmentLevel.LEADERSHIP_GROUP:
        raise InvalidRequest("roles", "leadership_member is a role of the leadership group only")


@dataclass(frozen=True)
class Appointment:
    """A data administrator registered with the IT office (Art. 22): who, since when, replacing whom."""

    department_code: str
    person_id: str
    since: date
    registered_by: str
    replaces_person_id: str | None = None


@dataclass
class MachineIdentity:
    client_id: str
    department_code: str
    kind: MachineKind
    secret_hash: str
    issued_by: str
    active: bool = True
    issued_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    generation: int = 0  # raised by rotation and revocation: the tokens issued before end

    def principal(self) -> Principal:
        return Principal(self.client_id, self.department_code, machine=self.kind, generation=self.generation)

    def next_generation(self, **changes: Any) -> MachineIdentity:
        return replace(self, generation=self.generation + 1, **changes)


@dataclass(frozen=True)
class AdapterKey:
    """An Ed25519 public key an adapter signs its data changes with, registered by its department's data
    administrator (or the IT office). Revoked, it signs nothing from that moment on; rotation registers the new
    key and revokes the old one at once."""

    key_id: str
    client_id: str
    department_code: str
    public_key: str  # SubjectPublicKeyInfo PEM
    registered_by: str
    registered_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    reason: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def revoke(self, by: str, reason: str, at: datetime) -> AdapterKey:
        return replace(self, revoked_at=at, revoked_by=by, reason=reason)


@dataclass(frozen=True)
class Throttle:
    """Failed sign-ins slow the next ones down instead of locking anyone out (NIST SP 800-63B 5.2.2): after
    `free_failures` failures in a row each further attempt must wait, twice as long as the one before, up to
    `max_delay`. Every attempt counts until it succeeds, so concurrent guesses cannot slip through."""

    free_failures: int = 5
    first_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=15)

    def delay_after(self, failures: int) -> timedelta:
        if failures < self.free_failures:
            return timedelta(0)
        return min(self.first_delay * 2 ** min(failures - self.free_failures, 30), self.max_delay)


@dataclass(frozen=True)
class LoginPolicy:
    """Whose failures slow whom. A guesser mainly slows himself: a person's login from one client address,
    then the login from everywhere only after four times as many failures (guessing spread over many
    addresses). A machine's secret is long and random, so only its login from one address is slowed: a
    stranger who knows a client id cannot keep the machine out."""

    per_client: Throttle = Throttle()
    per_login: Throttle = Throttle(free_failures=20)

    @classmethod
    def of(cls, free_failures: int, max_delay: timedelta) -> LoginPolicy:
        return cls(Throttle(free_failures, max_delay=max_delay), Throttle(4 * free_failures, max_delay=max_delay))
