"""Department-hosted services behind the center (Art. 16): their registration by the provider's data
administrator, and the proxied call. A proxied call passes the API channel's one check (`ApiChannel.open`:
token, grant, purpose, items, period), is recorded as `DataAccessed` (operation `hosted`) whether served,
refused or failed, reaches only an operation the registered OpenAPI describes, carries none of the
consumer's credentials, and comes back with only what the grant opens. Standard library only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from common.errors import Conflict, NotFound
from common.policy import Principal, Target, authorize
from services.exchange.sharing.access import AccessResult, ApiChannel, Call, Clock, Opened, Operation, SharedResources
from services.exchange.sharing.hosted import (
    MAX_SUBJECTS,
    Credential,
    Filtered,
    HostedService,
    HostedServiceFailed,
    Lens,
    NoHostedService,
    Registration,
    check_fields,
    filtered,
    registered,
    too_many_subjects,
    updated,
    withdrawn,
)

MANAGE = "exchange.hosted.manage"
FILTERED_IN_THREAD = 64 * 1024


# -- ports ----------------------------------------------------------------------------------------------------


class HostedEvents(Protocol):
    def registered(self, service: HostedService) -> None: ...

    def updated(self, service: HostedService, by: str) -> None: ...

    def withdrawn(self, service: HostedService, by: str) -> None: ...


class HostedTransaction(Protocol):
    @property
    def events(self) -> HostedEvents: ...

    async def service(self, service_id: str) -> HostedService | None: ...

    async def active_for(self, resource_code: str) -> HostedService | None: ...

    async def put(self, service: HostedService, credential: Credential | None) -> None:
        """Store the service; a credential given replaces the stored one (kept sealed, never in clear)."""
        ...


class HostedStore(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[HostedTransaction]: ...

    async def service(self, service_id: str) -> HostedService | None: ...

    async def services(
        self, *, provider_code: str | None, active_only: bool, offset: int, limit: int
    ) -> list[HostedService]: ...


class Targets(Protocol):
    async def target(self, resource_code: str) -> tuple[HostedService, Credential | None] | None:
        """The resource's active hosted service and the credential the center calls it with (read a moment
        ago at most: a withdrawal takes effect within the grant cache's seconds)."""
        ...


@dataclass(frozen=True)
class Outgoing:
    """The consumer's call as the center forwards it: no credential, cookie or hop-by-hop header of the
    consumer's; who calls is said in the center's own headers."""

    method: str
    path: str  # below the service's base URL, starting with /
    query: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON
    size: int = 0  # bytes as received


class DepartmentServices(Protocol):
    async def check(self, base_url: str) -> None:
        """Refuse (InvalidService) a base URL the center may not call in this configuration."""
        ...

    async def send(self, service: HostedService, credential: Credential | None, call: Outgoing) -> Answer:
        """The service's answer (2xx or 4xx, JSON, bounded); HostedServiceFailed when it is down, refuses, is
        too slow or answers something unusable."""
        ...


# -- registration ---------------------------------------------------------------------------------------------


@dataclass
class Hosting:
    store: HostedStore
    resources: SharedResources
    department: DepartmentServices
    clock: Clock
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)


async def _checked(command: Registration, principal: Principal, hosting: Hosting) -> str:
    """The provider code of the entry the service serves, once the principal may manage it and the
    mapping and URL are acceptable."""
    schema = await hosting.resources.schema(command.resource_code)
    if schema is None:
        raise NotFound("resource_code", f"the exchange holds no resource {command.resource_code}")
    authorize(principal, MANAGE, Target(department_code=schema.provider_code))
    check_fields(command.fields, [i.name for i in schema.items], schema.key_item, command.envelope)
    await hosting.department.check(command.base_url)
    return schema.provider_code


async def register_service(command: Registration, principal: Principal, hosting: Hosting) -> HostedService:
    provider = await _checked(command, principal, hosting)
    service = registered(hosting.new_id(), command, provider, principal.subject, hosting.clock.now())
    async with hosting.store() as tx:
        existing = await tx.active_for(command.resource_code)
        if existing is not None:
            raise Conflict("resource_code", f"the resource has a hosted service already: {existing.service_id}")
        await tx.put(service, command.credential)
        tx.events.registered(service)
    return service


async def update_service(
    service_id: str, command: Registration, principal: Principal, hosting: Hosting
) -> HostedService:
    await _checked(command, principal, hosting)
    async with hosting.store() as tx:
        service = await _own(await tx.service(service_id), principal)
        changed = updated(service, command, hosting.clock.now())
        await tx.put(changed, command.credential)
        tx.events.updated(changed, principal.subject)
    return changed


async def withdraw_service(service_id: str, principal: Principal, hosting: Hosting) -> HostedService:
    async with hosting.store() as tx:
        service = await _own(await tx.service(service_id), principal)
        ended = withdrawn(service, hosting.clock.now())
        await tx.put(ended, None)
        tx.events.withdrawn(ended, principal.subject)
    return ended


async def _own(service: HostedService | None, principal: Principal) -> HostedService:
    if service is None:
        raise NoHostedService("service_id", "no such hosted service")
    authorize(principal, MANAGE, Target(department_code=service.provider_code))
    return service


# -- the proxied call -----------------------------------------------------------------------------------------


@dataclass
class HostedChannel:
    """Proxied calls, checked and recorded by the API channel's own check and log."""

    api: ApiChannel
    targets: Targets
    department: DepartmentServices
    max_request_bytes: int = 1024 * 1024  # a proxied call's body (its route reads no more)
    max_subjects: int = MAX_SUBJECTS  # subjects one answer may carry: their hashes go into its DataAccessed event

    async def call(self, call: Call, outgoing: Outgoing) -> Answer:
        opened = await self.api.open(call, Operation.HOSTED, 0, ())
        try:
            target = await self.targets.target(call.resource_code)
        except HostedServiceFailed as exc:
            await self._refused(call, opened, f"{exc.code} ({exc.status}): {exc.rule}")
            raise
        if target is None:
            await self._refused(call, opened, "the resource has no hosted service")
            raise NoHostedService("resource_code", "the resource has no hosted service")
        service, credential = target
        path = service.path_for(outgoing.method, outgoing.path)
        if path is None:
            reason = f"{outgoing.method} {outgoing.path[:200]} is not an operation of the service's OpenAPI"
            await self._refused(call, opened, reason)
            raise NotFound("path", reason)
        try:
            answer = await self.department.send(service, credential, replace(outgoing, path=path))
            view = lens(opened, service)
            if answer.size > FILTERED_IN_THREAD:  # a large answer is walked off the event loop
                shown = await asyncio.to_thread(filtered, answer.body, view)
            else:
                shown = filtered(answer.body, view)
        except HostedServiceFailed as exc:
            await self._refused(call, opened, f"{exc.code} ({exc.status}): {exc.rule}")
            raise
        return await self._served(call, opened, answer, shown)

    async def _served(self, call: Call, opened: Opened, answer: Answer, shown: Filtered) -> Answer:
        keys = tuple(dict.fromkeys(shown.subjects))
        status = answer.status
        # out of the grant's rows, or none at the department: one answer for both, as the API channel's
        if shown.whole_answer_dropped or status == 404:
            await self.api._log(call, Operation.HOSTED, opened, AccessResult.NOT_FOUND, (), 0, 1)
            raise NotFound("path", f"no record of this subject in {call.resource_code} within the grant")
        if len(keys) > self.max_subjects:  # more than one access event holds: refused, not served unrecorded
            failed = too_many_subjects(self.max_subjects)
            await self._refused(call, opened, f"{failed.code} ({failed.status}): {failed.rule}")
            raise failed
        await self.api._log(call, Operation.HOSTED, opened, AccessResult.SERVED, keys, len(keys), len(keys))
        return Answer(status, shown.body, answer.size)

    async def _refused(self, call: Call, opened: Opened, reason: str) -> None:
        await self.api._log(call, Operation.HOSTED, opened, AccessResult.REFUSED, (), 0, 0, reason)


def lens(opened: Opened, service: HostedService) -> Lens:
    """How the grant sees the service's answers: its items (sensitive ones masked unless it names them), and
    the subjects of its row scope, told by the fields that carry the entry's key item."""
    key_item = opened.schema.key_item
    return Lens(
        fields=service.fields,
        shown=frozenset(opened.items),
        masked=frozenset(i for i in opened.items if i in opened.sensitive and i not in opened.grant.unmasked),
        key_fields=frozenset(f for f, item in service.fields.items() if key_item is not None and item == key_item),
        identify=opened.schema.identify,
        covers=opened.grant.scope.covers,
        envelope=frozenset(service.envelope),
        everything=opened.grant.scope.everything,
    )
