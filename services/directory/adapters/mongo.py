"""The directory in MongoDB; writes go through the runtime's transaction (state + outbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from common.auth import EventSigner
from common.events import Event, Signature
from common.faults import is_transient
from common.mongo import Transaction
from common.policy import MachineKind, Role
from common.runtime import Runtime
from services.directory.domain.model import (
    AdapterKey,
    Appointment,
    Department,
    DepartmentLevel,
    MachineIdentity,
    Person,
    Throttle,
)
from services.directory.ports import RefreshTokenUse

DEPARTMENTS, PEOPLE, APPOINTMENTS, MACHINES = "departments", "people", "data_administrators", "machines"
LOGIN_FAILURES, LOGIN_THROTTLE, REFRESH_TOKENS = "login_failures", "login_throttle", "refresh_tokens"
ADAPTER_KEYS = "adapter_keys"
KEEP_LOGIN_FAILURES = timedelta(days=180)  # refused sign-ins kept as their record
FORGET_FAILURES = timedelta(days=1)  # failures counted against a login are forgotten a day after its last wait


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[PEOPLE].create_index([("department_code", ASCENDING)])
    await db[ADAPTER_KEYS].create_index([("client_id", ASCENDING), ("registered_at", ASCENDING)])
    await db[APPOINTMENTS].create_index([("department_code", ASCENDING), ("seq", DESCENDING)])
    await db[LOGIN_FAILURES].create_index([("login", ASCENDING), ("at", ASCENDING)])
    # The refused sign-ins are a record kept for a while (the auditor keeps the permanent trail), not forever.
    await db[LOGIN_FAILURES].create_index(
        [("at", ASCENDING)], expireAfterSeconds=int(KEEP_LOGIN_FAILURES.total_seconds())
    )
    await db[REFRESH_TOKENS].create_index([("person_id", ASCENDING)])
    await db[REFRESH_TOKENS].create_index([("family", ASCENDING)])
    # Used refresh tokens are kept (a second use ends their family) until they expire; counts until forgiven.
    await db[REFRESH_TOKENS].create_index([("expires", ASCENDING)], expireAfterSeconds=0)
    await db[LOGIN_THROTTLE].create_index([("forget_at", ASCENDING)], expireAfterSeconds=0)


def _department(doc: dict[str, Any]) -> Department:
    return Department(doc["_id"], doc["name"], DepartmentLevel(doc["level"]), doc.get("parent_code"), doc["active"])


def _person(doc: dict[str, Any]) -> Person:
    return Person(
        doc["_id"],
        doc["name"],
        doc["department_code"],
        frozenset(Role(r) for r in doc["roles"]),
        doc["active"],
        doc["password_hash"],
        doc.get("generation", 0),
    )


def _machine(doc: dict[str, Any]) -> MachineIdentity:
    return MachineIdentity(
        doc["_id"],
        doc["department_code"],
        MachineKind(doc["kind"]),
        doc["secret_hash"],
        doc["issued_by"],
        doc["active"],
        doc["issued_at"],
        doc.get("generation", 0),
    )


def _adapter_key(doc: dict[str, Any]) -> AdapterKey:
    fields = {k: v for k, v in doc.items() if k != "_id"}
    return AdapterKey(key_id=doc["_id"], **fields)


def _appointment(doc: dict[str, Any]) -> Appointment:
    return Appointment(
        doc["department_code"],
        doc["person_id"],
        doc["since"].date(),
        doc["registered_by"],
        doc.get("replaces_person_id"),
    )


class _Reads:
    def __init__(self, db: AsyncDatabase, session: AsyncClientSession | None = None) -> None:
        self.db = db
        self.session = session

    async def department(self, code: str) -> Department | None:
        doc = await self.db[DEPARTMENTS].find_one({"_id": code.upper()}, session=self.session)
        return _department(doc) if doc else None

    async def person(self, person_id: str) -> Person | None:
        doc = await self.db[PEOPLE].find_one({"_id": person_id}, session=self.session)
        return _person(doc) if doc else None

    async def machine(self, client_id: str) -> MachineIdentity | None:
        doc = await self.db[MACHINES].find_one({"_id": client_id}, session=self.session)
        return _machine(doc) if doc else None

    async def adapter_key(self, key_id: str) -> AdapterKey | None:
        doc = await self.db[ADAPTER_KEYS].find_one({"_id": key_id}, session=self.session)
        return _adapter_key(doc) if doc else None

    async def current_administrator(self, department_code: str) -> Appointment | None:
        doc = await self.db[APPOINTMENTS].find_one(
            {"department_code": department_code}, sort=[("seq", DESCENDING)], session=self.session
        )
        return _appointment(doc) if doc else None


class MongoDirectoryTransaction(_Reads):
    def __init__(self, tx: Transaction, signer: EventSigner) -> None:
        super().__init__(tx.db, tx.session)
        self.tx = tx
        self.signer = signer

    def emit(self, topic: str, event: Event) -> None:
        """Every directory event is signed: the services trust only those the directory signed."""
        value = self.tx.publisher.encode(topic, event)  # the outbox stores the same bytes
        headers = dict(event.headers())
        signature = self.signer.signature(
            event.event_id, event.event_type, headers["occurred_at"].decode(), event.key.encode(), value
        )
        # the signature travels in its header, next to the envelope it covers
        self.tx.emit(topic, replace(event, signature=Signature(signature.decode(), "", b"")))

    async def add_department(self, department: Department) -> None:
        await self.db[DEPARTMENTS].insert_one(_department_doc(department), session=self.session)

    async def save_department(self, department: Department) -> None:
        doc = _department_doc(department)
        await self.db[DEPARTMENTS].replace_one({"_id": doc["_id"]}, doc, session=self.session)

    async def save_person(self, person: Person) -> None:
        doc = {
            "name": person.name,
            "department_code": person.department_code,
            "roles": sorted(person.roles),
            "active": person.active,
            "password_hash": person.password_hash,
            "generation": person.generation,
        }
        await self.db[PEOPLE].replace_one({"_id": person.person_id}, doc, upsert=True, session=self.session)

    async def add_appointment(self, appointment: Appointment) -> None:
        seq = await self.db[APPOINTMENTS].count_documents(
            {"department_code": appointment.department_code}, session=self.session
        )
        doc = asdict(appointment) | {"seq": seq + 1, "since": _midnight(appointment.since)}
        await self.db[APPOINTMENTS].insert_one(doc, session=self.session)

    async def save_machine(self, machine: MachineIdentity) -> None:
        doc = asdict(machine) | {"kind": machine.kind.value}
        doc["_id"] = doc.pop("client_id")
        await self.db[MACHINES].replace_one({"_id": machine.client_id}, doc, upsert=True, session=self.session)

    async def save_adapter_key(self, key: AdapterKey) -> None:
        doc = asdict(key)
        doc["_id"] = doc.pop("key_id")
        await self.db[ADAPTER_KEYS].replace_one({"_id": doc["_id"]}, doc, upsert=True, session=self.session)


def _department_doc(department: Department) -> dict[str, Any]:
    doc = asdict(department) | {"_id": department.code, "level": department.level.value}
    doc.pop("code")
    return doc


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class MongoUnitOfWork(_Reads):
    def __init__(self, runtime: Runtime, signer: EventSigner) -> None:
        super().__init__(runtime.db)
        self.runtime = runtime
        self.signer = signer

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoDirectoryTransaction]:
        async with self.runtime.transaction() as tx:
            yield MongoDirectoryTransaction(tx, self.signer)

    async def departments(self) -> list[Department]:
        return [_department(d) async for d in self.db[DEPARTMENTS].find({}).sort("_id", ASCENDING)]

    async def appointments(self, department_code: str) -> list[Appointment]:
        cursor = self.db[APPOINTMENTS].find({"department_code": department_code.upper()}).sort("seq", ASCENDING)
        return [_appointment(d) async for d in cursor]

    async def adapter_keys(self, client_id: str) -> list[AdapterKey]:
        cursor = self.db[ADAPTER_KEYS].find({"client_id": client_id}).sort("registered_at", ASCENDING)
        return [_adapter_key(d) async for d in cursor]

    async def people(self, department_code: str) -> list[Person]:
        cursor = self.db[PEOPLE].find({"department_code": department_code.upper()}).sort("_id", ASCENDING)
        return [_person(d) async for d in cursor]


class MongoLoginAttempts:
    """Attempts counted per key in `login_throttle`; refusals kept in `login_failures` as their record."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.failures = db[LOGIN_FAILURES]
        self.throttle = db[LOGIN_THROTTLE]

    async def admit(self, key: str, throttle: Throttle, now: datetime) -> datetime | None:
        while True:  # compare-and-set on the count: concurrent attempts are admitted one at a time
            doc = await self.throttle.find_one({"_id": key})
            # The time is taken after the read: a concurrent attempt that wrote `wait_until` took its own time
            # before writing, so a zero delay is never mistaken for a wait by an attempt that started earlier.
            read_at = max(now, datetime.now(UTC))
            if doc is not None and doc["wait_until"] > read_at:
                return doc["wait_until"]
            failures = (doc or {}).get("failures", 0) + 1
            wait_until = read_at + throttle.delay_after(failures)
            counted = {"failures": failures, "wait_until": wait_until, "forget_at": wait_until + FORGET_FAILURES}
            try:
                if doc is None:
                    await self.throttle.insert_one({"_id": key, **counted})
                    return None
                swapped = await self.throttle.update_one({"_id": key, "failures": doc["failures"]}, {"$set": counted})
            except DuplicateKeyError:
                continue
            except OperationFailure as exc:  # a concurrent attempt's write won (WriteConflict): read again
                if not is_transient(exc):
                    raise
                continue
            if swapped.modified_count == 1:
                return None

    async def failed(self, key: str, throttle: Throttle, now: datetime) -> None:
        for _ in range(10):  # concurrent failures raise the same wait: a lost write conflict is retried
            doc = await self.throttle.find_one({"_id": key})
            if doc is None:
                return
            wait_until = now + throttle.delay_after(doc["failures"])
            forget_at = wait_until + FORGET_FAILURES
            try:
                await self.throttle.update_one(
                    {"_id": key}, {"$max": {"wait_until": wait_until, "forget_at": forget_at}}
                )
                return
            except OperationFailure as exc:
                if not is_transient(exc):
                    raise

    async def succeeded(self, keys: list[str]) -> None:
        await self.throttle.delete_many({"_id": {"$in": keys}})

    async def record_failure(self, login: str, reason: str, client: str | None) -> None:
        await self.failures.insert_one({"login": login, "reason": reason, "client": client, "at": datetime.now(UTC)})


class MongoRefreshTokens:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[REFRESH_TOKENS]

    async def store(self, token_hash: str, person_id: str, family: str, expires: datetime) -> None:
        doc = {"_id": token_hash, "person_id": person_id, "family": family, "expires": expires, "used": False}
        await self.collection.insert_one(doc)

    async def take(self, token_hash: str) -> RefreshTokenUse | None:
        doc = await self.collection.find_one_and_update(
            {"_id": token_hash}, {"$set": {"used": True}}, return_document=ReturnDocument.BEFORE
        )
        if doc is None:
            return None
        # Tokens stored before families existed are a family of their own.
        return RefreshTokenUse(doc["person_id"], doc.get("family", token_hash), doc["expires"], doc.get("used", False))

    async def revoke_family(self, family: str) -> None:
        await self.collection.delete_many({"family": family})

    async def revoke_all(self, person_id: str) -> None:
        await self.collection.delete_many({"person_id": person_id})
