"""Handlers of the webhook channel: registering, rotating and removing endpoints, queueing a notice for the
endpoints that want it, recording each attempt, replaying dead deliveries. One short function each."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from common.errors import Conflict, Invalid, NotFound
from services.notifier.domain import webhooks
from services.notifier.domain.notifications import Notification, NotificationKind
from services.notifier.domain.webhooks import (
    Delivery,
    DeliveryState,
    Endpoint,
    SigningSecret,
    UnsafeUrl,
)
from services.notifier.ports import WebhookQueue, WebhookStore

Resolve = Callable[[str, int], Awaitable[list[str]]]  # host, port -> the addresses it resolves to


class WebhookNotFound(NotFound):
    pass


class UnsafeWebhookUrl(Invalid):
    pass


class NotDeadLettered(Conflict):
    pass


@dataclass(frozen=True)
class UrlPolicy:
    resolve: Resolve
    allow_private: bool  # development and tests call receivers on loopback; production refuses that

    async def check(self, url: str) -> None:
        try:
            webhooks.check_url_form(url)
            addresses = [] if self.allow_private else await self.resolve(*webhooks.host_of(url))
            webhooks.check_url(url, addresses, allow_private=self.allow_private)
        except UnsafeUrl as exc:
            raise UnsafeWebhookUrl("url", str(exc)) from None


async def queue_deliveries(queue: WebhookQueue, notices: list[Notification]) -> set[str]:
    """In the notices' own transaction: one delivery for each endpoint of a recipient that wants the notice
    (those waiting for a digest go with it later). Returns the ids of the notices no endpoint wants."""
    if not notices:
        return set()
    by_department: dict[str, list[Endpoint]] = {}
    for endpoint in await queue.endpoints_of({n.recipient_code for n in notices}):
        by_department.setdefault(endpoint.department_code, []).append(endpoint)
    # each notice against its recipient's endpoints only (a fan-out: a thousand, not a thousand squared)
    wanting = {n.notification_id: [e for e in by_department.get(n.recipient_code, []) if e.wants(n)] for n in notices}
    pushed = [n for n in notices if not n.in_digest]
    deliveries = [webhooks.delivery_for(e, n, n.created_at) for n in pushed for e in wanting[n.notification_id]]
    if deliveries:
        await queue.queue(deliveries)
    return {notice_id for notice_id, wanted_by in wanting.items() if not wanted_by}


async def register(
    store: WebhookStore,
    urls: UrlPolicy,
    *,
    department_code: str,
    url: str,
    kinds: frozenset[NotificationKind],
    description: str,
    created_by: str,
    now: datetime,
) -> tuple[Endpoint, str]:
    """A new endpoint and its secret, which is shown this once."""
    await urls.check(url)
    secret = webhooks.new_secret()
    endpoint = Endpoint(
        f"wh_{uuid.uuid4().hex}",
        department_code,
        url,
        kinds,
        [SigningSecret(secret, now)],
        created_by,
        now,
        description,
    )
    await store.add_endpoint(endpoint)
    return endpoint, secret


async def endpoint_of(store: WebhookStore, department_code: str, endpoint_id: str) -> Endpoint:
    endpoint = await store.endpoint(endpoint_id)
    if endpoint is None or endpoint.department_code != department_code:
        raise WebhookNotFound("endpoint_id", f"no webhook endpoint {endpoint_id} of this department")
    return endpoint


async def rotate(
    store: WebhookStore, *, department_code: str, endpoint_id: str, now: datetime, overlap: timedelta
) -> tuple[Endpoint, str]:
    """A new secret, shown this once; the old one keeps signing beside it for `overlap`."""
    endpoint = await endpoint_of(store, department_code, endpoint_id)
    secret = webhooks.new_secret()
    endpoint.rotate(secret, now, overlap)
    await store.save_secrets(endpoint)
    return endpoint, secret


async def remove(store: WebhookStore, *, department_code: str, endpoint_id: str) -> None:
    await endpoint_of(store, department_code, endpoint_id)
    await store.remove_endpoint(endpoint_id)


async def delivery_of(store: WebhookStore, department_code: str | None, delivery_id: str) -> Delivery:
    delivery = await store.delivery(delivery_id)
    if delivery is None or department_code not in (None, delivery.department_code):
        raise WebhookNotFound("delivery_id", f"no webhook delivery {delivery_id} of this department")
    return delivery


async def replay(store: WebhookStore, *, department_code: str | None, delivery_id: str, now: datetime) -> None:
    delivery = await delivery_of(store, department_code, delivery_id)
    if delivery.state is not DeliveryState.DEAD:
        raise NotDeadLettered("delivery_id", f"the delivery is {delivery.state.value}; only dead ones are replayed")
    await store.replay([delivery_id], now)


async def replay_dead(
    store: WebhookStore, *, department_code: str | None, endpoint_id: str | None, now: datetime, limit: int
) -> int:
    """Replay up to `limit` dead deliveries (of a department, of one endpoint), oldest first."""
    dead, _ = await store.deliveries(
        department_code=department_code, state=DeliveryState.DEAD, endpoint_id=endpoint_id, offset=0, limit=limit
    )
    return await store.replay([d.delivery_id for d in dead], now)


@dataclass(frozen=True)
class WebhookChannel:
    """What the webhook routes need, built once in the service's bootstrap."""

    store: WebhookStore
    urls: UrlPolicy
    rotation_overlap: timedelta
    clock: Callable[[], datetime]
