"""What the directory's handlers need from the outside world."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from common.events import Event
from common.policy import Principal
from services.directory.domain.model import AdapterKey, Appointment, Department, MachineIdentity, Person, Throttle

DIRECTORY_EVENTS = "directory.events"


class DirectoryTransaction(Protocol):
    async def department(self, code: str) -> Department | None: ...

    async def add_department(self, department: Department) -> None: ...

    async def save_department(self, department: Department) -> None: ...

    async def person(self, person_id: str) -> Person | None: ...

    async def save_person(self, person: Person) -> None: ...

    async def current_administrator(self, department_code: str) -> Appointment | None: ...

    async def add_appointment(self, appointment: Appointment) -> None: ...

    async def machine(self, client_id: str) -> MachineIdentity | None: ...

    async def save_machine(self, machine: MachineIdentity) -> None: ...

    async def adapter_key(self, key_id: str) -> AdapterKey | None: ...

    async def save_adapter_key(self, key: AdapterKey) -> None: ...

    def emit(self, topic: str, event: Event) -> None: ...


class UnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[DirectoryTransaction]: ...

    async def departments(self) -> list[Department]: ...

    async def department(self, code: str) -> Department | None: ...

    async def person(self, person_id: str) -> Person | None: ...

    async def machine(self, client_id: str) -> MachineIdentity | None: ...

    async def appointments(self, department_code: str) -> list[Appointment]: ...

    async def adapter_keys(self, client_id: str) -> list[AdapterKey]: ...


class SecretHasher(Protocol):
    def hash(self, secret: str) -> str: ...

    def verify(self, secret_hash: str, secret: str) -> bool: ...


class LoginAttempts(Protocol):
    async def admit(self, key: str, throttle: Throttle, now: datetime) -> datetime | None:
        """Count one attempt against `key` unless it must wait: None when admitted, else until when it must.
        Atomic: of attempts made at once, only as many as the throttle allows are admitted."""
        ...

    async def failed(self, key: str, throttle: Throttle, now: datetime) -> None:
        """The admitted attempt failed: the wait it earned runs from now, not from when it was admitted."""
        ...

    async def succeeded(self, keys: list[str]) -> None:
        """The attempt succeeded: the failures counted against `keys` are forgiven."""
        ...

    async def record_failure(self, login: str, reason: str, client: str | None) -> None: ...


@dataclass(frozen=True)
class RefreshTokenUse:
    person_id: str
    family: str  # every refresh token descending from one sign-in
    expires: datetime
    reused: bool  # it had been used before


class RefreshTokens(Protocol):
    async def store(self, token_hash: str, person_id: str, family: str, expires: datetime) -> None: ...

    async def take(self, token_hash: str) -> RefreshTokenUse | None:
        """Mark the token used and say what it was, or None if it is unknown. Each refresh token works once;
        a used one stays known until it expires, so that a second use is recognised."""
        ...

    async def revoke_family(self, family: str) -> None: ...

    async def revoke_all(self, person_id: str) -> None: ...


class Tokens(Protocol):
    def issue(self, principal: Principal) -> tuple[str, int]: ...
