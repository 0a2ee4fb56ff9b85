"""Reads of the sharing lifecycle: a request or grant for its two departments and oversight, a request's
printable application for the same readers, and a department's own lists."""

from __future__ import annotations

from datetime import date

from common.errors import NotFound
from common.policy import OVERSIGHT, AccessDenied, Principal, Target, authorize
from services.exchange.sharing.application import ApplicationForm, application_form
from services.exchange.sharing.grants import Grant, GrantStatus
from services.exchange.sharing.ports import DepartmentNames, SharingStore
from services.exchange.sharing.requests import RequestStatus, RequestTally, ShareRequest, Step


class RequestNotFound(NotFound):
    pass


class GrantNotFound(NotFound):
    pass


async def get_request(request_id: str, principal: Principal, store: SharingStore) -> ShareRequest:
    request = await store.request(request_id)
    if request is None:
        raise RequestNotFound("request_id", f"no request {request_id}")
    side = request.consumer_code if principal.department_code == request.consumer_code else request.provider_code
    authorize(principal, "exchange.request.read", Target(department_code=side))
    return request


async def get_application_form(
    request_id: str, principal: Principal, store: SharingStore, departments: DepartmentNames
) -> ApplicationForm:
    """The request's written application (需求申请表), readable by whoever may read the request."""
    request = await get_request(request_id, principal, store)
    names = await departments.names({request.consumer_code, request.provider_code})
    schema = await store.schema(request.resource_code)
    return application_form(request, names, schema.name if schema is not None else None)


async def list_requests(
    principal: Principal,
    store: SharingStore,
    *,
    as_provider: bool,
    department_code: str | None,
    status: RequestStatus | None,
    offset: int,
    limit: int,
    awaiting: Step | None = None,
) -> list[ShareRequest]:
    """A department's requests as applicant or as provider; oversight may name any department, or ask for every
    department's requests whose dispute awaits a ruling (the IT office's, the leadership group's)."""
    if awaiting is not None:
        if not principal.roles & OVERSIGHT:
            raise AccessDenied("exchange.request.read", "only oversight lists the disputes of every department")
        return await store.requests(
            consumer_code=None, provider_code=None, status=None, offset=offset, limit=limit, awaiting=awaiting.value
        )
    department = _department(principal, department_code, "exchange.request.read")
    return await store.requests(
        consumer_code=None if as_provider else department,
        provider_code=department if as_provider else None,
        status=status.value if status else None,
        offset=offset,
        limit=limit,
    )


async def request_tally(store: SharingStore, today: date) -> RequestTally:
    """The city's requests by state and the overdue decisions per provider (oversight: the route's guard)."""
    return await store.request_tally(today)


async def get_grant(grant_id: str, principal: Principal, store: SharingStore) -> Grant:
    grant = await store.grant(grant_id)
    if grant is None:
        raise GrantNotFound("grant_id", f"no grant {grant_id}")
    side = grant.consumer_code if principal.department_code == grant.consumer_code else grant.provider_code
    authorize(principal, "exchange.grant.read", Target(department_code=side))
    return grant


async def list_grants(
    principal: Principal,
    store: SharingStore,
    *,
    as_provider: bool,
    department_code: str | None,
    status: GrantStatus | None,
    offset: int,
    limit: int,
) -> list[Grant]:
    department = _department(principal, department_code, "exchange.grant.read")
    return await store.grants(
        consumer_code=None if as_provider else department,
        provider_code=department if as_provider else None,
        status=status,
        offset=offset,
        limit=limit,
    )


def _department(principal: Principal, department_code: str | None, rule_name: str) -> str:
    department = department_code or principal.department_code
    if department != principal.department_code and not principal.roles & OVERSIGHT:
        authorize(principal, rule_name, Target(department_code=department))
    return department
