"""REST routes of department-hosted services (Art. 16): their registration by the provider's data
administrator, their descriptions, and the proxied calls `/hosted/{resource_code}/-/{path}`, which send what
the API channel's calls send (a bearer token, `X-Grant-Id`, `X-Purpose`) and get the department's answer
with only what the grant opens."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from common.errors import Invalid
from common.fields import Code, Name
from common.guard import Guard
from common.policy import OVERSIGHT, Principal
from services.exchange.sharing.access import RULE, Call, Operation
from services.exchange.sharing.api import PURPOSE_LENGTH, Channel, ShareGuard, purpose_of
from services.exchange.sharing.hosted import (
    MAX_FIELDS,
    MAX_OPENAPI_BYTES,
    MAX_URL_LENGTH,
    Credential,
    HostedService,
    HostedServiceFailed,
    NoHostedService,
    Registration,
)
from services.exchange.sharing.proxy import (
    HostedChannel,
    Hosting,
    Outgoing,
    register_service,
    update_service,
    withdraw_service,
)

PREFIX = "/hosted"
MAX_QUERY = 4000  # characters of a proxied call's query string
MAX_PATH = 2000
FORWARDED = ("content-type", "accept", "accept-language")  # the only headers of the consumer's passed on
ERRORS = {502: "BadGateway", 504: "GatewayTimeout"}
ENCODED_IN_THREAD = 64 * 1024  # answers larger than this (as received) are serialised off the event loop


async def provided_hosting(request: Request) -> Hosting:
    hosting: Hosting = request.app.state.hosting
    return hosting


async def provided_proxy(request: Request) -> HostedChannel:
    proxy: HostedChannel = request.app.state.hosted_channel
    return proxy


def _hosted_operation(_request: Request) -> Operation:
    return Operation.HOSTED


HostingDep = Annotated[Hosting, Depends(provided_hosting)]
ProxyDep = Annotated[HostedChannel, Depends(provided_proxy)]
Manager = Annotated[Principal, Depends(Guard("exchange.hosted.manage"))]
Reader = Annotated[Principal, Depends(Guard("exchange.resource.read"))]
HostedCaller = Annotated[Principal, Depends(ShareGuard(RULE, _hosted_operation))]
HeaderName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")]


class CredentialIn(BaseModel):
    """The header the center sends to the department's service and its value (e.g. `Authorization`,
    `Bearer …`, or `X-Api-Key`, `…`). Stored sealed; never shown or sent in an event."""

    header: HeaderName = "Authorization"
    value: Annotated[str, Field(min_length=1, max_length=4096)]


class ServiceIn(BaseModel):
    resource_code: Code
    base_url: Annotated[str, Field(max_length=MAX_URL_LENGTH, description="https://… of the department's service")]
    openapi: dict[str, Any] = Field(description=f"its OpenAPI 3 description, as JSON (at most {MAX_OPENAPI_BYTES} B)")
    fields: Annotated[dict[Name, Name], Field(max_length=MAX_FIELDS)] = Field(
        description="answer field name → data item of the entry: the fields a grant's items let through"
    )
    envelope: Annotated[list[Name], Field(max_length=MAX_FIELDS)] = Field(
        default_factory=list,
        description="answer field names that are not data: containers of records (`data`, `items`), paging "
        "and counts; any field neither mapped nor named here is dropped from answers",
    )
    credential: CredentialIn | None = Field(default=None, description="none on an update: the stored one is kept")

    def registration(self) -> Registration:
        if len(json.dumps(self.openapi, ensure_ascii=False).encode()) > MAX_OPENAPI_BYTES:
            raise Invalid("openapi", f"the description is over {MAX_OPENAPI_BYTES:,} bytes")
        credential = Credential(self.credential.header, self.credential.value) if self.credential else None
        return Registration(
            self.resource_code, self.base_url, self.openapi, dict(self.fields), credential, tuple(self.envelope)
        )


class HostedView(BaseModel):
    service_id: str
    resource_code: str
    provider_code: str
    base_url: str | None = Field(description="shown to the provider department and oversight only")
    operations: list[str] = Field(description="the calls the center proxies, as 'GET /path/{param}'")
    fields: dict[str, str]
    envelope: list[str]
    credential_header: str | None
    status: str
    registered_by: str
    registered_at: datetime
    updated_at: datetime
    revision: int
    proxy: str = Field(description="where consumers call it through the center")

    @classmethod
    def of(cls, s: HostedService, viewer: Principal) -> HostedView:
        insider = viewer.department_code == s.provider_code or bool(viewer.roles & OVERSIGHT)
        return cls(
            service_id=s.service_id,
            resource_code=s.resource_code,
            provider_code=s.provider_code,
            base_url=s.base_url if insider else None,
            operations=[str(o) for o in s.operations],
            fields=s.fields,
            envelope=list(s.envelope),
            credential_header=s.credential_header if insider else None,
            status=s.status.value,
            registered_by=s.registered_by,
            registered_at=s.registered_at,
            updated_at=s.updated_at,
            revision=s.revision,
            proxy=f"{PREFIX}/{s.resource_code}/-",
        )


services = APIRouter(prefix="/hosted-services", tags=["hosted services"])
proxy = APIRouter(tags=["hosted services"])


@services.post("", status_code=201, response_model=HostedView, summary="Register a service the department hosts")
async def register(body: ServiceIn, principal: Manager, hosting: HostingDep) -> HostedView:
    return HostedView.of(await register_service(body.registration(), principal, hosting), principal)


@services.get("", response_model=list[HostedView], summary="Department-hosted services")
async def list_services(
    principal: Reader,
    hosting: HostingDep,
    provider_code: Code | None = None,
    withdrawn: bool = False,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[HostedView]:
    found = await hosting.store.services(
        provider_code=provider_code, active_only=not withdrawn, offset=offset, limit=limit
    )
    return [HostedView.of(s, principal) for s in found]


async def _service(service_id: str, hosting: Hosting) -> HostedService:
    service = await hosting.store.service(service_id)
    if service is None:
        raise NoHostedService("service_id", "no such hosted service")
    return service


@services.get("/{service_id}", response_model=HostedView, summary="A department-hosted service")
async def get_service(service_id: Code, principal: Reader, hosting: HostingDep) -> HostedView:
    return HostedView.of(await _service(service_id, hosting), principal)


@services.get("/{service_id}/openapi.json", summary="Its OpenAPI description, as consumers call it through the center")
async def service_openapi(service_id: Code, _: Reader, hosting: HostingDep) -> dict[str, Any]:
    service = await _service(service_id, hosting)
    note = "Call through the center with a bearer token, X-Grant-Id and X-Purpose; only granted items come back."
    return service.openapi | {"servers": [{"url": f"{PREFIX}/{service.resource_code}/-", "description": note}]}


@services.put("/{service_id}", response_model=HostedView, summary="Change a service's registration")
async def update(service_id: Code, body: ServiceIn, principal: Manager, hosting: HostingDep) -> HostedView:
    return HostedView.of(await update_service(service_id, body.registration(), principal, hosting), principal)


@services.post("/{service_id}/withdraw", response_model=HostedView, summary="Withdraw a service: no more calls")
async def withdraw(service_id: Code, principal: Manager, hosting: HostingDep) -> HostedView:
    return HostedView.of(await withdraw_service(service_id, principal, hosting), principal)


PROXIED = PREFIX + "/{resource_code:path}/-/{path:path}"
PROXIED_SUMMARY = "A call to the resource's department-hosted service, through the center: only granted items return"


@proxy.get(PROXIED, summary=PROXIED_SUMMARY, operation_id="call_hosted_service_get")
@proxy.post(PROXIED, summary=PROXIED_SUMMARY, operation_id="call_hosted_service_post")
async def proxied(
    request: Request,
    resource_code: Code,
    path: Annotated[str, Path(max_length=MAX_PATH)],
    principal: HostedCaller,
    channel: Channel,
    hosted: ProxyDep,
    x_grant_id: Annotated[Code | None, Header(description="the grant the call relies on")] = None,
    x_purpose: Annotated[str | None, Header(max_length=PURPOSE_LENGTH, description="percent-encoded UTF-8")] = None,
) -> Response:
    try:
        purpose = purpose_of(x_purpose)
    except Invalid as exc:
        await channel.refuse(Call(principal, resource_code, x_grant_id, None), Operation.HOSTED, str(exc))
        raise
    call = Call(principal, resource_code, x_grant_id, purpose)
    query = request.url.query
    if len(query) > MAX_QUERY:
        refused = Invalid("query", f"at most {MAX_QUERY} characters of query")
        await channel.refuse(call, Operation.HOSTED, str(refused))
        raise refused
    if request.method == "POST":
        try:
            body = await _bounded_body(request, hosted.max_request_bytes)
        except HTTPException as exc:
            await channel.refuse(call, Operation.HOSTED, str(exc.detail))
            raise
    else:
        body = b""
    headers = {name: request.headers[name] for name in FORWARDED if name in request.headers}
    headers |= {
        "x-datashare-consumer": principal.department_code,
        "x-datashare-caller": principal.subject,
        "x-datashare-grant": x_grant_id or "",
        "x-datashare-purpose": quote(purpose or ""),
    }
    answer = await hosted.call(call, Outgoing(request.method, "/" + path, query, body, headers))
    return Response(await rendered(answer.body, answer.size), status_code=answer.status, media_type="application/json")


async def rendered(body: Any, size: int) -> bytes:
    """The answer as JSONResponse renders it; one larger than ENCODED_IN_THREAD (as received) off the event
    loop."""
    if size > ENCODED_IN_THREAD:
        return await asyncio.to_thread(_encoded, body)
    return _encoded(body)


def _encoded(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


async def _bounded_body(request: Request, most: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > most:
            raise HTTPException(413, f"a proxied call's body is at most {most:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def hosted_failed(_request: Request, exc: Exception) -> JSONResponse:
    """502 or 504, with the reason for machines (`code`) and in Chinese for people (`message`)."""
    assert isinstance(exc, HostedServiceFailed)
    body = {"detail": str(exc), "error": ERRORS.get(exc.status, "BadGateway"), "field": exc.field, "rule": exc.rule}
    return JSONResponse(body | {"code": exc.code, "message": exc.message}, status_code=exc.status)


ROUTERS = [services, proxy]
