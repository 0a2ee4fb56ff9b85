"""Department-hosted services in MongoDB (`exchange_hosted_services`), their events on
exchange.hosted-services (through the outbox, in the registration's transaction), and the sealed credential
the center calls each one with: AES-256-GCM under the center's credential key, bound to the service id, so
the database holds no credential in clear and a sealed one cannot be moved to another service."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bson import Binary
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.errors import Conflict
from common.events import Event
from common.mongo import Transaction
from common.runtime import Runtime
from services.exchange.sharing.adapters.accesses import _Recent
from services.exchange.sharing.hosted import (
    Credential,
    Endpoint,
    HostedService,
    ServiceStatus,
    credential_unreadable,
)

HOSTED = "exchange_hosted_services"
HOSTED_EVENTS = "exchange.hosted-services"
PRODUCER = "exchange"


class CredentialSeal:
    """Seals and opens the credentials the center calls departments' services with."""

    def __init__(self, secret: bytes) -> None:
        self.aead = AESGCM(hashlib.sha256(b"hosted-service-credential\0" + secret).digest())

    def seal(self, service_id: str, credential: Credential) -> dict[str, Any]:
        nonce = os.urandom(12)
        plain = json.dumps({"header": credential.header, "value": credential.value}).encode()
        return {"nonce": Binary(nonce), "sealed": Binary(self.aead.encrypt(nonce, plain, service_id.encode()))}

    def open(self, service_id: str, sealed: dict[str, Any]) -> Credential:
        try:
            plain = self.aead.decrypt(bytes(sealed["nonce"]), bytes(sealed["sealed"]), service_id.encode())
        except InvalidTag:
            raise ValueError(f"the credential of hosted service {service_id} does not open with this key") from None
        doc = json.loads(plain)
        return Credential(doc["header"], doc["value"])


def service_doc(s: HostedService) -> dict[str, Any]:
    return {
        "_id": s.service_id,
        "resource_code": s.resource_code,
        "provider_code": s.provider_code,
        "base_url": s.base_url,
        # a document's keys may hold `$` and `.` (e.g. `$ref`): kept as JSON text
        "openapi": json.dumps(s.openapi, ensure_ascii=False),
        "operations": [[o.method, o.template] for o in s.operations],
        "fields": [[name, item] for name, item in s.fields.items()],
        "envelope": list(s.envelope),
        "credential_header": s.credential_header,
        "registered_by": s.registered_by,
        "registered_at": s.registered_at,
        "updated_at": s.updated_at,
        "status": s.status.value,
        "revision": s.revision,
    }


def service_of(doc: dict[str, Any]) -> HostedService:
    return HostedService(
        service_id=doc["_id"],
        resource_code=doc["resource_code"],
        provider_code=doc["provider_code"],
        base_url=doc["base_url"],
        openapi=json.loads(doc["openapi"]),
        operations=tuple(Endpoint(m, t) for m, t in doc["operations"]),
        fields={name: item for name, item in doc["fields"]},
        credential_header=doc.get("credential_header"),
        registered_by=doc["registered_by"],
        registered_at=doc["registered_at"],
        updated_at=doc["updated_at"],
        status=ServiceStatus(doc["status"]),
        revision=doc["revision"],
        envelope=tuple(doc.get("envelope", ())),
    )


def openapi_digest(openapi: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(openapi, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class BusHostedEvents:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    def _send(self, event_type: str, s: HostedService, verb: str, by: str, full: bool) -> None:
        payload: dict[str, Any] = {
            "service_id": s.service_id,
            "resource_code": s.resource_code,
            "provider_code": s.provider_code,
            f"{verb}_by": by,
            f"{verb}_at": s.updated_at,
            "revision": s.revision,
        }
        if full:
            payload |= {
                "base_url": s.base_url,
                "operations": [str(o) for o in s.operations],
                "fields": dict(s.fields),
                "envelope": list(s.envelope),
                "openapi_sha256": openapi_digest(s.openapi),
                "credential_header": s.credential_header,
            }
        self.tx.emit(HOSTED_EVENTS, Event(event_type, s.service_id, payload, PRODUCER, occurred_at=s.updated_at))

    def registered(self, service: HostedService) -> None:
        self._send("HostedServiceRegistered", service, "registered", service.registered_by, True)

    def updated(self, service: HostedService, by: str) -> None:
        self._send("HostedServiceUpdated", service, "updated", by, True)

    def withdrawn(self, service: HostedService, by: str) -> None:
        self._send("HostedServiceWithdrawn", service, "withdrawn", by, False)


class MongoHostedTransaction:
    def __init__(self, tx: Transaction, seal: CredentialSeal) -> None:
        self.db: AsyncDatabase = tx.db
        self.session: AsyncClientSession = tx.session
        self.seal = seal
        self.events = BusHostedEvents(tx)

    async def service(self, service_id: str) -> HostedService | None:
        doc = await self.db[HOSTED].find_one({"_id": service_id}, session=self.session)
        return service_of(doc) if doc else None

    async def active_for(self, resource_code: str) -> HostedService | None:
        query = {"resource_code": resource_code, "status": ServiceStatus.ACTIVE.value}
        doc = await self.db[HOSTED].find_one(query, session=self.session)
        return service_of(doc) if doc else None

    async def put(self, service: HostedService, credential: Credential | None) -> None:
        doc = service_doc(service)
        if credential is not None:
            doc["credential"] = self.seal.seal(service.service_id, credential)
        else:
            known = await self.db[HOSTED].find_one({"_id": service.service_id}, {"credential": 1}, session=self.session)
            if known is not None and "credential" in known:
                doc["credential"] = known["credential"]
        await self.db[HOSTED].replace_one({"_id": service.service_id}, doc, upsert=True, session=self.session)


class MongoHostedStore:
    def __init__(self, runtime: Runtime, seal: CredentialSeal) -> None:
        self.runtime = runtime
        self.collection = runtime.db[HOSTED]
        self.seal = seal

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[MongoHostedTransaction]:
        try:
            async with self.runtime.transaction() as tx:
                yield MongoHostedTransaction(tx, self.seal)
        except DuplicateKeyError:  # two registrations for one resource at once: the index lets one win
            raise Conflict("resource_code", "the resource has a hosted service already") from None

    async def service(self, service_id: str) -> HostedService | None:
        doc = await self.collection.find_one({"_id": service_id})
        return service_of(doc) if doc else None

    async def services(
        self, *, provider_code: str | None, active_only: bool, offset: int, limit: int
    ) -> list[HostedService]:
        query: dict[str, Any] = {}
        if provider_code is not None:
            query["provider_code"] = provider_code
        if active_only:
            query["status"] = ServiceStatus.ACTIVE.value
        cursor = self.collection.find(query).sort([("resource_code", ASCENDING), ("_id", ASCENDING)])
        return [service_of(d) async for d in cursor.skip(offset).limit(limit)]


class RecentTargets:
    """The active service of a resource and its credential, each read at most once per `seconds`."""

    def __init__(self, db: AsyncDatabase, seal: CredentialSeal, seconds: float) -> None:
        self.collection = db[HOSTED]
        self.seal = seal
        self.recent = _Recent(seconds)

    async def target(self, resource_code: str) -> tuple[HostedService, Credential | None] | None:
        return await self.recent.fetch(resource_code, lambda: self._read(resource_code))

    async def _read(self, resource_code: str) -> tuple[HostedService, Credential | None] | None:
        doc = await self.collection.find_one({"resource_code": resource_code, "status": ServiceStatus.ACTIVE.value})
        if doc is None:
            return None
        sealed = doc.get("credential")
        try:
            return service_of(doc), self.seal.open(doc["_id"], sealed) if sealed else None
        except ValueError as exc:  # sealed under another key: the center must not call it without one
            raise credential_unreadable(f"{exc}; register the credential again") from None


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[HOSTED].create_index(
        [("resource_code", ASCENDING)],
        unique=True,
        partialFilterExpression={"status": ServiceStatus.ACTIVE.value},
        name="one_active_service_per_resource",
    )
    await db[HOSTED].create_index([("provider_code", ASCENDING), ("resource_code", ASCENDING)])
