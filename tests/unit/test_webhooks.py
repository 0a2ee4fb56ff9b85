"""The webhook channel's rules without a broker or database: the retry schedule, what a registered URL may
point at, secret rotation, which endpoint wants which notice, and the signed headers as an independent
verifier (the standardwebhooks reference implementation, and a plain HMAC) reads them."""

import asyncio
import base64
import hashlib
import hmac
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from common.identifiers import credit_code_check_character
from services.notifier import webhooks as handlers
from services.notifier.adapters.webhooks_delivery import (
    RECORD_BUSY,
    RECORD_LEASE_LEFT,
    RECORD_MOST,
    RECORD_QUEUING_LONGEST,
    RECORD_QUEUING_MANY,
    WebhookDeliverer,
    outcomes_due,
    resolve,
    signed_headers,
)
from services.notifier.adapters.webhooks_mongo import IN_PER_QUERY, in_parts
from services.notifier.domain.notifications import Notification, NotificationKind
from services.notifier.domain.webhooks import (
    Delivery,
    DeliveryState,
    Endpoint,
    Outcome,
    RetrySchedule,
    SigningSecret,
    UnsafeUrl,
    check_url,
    delivery_for,
    heads,
    new_secret,
    outcome_of,
)
from services.notifier.settings import NotifierSettings

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
DEPT = "11360800MB2000001" + credit_code_check_character("11360800MB2000001")
OTHER = "11360800MB3000002" + credit_code_check_character("11360800MB3000002")


def test_backoff_grows_exponentially_with_jitter_up_to_its_longest_wait() -> None:
    schedule = RetrySchedule(first=timedelta(seconds=5), factor=2, longest=timedelta(hours=2))
    rng = random.Random(7)
    for failed in range(1, 20):
        base = min(5 * 2 ** (failed - 1), 7200)
        delays = [schedule.delay(failed, rng).total_seconds() for _ in range(200)]
        assert all(base * 0.5 <= d <= base for d in delays), (failed, min(delays), max(delays))
        assert max(delays) - min(delays) > base * 0.3  # jittered, not one fixed wait
    assert schedule.delay(1000, rng) <= timedelta(hours=2)


def test_a_delivery_is_retried_for_at_least_the_horizon_then_given_up() -> None:
    schedule = RetrySchedule()  # the defaults: 5 s doubling to 2 h, given up after 25 h
    first, now, failed = NOW, NOW, 1
    tries = [now]
    while (next_try := schedule.next_try(failed_attempts=failed, retry_from=first, now=now)) is not None:
        now, failed = next_try, failed + 1
        tries.append(now)
    assert tries[-1] - first >= timedelta(hours=24)
    assert tries[-1] - first < timedelta(hours=27)
    assert 15 <= len(tries) <= 40, len(tries)
    assert schedule.next_try(failed_attempts=1, retry_from=NOW, now=NOW + timedelta(hours=24, minutes=59))
    assert schedule.next_try(failed_attempts=1, retry_from=NOW, now=NOW + timedelta(hours=25)) is None


def test_production_retries_for_at_least_a_day_and_refuses_private_targets_by_default() -> None:
    production = {
        "environment": "production",
        "mongo_uri": "mongodb://m0/?replicaSet=rs0",
        "it_office_code": DEPT,
        "leadership_group_code": "",
        "webhook_secret_keys": "k1:" + "B" * 43 + "=",
    }
    with pytest.raises(ValueError, match="webhook_give_up_after_seconds"):
        NotifierSettings(**production, webhook_give_up_after_seconds=3600)
    assert NotifierSettings(**production).webhooks_allow_private is False
    assert NotifierSettings(**production, webhook_allow_private_targets=True).webhooks_allow_private is True
    assert NotifierSettings().webhooks_allow_private is True
    assert NotifierSettings(webhook_allow_private_targets=False).webhooks_allow_private is False
    assert NotifierSettings().retry_schedule().give_up_after >= timedelta(hours=24)


@pytest.mark.parametrize(
    ("url", "addresses", "reason"),
    [
        ("ftp://example.gov.cn/hook", ["203.0.113.9"], "scheme"),
        ("file:///etc/passwd", [], "scheme"),
        ("https://user:pw@example.gov.cn/hook", ["8.8.8.8"], "password"),
        ("https://user@example.gov.cn/hook", ["8.8.8.8"], "password"),
        ("https:///hook", [], "no host"),
        ("https://example.gov.cn/hook#x", ["8.8.8.8"], "fragment"),
        ("https://example.gov.cn:0/hook", ["8.8.8.8"], "port 0"),
        ("https://localhost/hook", ["127.0.0.1", "::1"], "127.0.0.1"),
        ("https://example.gov.cn/hook", ["10.1.2.3"], "10.1.2.3"),
        ("https://example.gov.cn/hook", ["192.168.1.1"], "192.168.1.1"),
        ("https://example.gov.cn/hook", ["172.16.0.1"], "172.16.0.1"),
        ("https://example.gov.cn/hook", ["169.254.169.254"], "169.254.169.254"),
        ("https://example.gov.cn/hook", ["fe80::1%eth0"], "fe80::1"),
        ("https://example.gov.cn/hook", ["fd00::1"], "fd00::1"),
        ("https://example.gov.cn/hook", ["::ffff:127.0.0.1"], "127.0.0.1"),
        ("https://example.gov.cn/hook", ["224.0.0.1"], "224.0.0.1"),
        ("https://example.gov.cn/hook", ["0.0.0.0"], "0.0.0.0"),
        ("https://example.gov.cn/hook", ["8.8.8.8", "127.0.0.1"], "127.0.0.1"),  # every address counts
        ("https://nowhere.invalid/hook", [], "does not resolve"),
        ("https://example.gov.cn/" + "x" * 2000, ["8.8.8.8"], "at most"),
    ],
)
def test_a_url_the_notifier_will_not_call_is_refused_with_the_reason(url, addresses, reason) -> None:
    with pytest.raises(UnsafeUrl, match=reason):
        check_url(url, addresses, allow_private=False)


def test_public_targets_pass_and_a_development_setting_allows_loopback() -> None:
    check_url("https://hooks.example.gov.cn/notices?dept=1", ["114.114.114.114"], allow_private=False)
    check_url("http://hooks.example.gov.cn:8080/n", ["8.8.4.4", "2001:4860:4860::8888"], allow_private=False)
    check_url("http://127.0.0.1:9000/hook", [], allow_private=True)
    with pytest.raises(UnsafeUrl, match="password"):  # the setting never allows credentials in the URL
        check_url("http://a:b@127.0.0.1:9000/hook", [], allow_private=True)


async def test_the_url_policy_resolves_the_host_before_judging_it() -> None:
    asked = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1"]

    with pytest.raises(handlers.UnsafeWebhookUrl, match=r"127\.0\.0\.1"):
        await handlers.UrlPolicy(resolve, allow_private=False).check("https://looks-public.example.cn/hook")
    assert asked == [("looks-public.example.cn", 443)]
    await handlers.UrlPolicy(resolve, allow_private=True).check("http://looks-public.example.cn/hook")


def endpoint(*secrets: SigningSecret, kinds=frozenset()) -> Endpoint:
    return Endpoint("wh_1", DEPT, "https://hooks.example.gov.cn/n", kinds, list(secrets), "admin", NOW)


def test_a_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new_one() -> None:
    old, new = new_secret(), new_secret()
    e = endpoint(SigningSecret(old, NOW))
    e.rotate(new, NOW + timedelta(hours=1), timedelta(hours=24))
    assert e.signing_secrets(NOW + timedelta(hours=2)) == [old, new]
    assert e.signing_secrets(NOW + timedelta(hours=25, seconds=1)) == [new]
    newer = new_secret()
    e.rotate(newer, NOW + timedelta(hours=3), timedelta(hours=1))  # a second rotation shortens the oldest's overlap
    assert e.signing_secrets(NOW + timedelta(hours=3, minutes=30)) == [old, new, newer]
    assert e.signing_secrets(NOW + timedelta(hours=4, seconds=1)) == [newer]
    e.rotate(new_secret(), NOW + timedelta(hours=5), timedelta(0))  # no overlap: the old one stops at once
    assert len(e.signing_secrets(NOW + timedelta(hours=5))) == 1
    assert len(e.secrets) == 1


def notice(kind=NotificationKind.REQUEST_ARRIVED, reference="req-1", recipient=DEPT) -> Notification:
    return Notification(
        f"evt-1:{recipient}", recipient, kind, "标题", "正文", reference=reference, created_at=NOW, audience=frozenset()
    )


def test_an_endpoint_wants_its_departments_notices_of_its_kinds() -> None:
    assert endpoint().wants(notice())
    assert not endpoint().wants(notice(recipient=OTHER))
    picky = endpoint(kinds=frozenset({NotificationKind.GRANT_ISSUED}))
    assert not picky.wants(notice()) and picky.wants(notice(NotificationKind.GRANT_ISSUED))


def test_the_signed_headers_verify_with_the_reference_implementation_and_a_plain_hmac() -> None:
    old, new = new_secret(), new_secret()
    assert old.startswith("whsec_") and len(base64.b64decode(old.removeprefix("whsec_"))) == 32
    d = delivery_for(endpoint(), notice(), NOW)
    at = datetime.now(UTC)
    headers = signed_headers(d, [old, new], at)
    assert headers["webhook-id"] == "evt-1:" + DEPT
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    for secret in (old, new):  # a receiver that knows either secret accepts it
        payload = Webhook(secret).verify(d.body, headers)
        assert payload["type"] == "notification.REQUEST_ARRIVED" and payload["data"]["reference"] == "req-1"
    key = base64.b64decode(new.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{d.body}".encode()
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert expected in headers["webhook-signature"].split(" ")
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(d.body, headers)


def test_notices_about_the_same_thing_share_a_chain_per_endpoint() -> None:
    a = delivery_for(endpoint(), notice(reference="101001/000001"), NOW)
    b = delivery_for(endpoint(), Notification("evt-2:" + DEPT, DEPT, NotificationKind.RESOURCE_CHANGED, "t", "b",
                                              reference="101001/000001", created_at=NOW, audience=frozenset()),
                        NOW)  # fmt: skip
    c = delivery_for(endpoint(), notice(reference="101001/000002"), NOW)
    assert a.chain == b.chain != c.chain
    assert a.delivery_id != b.delivery_id and a.notification_id == "evt-1:" + DEPT


def test_an_attempt_delivers_retries_or_gives_up() -> None:
    schedule = RetrySchedule(first=timedelta(seconds=5), give_up_after=timedelta(hours=25))
    d = delivery_for(endpoint(), notice(), NOW)
    ok = outcome_of(d, schedule, NOW, status=204, error=None)
    assert ok.state is DeliveryState.DELIVERED and ok.finished and ok.attempts == 1 and ok.delivered_at == NOW
    failed = outcome_of(d, schedule, NOW, status=503, error="HTTP 503")
    assert failed.state is DeliveryState.PENDING and not failed.finished and failed.retry_from == NOW
    assert NOW + timedelta(seconds=2.5) <= failed.next_try_at <= NOW + timedelta(seconds=5)
    d.attempts, d.retry_from = 30, NOW
    late = outcome_of(d, schedule, NOW + timedelta(hours=25), status=None, error="ConnectError")
    assert late.state is DeliveryState.DEAD and late.finished and late.next_try_at is None and late.attempts == 31


def test_only_the_first_open_delivery_of_a_chain_goes() -> None:
    deliveries = [delivery_for(endpoint(), notice(reference=ref), NOW) for ref in ("a", "a", "b")]
    for seq, d in enumerate(deliveries, start=10):
        d.seq = seq
    go, wait = heads(deliveries, {deliveries[0].chain: 10, deliveries[2].chain: 9})
    assert go == [deliveries[0]] and wait == [deliveries[1], deliveries[2]]  # "b" has an older one still open


def test_outcomes_are_written_at_once_when_idle_and_held_together_while_a_fan_out_goes_on_or_is_stored() -> None:
    assert not outcomes_due(0, 60.0, idle=True)  # nothing to write
    assert outcomes_due(1, 0.0, idle=True)  # nothing in flight: the chain's next one need not wait
    assert not outcomes_due(RECORD_MOST - 1, RECORD_BUSY - 0.1, idle=False)  # attempts go on: the notices first
    assert outcomes_due(1, RECORD_BUSY, idle=False)  # but never held longer than that
    assert outcomes_due(RECORD_MOST, 0.0, idle=False)  # nor more than that many
    # nor once a claim among them is about to end (another attempt could claim it again)
    assert outcomes_due(1, 0.0, idle=False, lease_left=RECORD_LEASE_LEFT)
    assert not outcomes_due(1, 0.0, idle=False, lease_left=RECORD_LEASE_LEFT + 1)
    # while this process's transactions still hand deliveries over (a fan-out stored in several), idle or not,
    # the rest of it is stored first: held up to RECORD_QUEUING_LONGEST, RECORD_MOST, or a claim ending
    assert not outcomes_due(1, RECORD_BUSY, idle=True, queuing=True)
    assert outcomes_due(1, RECORD_QUEUING_LONGEST, idle=True, queuing=True)
    assert outcomes_due(RECORD_MOST, 0.0, idle=True, queuing=True)
    assert outcomes_due(1, 0.0, idle=True, queuing=True, lease_left=RECORD_LEASE_LEFT)
    # nor once a delivery of their chains waits for them (the resource's next notice)
    assert outcomes_due(1, 0.0, idle=False, queuing=True, awaited=True)


class Writes:
    """Where the deliverer's bulk writes of outcomes go (the loop's timing is under test, not the database)."""

    def __init__(self) -> None:
        self.written: list[list[Outcome]] = []

    async def write_outcomes(self, outcomes: list[Outcome]) -> dict[str, int]:
        self.written.append(list(outcomes))
        return {o.delivery.chain: o.delivery.seq for o in outcomes if o.finished}

    async def wake_next(self, finished: dict[str, int], now: datetime) -> None:
        pass


async def test_outcomes_are_held_from_the_oldest_one_and_written_at_once_before_a_claim_ends() -> None:
    writes = Writes()
    deliverer = WebhookDeliverer(writes, RetrySchedule(), handlers.UrlPolicy(resolve, True), clock=lambda: NOW)  # type: ignore[arg-type]
    in_flight = asyncio.create_task(asyncio.sleep(60))  # a fan-out goes on: outcomes are held
    deliverer.running.add(in_flight)
    loop = asyncio.get_running_loop()

    def finished(lease_left: float, found_ago: float) -> Outcome:
        d = delivery_for(endpoint(), notice(), NOW)
        d.next_try_at = NOW + timedelta(seconds=lease_left)
        deliverer.finished.append(Outcome(d, DeliveryState.DELIVERED, 1, NOW, 200, delivered_at=NOW))
        deliverer.finished_at.append(loop.time() - found_ago)
        return deliverer.finished[-1]

    async def record() -> list[list[Outcome]]:
        await deliverer._record()
        if deliverer.recording is not None:
            await deliverer.recording
        return writes.written

    try:
        young = finished(lease_left=20, found_ago=0)
        assert await record() == []  # held: attempts go on
        old = finished(lease_left=20, found_ago=RECORD_BUSY)  # e.g. found while an earlier write was under way
        deliverer.finished[:] = [old, young]
        deliverer.finished_at.sort()
        assert await record() == [[old, young]]  # the oldest decides, not when the loop first looked
        short = finished(lease_left=RECORD_LEASE_LEFT - 1, found_ago=0)
        assert await record() == [[old, young], [short]]  # its claim ends soon: written at once
    finally:
        in_flight.cancel()


async def test_outcomes_wait_while_a_fan_out_is_handed_over_and_not_after_a_notice_to_few() -> None:
    writes = Writes()
    deliverer = WebhookDeliverer(writes, RetrySchedule(), handlers.UrlPolicy(resolve, True), clock=lambda: NOW)  # type: ignore[arg-type]
    d = delivery_for(endpoint(), notice(), NOW)
    d.next_try_at = NOW + timedelta(seconds=20)
    deliverer.finished.append(Outcome(d, DeliveryState.DELIVERED, 1, NOW, 200, delivered_at=NOW))
    deliverer.finished_at.append(asyncio.get_running_loop().time())

    async def record() -> list[list[Outcome]]:
        await deliverer._record()
        if deliverer.recording is not None:
            await deliverer.recording
        return writes.written

    deliverer.hand_over([d] * (RECORD_QUEUING_MANY - 1))  # a notice to a few endpoints
    deliverer.fresh.clear()  # sent meanwhile: the worker is idle
    assert len(await record()) == 1  # written at once
    deliverer.finished[:] = [Outcome(d, DeliveryState.DELIVERED, 1, NOW, 200, delivered_at=NOW)]
    deliverer.finished_at[:] = [asyncio.get_running_loop().time()]
    deliverer.hand_over([d] * RECORD_QUEUING_MANY)  # a part of a fan-out: more of it is being stored
    deliverer.fresh.clear()
    assert len(await record()) == 1  # held, idle as the worker is


class Parking(Writes):
    """Takes only the deliveries of chains it is told are free, or whose open one was delivered by the caller;
    the others wait behind an open one. Claims nothing. Says what it was told was delivered."""

    def __init__(self, busy: dict[str, int]) -> None:  # chain: the seq of its open delivery
        super().__init__()
        self.busy = busy
        self.told: list[dict[str, set[int]]] = []

    async def take(self, deliveries: list[Delivery], now: datetime, delivered=None) -> list[Delivery]:
        self.told.append({chain: set(seqs) for chain, seqs in (delivered or {}).items()})
        free = {chain for chain, seq in self.busy.items() if seq in (delivered or {}).get(chain, ())}
        return [d for d in deliveries if d.chain not in self.busy or d.chain in free]

    async def claim_due(self, now: datetime, limit: int, lease_until: datetime, delivered=None) -> list[Delivery]:
        self.told.append({chain: set(seqs) for chain, seqs in (delivered or {}).items()})
        return []

    async def next_due(self) -> None:
        return None

    async def endpoints_by_id(self, ids) -> dict:
        return {}


def _chain_of_three() -> tuple[Delivery, Delivery, Delivery]:
    """Two notices about one thing to one endpoint, and one about another thing."""
    first = delivery_for(endpoint(), notice(), NOW)
    after = delivery_for(endpoint(), replace(notice(), notification_id="evt-3:" + DEPT), NOW)
    other = delivery_for(endpoint(), replace(notice(reference="req-2"), notification_id="evt-2:" + DEPT), NOW)
    for seq, d in enumerate((first, after, other), start=1):
        d.next_try_at, d.seq = NOW + timedelta(seconds=60), seq
    assert after.chain == first.chain != other.chain
    return first, after, other


async def test_the_outcome_the_next_notice_of_its_chain_waits_for_is_written_at_once_even_during_a_fan_out() -> None:
    first, after, other = _chain_of_three()
    store = Parking({first.chain: first.seq})
    deliverer = WebhookDeliverer(store, RetrySchedule(), handlers.UrlPolicy(resolve, True), clock=lambda: NOW)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()

    async def record() -> list[list[Outcome]]:
        await deliverer._record()
        if deliverer.recording is not None:
            await deliverer.recording
        return store.written

    deliverer.hand_over([other] * RECORD_QUEUING_MANY)  # a fan-out is being stored
    deliverer.fresh.clear()
    deliverer.fresh.extend([after, other])
    assert await deliverer._take_fresh(NOW) == [other]  # `after` waits behind `first`, in flight here
    unrelated = Outcome(other, DeliveryState.DELIVERED, 1, NOW, 200, delivered_at=NOW)
    deliverer.finished.append(unrelated)
    deliverer.finished_at.append(loop.time())
    assert await record() == []  # held, as the fan-out goes first
    deliverer.finished.append(Outcome(first, DeliveryState.DELIVERED, 1, NOW, 200, delivered_at=NOW))
    deliverer.finished_at.append(loop.time())  # `first`'s attempt ends
    [written] = await record()  # at once, fan-out or not, with what else waited
    assert [o.delivery for o in written] == [other, first]


async def test_the_worker_tells_the_store_which_open_deliveries_it_delivered_itself() -> None:
    first, after, other = _chain_of_three()
    store = Parking({first.chain: first.seq})
    deliverer = WebhookDeliverer(store, RetrySchedule(), handlers.UrlPolicy(resolve, True), clock=lambda: NOW)  # type: ignore[arg-type]
    deliverer.delivered_here = {first.chain: {first.seq}}  # its outcome not written yet
    deliverer.hand_over([after, other])
    await deliverer._supply()
    assert [d for d, _ in deliverer.ready] == [after, other]  # `after` is not held back by `first`
    assert store.told == [{first.chain: {first.seq}}, {first.chain: {first.seq}}]  # to take, then to claim_due


async def test_a_delivery_sent_here_is_known_delivered_until_its_outcome_is_written(monkeypatch) -> None:
    writes = Writes()
    deliverer = WebhookDeliverer(writes, RetrySchedule(), handlers.UrlPolicy(resolve, True), clock=lambda: NOW)  # type: ignore[arg-type]
    answers = iter([(200, None), (503, "Service Unavailable")])

    async def post(*_args) -> tuple[int | None, str | None]:
        return next(answers)

    monkeypatch.setattr(deliverer, "_post", post)
    sent = delivery_for(endpoint(), notice(), NOW)
    failed = delivery_for(endpoint(), replace(notice(reference="req-2"), notification_id="evt-2:" + DEPT), NOW)
    sent.seq, failed.seq = 7, 8
    for d in (sent, failed):
        await deliverer._attempt(None, d, endpoint())  # type: ignore[arg-type]
    assert deliverer.delivered_here == {sent.chain: {7}}  # the failed one holds its chain back still
    await deliverer._write(list(deliverer.finished), list(deliverer.finished_at))
    assert deliverer.delivered_here == {}  # written: the database tells from now on


def test_many_values_are_looked_up_in_parts_each_value_once() -> None:
    values = {f"d{n:04d}" for n in range(2 * IN_PER_QUERY + 1)}
    parts = in_parts(values)
    assert [len(p) for p in parts] == [IN_PER_QUERY, IN_PER_QUERY, 1]
    assert [v for p in parts for v in p] == sorted(values)
    assert in_parts(set()) == []


class SlowStore:
    """Outcome writes and wakes that end only when let go (a loaded database)."""

    def __init__(self) -> None:
        self.written: list[list[Outcome]] = []
        self.writes_go = asyncio.Event()
        self.writes_go.set()
        self.wakes_go = asyncio.Event()
        self.woken: list[dict[str, int]] = []

    async def write_outcomes(self, outcomes: list[Outcome]) -> dict[str, int]:
        self.written.append(list(outcomes))
        await self.writes_go.wait()
        return {o.delivery.chain: o.delivery.seq for o in outcomes if o.finished}

    async def wake_next(self, finished: dict[str, int], now: datetime) -> None:
        await self.wakes_go.wait()
        self.woken.append(finished)


async def test_outcomes_whose_claim_ends_soon_are_written_while_a_wake_or_another_write_is_under_way() -> None:
    """The wake of finished chains' next deliveries runs apart from the outcomes' write: outcomes held while
    attempts go on are written when due although a wake is still running; and while a write runs, outcomes
    whose claim ends within RECORD_LEASE_LEFT are written beside it (others wait for it)."""
    store = SlowStore()
    deliverer = WebhookDeliverer(store, RetrySchedule(), handlers.UrlPolicy(resolve, True), clock=lambda: NOW)  # type: ignore[arg-type]
    in_flight = asyncio.create_task(asyncio.sleep(60))  # a fan-out goes on: outcomes are held
    deliverer.running.add(in_flight)
    loop = asyncio.get_running_loop()
    made: list[Delivery] = []

    def finished(lease_left: float, found_ago: float = 0.0) -> Outcome:
        d = delivery_for(endpoint(), notice(reference=f"req-{len(made)}"), NOW)
        d.delivery_id = f"wh_1:{len(made)}"  # each its own, told apart in the writes
        d.next_try_at = NOW + timedelta(seconds=lease_left)
        made.append(d)
        deliverer.finished.append(Outcome(d, DeliveryState.DELIVERED, 1, NOW, 200, delivered_at=NOW))
        deliverer.finished_at.append(loop.time() - found_ago)
        return deliverer.finished[-1]

    try:
        first = finished(lease_left=20, found_ago=RECORD_BUSY)
        await deliverer._record()
        await deliverer.recording
        assert store.written == [[first]] and len(deliverer.wakes) == 1  # written; its wake hangs
        held = finished(lease_left=20, found_ago=RECORD_BUSY)
        await deliverer._record()
        await deliverer.recording
        assert store.written == [[first], [held]]  # not held back by the wake
        assert len(deliverer.wakes) == 2 and not store.woken

        store.writes_go.clear()  # a write that takes long
        slow = finished(lease_left=20, found_ago=RECORD_BUSY)
        await deliverer._record()
        await asyncio.sleep(0)
        assert store.written[-1] == [slow] and deliverer.writes
        waits = finished(lease_left=20, found_ago=RECORD_BUSY)
        await deliverer._record()
        assert deliverer.finished == [waits]  # waits for the write under way
        urgent = finished(lease_left=RECORD_LEASE_LEFT - 1)
        await deliverer._record()
        await asyncio.sleep(0)
        assert store.written[-1] == [waits, urgent] and not deliverer.finished  # beside the slow write
        store.writes_go.set()
        store.wakes_go.set()
        await asyncio.gather(*deliverer.writes, *deliverer.wakes)
        assert len(store.woken) == 4 and deliverer.due_at is None
    finally:
        in_flight.cancel()


async def test_outcomes_whose_write_failed_are_written_again_before_those_found_since() -> None:
    class Failing(SlowStore):
        async def write_outcomes(self, outcomes: list[Outcome]) -> dict[str, int]:
            raise ConnectionError("the database is away")

    store = Failing()
    deliverer = WebhookDeliverer(store, RetrySchedule(), handlers.UrlPolicy(resolve, True), clock=lambda: NOW)  # type: ignore[arg-type]
    d = delivery_for(endpoint(), notice(), NOW)
    d.next_try_at = NOW + timedelta(seconds=20)
    lost = Outcome(d, DeliveryState.DELIVERED, 1, NOW, 200, delivered_at=NOW)
    deliverer.finished.append(lost)
    deliverer.finished_at.append(asyncio.get_running_loop().time())
    await deliverer._record()  # idle: written at once, and fails
    later = Outcome(d, DeliveryState.DELIVERED, 2, NOW, 200, delivered_at=NOW)  # another attempt's
    deliverer.finished.append(later)
    deliverer.finished_at.append(asyncio.get_running_loop().time())
    await deliverer.recording
    assert [o.attempts for o in deliverer.finished] == [lost.attempts, later.attempts]  # the lost one first
    assert len(deliverer.finished_at) == 2


async def test_outcomes_of_a_write_cut_short_when_the_loop_stops_are_kept_for_its_restart() -> None:
    store = SlowStore()
    store.writes_go.clear()  # the database does not answer
    deliverer = WebhookDeliverer(store, RetrySchedule(), handlers.UrlPolicy(resolve, True), clock=lambda: NOW)  # type: ignore[arg-type]
    d = delivery_for(endpoint(), notice(), NOW)
    d.next_try_at = NOW + timedelta(seconds=20)
    deliverer.finished.append(Outcome(d, DeliveryState.DELIVERED, 1, NOW, 200, delivered_at=NOW))
    deliverer.finished_at.append(asyncio.get_running_loop().time())
    await deliverer._record()  # idle: written at once
    await asyncio.sleep(0)
    assert store.written and not deliverer.finished
    deliverer.recording.cancel()  # as run() does when it stops
    with pytest.raises(asyncio.CancelledError):
        await deliverer.recording
    assert [o.delivery for o in deliverer.finished] == [d] and len(deliverer.finished_at) == 1
