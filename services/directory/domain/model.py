"""Who acts for which department (Art. 4, 11, 19, 22)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

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

    def principal(self) -> Principal:
        return Principal(self.person_id, self.department_code, self.roles)


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

    def principal(self) -> Principal:
        return Principal(self.client_id, self.department_code, machine=self.kind)


@dataclass(frozen=True)
class LoginPolicy:
    """Temporary lockout after repeated failures."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)

    def locked_until(self, failures: list[datetime], now: datetime) -> datetime | None:
        recent = sorted(f for f in failures if f > now - self.window)
        if len(recent) < self.max_failures:
            return None
        until = recent[-1] + self.lockout
        return until if until > now else None
