"""One handler per directory command; login and token handlers in `services.directory.login`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from datashare_adapter.signing import InvalidKey, key_id, load_public_key, public_pem

from common.events import Event
from common.policy import AccessDenied, MachineKind, Principal, Role, Target, authorize
from services.directory.domain.model import (
    AdapterKey,
    Appointment,
    Conflict,
    Department,
    DepartmentLevel,
    InvalidRequest,
    MachineIdentity,
    NotFound,
    Person,
    check_roles,
)
from services.directory.ports import DIRECTORY_EVENTS, DirectoryTransaction, RefreshTokens, SecretHasher, UnitOfWork

PRODUCER = "directory"


@dataclass(frozen=True)
class IssuedSecret:
    """Credentials shown once: only their hash is stored."""

    login: str
    secret: str


def _event(event_type: str, key: str, payload: dict) -> Event:
    return Event(event_type, key, payload, PRODUCER)


def may_see_logins(actor: Principal) -> bool:
    """Login names are half of a sign-in: shown only to those who administer people."""
    try:
        authorize(actor, "directory.person.manage")
    except AccessDenied:
        return False
    return True


async def _existing_department(tx: DirectoryTransaction, code: str) -> Department:
    department = await tx.department(code.upper())
    if department is None or not department.active:
        raise NotFound("department_code", f"no active department {code}")
    return department


async def register_department(
    code: str, name: str, level: DepartmentLevel, parent_code: str | None, actor: Principal, uow: UnitOfWork
) -> Department:
    authorize(actor, "directory.department.manage")
    department = Department.register(code, name, level, parent_code)
    async with uow() as tx:
        if await tx.department(department.code) is not None:
            raise Conflict("code", f"{department.code} is already registered")
        if department.parent_code:
            await _existing_department(tx, department.parent_code)
        await tx.add_department(department)
        payload = {
            "department_code": department.code,
            "name": department.name,
            "level": department.level.value,
            "parent_code": department.parent_code,
        }
        tx.emit(DIRECTORY_EVENTS, _event("DepartmentRegistered", department.code, payload))
    return department


async def change_department(
    code: str, name: str, parent_code: str | None, active: bool, actor: Principal, uow: UnitOfWork
) -> Department:
    authorize(actor, "directory.department.manage")
    async with uow() as tx:
        department = await tx.department(code.upper())
        if department is None:
            raise NotFound("code", f"no department {code}")
        changed = Department.register(department.code, name, department.level, parent_code)
        if changed.parent_code:
            await _existing_department(tx, changed.parent_code)
        changed = replace(changed, active=active)
        await tx.save_department(changed)
        payload = {
            "department_code": changed.code,
            "name": changed.name,
            "parent_code": changed.parent_code,
            "active": changed.active,
        }
        tx.emit(DIRECTORY_EVENTS, _event("DepartmentChanged", changed.code, payload))
    return changed


async def register_person(
    person_id: str,
    name: str,
    department_code: str,
    roles: frozenset[Role],
    actor: Principal,
    uow: UnitOfWork,
    hasher: SecretHasher,
) -> IssuedSecret:
    authorize(actor, "directory.person.manage")
    if not person_id.strip() or not name.strip():
        raise InvalidRequest("person_id", "person_id and name must not be empty")
    password = secrets.token_urlsafe(12)
    async with uow() as tx:
        department = await _existing_department(tx, department_code)
        check_roles(roles, department)
        if await tx.person(person_id) is not None:
            raise Conflict("person_id", f"{person_id} is already registered")
        person = Person(person_id, name.strip(), department.code, roles, password_hash=hasher.hash(password))
        await tx.save_person(person)
        tx.emit(DIRECTORY_EVENTS, _roles_changed(person, actor))
    return IssuedSecret(person_id, password)


def _roles_changed(person: Person, actor: Principal) -> Event:
    payload = {
        "person_id": person.person_id,
        "department_code": person.department_code,
        "roles": sorted(person.roles),
        "changed_by": actor.subject,
        "generation": person.generation,
    }
    return _event("PersonRolesChanged", person.person_id, payload)


async def set_roles(person_id: str, roles: frozenset[Role], actor: Principal, uow: UnitOfWork) -> Person:
    authorize(actor, "directory.person.manage")
    if Role.DATA_ADMINISTRATOR in roles:
        raise InvalidRequest("roles", "data administrators are appointed (POST .../data-administrator), not assigned")
    async with uow() as tx:
        person = await tx.person(person_id)
        if person is None:
            raise NotFound("person_id", f"no person {person_id}")
        check_roles(roles, await _existing_department(tx, person.department_code))
        kept = roles | (person.roles & {Role.DATA_ADMINISTRATOR})
        person = person.next_generation(roles=frozenset(kept))
        await tx.save_person(person)
        tx.emit(DIRECTORY_EVENTS, _roles_changed(person, actor))
    return person


async def appoint_data_administrator(
    department_code: str, person_id: str, actor: Principal, uow: UnitOfWork, today: datetime | None = None
) -> Appointment:
    """Register the department's data administrator with the IT office; the predecessor loses the role."""
    authorize(actor, "directory.data_administrator.appoint")
    async with uow() as tx:
        department = await _existing_department(tx, department_code)
        person = await tx.person(person_id)
        if person is None or not person.active or person.department_code != department.code:
            raise InvalidRequest("person_id", f"{person_id} is not an active member of {department.code}")
        current = await tx.current_administrator(department.code)
        if current is not None and current.person_id == person_id:
            raise Conflict("person_id", f"{person_id} already is the data administrator")
        if current is not None:
            predecessor = await tx.person(current.person_id)
            if predecessor is not None:
                predecessor = predecessor.next_generation(roles=predecessor.roles - {Role.DATA_ADMINISTRATOR})
                await tx.save_person(predecessor)
                tx.emit(DIRECTORY_EVENTS, _roles_changed(predecessor, actor))
        since = (today or datetime.now(UTC)).date()
        appointment = Appointment(
            department.code, person_id, since, actor.subject, current.person_id if current else None
        )
        await tx.add_appointment(appointment)
        person = person.next_generation(roles=person.roles | {Role.DATA_ADMINISTRATOR})
        await tx.save_person(person)
        tx.emit(DIRECTORY_EVENTS, _roles_changed(person, actor))
        tx.emit(
            DIRECTORY_EVENTS,
            _event(
                "DataAdministratorAppointed",
                department.code,
                {
                    "department_code": department.code,
                    "person_id": person_id,
                    "replaces_person_id": appointment.replaces_person_id,
                    "since": since,
                    "registered_by": actor.subject,
                },
            ),
        )
    return appointment


async def issue_machine_identity(
    department_code: str, kind: MachineKind, actor: Principal, uow: UnitOfWork, hasher: SecretHasher
) -> IssuedSecret:
    authorize(actor, "directory.machine.manage", Target(department_code=department_code.upper()))
    secret = secrets.token_urlsafe(32)
    async with uow() as tx:
        department = await _existing_department(tx, department_code)
        client_id = f"{kind.value}-{department.code.lower()}-{secrets.token_hex(4)}"
        machine = MachineIdentity(client_id, department.code, kind, hasher.hash(secret), actor.subject)
        await tx.save_machine(machine)
        tx.emit(
            DIRECTORY_EVENTS,
            _event(
                "MachineIdentityIssued",
                client_id,
                {
                    "client_id": client_id,
                    "department_code": department.code,
                    "kind": kind.name,
                    "issued_by": actor.subject,
                },
            ),
        )
    return IssuedSecret(client_id, secret)


async def _managed_machine(tx: DirectoryTransaction, client_id: str, actor: Principal) -> MachineIdentity:
    machine = await tx.machine(client_id)
    if machine is None:
        raise NotFound("client_id", f"no machine identity {client_id}")
    authorize(actor, "directory.machine.manage", Target(department_code=machine.department_code))
    if not machine.active:
        raise Conflict("client_id", f"{client_id} is revoked")
    return machine


async def rotate_machine_secret(
    client_id: str, actor: Principal, uow: UnitOfWork, hasher: SecretHasher
) -> IssuedSecret:
    authorize(actor, "directory.machine.manage")
    secret = secrets.token_urlsafe(32)
    async with uow() as tx:
        machine = (await _managed_machine(tx, client_id, actor)).next_generation(secret_hash=hasher.hash(secret))
        await tx.save_machine(machine)
        payload = {
            "client_id": client_id,
            "department_code": machine.department_code,
            "rotated_by": actor.subject,
            "generation": machine.generation,
        }
        tx.emit(DIRECTORY_EVENTS, _event("MachineCredentialsRotated", client_id, payload))
    return IssuedSecret(client_id, secret)


async def revoke_machine_identity(client_id: str, reason: str, actor: Principal, uow: UnitOfWork) -> None:
    authorize(actor, "directory.machine.manage")
    async with uow() as tx:
        machine = (await _managed_machine(tx, client_id, actor)).next_generation(active=False)
        await tx.save_machine(machine)
        tx.emit(
            DIRECTORY_EVENTS,
            _event(
                "MachineIdentityRevoked",
                client_id,
                {
                    "client_id": client_id,
                    "department_code": machine.department_code,
                    "reason": reason,
                    "revoked_by": actor.subject,
                    "generation": machine.generation,
                },
            ),
        )


async def reset_password(
    person_id: str, actor: Principal, uow: UnitOfWork, hasher: SecretHasher, refresh: RefreshTokens
) -> IssuedSecret:
    """A new password, shown once; the old one and every token issued with it stop working."""
    authorize(actor, "directory.person.manage")
    password = secrets.token_urlsafe(12)
    async with uow() as tx:
        person = await tx.person(person_id)
        if person is None or not person.active:
            raise NotFound("person_id", f"no active person {person_id}")
        person = person.next_generation(password_hash=hasher.hash(password))
        await tx.save_person(person)
        tx.emit(DIRECTORY_EVENTS, _tokens_revoked(person, "password reset", actor.subject))
    await refresh.revoke_all(person_id)
    return IssuedSecret(person_id, password)


async def end_refresh_family(person_id: str, family: str, uow: UnitOfWork, refresh: RefreshTokens) -> None:
    """A refresh token was used twice, so someone else holds one of its sign-in's tokens: every refresh token
    of that sign-in ends, and so do the person's access tokens (they do not say which sign-in they came
    from); her other sign-ins refresh theirs."""
    await refresh.revoke_family(family)
    async with uow() as tx:
        person = await tx.person(person_id)
        if person is None:
            return
        person = person.next_generation()
        await tx.save_person(person)
        tx.emit(DIRECTORY_EVENTS, _tokens_revoked(person, "refresh token used twice", PRODUCER))


def _tokens_revoked(person: Person, reason: str, by: str) -> Event:
    payload = {
        "person_id": person.person_id,
        "department_code": person.department_code,
        "generation": person.generation,
        "reason": reason,
        "revoked_by": by,
    }
    return _event("PersonTokensRevoked", person.person_id, payload)


async def reactivate_person(person_id: str, reason: str, actor: Principal, uow: UnitOfWork) -> Person:
    """Undo a deactivation (made by mistake, say). She comes back without roles: the IT office gives them
    again, each change recorded as usual."""
    authorize(actor, "directory.person.manage")
    async with uow() as tx:
        person = await tx.person(person_id)
        if person is None:
            raise NotFound("person_id", f"no person {person_id}")
        if person.active:
            raise Conflict("person_id", f"{person_id} is active")
        person = replace(person, active=True)
        await tx.save_person(person)
        payload = {
            "person_id": person_id,
            "department_code": person.department_code,
            "reactivated_by": actor.subject,
            "reason": reason,
        }
        tx.emit(DIRECTORY_EVENTS, _event("PersonReactivated", person_id, payload))
    return person


async def deactivate_person(person_id: str, actor: Principal, uow: UnitOfWork, refresh: RefreshTokens) -> None:
    authorize(actor, "directory.person.manage")
    async with uow() as tx:
        person = await tx.person(person_id)
        if person is None:
            raise NotFound("person_id", f"no person {person_id}")
        person = person.next_generation(active=False, roles=frozenset())
        await tx.save_person(person)
        tx.emit(DIRECTORY_EVENTS, _roles_changed(person, actor))
    await refresh.revoke_all(person_id)


async def register_adapter_key(
    client_id: str, public_key: str, replaces: str | None, actor: Principal, uow: UnitOfWork, now: datetime
) -> AdapterKey:
    """Register the Ed25519 public key an adapter signs its changes with; with `replaces`, a rotation: the old
    key is revoked in the same step."""
    try:
        public = load_public_key(public_key)
    except InvalidKey as exc:
        raise InvalidRequest("public_key", str(exc)) from None
    async with uow() as tx:
        machine = await _managed_machine(tx, client_id, actor)
        if machine.kind is not MachineKind.ADAPTER:
            raise InvalidRequest("client_id", f"{client_id} is not an adapter: only adapters sign data changes")
        key = AdapterKey(key_id(public), client_id, machine.department_code, public_pem(public), actor.subject, now)
        if await tx.adapter_key(key.key_id) is not None:
            raise Conflict("public_key", f"key {key.key_id} is registered already; a revoked key is never reused")
        if replaces is not None:
            await _revoke_key(tx, client_id, replaces, f"replaced by {key.key_id}", actor, now)
        await tx.save_adapter_key(key)
        payload = {
            "key_id": key.key_id,
            "client_id": client_id,
            "department_code": key.department_code,
            "public_key": key.public_key,
            "registered_by": actor.subject,
            "registered_at": now,
        }
        tx.emit(DIRECTORY_EVENTS, _event("AdapterKeyRegistered", client_id, payload))
    return key


async def revoke_adapter_key(
    client_id: str, key: str, reason: str, actor: Principal, uow: UnitOfWork, now: datetime
) -> None:
    async with uow() as tx:
        await _managed_machine(tx, client_id, actor)
        await _revoke_key(tx, client_id, key, reason, actor, now)


async def _revoke_key(
    tx: DirectoryTransaction, client_id: str, key_id: str, reason: str, actor: Principal, now: datetime
) -> None:
    key = await tx.adapter_key(key_id)
    if key is None or key.client_id != client_id:
        raise NotFound("key_id", f"{client_id} has no key {key_id}")
    if not key.active:
        raise Conflict("key_id", f"key {key_id} is revoked already")
    await tx.save_adapter_key(key.revoke(actor.subject, reason, now))
    payload = {
        "key_id": key_id,
        "client_id": client_id,
        "department_code": key.department_code,
        "reason": reason,
        "revoked_by": actor.subject,
        "revoked_at": now,
    }
    tx.emit(DIRECTORY_EVENTS, _event("AdapterKeyRevoked", client_id, payload))


async def adapter_keys(client_id: str, actor: Principal, uow: UnitOfWork) -> list[AdapterKey]:
    machine = await uow.machine(client_id)
    if machine is None:
        raise NotFound("client_id", f"no machine identity {client_id}")
    authorize(actor, "directory.machine.manage", Target(department_code=machine.department_code))
    return await uow.adapter_keys(client_id)
