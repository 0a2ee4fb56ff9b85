"""The console's request lists against a fake exchange that answers `GET /requests` as the exchange does
(filtered by side and status, newest first, offset and limit): a provider's pending request stays on its
list however many newer ones were decided since, and both lists page on."""

from __future__ import annotations

import re
from datetime import date, timedelta

import httpx

from common.policy import Role
from services.console.main import build
from services.console.settings import ConsoleSettings
from tests.tokens import token

PROVIDER = "11360800MB0000001X"
CONSUMER = "11360800MB0000002X"
EXCHANGE = "127.0.0.1:8002"


def shared(n: int, status: str, consumer: str = CONSUMER, provider: str = PROVIDER) -> dict[str, object]:
    on = date(2026, 1, 5) + timedelta(days=n)
    return {
        "request_id": f"REQ-{n:04d}",
        "resource_code": "101001/000001",
        "consumer_code": consumer,
        "provider_code": provider,
        "status": status,
        "requested_on": on.isoformat(),
        "decide_by": (on + timedelta(days=14)).isoformat(),
    }


class FakeExchange:
    def __init__(self, requests: list[dict[str, object]]) -> None:
        self.requests = requests
        self.asked: list[httpx.QueryParams] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.netloc.decode() != EXCHANGE:  # the menu's unread count: the notifier does not say
            return httpx.Response(503)
        assert request.url.path == "/requests", request.url
        q = request.url.params
        self.asked.append(q)
        side = "provider_code" if q.get("as") == "provider" else "consumer_code"
        found = [r for r in self.requests if r[side] == PROVIDER and q.get("status") in (None, r["status"])]
        found.sort(key=lambda r: (str(r["requested_on"]), str(r["request_id"])), reverse=True)
        offset, limit = int(q.get("offset", 0)), int(q.get("limit", 50))
        return httpx.Response(200, json=found[offset : offset + limit])


async def page(exchange: FakeExchange, path: str) -> str:
    app = build(ConsoleSettings(page_size=20), transport=httpx.MockTransport(exchange))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
        browser.cookies.set("console-session", token(PROVIDER, Role.DATA_ADMINISTRATOR))
        answer = await browser.get(path)
    assert answer.status_code == 200, answer.text
    return answer.text


def listed(html: str, heading: str) -> list[str]:
    section = html.split(heading)[1].split("<h2>")[0]
    return re.findall(r">(REQ-\d{4})</a>", section.split("</table>")[0]) if "<table>" in section else []


async def test_an_old_pending_request_stays_on_the_providers_list_behind_sixty_newer_decided_ones() -> None:
    old = shared(0, "PENDING")
    decided = [shared(n, "APPROVED" if n % 2 else "DENIED") for n in range(1, 61)]
    exchange = FakeExchange([old, *decided])
    html = await page(exchange, "/requests")
    incoming = listed(html, "待本部门决定的申请")
    assert incoming == ["REQ-0000"]
    assert "2026-01-19（已逾期）" in html  # its deadline is long past: the one most in need of a decision
    assert {"as": "provider", "status": "PENDING", "offset": "0", "limit": "21"} in [dict(q) for q in exchange.asked]


async def test_both_lists_page_on_with_a_next_link_while_more_remain() -> None:
    pending = [shared(n, "PENDING") for n in range(45)]  # 45 awaiting the provider's decision
    own = [shared(100 + n, "APPROVED", consumer=PROVIDER, provider=CONSUMER) for n in range(25)]  # 25 it applied for
    exchange = FakeExchange(pending + own)

    first = await page(exchange, "/requests")
    assert listed(first, "待本部门决定的申请") == [f"REQ-{n:04d}" for n in range(44, 24, -1)]
    assert listed(first, "本部门提出的申请") == [f"REQ-{n:04d}" for n in range(124, 104, -1)]
    assert 'href="/requests?incoming_from=20&mine_from=0">下一页' in first
    assert 'href="/requests?incoming_from=0&mine_from=20">下一页' in first

    # the last page of pending ones holds the oldest, without a next link; the own list stays where it was
    last = await page(exchange, "/requests?incoming_from=40&mine_from=20")
    assert listed(last, "待本部门决定的申请") == [f"REQ-{n:04d}" for n in range(4, -1, -1)]
    assert listed(last, "本部门提出的申请") == [f"REQ-{n:04d}" for n in range(104, 99, -1)]
    assert "incoming_from=60" not in last and "mine_from=40" not in last
    assert 'href="/requests?incoming_from=20&mine_from=20">上一页' in last
    assert 'href="/requests?incoming_from=40&mine_from=0">上一页' in last
