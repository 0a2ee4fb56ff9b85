"""The console's sharing forms against canned service answers: a refusal is worded (with its link, to the form
about the same resource), the service's own words only in small print; a form submitted twice makes one thing;
a decision repeated shows it, one refused keeps what was typed; the inbox's mark-read returns to the page it was
on; the subscriptions list says why a grant ended in Chinese and counts what it read."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

from common.policy import Role
from services.console.main import build
from services.console.settings import ConsoleSettings
from tests.tokens import token

PROVIDER, CONSUMER = "11360800MB0000001X", "11360800MB0000002X"
CODE = "101001/000001"
Answer = Callable[[httpx.Request], httpx.Response]


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[-800:]
    return found.group(1)


def field_of(page: httpx.Response, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page.text)
    assert found, page.text[-800:]
    return found.group(1)


@asynccontextmanager
async def browser(answer: Answer, department: str = CONSUMER) -> AsyncIterator[httpx.AsyncClient]:
    def services(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/inbox/") and request.method == "GET":
            return httpx.Response(200, json={"total": 0, "items": []})
        return answer(request)

    app = build(ConsoleSettings(), transport=httpx.MockTransport(services))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
        client.cookies.set("console-session", token(department, Role.DATA_ADMINISTRATOR))
        yield client


def refusal_of(page: httpx.Response) -> str:
    return page.text.split('id="refusal">')[1].split("</p>")[0]


def domain_error(status: int, field: str, rule: str) -> httpx.Response:
    """A domain error as common.http answers it."""
    return httpx.Response(status, json={"detail": f"{field}: {rule}", "error": "Invalid", "field": field, "rule": rule})


async def test_an_application_for_unconditional_items_is_told_to_subscribe_to_that_resource() -> None:
    rule = "these items are shared unconditionally: subscribe (POST /subscriptions)"
    async with browser(lambda _r: domain_error(422, "items", rule)) as b:
        form = {"resource_code": CODE, "items": "企业名称", "purpose": "核对", "valid_to": "2027-01-01"}
        page = await b.post("/requests/new", data={"csrf_token": csrf_of(await b.get("/requests/new")), **form})
    assert page.status_code == 422
    assert "无需申请" in refusal_of(page) and "POST" not in refusal_of(page)
    assert 'href="/subscriptions/new?resource=101001%2F000001">订阅</a>' in page.text


async def test_a_reason_without_words_is_a_chinese_sentence_with_the_services_words_in_small_print() -> None:
    rule = "a check the console has never heard of"
    async with browser(lambda _r: domain_error(409, "resource_code", rule)) as b:
        form = await b.get("/subscriptions/new")
        fields = {"csrf_token": csrf_of(form), "resource_code": CODE, "purpose": "核对", "valid_to": "2027-01-01"}
        page = await b.post("/subscriptions/new", data=fields)
    assert page.status_code == 409
    assert not re.search(r"[A-Za-z]{3,}", refusal_of(page))
    small = page.text.split('id="refusal-detail">')[1].split("</p>")[0]
    assert rule in small


async def test_a_new_subscription_ticks_only_a_channel_the_entry_offers() -> None:
    def catalog(offered: list[str]) -> Answer:
        content = {"share_type": "UNCONDITIONAL", "share_methods": offered, "data_items": []}
        return lambda _r: httpx.Response(200, json={"resource_code": CODE, "in_force": {"content": content}})

    async with browser(catalog(["API", "FILE_DOWNLOAD"])) as b:
        offered = await b.get("/subscriptions/new", params={"resource": CODE})
    assert re.search(r'value="API" checked', offered.text)
    async with browser(catalog(["FILE_DOWNLOAD"])) as b:
        not_offered = await b.get("/subscriptions/new", params={"resource": CODE})
    assert not_offered.status_code == 200 and " checked" not in not_offered.text


GRANT = {
    "grant_id": "g1",
    "request_id": None,
    "resource_code": CODE,
    "provider_code": PROVIDER,
    "consumer_code": CONSUMER,
    "consumer_system": None,
    "items": ["企业名称"],
    "scope": {"regions": [], "subjects": []},
    "purpose": "核对",
    "channels": ["API"],
    "valid_from": "2026-10-01",
    "valid_to": "2027-01-01",
    "unmasked": [],
    "status": "ACTIVE",
    "ended_reason": None,
}


async def test_a_subscription_or_consent_form_sent_twice_makes_one() -> None:
    made: list[str] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path in ("/grants", "/consents"):
            return httpx.Response(200, json=[])  # nothing made yet when the first submit looks
        if request.method == "GET":
            return httpx.Response(200, json=GRANT)
        made.append(request.url.path)
        await asyncio.sleep(0.2)  # the second click arrives while the first is at the exchange
        return httpx.Response(201, json={"grant_id": f"g{len(made)}", "consent_id": f"c{len(made)}"})

    for path, new, fields in (
        (
            "/subscriptions/new",
            "/subscriptions/new",
            {"resource_code": CODE, "purpose": "核对", "valid_to": "2027-01-01"},
        ),
        ("/consents/new", "/consents/new?grant=g1", {"grant_id": "g1", "audience": "门户网站", "purpose": "公示"}),
    ):
        made.clear()
        async with browser(slow) as b:  # type: ignore[arg-type]
            form = await b.get(new)
            sent = fields | {"csrf_token": csrf_of(form), "once": field_of(form, "once")}
            first, second = await asyncio.gather(b.post(path, data=sent), b.post(path, data=sent))
        assert (first.status_code, second.status_code) == (303, 303), second.text[-800:]
        assert first.headers["location"] == second.headers["location"]
        assert len(made) == 1, made


CONSENT = {
    "consent_id": "c1",
    "grant_id": "g1",
    "resource_code": CODE,
    "provider_code": PROVIDER,
    "consumer_code": CONSUMER,
    "items": ["企业名称"],
    "audience": "门户网站",
    "purpose": "公示",
    "requested_by": "u",
    "requested_on": "2026-11-01",
    "decide_by": "2026-11-15",
    "status": "PENDING",
    "reasons": None,
    "decided_by": None,
    "decided_on": None,
    "late": False,
}


async def test_a_decision_sent_again_shows_the_decision_and_one_refused_keeps_what_was_typed() -> None:
    decided = CONSENT | {"status": "APPROVED", "reasons": "名称属公开信息", "decided_on": "2026-11-02"}

    def again(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return domain_error(409, "consent_id", "the consent is APPROVED already; a decision is final")
        return httpx.Response(200, json=decided)

    async with browser(again, PROVIDER) as b:
        fields = {
            "csrf_token": csrf_of(await b.get("/")),
            "consent_id": "c1",
            "decision": "APPROVED",
            "reasons": "同意",
        }
        repeated = await b.post("/consents/decide", data=fields)
        assert repeated.status_code == 303 and repeated.headers["location"] == "/consents/view?id=c1"
        assert "名称属公开信息" in (await b.get(repeated.headers["location"])).text

    def refused(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return domain_error(422, "reasons", "reasons is required")
        return httpx.Response(200, json=CONSENT)

    typed = "名称属公开信息，同意在门户网站公示"
    async with browser(refused, PROVIDER) as b:
        fields = {"csrf_token": csrf_of(await b.get("/")), "consent_id": "c1", "decision": "DENIED", "reasons": typed}
        page = await b.post("/consents/decide", data=fields)
    assert page.status_code == 422 and "理由" in refusal_of(page)
    assert f">{typed}</textarea>" in page.text and 'value="DENIED" checked' in page.text


async def test_marking_a_notice_read_returns_to_the_page_it_was_on() -> None:
    notice = {
        "notification_id": "n1",
        "kind": "GRANT_ISSUED",
        "title": "授权",
        "body": "b",
        "created_at": "2026-11-01T00:00:00Z",
        "read": False,
        "resource_code": CODE,
        "reference": "g1",
    }

    def inbox(request: httpx.Request) -> httpx.Response:
        return (
            httpx.Response(204)
            if request.method == "POST"
            else httpx.Response(200, json={"total": 41, "items": [notice]})
        )

    app = build(ConsoleSettings(), transport=httpx.MockTransport(inbox))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as b:
        b.cookies.set("console-session", token(CONSUMER, Role.DATA_ADMINISTRATOR))
        for query, back in (
            ({"resource": CODE, "offset": 20}, "/inbox?resource=101001%2F000001&offset=20"),
            ({"unread": "true", "offset": 20}, "/inbox?unread=true&offset=20"),
            ({}, "/inbox"),
        ):
            page = await b.get("/inbox", params=query)
            form = page.text.split('action="/inbox/read"')[1].split("</form>")[0]
            fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
            answer = await b.post("/inbox/read", data=fields)
            assert answer.status_code == 303 and answer.headers["location"] == back, (query, answer.headers)


async def test_the_subscriptions_say_why_a_grant_ended_in_chinese_and_count_what_was_read() -> None:
    grant = {
        "grant_id": "g1",
        "request_id": None,
        "resource_code": CODE,
        "provider_code": PROVIDER,
        "status": "ENDED",
        "ended_reason": "the period ended on 2026-10-31",
        "valid_from": "2026-01-01",
        "valid_to": "2026-10-31",
        "channels": ["API"],
    }
    held = [grant] + [grant | {"grant_id": f"r{n}", "request_id": f"q{n}"} for n in range(4)]
    async with browser(lambda _r: httpx.Response(200, json=held)) as b:
        page = await b.get("/subscriptions", params={"offset": 200})
    assert page.status_code == 200
    row = page.text.split('data-grant="g1"')[1].split("</tr>")[0]
    assert "使用期限已于 2026-10-31 届满" in row and "period" not in row
    assert "第 201–205 项授权中的订阅" in page.text  # five read, not a full page of 200
