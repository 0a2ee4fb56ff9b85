"""REST routes of the webhook channel: a department's data administrator (or the IT office) registers its
systems' endpoints, rotates their secrets, sees each delivery's state and replays dead ones; the IT office
sees and replays the dead deliveries of every department."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, StringConstraints

from common.fields import Code, Text
from common.guard import Guard
from common.paging import Page, PageOf
from common.policy import Principal, Target, authorize
from services.notifier import webhooks
from services.notifier.domain.notifications import NotificationKind
from services.notifier.domain.webhooks import MAX_KINDS, MAX_URL_LENGTH, Delivery, DeliveryState, Endpoint
from services.notifier.webhooks import WebhookChannel

MANAGE = "notifier.webhook.manage"
OVERSEE = "notifier.webhook.oversee"
MAX_OVERLAP_SECONDS = 7 * 86_400
Manager = Annotated[Principal, Depends(Guard(MANAGE))]
Overseer = Annotated[Principal, Depends(Guard(OVERSEE))]
Url = Annotated[str, StringConstraints(max_length=MAX_URL_LENGTH)]
# an endpoint's id and a notice's id (an event id and a credit code)
DeliveryId = Annotated[str, StringConstraints(max_length=256)]


async def webhook_channel(request: Request) -> WebhookChannel:
    """The channel the bootstrap built (services.notifier.main)."""
    channel: WebhookChannel = request.app.state.webhooks
    return channel


Channel = Annotated[WebhookChannel, Depends(webhook_channel)]


class EndpointRequest(BaseModel):
    url: Url = Field(description="https (or http) URL of the department system's receiver")
    kinds: list[NotificationKind] = Field(
        default_factory=list, max_length=MAX_KINDS, description="the notice kinds it wants; empty: every kind"
    )
    description: Text = ""


class RotationRequest(BaseModel):
    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description="how long the old secret keeps signing beside the new one; the notifier's setting if omitted",
    )


class EndpointView(BaseModel):
    endpoint_id: str
    department_code: str
    url: str
    kinds: list[NotificationKind]
    description: str
    created_by: str
    created_at: datetime
    secrets_in_force: int = Field(description="secrets signing each request now (2 during a rotation's overlap)")
    previous_secret_expires_at: datetime | None

    @classmethod
    def of(cls, e: Endpoint, now: datetime) -> EndpointView:
        expiring = [s.expires_at for s in e.secrets if s.expires_at is not None and s.expires_at > now]
        return cls(
            endpoint_id=e.endpoint_id,
            department_code=e.department_code,
            url=e.url,
            kinds=sorted(e.kinds),
            description=e.description,
            created_by=e.created_by,
            created_at=e.created_at,
            secrets_in_force=len(e.signing_secrets(now)),
            previous_secret_expires_at=max(expiring, default=None),
        )


class EndpointWithSecret(EndpointView):
    secret: str = Field(description="the signing secret (whsec_…): shown this once, keep it")


class DeliveryView(BaseModel):
    delivery_id: str
    endpoint_id: str
    department_code: str
    notification_id: str = Field(description="the webhook-id header: receivers de-duplicate by it")
    kind: str
    reference: str | None
    state: DeliveryState
    attempts: int
    last_error: str | None
    last_status: int | None
    next_try_at: datetime | None = Field(description="when it is tried next (PENDING only)")
    waiting_behind_earlier: bool = Field(description="an earlier notice about the same thing is still open")
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryView:
        pending = d.state is DeliveryState.PENDING
        return cls(
            delivery_id=d.delivery_id,
            endpoint_id=d.endpoint_id,
            department_code=d.department_code,
            notification_id=d.notification_id,
            kind=d.kind,
            reference=d.reference,
            state=d.state,
            attempts=d.attempts,
            last_error=d.last_error,
            last_status=d.last_status,
            next_try_at=d.next_try_at if pending else None,
            waiting_behind_earlier=d.waiting and pending,
            created_at=d.created_at,
            delivered_at=d.delivered_at,
        )


class Replayed(BaseModel):
    replayed: int


router = APIRouter(tags=["webhooks"])


def _own(principal: Principal, department_code: str) -> str:
    code = department_code.upper()
    authorize(principal, MANAGE, Target(department_code=code))
    return code


@router.post(
    "/webhooks/{department_code}/endpoints",
    status_code=201,
    response_model=EndpointWithSecret,
    summary="Register a department system's webhook endpoint (its secret is shown once)",
)
async def register(
    department_code: Code, body: EndpointRequest, principal: Manager, channel: Channel
) -> EndpointWithSecret:
    code, now = _own(principal, department_code), channel.clock()
    endpoint, secret = await webhooks.register(
        channel.store,
        channel.urls,
        department_code=code,
        url=body.url,
        kinds=frozenset(body.kinds),
        description=body.description,
        created_by=principal.subject,
        now=now,
    )
    return EndpointWithSecret(**EndpointView.of(endpoint, now).model_dump(), secret=secret)


@router.get(
    "/webhooks/{department_code}/endpoints", response_model=list[EndpointView], summary="A department's endpoints"
)
async def endpoints(department_code: Code, principal: Manager, channel: Channel) -> list[EndpointView]:
    code, now = _own(principal, department_code), channel.clock()
    return [EndpointView.of(e, now) for e in await channel.store.endpoints(code)]


@router.get("/webhooks/{department_code}/endpoints/{endpoint_id}", response_model=EndpointView, summary="An endpoint")
async def endpoint(department_code: Code, endpoint_id: Code, principal: Manager, channel: Channel) -> EndpointView:
    code = _own(principal, department_code)
    return EndpointView.of(await webhooks.endpoint_of(channel.store, code, endpoint_id), channel.clock())


@router.delete("/webhooks/{department_code}/endpoints/{endpoint_id}", status_code=204, summary="Remove an endpoint")
async def remove(department_code: Code, endpoint_id: Code, principal: Manager, channel: Channel) -> None:
    code = _own(principal, department_code)
    await webhooks.remove(channel.store, department_code=code, endpoint_id=endpoint_id)


@router.post(
    "/webhooks/{department_code}/endpoints/{endpoint_id}/rotate",
    response_model=EndpointWithSecret,
    summary="Rotate an endpoint's secret: the new one is shown once, the old one signs beside it for the overlap",
)
async def rotate(
    department_code: Code, endpoint_id: Code, body: RotationRequest, principal: Manager, channel: Channel
) -> EndpointWithSecret:
    code, now = _own(principal, department_code), channel.clock()
    overlap = channel.rotation_overlap if body.overlap_seconds is None else timedelta(seconds=body.overlap_seconds)
    endpoint, secret = await webhooks.rotate(
        channel.store, department_code=code, endpoint_id=endpoint_id, now=now, overlap=overlap
    )
    return EndpointWithSecret(**EndpointView.of(endpoint, now).model_dump(), secret=secret)


@router.get(
    "/webhooks/{department_code}/deliveries",
    response_model=Page[DeliveryView],
    summary="A department's webhook deliveries and their state (attempts, last error, next try), oldest first",
)
async def deliveries(
    department_code: Code,
    principal: Manager,
    channel: Channel,
    paging: PageOf,
    state: DeliveryState | None = None,
    endpoint_id: Annotated[Code | None, Query()] = None,
) -> Page[DeliveryView]:
    code = _own(principal, department_code)
    found, total = await channel.store.deliveries(
        department_code=code, state=state, endpoint_id=endpoint_id, offset=paging.offset, limit=paging.limit
    )
    return Page.of([DeliveryView.of(d) for d in found], total, paging)


@router.get(
    "/webhooks/{department_code}/deliveries/{delivery_id}", response_model=DeliveryView, summary="One delivery's state"
)
async def delivery(
    department_code: Code, delivery_id: DeliveryId, principal: Manager, channel: Channel
) -> DeliveryView:
    code = _own(principal, department_code)
    return DeliveryView.of(await webhooks.delivery_of(channel.store, code, delivery_id))


@router.post(
    "/webhooks/{department_code}/deliveries/{delivery_id}/replay",
    status_code=202,
    summary="Send a dead delivery again (with a fresh retry horizon)",
)
async def replay(department_code: Code, delivery_id: DeliveryId, principal: Manager, channel: Channel) -> None:
    code = _own(principal, department_code)
    await webhooks.replay(channel.store, department_code=code, delivery_id=delivery_id, now=channel.clock())


@router.post(
    "/webhooks/{department_code}/dead-deliveries/replay",
    response_model=Replayed,
    summary="Send a department's dead deliveries again, oldest first (up to `limit`)",
)
async def replay_department(
    department_code: Code,
    principal: Manager,
    channel: Channel,
    endpoint_id: Annotated[Code | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> Replayed:
    code = _own(principal, department_code)
    count = await webhooks.replay_dead(
        channel.store, department_code=code, endpoint_id=endpoint_id, now=channel.clock(), limit=limit
    )
    return Replayed(replayed=count)


@router.get(
    "/webhook-deliveries",
    response_model=Page[DeliveryView],
    summary="Every department's webhook deliveries (the IT office), e.g. state=DEAD",
)
async def all_deliveries(
    principal: Overseer,
    channel: Channel,
    paging: PageOf,
    state: DeliveryState | None = None,
    department_code: Annotated[Code | None, Query()] = None,
) -> Page[DeliveryView]:
    found, total = await channel.store.deliveries(
        department_code=department_code.upper() if department_code else None,
        state=state,
        endpoint_id=None,
        offset=paging.offset,
        limit=paging.limit,
    )
    return Page.of([DeliveryView.of(d) for d in found], total, paging)


@router.post(
    "/webhook-deliveries/replay",
    response_model=Replayed,
    summary="Send dead deliveries of every department (or one) again, oldest first (the IT office)",
)
async def replay_all(
    principal: Overseer,
    channel: Channel,
    department_code: Annotated[Code | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> Replayed:
    count = await webhooks.replay_dead(
        channel.store,
        department_code=department_code.upper() if department_code else None,
        endpoint_id=None,
        now=channel.clock(),
        limit=limit,
    )
    return Replayed(replayed=count)
