"""The webhook delivery worker: sends due deliveries (Standard Webhooks headers, signed with every secret in
force), records each attempt, and sleeps until the earliest due delivery or until new ones are committed.

At most `concurrency` requests are in flight; each has its own timeout. Redirects are not followed (a
receiver cannot send the notifier elsewhere). Without `allow_private`, the host is checked again before
each attempt, and the connection itself goes only to the public addresses the client's own resolver
checked (PublicOnlyResolver): a name pointed at a loopback, private or link-local address after its check
is refused, not called."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from prometheus_client import Counter, Histogram
from standardwebhooks import Webhook

from common.errors import Invalid
from services.notifier import webhooks
from services.notifier.domain.webhooks import (
    Delivery,
    DeliveryState,
    Endpoint,
    Outcome,
    RetrySchedule,
    UnsafeUrl,
    check_addresses,
    outcome_of,
)
from services.notifier.ports import WebhookStore

log = logging.getLogger(__name__)
ERROR_TEXT = 300
ANSWER_KEPT = 200  # bytes of a refusing receiver's answer kept as the delivery's last error

WEBHOOK_ATTEMPTS = Counter(
    "datashare_webhook_attempts_total", "Webhook requests by outcome (delivered, retry, dead)", ["outcome"]
)
WEBHOOK_SECONDS = Histogram("datashare_webhook_request_seconds", "Time a webhook receiver took to answer")
for _outcome in ("delivered", "retry", "dead"):  # at 0 from the start: Prometheus sees the first one as an increase
    WEBHOOK_ATTEMPTS.labels(_outcome)


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


RECORD_EVERY = 0.25  # seconds between the loop's looks at outcomes waiting to be written
# While attempts follow each other (a fan-out), outcomes are written this long after the first of them
# finished, or once this many wait: the database stores the notices still coming before it books the ones
# sent. The next delivery of a finished one's chain waits for the write, unless this process delivered it
# (`delivered_here`); an outcome not yet written when the process dies, or its claim ends, is sent again (at
# least once: receivers de-duplicate by webhook-id). An outcome whose claim
# ends within RECORD_LEASE_LEFT is written at once; one written after its claim was lost changes nothing
# (MongoWebhookStore.record): the delivery is another attempt's by then.
RECORD_BUSY = 2.0
RECORD_MOST = 1024
RECORD_LEASE_LEFT = 5.0
# While this process's transactions store a fan-out (one handed RECORD_QUEUING_MANY deliveries or more over
# less than RECORD_QUEUING ago: a change told to many holders is stored 50, 100, 200 … to a transaction, see
# services.notifier.handlers, one of 400 taking a second or two on a loaded machine), the worker is not idle
# for the outcomes' sake, and they wait up to RECORD_QUEUING_LONGEST: the database stores the rest of the
# fan-out first (its deliveries cannot go before), the bookkeeping of those sent after. A notice to a few
# endpoints has its outcomes written at once.
RECORD_QUEUING = 3.0
RECORD_QUEUING_MANY = 50
RECORD_QUEUING_LONGEST = 6.0


def outcomes_due(
    waiting: int,
    oldest_seconds: float,
    *,
    idle: bool,
    lease_left: float = float("inf"),
    queuing: bool = False,
    awaited: bool = False,
) -> bool:
    """Whether the outcomes waiting are written now: at once when no attempt is in flight or ready to go (and
    no fan-out is being stored: `queuing`), when the shortest claim among them ends within RECORD_LEASE_LEFT
    (`lease_left` seconds) or when a delivery of their chains waits for them (`awaited`: a resource's next
    notice, queued behind one sent here), otherwise once RECORD_MOST wait or the oldest waited RECORD_BUSY
    (RECORD_QUEUING_LONGEST while queuing)."""
    longest = RECORD_QUEUING_LONGEST if queuing else RECORD_BUSY
    return waiting > 0 and (
        (idle and not queuing)
        or awaited
        or waiting >= RECORD_MOST
        or oldest_seconds >= longest
        or lease_left <= RECORD_LEASE_LEFT
    )


class PublicOnlyResolver(AbstractResolver):
    """Resolves a receiver's host for the connection itself and refuses loopback, private and link-local
    answers there: the address checked is the address connected to, so a name that resolved to a public
    address when it was checked and to an internal one a moment later (DNS rebinding) is never called. The
    request still names the host (Host header, TLS server name and certificate check)."""

    def __init__(self) -> None:
        self.inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        answers = await self.inner.resolve(host, port, family)
        try:
            check_addresses([str(a["host"]) for a in answers])
        except UnsafeUrl as exc:
            raise OSError(errno.EACCES, f"refused: {host} {exc}") from None
        return answers

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class WebhookDeliverer:
    """Claims many due deliveries with one query, keeps `concurrency` attempts in flight from that supply,
    and writes the outcomes of many attempts with one bulk write: the database sees a few requests per
    round, not several per delivery."""

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
    finished_at: list[float] = field(default_factory=list)  # loop time each of `finished` was found
    # Deliveries this process just queued and holds (stored as claimed): sent without asking the database.
    fresh: deque[Delivery] = field(default_factory=deque)
    # Claimed or taken, each the first open one of its chain, with its endpoint: sent as slots free up.
    ready: deque[tuple[Delivery, Endpoint | None]] = field(default_factory=deque)
    # When the database next has a due delivery (None: ask it); claims wait for it.
    due_at: datetime | None = None
    recording: asyncio.Task | None = None  # the latest bulk write of outcomes (their chains woken apart)
    writes: set[asyncio.Task] = field(default_factory=set)  # outcome writes under way (more than one: urgent)
    wakes: set[asyncio.Task] = field(default_factory=set)  # wakes of finished chains' next deliveries under way
    handed_over_at: float = float("-inf")  # loop time RECORD_QUEUING_MANY deliveries or more were last handed over
    # Chains in which a delivery handed over here was found behind an open one (loop time until which it is
    # kept): the chain's outcomes are written as soon as they are here (outcomes_due), one write at a time.
    # Kept as long as an attempt and a held outcome can take, by when any outcome is written anyway.
    awaited: dict[str, float] = field(default_factory=dict)
    # Deliveries this process delivered whose outcome is not written yet, by chain (their `seq`s): the next one
    # of their chain goes without waiting for the write, the receiver having the one before. Should the process
    # die first, that one is sent again after it: a duplicate, which the receiver drops by its webhook-id.
    delivered_here: dict[str, set[int]] = field(default_factory=dict)

    @property
    def lease(self) -> timedelta:
        """How long a claimed delivery is left alone: past its request's timeout, then due again."""
        return timedelta(seconds=2 * self.timeout + 10)

    def wake(self) -> None:
        self.woken.set()

    def hand_over(self, deliveries: list[Delivery]) -> None:
        """Deliveries committed by this process, held for `lease`: attempted at once (their endpoints are read
        when they are taken, see _supply)."""
        self.fresh.extend(deliveries)
        if len(deliveries) >= RECORD_QUEUING_MANY:  # a fan-out's part: more of it is likely being stored
            self.handed_over_at = asyncio.get_running_loop().time()
        self.woken.set()

    async def run(self) -> None:
        # aiohttp rather than httpx here: a request costs a third of the CPU time (bench/webhooks.py). Its
        # pool holds one connection per request in flight, to any number of receivers.
        async with self.session() as client:
            try:
                while True:
                    self.woken.clear()
                    await self._record()
                    await self._supply()
                    self._launch(client)
                    await self._sleep()
            finally:
                for task in [*self.running, *self.writes, *self.wakes]:
                    task.cancel()

    def session(self) -> aiohttp.ClientSession:
        """The HTTP client: one pooled connection per request in flight; outside development it connects only
        to the public addresses its own resolver checked."""
        resolver = None if self.urls.allow_private else PublicOnlyResolver()
        connector = aiohttp.TCPConnector(limit=self.concurrency, ttl_dns_cache=60, resolver=resolver)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)

    async def _record(self) -> None:
        """Outcomes are written together, beside the attempts (which go on meanwhile): see outcomes_due. The
        write is apart from the wake of the finished chains' next deliveries that follows it (_wake), so a
        wake still running never holds outcomes back; while a write runs the next one waits for it, unless a
        claim among the outcomes waiting ends within RECORD_LEASE_LEFT: then they are written beside it (an
        outcome written after its claim ended changes nothing, and the delivery is sent again)."""
        if not self.finished:
            return
        lease_left = (min(o.delivery.next_try_at for o in self.finished) - self.clock()).total_seconds()
        if self.writes and lease_left > RECORD_LEASE_LEFT:
            return  # woken when it ends
        now = asyncio.get_running_loop().time()
        awaited = self._awaited(now)
        held = now - self.finished_at[0]  # the oldest waiting one
        idle = not self.running and not self.ready and not self.fresh
        queuing = now - self.handed_over_at < RECORD_QUEUING
        if outcomes_due(len(self.finished), held, idle=idle, lease_left=lease_left, queuing=queuing, awaited=awaited):
            outcomes, found_at = list(self.finished), list(self.finished_at)
            self.finished.clear()
            self.finished_at.clear()
            self.recording = self._task(self.writes, self._write(outcomes, found_at))

    def _awaited(self, now: float) -> bool:
        """Whether a delivery may wait for an outcome not written yet (one of its chain's is among them)."""
        self._forget_awaited(now)
        return any(o.delivery.chain in self.awaited for o in self.finished)

    def _forget_awaited(self, now: float) -> None:
        if self.awaited:
            self.awaited = {chain: until for chain, until in self.awaited.items() if until > now}

    def _task(self, tasks: set[asyncio.Task], work: Any) -> asyncio.Task:
        task = asyncio.create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def _write(self, outcomes: list[Outcome], found_at: list[float]) -> None:
        try:
            finished = await self.store.write_outcomes(outcomes)
        except asyncio.CancelledError:  # the loop stopped (the database away): kept for it once it runs again
            self.finished[:0] = outcomes
            self.finished_at[:0] = found_at
            raise
        except Exception as exc:  # back in `finished`, before those found since: written with the next ones
            log.warning("webhook outcomes not written yet, tried again: %s", exc)
            self.finished[:0] = outcomes
            self.finished_at[:0] = found_at
            await asyncio.sleep(RECORD_EVERY)
            return
        finally:
            self.woken.set()
        for o in outcomes:  # written: the database says the rest (a lost claim's outcome wrote nothing, rightly)
            if (seqs := self.delivered_here.get(o.delivery.chain)) is not None:
                seqs.discard(o.delivery.seq)
                if not seqs:
                    del self.delivered_here[o.delivery.chain]
        retries = [o.next_try_at for o in outcomes if o.next_try_at is not None]
        if retries and self.due_at is not None:
            self.due_at = min(self.due_at, *retries)  # a failed one is tried again then
        if finished:
            self._task(self.wakes, self._wake(finished))

    async def _wake(self, finished: dict[str, int]) -> None:
        """The next delivery of each finished chain is due now (a wake that fails leaves them to their
        recheck, see WAITING_RECHECK)."""
        try:
            await self.store.wake_next(finished, self.clock())
        except Exception as exc:
            log.warning("the next webhook deliveries of finished chains not woken, tried at their recheck: %s", exc)
        finally:
            self.due_at = None  # the next one of each finished chain is due now
            self.woken.set()

    async def _supply(self) -> None:
        """Enough ready deliveries for the free slots: this process's fresh ones first (one query for all of
        them), then due ones claimed from the database (one query per claim)."""
        if len(self.ready) >= self.concurrency:
            return
        now = self.clock()
        if self.fresh:
            # Their endpoints are read as they are now, not as the queuing transaction read them: one removed or
            # whose secret was rotated since (a receiver or secret compromised) gets nothing at its old address.
            batch = len(self.fresh)
            taken = await self._take_fresh(now)
            await self._ready(taken)
            if len(taken) < batch:
                self.due_at = None  # one left waiting may have been made due at once (MongoWebhookStore._park)
        if len(self.ready) >= self.concurrency or (self.due_at is not None and self.due_at > now):
            return
        want = 2 * self.concurrency - len(self.ready)
        claimed = await self.store.claim_due(now, want, now + self.lease, self.delivered_here)
        await self._ready(claimed)
        if len(claimed) < want:
            self.due_at = await self.store.next_due()  # None again: nothing pending; asked on the next wake-up
            if self.due_at is None:
                self.due_at = now + timedelta(seconds=self.idle_check)

    async def _ready(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            endpoints = await self.store.endpoints_by_id({d.endpoint_id for d in deliveries})
            self.ready.extend((d, endpoints.get(d.endpoint_id)) for d in deliveries)

    async def _take_fresh(self, now: datetime) -> list[Delivery]:
        """The handed-over deliveries whose hold leaves time for a whole attempt; the others are left to the
        database's claims once their hold ends."""
        margin = timedelta(seconds=self.timeout + 5)
        batch = [d for d in self.fresh if d.next_try_at - now > margin]
        self.fresh.clear()
        if not batch:
            return []
        go = await self.store.take(batch, now, self.delivered_here)
        if len(go) < len(batch):  # the others wait behind an open delivery of their chain: perhaps one sent here
            taken, now_at = {d.delivery_id for d in go}, asyncio.get_running_loop().time()
            self._forget_awaited(now_at)
            until = now_at + self.timeout + RECORD_QUEUING_LONGEST
            self.awaited.update((d.chain, until) for d in batch if d.delivery_id not in taken)
        return go

    def _launch(self, client: aiohttp.ClientSession) -> None:
        """Start attempts from the ready ones while slots are free; one whose claim would end before its
        attempt could is left to be claimed again."""
        margin = timedelta(seconds=self.timeout + 5)
        now = self.clock()
        while self.ready and len(self.running) < self.concurrency:
            delivery, endpoint = self.ready.popleft()
            if delivery.next_try_at - now <= margin:
                continue
            task = asyncio.create_task(self._attempt(client, delivery, endpoint))
            self.running.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.running.discard(task)
        self.woken.set()  # its outcome is to be written, a slot is free
        if not task.cancelled() and task.exception() is not None:
            log.warning("a webhook attempt failed; tried again when its lease ends: %s", task.exception())

    async def _sleep(self) -> None:
        """Until an attempt finished, new work was committed, an outcome is to be written or the database's
        next delivery is due; never longer than idle_check."""
        if self.woken.is_set():
            return
        wait = self.idle_check
        if self.finished:
            wait = RECORD_EVERY  # woken when a write under way ends
        elif len(self.running) < self.concurrency and self.due_at is not None:
            wait = min(wait, max(0.0, (self.due_at - self.clock()).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.woken.wait(), max(wait, 0.01))
        if not self.woken.is_set() and not self.finished:
            self.due_at = None  # slept the whole time: ask the database again (another replica's work)

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
        if outcome.state is DeliveryState.DELIVERED:
            self.delivered_here.setdefault(delivery.chain, set()).add(delivery.seq)
        self.finished.append(outcome)
        self.finished_at.append(asyncio.get_running_loop().time())

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
