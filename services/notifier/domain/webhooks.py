"""Webhooks of the departments' systems (Standard Webhooks): which endpoint wants which notice, what a
registered URL may point at, when a failed delivery is tried again and when it is given up (dead-lettered).

A delivery is one notice for one endpoint; its `webhook-id` is the notice's id, so a receiver de-duplicates
by it. Deliveries of one endpoint about one resource form a chain: only the oldest one still open is tried,
the others wait behind it, so a receiver that was down gets them in order once it is back."""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from services.notifier.domain.notifications import Notification, NotificationKind

MAX_URL_LENGTH = 2000
MAX_KINDS = len(NotificationKind)
SECRET_PREFIX = "whsec_"


class DeliveryState(StrEnum):
    PENDING = "PENDING"  # to be tried (now, or at next_try_at), or waiting behind an earlier one
    DELIVERED = "DELIVERED"
    DEAD = "DEAD"  # given up after the retry horizon; listed, and replayed on request


class UnsafeUrl(ValueError):
    """A URL the notifier will not call; the message says why."""


@dataclass(frozen=True)
class SigningSecret:
    value: str  # whsec_<base64>
    created_at: datetime
    expires_at: datetime | None = None  # set when a newer secret replaced it: both sign until then


@dataclass
class Endpoint:
    endpoint_id: str
    department_code: str
    url: str
    kinds: frozenset[NotificationKind]  # empty: every kind
    secrets: list[SigningSecret]
    created_by: str
    created_at: datetime
    description: str = ""

    def wants(self, notice: Notification) -> bool:
        return notice.recipient_code == self.department_code and (not self.kinds or notice.kind in self.kinds)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign a request sent at `now`: the newest, and older ones inside their overlap."""
        return [s.value for s in self.secrets if s.expires_at is None or s.expires_at > now]

    def rotate(self, new_secret: str, now: datetime, overlap: timedelta) -> None:
        """The new secret signs from now on; the ones in force keep signing for `overlap` beside it."""
        ends = now + overlap
        kept = [
            SigningSecret(s.value, s.created_at, min(ends, s.expires_at) if s.expires_at else ends)
            for s in self.secrets
            if s.expires_at is None or s.expires_at > now
        ]
        self.secrets = [*(s for s in kept if s.expires_at and s.expires_at > now), SigningSecret(new_secret, now)]


@dataclass
class Delivery:
    delivery_id: str
    endpoint_id: str
    department_code: str
    notification_id: str  # the webhook-id: receivers de-duplicate by it
    chain: str  # endpoint and resource: deliveries of one chain go out in `seq` order
    seq: int
    body: str  # the JSON body, fixed when queued so every attempt sends the same bytes
    created_at: datetime
    next_try_at: datetime
    kind: str = ""
    reference: str | None = None
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    last_error: str | None = None
    last_status: int | None = None
    delivered_at: datetime | None = None
    retry_from: datetime | None = None  # the retry horizon counts from here (the first try, or a replay)
    waiting: bool = False  # found behind an earlier open delivery of its chain: tried once that one is done
    lease: str | None = None  # the claim an attempt holds: its outcome is written only while it still holds


def webhook_body(notice: Notification) -> str:
    """The request body (Standard Webhooks' `type`, `timestamp`, `data`): the notice as issued."""
    data = {
        "notification_id": notice.notification_id,
        "recipient_code": notice.recipient_code,
        "kind": notice.kind.value,
        "title": notice.title,
        "body": notice.body,
        "reference": notice.reference,
        "due_on": notice.due_on.isoformat() if notice.due_on else None,
        "created_at": notice.created_at.isoformat(),
        "audience": sorted(r.value for r in notice.audience),  # the roles it is for; empty: the whole department
    }
    payload = {"type": f"notification.{notice.kind.value}", "timestamp": notice.created_at.isoformat(), "data": data}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def delivery_for(endpoint: Endpoint, notice: Notification, now: datetime) -> Delivery:
    """The delivery of `notice` to `endpoint`, due now (or once the ones before it in its chain are done)."""
    return Delivery(
        delivery_id=delivery_id(endpoint.endpoint_id, notice.notification_id),
        endpoint_id=endpoint.endpoint_id,
        department_code=endpoint.department_code,
        notification_id=notice.notification_id,
        chain=chain_of(endpoint.endpoint_id, notice),
        seq=0,  # given by the store: increasing in the order deliveries are queued
        body=webhook_body(notice),
        created_at=now,
        next_try_at=now,
        kind=notice.kind.value,
        reference=notice.reference,
    )


@dataclass(frozen=True)
class Outcome:
    """What one attempt did to its delivery."""

    delivery: Delivery
    state: DeliveryState
    attempts: int
    retry_from: datetime
    last_status: int | None
    last_error: str | None = None
    next_try_at: datetime | None = None
    delivered_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """Delivered or dead: the next delivery of its chain may go."""
        return self.state is not DeliveryState.PENDING


def outcome_of(
    delivery: Delivery,
    schedule: RetrySchedule,
    now: datetime,
    *,
    status: int | None,
    error: str | None,
    rng: random.Random | None = None,
) -> Outcome:
    """Delivered on an answer without error; otherwise tried again later, or dead once past the horizon."""
    attempts, retry_from = delivery.attempts + 1, delivery.retry_from or now
    if error is None:
        return Outcome(delivery, DeliveryState.DELIVERED, attempts, retry_from, status, delivered_at=now)
    next_try = schedule.next_try(failed_attempts=attempts, retry_from=retry_from, now=now, rng=rng)
    state = DeliveryState.PENDING if next_try is not None else DeliveryState.DEAD
    return Outcome(delivery, state, attempts, retry_from, status, error, next_try)


def heads(candidates: Iterable[Delivery], first_open: dict[str, int]) -> tuple[list[Delivery], list[Delivery]]:
    """The candidates that are the first open delivery of their chain (to be tried), and the others (to wait);
    `first_open` is the lowest `seq` still open in each chain."""
    go: list[Delivery] = []
    wait: list[Delivery] = []
    for d in candidates:
        (go if first_open.get(d.chain, d.seq) >= d.seq else wait).append(d)
    return go, wait


def chain_of(endpoint_id: str, notice: Notification) -> str:
    """Notices about the same thing (a resource, a request, a grant) for one endpoint go out in order."""
    return f"{endpoint_id}|{notice.resource_code or notice.reference or notice.notification_id}"


def delivery_id(endpoint_id: str, notification_id: str) -> str:
    return f"{endpoint_id}:{notification_id}"


@dataclass(frozen=True)
class RetrySchedule:
    """Exponential backoff with jitter: the n-th retry waits `first * factor**(n-1)`, at most `longest`,
    then a random 50–100 % of that (receivers coming back are not hit by every sender at once). A delivery
    is given up only when an attempt fails `give_up_after` or later after its first one."""

    first: timedelta = timedelta(seconds=5)
    factor: float = 2.0
    longest: timedelta = timedelta(hours=2)
    give_up_after: timedelta = timedelta(hours=25)

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> timedelta:
        exponent = max(0, failed_attempts - 1)
        base = min(self.longest.total_seconds(), self.first.total_seconds() * self.factor ** min(exponent, 64))
        share = (rng or random).uniform(0.5, 1.0)
        return timedelta(seconds=base * share)

    def next_try(
        self, *, failed_attempts: int, retry_from: datetime, now: datetime, rng: random.Random | None = None
    ) -> datetime | None:
        """When to try again after `failed_attempts` failures, or None: give up (dead-letter)."""
        if now - retry_from >= self.give_up_after:
            return None
        return now + self.delay(failed_attempts, rng)


BLOCKED_NETWORKS_NOTE = "loopback, link-local, private, multicast, reserved or unspecified"


def check_url(url: str, addresses: Iterable[str], *, allow_private: bool) -> None:
    """Raise UnsafeUrl unless the notifier may call `url`, whose host resolved to `addresses`."""
    check_url_form(url)
    if not allow_private:
        check_addresses(addresses)


def check_addresses(addresses: Iterable[str]) -> None:
    """Raise UnsafeUrl unless every address a host resolved to is a public one."""
    found = list(addresses)
    if not found:
        raise UnsafeUrl("the URL's host does not resolve")
    for address in found:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
            raise UnsafeUrl(
                f"the URL's host resolves to {ip}, a {BLOCKED_NETWORKS_NOTE} address; only public addresses "
                "are called in this configuration"
            )


def check_url_form(url: str) -> None:
    """The parts of a URL that need no resolving: http(s), a host, no user or password in it, no fragment."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("the scheme must be https or http")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrl("no user name or password in the URL: the signature authenticates the notifier")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.fragment:
        raise UnsafeUrl("no fragment (#…) in the URL")
    if port == 0:
        raise UnsafeUrl("port 0 is not a port to call")


def host_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes it: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
