"""The console's subscription, consent and refusal pages from canned service answers: an entry's page offers
another department's data administrator a subscription where the entry shares something unconditionally (and
an application where it shares on conditions), never to the provider itself; a refusal page says the reason in
Chinese with the next step; the new pages ask for a sign-in like every other."""

from __future__ import annotations

import itertools
import re
from datetime import date

import httpx

from common.errors import DomainError
from common.policy import Role
from services.console.main import build
from services.console.pages.shared import Ways, ways
from services.console.settings import ConsoleSettings
from services.exchange.domain.resources import ItemSpec
from services.exchange.sharing import handlers
from services.exchange.sharing.commands import Subscribe
from services.exchange.sharing.grants import Channel
from services.exchange.sharing.requests import RequestStatus
from tests.tokens import token
from tests.unit.test_console import console
from tests.unit.test_sharing import APPROVAL, admin, application, register, sharing

PROVIDER, CONSUMER = "11360800MB0000001X", "11360800MB0000002X"
CODE = "101001/000001"


def entry(share_type: str, *item_share_types: str | None) -> dict:
    names = ("企业名称", "住所")
    items = [{"name": n, "type": "string", "share_type": t} for n, t in zip(names, item_share_types, strict=False)]
    content = {
        "name": "企业登记",
        "share_type": share_type,
        "share_methods": ["API"],
        "data_items": items,
        "confidentiality_review": {"reviewed_by": "审核人", "reviewed_on": "2026-01-05", "conclusion": "可共享"},
    }
    return {
        "resource_code": CODE,
        "provider_code": PROVIDER,
        "working": None,
        "in_force": {"version": 1, "published_on": "2026-10-01", "status": "PUBLISHED", "content": content},
        "revision": 1,
    }


async def page_for(department: str, answer: dict | None = None, status: int = 200, path: str = "/catalog/entry"):
    def services(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/inbox/"):
            return httpx.Response(200, json={"total": 0, "items": []})
        return httpx.Response(status, json=answer)

    app = build(ConsoleSettings(), transport=httpx.MockTransport(services))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
        browser.cookies.set("console-session", token(department, Role.DATA_ADMINISTRATOR))
        return await browser.get(path, params={"code": CODE, "id": "g1"})


async def test_an_entry_offers_a_subscription_where_it_shares_unconditionally_but_not_to_its_provider() -> None:
    free = await page_for(CONSUMER, entry("UNCONDITIONAL", None))
    assert free.status_code == 200, free.text[-1500:]
    assert 'id="subscribe"' in free.text and "/subscriptions/new?resource=101001/000001" in free.text
    assert "申请使用" not in free.text
    partly = await page_for(CONSUMER, entry("CONDITIONAL", "UNCONDITIONAL", None))  # some items unconditional
    assert 'id="subscribe"' in partly.text and "/requests/new?resource=" in partly.text
    conditional = await page_for(CONSUMER, entry("CONDITIONAL", None))
    assert 'id="subscribe"' not in conditional.text and "/requests/new?resource=" in conditional.text
    own = await page_for(PROVIDER, entry("UNCONDITIONAL", None))
    assert 'id="subscribe"' not in own.text and "/requests/new?resource=" not in own.text


async def test_a_refusal_page_gives_the_reason_in_chinese_and_the_next_step() -> None:
    body = {
        "detail": "the grant was revoked: 核验已完成",
        "rule": "exchange.share.read",
        "error": "AccessDenied",
        "code": "access.denied",
        "message": "无权执行此操作：访问规则 exchange.share.read 不允许您的角色或所在部门执行",
    }
    page = await page_for(CONSUMER, body, 403, "/grants/view")
    assert page.status_code == 403 and "无权执行此操作" in page.text
    refusal = page.text.split('id="refusal">')[1].split("</p>")[0]
    assert "已被提供部门撤销" in refusal and "核验已完成" in refusal
    assert 'id="next-step"' in page.text and 'href="/requests/new"' in page.text
    unknown = await page_for(CONSUMER, body | {"detail": "a reason without words"}, 403, "/grants/view")
    assert body["message"] in unknown.text  # the service's own words


async def test_an_entry_offers_what_the_exchange_would_accept_by_its_own_rule() -> None:
    """`ways` against the exchange's handlers themselves: for every entry type, pair of item types and with or
    without a confidentiality review, 订阅 is offered exactly when a subscription is accepted, 申请使用 exactly
    when some application is filed (not refused at once)."""
    types = (None, "UNCONDITIONAL", "CONDITIONAL", "NOT_SHARED")
    for entry_type, first, second, reviewed in itertools.product(types[1:], types, types, (True, False)):
        names = ("企业名称", "住所")
        specs = tuple(ItemSpec(n, "string", 100, t) for n, t in zip(names, (first, second), strict=True))
        schema = register(
            share_type=entry_type, items=specs, confidentiality_reviewed_on=date(2026, 1, 5) if reviewed else None
        )
        s, _, _ = sharing(schema)
        subscription = Subscribe(
            schema.resource_code, (), "核对", frozenset({Channel.API}), None, None, date(2027, 1, 1)
        )
        try:
            await handlers.subscribe(subscription, admin(APPROVAL), s)
            subscribed = True
        except DomainError:
            subscribed = False
        filed = False
        for items in (names[:1], names[1:], names):
            try:
                asked = application(items=items, regions=(), consumer_system=None)
                filed |= (await handlers.file_request(asked, admin(APPROVAL), s)).status is RequestStatus.PENDING
            except DomainError:
                pass
        content = {
            "share_type": entry_type,
            "data_items": [{"name": n, "share_type": t} for n, t in zip(names, (first, second), strict=True)],
            "confidentiality_review": {"reviewed_on": "2026-01-05"} if reviewed else None,
        }
        assert ways(content) == Ways(subscribed, filed), (entry_type, first, second, reviewed)


async def test_an_unconditional_entry_with_a_conditional_item_offers_both_a_not_shared_one_neither() -> None:
    mixed = await page_for(CONSUMER, entry("UNCONDITIONAL", None, "CONDITIONAL"))
    assert mixed.status_code == 200
    assert 'id="subscribe"' in mixed.text and 'id="apply"' in mixed.text
    closed = await page_for(CONSUMER, entry("NOT_SHARED", "UNCONDITIONAL"))
    assert 'id="subscribe"' not in closed.text and 'id="apply"' not in closed.text


def test_the_new_pages_are_among_those_that_ask_for_a_sign_in_and_a_csrf_token() -> None:
    _, routes = console([])
    for route in [
        ("GET", "/subscriptions"),
        ("GET", "/subscriptions/new"),
        ("POST", "/subscriptions/new"),
        ("GET", "/consents"),
        ("GET", "/consents/new"),
        ("POST", "/consents/new"),
        ("GET", "/consents/view"),
        ("POST", "/consents/decide"),
    ]:
        assert route in routes, route


async def test_a_new_subscription_or_application_starts_with_no_items_typed() -> None:
    for path in ("/subscriptions/new", "/requests/new"):
        page = await page_for(CONSUMER, path=path)
        assert page.status_code == 200, page.text[-800:]
        assert re.search(r'<textarea id="items" name="items" rows="\d"( required)?></textarea>', page.text), path
        # not the name of a Python method (a template reading a missing key falls back to attributes)


async def test_a_revoked_grants_refusal_says_when_the_department_was_told() -> None:
    grant = {
        "grant_id": "g1",
        "resource_code": CODE,
        "status": "REVOKED",
        "items": ["企业名称"],
        "consumer_code": CONSUMER,
    }
    revoked = {
        "detail": "the grant was revoked: 核验已完成",
        "rule": "exchange.share.read",
        "error": "AccessDenied",
        "code": "access.denied",
        "message": "无权执行此操作",
    }
    notice = {"kind": "GRANT_REVOKED", "reference": "g1", "resource_code": CODE, "created_at": "2026-11-01T17:30:00Z"}
    other = notice | {"reference": "g0", "created_at": "2026-10-01T02:00:00Z"}  # another grant of the resource
    asked: list[httpx.Request] = []

    def services(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if request.url.path.startswith("/inbox/"):
            found = [other, notice] if request.url.params.get("kind") == "GRANT_REVOKED" else []
            return httpx.Response(200, json={"total": len(found), "items": found})
        if request.url.path.startswith("/browse/"):
            return httpx.Response(403, json=revoked)
        return httpx.Response(200, json=grant)

    app = build(ConsoleSettings(), transport=httpx.MockTransport(services))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
        browser.cookies.set("console-session", token(CONSUMER, Role.DATA_ADMINISTRATOR))
        page = await browser.get("/browse", params={"grant": "g1", "purpose": "核验"})
    assert page.status_code == 403
    refusal = page.text.split('id="refusal">')[1].split("</p>")[0]
    # the notice of this grant, as a Beijing date (17:30 UTC is the next morning in Beijing)
    assert "本部门于 2026-11-02 收到撤销通知" in refusal and "核验已完成" in refusal
    [inbox] = [r for r in asked if r.url.params.get("kind") == "GRANT_REVOKED"]
    assert inbox.url.params["resource"] == CODE

    # another department's revoked grant: its inbox is not this department's to search
    grant["consumer_code"] = PROVIDER
    asked.clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
        browser.cookies.set("console-session", token(CONSUMER, Role.DATA_ADMINISTRATOR))
        page = await browser.get("/browse", params={"grant": "g1", "purpose": "核验"})
    assert page.status_code == 403 and "收到撤销通知" not in page.text
    assert not [r for r in asked if r.url.params.get("kind") == "GRANT_REVOKED"]
