"""The webhook delivery worker: sends due deliveries (Standard Webhooks headers, signed with every secret in
force), records each attempt, and sleeps until the earliest due delivery or until new ones are committed.

At most `concurrency` requests are in flight; each has its own timeout. Redirects are not followed (a
receiver cannot send the notifier elsewhere). Without `allow_private`, the host is resolved again before
each attempt and refused if it now points at a loopback, private or link-local address."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
from prometheus_client import Counter, Histogram
from standardwebhooks import Webhook

from common.errors import Invalid
from services.notifier import webhooks
from services.notifier.domain.webhooks import Delivery, DeliveryState, Endpoint, Outcome, RetrySchedule, outcome_of
from services.notifier.ports import WebhookStore

log = logging.getLogger(__name__)
ERROR_TEXT = 300
ANSWER_KEPT = 200  # bytes of a refusing receiver's answer kept as the delivery's last error

WEBHOOK_ATTEMPTS = Counter(
    "datashare_webhook_attempts_total", "Webhook requests by outcome (delivered, retry, dead)", ["outcome"]
)
WEBHOOK_SECONDS = Histogram("datashare_webhook_request_seconds", "Time a webhook receiver took to answer")


def utcnow() -> datetime:
    return datetime.now(UTC)


def signed_headers(delivery: Delivery, secrets: list[str], at: datetime) -> dict[str, str]:
    """`webhook-id` (the notice's id: receivers de-duplicate by it), `webhook-timestamp` and one `v1,`
    signature per secret in force, space-separated (Standard Webhooks)."""
    at = at.astimezone(UTC)
    signatures = " ".join(Webhook(secret).sign(delivery.notification_id, at, delivery.body) for secret in secrets)
    return {
        "webhook-id": delivery.notification_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": "jian-datashare-notifier",
    }


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, without blocking the event loop."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return sorted({str(info[4][0]) for info in infos})


@dataclass
class WebhookDeliverer:
    store: WebhookStore
    schedule: RetrySchedule
    urls: webhooks.UrlPolicy
    concurrency: int = 32
    timeout: float = 10.0
    idle_check: float = 30.0  # deliveries queued by another replica wait at most this long
    clock: Callable[[], datetime] = utcnow
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    running: set[asyncio.Task] = field(default_factory=set)
    # Outcomes of finished attempts, written in bulk by the loop; kept here across a restart of `run`
    # (the database away), so that none is lost while the process lives.
    finished: list[Outcome] = field(default_factory=list)
    # Deliveries this process just queued and holds (stored as claimed): sent without asking the database.
    fresh: deque[Delivery] = field(default_factory=deque)

    @property
    def lease(self) -> timedelta:
        """How long a claimed delivery is left alone: past its request's timeout, then due again."""
        return timedelta(seconds=2 * self.timeout + 10)

    def wake(self) -> None:
        self.woken.set()

    def hand_over(self, deliveries: list[Delivery]) -> None:
        """Deliveries committed by this process, held for `lease`: attempted at once."""
        self.fresh.extend(deliveries)
        self.woken.set()

    async def run(self) -> None:
        # aiohttp rather than httpx here: a request costs a third of the CPU time (bench/webhooks.py).
        connector = aiohttp.TCPConnector(limit=self.concurrency, ttl_dns_cache=60)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as client:
            try:
                while True:
                    self.woken.clear()
                    await self._record()
                    if await self._claim(client) == 0 or len(self.running) >= self.concurrency:
                        await self._sleep()
            finally:
                for task in self.running:
                    task.cancel()

    async def _record(self) -> None:
        if self.finished:
            outcomes = list(self.finished)
            await self.store.record(outcomes, self.clock())
            del self.finished[: len(outcomes)]

    async def _claim(self, client: aiohttp.ClientSession) -> int:
        free = self.concurrency - len(self.running)
        if free <= 0:
            return 0
        now = self.clock()
        claimed = await self._take_fresh(now, free) or await self.store.claim_due(now, free, now + self.lease)
        endpoints = await self.store.endpoints_by_id({d.endpoint_id for d in claimed}) if claimed else {}
        for delivery in claimed:
            task = asyncio.create_task(self._attempt(client, delivery, endpoints.get(delivery.endpoint_id)))
            self.running.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    async def _take_fresh(self, now: datetime, free: int) -> list[Delivery]:
        """Up to `free` of the handed-over deliveries whose hold leaves time for a whole attempt; the others
        are left to the database's claims once their hold ends."""
        batch: list[Delivery] = []
        margin = timedelta(seconds=self.timeout + 5)
        while self.fresh and len(batch) < free:
            delivery = self.fresh.popleft()
            if delivery.next_try_at - now > margin:
                batch.append(delivery)
        return await self.store.take(batch, now) if batch else []

    def _done(self, task: asyncio.Task) -> None:
        self.running.discard(task)
        self.woken.set()  # its outcome is to be written, a slot is free
        if not task.cancelled() and task.exception() is not None:
            log.warning("a webhook attempt failed; tried again when its lease ends: %s", task.exception())

    async def _sleep(self) -> None:
        """Until something is due, new work was committed, or an attempt finished; never longer than idle_check."""
        wait = self.idle_check
        if len(self.running) < self.concurrency:
            due = await self.store.next_due()
            if due is not None:
                wait = min(wait, max(0.0, (due - self.clock()).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.woken.wait(), max(wait, 0.05))

    async def _attempt(self, client: aiohttp.ClientSession, delivery: Delivery, endpoint: Endpoint | None) -> None:
        if endpoint is None:
            gone = "the endpoint was removed"
            retry_from = delivery.retry_from or self.clock()
            outcome = Outcome(delivery, DeliveryState.DEAD, delivery.attempts, retry_from, None, gone)
        else:
            now = self.clock()
            headers = signed_headers(delivery, endpoint.signing_secrets(now), now)
            status, error = await self._post(client, endpoint.url, headers, delivery.body)
            outcome = outcome_of(delivery, self.schedule, self.clock(), status=status, error=error)
        WEBHOOK_ATTEMPTS.labels(outcome.state.value.lower() if outcome.finished else "retry").inc()
        self.finished.append(outcome)

    async def _post(
        self, client: aiohttp.ClientSession, url: str, headers: dict[str, str], body: str
    ) -> tuple[int | None, str | None]:
        try:
            await self.urls.check(url)
        except Invalid as exc:
            return None, f"refused: {exc.rule}"[:ERROR_TEXT]
        started = asyncio.get_running_loop().time()
        try:
            async with client.post(url, data=body.encode(), headers=headers, allow_redirects=False) as response:
                status = response.status
                answer = await response.content.read(ANSWER_KEPT)  # the first bytes, for the record
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:ERROR_TEXT]
        finally:
            WEBHOOK_SECONDS.observe(asyncio.get_running_loop().time() - started)
        if 200 <= status < 300:
            return status, None
        return status, f"HTTP {status}: {answer[:ANSWER_KEPT].decode(errors='replace')}"[:ERROR_TEXT]
