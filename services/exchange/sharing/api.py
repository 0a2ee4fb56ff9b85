"""The API channel's REST routes (Art. 16, 17): the registered interface services of each shared resource,
their OpenAPI descriptions, and the calls themselves.

Every call names its grant (`X-Grant-Id`) and states its purpose (`X-Purpose`). HTTP header values are
ASCII, so the purpose is sent percent-encoded UTF-8 (`urllib.parse.quote("企业开办审批核验")`, JavaScript's
`encodeURIComponent`); raw UTF-8 bytes are accepted too. A purpose containing a literal `%` must be
percent-encoded (`%25`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote

from datashare_adapter.digest import TOPS
from fastapi import APIRouter, Body, Depends, Header, Query, Request
from pydantic import BaseModel, Field

from common.errors import Invalid
from common.fields import Code, Position
from common.guard import Guard
from common.policy import AccessDenied, Principal, Unauthenticated
from services.exchange.domain.resources import ResourceSchema
from services.exchange.sharing.access import (
    BROWSE_FILTER,
    BROWSE_PAGE,
    MAX_BATCH,
    RULE,
    ApiChannel,
    Call,
    Operation,
    registered,
    shared_items,
)
from services.exchange.sharing.grants import Channel as SharingChannel
from services.exchange.sharing.openapi import describe

PURPOSE_LENGTH = 2000  # characters of the header as sent (percent-encoded Chinese takes 9 per character)
BATCH_ACCEPTED = 100_000  # keys read from a batch body before it is refused as too large (MAX_BATCH served)
Top = Annotated[int, Field(ge=0, lt=TOPS)]
MALFORMED_PURPOSE = "the purpose is not percent-encoded UTF-8 (a literal % is sent as %25)"


async def api_channel(request: Request) -> ApiChannel:
    """The channel the service's bootstrap built and put on the app (services.exchange.main). Not wired through
    `dependency_overrides`: FastAPI analyses an override's signature again on every request. Dependencies here
    are coroutines: a plain function would be run in the thread pool, a thread hop per request."""
    channel: ApiChannel = request.app.state.api_channel
    return channel


Channel = Annotated[ApiChannel, Depends(api_channel)]


def purpose_of(header: str | None) -> str | None:
    """The purpose as stated: percent-encoded UTF-8, or raw UTF-8 (which the server reads as Latin-1). A
    percent-encoding that is not UTF-8 (`%FF`, a truncated `%E4%B`) is Invalid, naming the header."""
    if header is None:
        return None
    try:
        text = header.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        text = header
    if "%" not in text:
        return text.strip()
    try:
        return unquote(text, errors="strict").strip()
    except UnicodeDecodeError:
        raise Invalid("X-Purpose", MALFORMED_PURPOSE) from None


def stated_purpose(header: str | None) -> str | None:
    """The purpose for the record of a call refused before it is read: a malformed one as none."""
    try:
        return purpose_of(header)
    except Invalid:
        return None


def _operation(request: Request) -> Operation:
    """Which of the API channel's operations a call is, from its route."""
    path = request.url.path
    if request.method == "POST":
        return Operation.BATCH
    for suffix, operation in (("/changes", Operation.CHANGES), ("/digest", Operation.DIGEST)):
        if path.endswith(suffix):
            return operation
    return Operation.DIGEST_LEAVES if path.endswith("/leaves") else Operation.RECORD


class ShareGuard(Guard):
    """The guard of the calls a grant opens: as every guard, and a call refused for its credentials or role
    is recorded as an access too (a forged, expired or revoked token, an adapter trying to read), as the
    operation of the channel the routes declare."""

    def __init__(
        self,
        rule_name: str,
        operation: Callable[[Request], Operation] = _operation,
        via: SharingChannel = SharingChannel.API,
    ) -> None:
        super().__init__(rule_name)
        self.operation, self.via = operation, via

    async def __call__(self, request: Request, channel: Channel) -> Principal:  # type: ignore[override]
        try:
            principal = await super().__call__(request)
        except (Unauthenticated, AccessDenied) as exc:
            call = Call(
                getattr(request.state, "principal", None) if isinstance(exc, AccessDenied) else None,
                str(request.path_params.get("resource_code", ""))[:64],
                request.headers.get("x-grant-id", "")[:64] or None,
                (stated_purpose(request.headers.get("x-purpose", "")[:PURPOSE_LENGTH]) or None),
                channel=self.via,
            )
            reason = exc.reason if isinstance(exc, Unauthenticated) else f"{exc.rule}: {exc.reason}"
            await channel.refuse(call, self.operation(request), reason)
            raise
        assert principal is not None
        return principal


Caller = Annotated[Principal, Depends(ShareGuard(RULE))]
Describer = Annotated[Principal, Depends(Guard("exchange.resource.read"))]


def calls(
    operation: Callable[[Request], Operation] = _operation, via: SharingChannel = SharingChannel.API
) -> Callable[..., Awaitable[Call]]:
    """The dependency that makes a route's call of a grant: the API channel's by default; another channel's
    routes (offline packages) name their operation and channel."""
    guard = ShareGuard(RULE, operation, via)

    async def call_of(
        request: Request,
        resource_code: Code,
        channel: Channel,
        # a default, not an annotation: this module's annotations are strings, and `guard` is local
        principal: Principal = Depends(guard),  # noqa: B008
        x_grant_id: Annotated[Code | None, Header(description="the grant the call relies on")] = None,
        x_purpose: Annotated[
            str | None,
            Header(max_length=PURPOSE_LENGTH, description="the purpose, as the grant states it; percent-encoded UTF-8"),
        ] = None,
        items: Annotated[
            list[Code],
            Query(max_length=200, description="the data items wanted (default: every item the grant opens)"),
        ] = [],  # noqa: B006
    ) -> Call:
        try:
            purpose = purpose_of(x_purpose)
        except Invalid as exc:  # refused before the grant is looked at, and recorded as every refusal
            refused = Call(principal, resource_code, x_grant_id, None, tuple(items), via)
            await channel.refuse(refused, operation(request), str(exc))
            raise
        return Call(principal, resource_code, x_grant_id, purpose, tuple(items), via)

    return call_of


Called = Annotated[Call, Depends(calls())]


def _browsing(_request: Request) -> Operation:
    return Operation.BROWSE


Browsing = Annotated[Call, Depends(calls(_browsing, SharingChannel.ONLINE_BROWSE))]


class SharedRecord(BaseModel):
    subject_key: str
    fields: dict[str, Any] = Field(description="the granted data items; sensitive ones '***' unless granted")
    source_version: int
    changed_at: datetime | None


class BatchQuery(BaseModel):
    subject_keys: list[Code] = Field(
        max_length=BATCH_ACCEPTED, description=f"the subjects wanted, at most {MAX_BATCH} per query"
    )


class BatchAnswer(BaseModel):
    records: list[SharedRecord]
    not_found: list[str] = Field(description="subjects without a record within the grant (absent or out of scope)")


class FeedEntry(BaseModel):
    sequence: int
    subject_key: str = Field(
        description="the subject's key if the grant serves the key item in clear, else a pseudonym for the grant"
    )
    operation: str
    fields: dict[str, Any]
    source_version: int
    changed_at: datetime


class Feed(BaseModel):
    changes: list[FeedEntry]
    last_sequence: int = Field(description="pass as `since` for the next page")


class BrowseRow(BaseModel):
    subject: str = Field(
        description="the subject's key if the grant serves the key item in clear, else a pseudonym for the grant"
    )
    fields: dict[str, Any] = Field(description="the granted data items; sensitive ones '***' unless granted")
    changed_at: datetime | None


class BrowsePage(BaseModel):
    items: list[str] = Field(description="the columns: the items served, in the entry's order")
    records: list[BrowseRow]
    next: str | None = Field(description="pass as `after` for the next page; null: no more")


class DigestView(BaseModel):
    records: int
    tops: list[str] = Field(description="256 top nodes over the records and items the grant shows")


class ServiceCall(BaseModel):
    operation: str
    method: str
    path: str
    summary: str


class ServiceView(BaseModel):
    resource_code: str
    name: str
    provider_code: str
    share_type: str
    version: int
    items: list[str] = Field(description="the data items a grant can open")
    sensitive: list[str] = Field(description="items served masked unless the grant names them")
    openapi: str = Field(description="the resource's own OpenAPI description")
    headers: dict[str, str] = Field(description="what every call sends besides its bearer token")
    calls: list[ServiceCall]


HEADERS = {
    "Authorization": "Bearer <an access token of the consumer system or of a person of the consumer department>",
    "X-Grant-Id": "the grant the call relies on",
    "X-Purpose": "the grant's purpose, percent-encoded UTF-8",
}


def service_calls(code: str) -> list[ServiceCall]:
    base = f"/services/{code}"
    return [
        ServiceCall(operation="record", method="GET", path=f"{base}/records/{{subject_key}}", summary="one subject"),
        ServiceCall(operation="batch", method="POST", path=f"{base}/records", summary=f"up to {MAX_BATCH} subjects"),
        ServiceCall(
            operation="changes", method="GET", path=f"{base}/changes?since={{n}}", summary="the change feed after n"
        ),
        ServiceCall(operation="digest", method="GET", path=f"{base}/digest", summary="the consistency digest"),
        ServiceCall(
            operation="digest_leaves",
            method="GET",
            path=f"{base}/digest/leaves?top={{t}}",
            summary="the digest's leaves under top nodes",
        ),
    ]


def service_of(schema: ResourceSchema) -> ServiceView:
    return ServiceView(
        resource_code=schema.resource_code,
        name=schema.name,
        provider_code=schema.provider_code,
        share_type=schema.share_type,
        version=schema.version,
        items=shared_items(schema),
        sensitive=[i.name for i in schema.items if i.sensitive and i.name in shared_items(schema)],
        openapi=f"/resources/{schema.resource_code}/openapi.json",
        headers=HEADERS,
        calls=service_calls(schema.resource_code),
    )


services = APIRouter(tags=["API channel"])


@services.get("/services", response_model=list[ServiceView], summary="The registered interface services")
async def list_services(_: Describer, channel: Channel) -> list[ServiceView]:
    return [service_of(s) for s in await channel.resources.schemas() if registered(s)]


@services.get(
    "/resources/{resource_code:path}/openapi.json",
    summary="A resource's interface services as OpenAPI, its data items as typed fields",
)
async def resource_openapi(resource_code: Code, _: Describer, channel: Channel) -> dict[str, Any]:
    return describe(await channel.resources.schema(resource_code))


@services.get(
    "/services/{resource_code:path}/records/{subject_key}",
    response_model=SharedRecord,
    summary="One subject's record, as the grant shows it",
)
async def shared_record(subject_key: Code, call: Called, channel: Channel) -> dict[str, Any]:
    return await channel.record(call, subject_key)


@services.post(
    "/services/{resource_code:path}/records",
    response_model=BatchAnswer,
    summary=f"Records of up to {MAX_BATCH} subjects, as the grant shows them",
)
async def shared_records(query: Annotated[BatchQuery, Body()], call: Called, channel: Channel) -> dict[str, Any]:
    return await channel.batch(call, query.subject_keys)


@services.get(
    "/services/{resource_code:path}/changes",
    response_model=Feed,
    summary="The change feed after `since`: changes of subjects in the grant's scope, with its items",
)
async def shared_changes(
    call: Called,
    channel: Channel,
    since: Annotated[Position, Query(description="the last sequence number the caller holds")] = 0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> dict[str, Any]:
    return await channel.changes(call, since, limit)


@services.get(
    "/services/{resource_code:path}/digest/leaves",
    summary="Leaves under the given top nodes, [sum, count], of the digest the grant shows",
)
async def shared_leaves(
    call: Called, channel: Channel, top: Annotated[list[Top], Query(max_length=TOPS)]
) -> dict[int, list[list[int]]]:
    return await channel.leaves(call, top)


@services.get(
    "/services/{resource_code:path}/digest",
    response_model=DigestView,
    summary="The consistency digest of what the grant shows (compare a consumer's copy, Art. 17)",
)
async def shared_digest(resource_code: Code, call: Called, channel: Channel) -> DigestView:
    digest = await channel.digest(call)
    return DigestView(records=digest.records, tops=digest.tops())


browse = APIRouter(tags=["online browse"])
TRANSPORT_TEXT, TRANSPORT_INT = 4_000, 1_000_000  # what a browse request may carry at all


@browse.get(
    "/browse/{resource_code:path}/records",
    response_model=BrowsePage,
    summary="A page of the records a grant opening ONLINE_BROWSE shows (Art. 16 在线浏览), for a person's browser",
    description="Checked and recorded as an API call (token, `X-Grant-Id`, `X-Purpose`, `items`), by the grant's "
    "ONLINE_BROWSE channel; each page is one `DataAccessed` (operation `browse`) naming the subjects it shows.",
)
async def browse_records(
    call: Browsing,
    channel: Channel,
    after: Annotated[
        str | None, Query(description="`next` of the page before, as it came", max_length=TRANSPORT_TEXT)
    ] = None,
    limit: Annotated[
        int, Query(description=f"rows of the page, 1 to {BROWSE_PAGE}", ge=-TRANSPORT_INT, le=TRANSPORT_INT)
    ] = 20,
    contains: Annotated[
        str,
        Query(description=f"rows with a shown value containing (≤ {BROWSE_FILTER} chars)", max_length=TRANSPORT_TEXT),
    ] = "",
) -> dict[str, Any]:
    # The bounds are the channel's: a page it refuses is recorded like any refused access, not a bare 422. The
    # route's own bounds are only the transport's, far beyond them (what exceeds those is a 422, not recorded).
    return await channel.browse(call, after, limit, contains)
