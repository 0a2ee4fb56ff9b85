"""The directory in MongoDB; writes go through the runtime's transaction (state + outbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from common.events import Event
from common.mongo import Transaction
from common.policy import MachineKind, Role
from common.runtime import Runtime
from services.directory.domain.model import Appointment, Department, DepartmentLevel, MachineIdentity, Person

DEPARTMENTS, PEOPLE, APPOINTMENTS, MACHINES = "departments", "people", "data_administrators", "machines"
LOGIN_FAILURES, REFRESH_TOKENS = "login_failures", "refresh_tokens"


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[PEOPLE].create_index([("department_code", ASCENDING)])
    await db[APPOINTMENTS].create_index([("department_code", ASCENDING), ("seq", DESCENDING)])
    await db[LOGIN_FAILURES].create_index([("login", ASCENDING), ("at", ASCENDING)])
    await db[REFRESH_TOKENS].create_index([("person_id", ASCENDING)])


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
    )


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

    async def current_administrator(self, department_code: str) -> Appointment | None:
        doc = await self.db[APPOINTMENTS].find_one(
            {"department_code": department_code}, sort=[("seq", DESCENDING)], session=self.session
        )
        return _appointment(doc) if doc else None


class MongoDirectoryTransaction(_Reads):
    def __init__(self, tx: Transaction) -> None:
        super().__init__(tx.db, tx.session)
        self.tx = tx

    def emit(self, topic: str, event: Event) -> None:
        self.tx.emit(topic, event)

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


def _department_doc(department: Department) -> dict[str, Any]:
    doc = asdict(department) | {"_id": department.code, "level": department.level.value}
    doc.pop("code")
    return doc


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class MongoUnitOfWork(_Reads):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime.db)
        self.runtime = runtime

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoDirectoryTransaction]:
        async with self.runtime.transaction() as tx:
            yield MongoDirectoryTransaction(tx)

    async def departments(self) -> list[Department]:
        return [_department(d) async for d in self.db[DEPARTMENTS].find({}).sort("_id", ASCENDING)]

    async def appointments(self, department_code: str) -> list[Appointment]:
        cursor = self.db[APPOINTMENTS].find({"department_code": department_code.upper()}).sort("seq", ASCENDING)
        return [_appointment(d) async for d in cursor]

    async def people(self, department_code: str) -> list[Person]:
        cursor = self.db[PEOPLE].find({"department_code": department_code.upper()}).sort("_id", ASCENDING)
        return [_person(d) async for d in cursor]


class MongoLoginAttempts:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[LOGIN_FAILURES]

    async def failures(self, login: str, since: datetime) -> list[datetime]:
        cursor = self.collection.find({"login": login, "at": {"$gt": since}, "cleared": False}, {"at": 1})
        return [doc["at"] async for doc in cursor]

    async def record_failure(self, login: str, reason: str, client: str | None) -> None:
        await self.collection.insert_one(
            {"login": login, "reason": reason, "client": client, "at": datetime.now(UTC), "cleared": False}
        )

    async def clear(self, login: str) -> None:
        # Kept as the record of refused sign-ins; only their weight in the lockout count goes.
        await self.collection.update_many({"login": login, "cleared": False}, {"$set": {"cleared": True}})


class MongoRefreshTokens:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[REFRESH_TOKENS]

    async def store(self, token_hash: str, person_id: str, expires: datetime) -> None:
        await self.collection.insert_one({"_id": token_hash, "person_id": person_id, "expires": expires})

    async def take(self, token_hash: str) -> tuple[str, datetime] | None:
        doc = await self.collection.find_one_and_delete({"_id": token_hash})
        return (doc["person_id"], doc["expires"]) if doc else None

    async def revoke_all(self, person_id: str) -> None:
        await self.collection.delete_many({"person_id": person_id})
