"""The web console without the services: every page asks for a sign-in, every form for its CSRF token
(before any service is called), forms become the catalog's request bodies, and settings refuse what
production must not run with."""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import ValidationError
from starlette.datastructures import FormData

from common.policy import Role
from services.console import forms
from services.console.clients import Refused, segment
from services.console.main import build
from services.console.pages.browse import FOLLOWED
from services.console.session import local_path, person_of
from services.console.settings import ConsoleSettings
from services.console.web import local_time
from tests.tokens import token

PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
PUBLIC |= {("HEAD", "/metrics")}


def console(calls: list[httpx.Request]) -> tuple[object, list[tuple[str, str]]]:
    def service(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    app = build(ConsoleSettings(), transport=httpx.MockTransport(service))
    contexts = iter_route_contexts(app.routes)
    routes = [(m, c.path) for c in contexts if isinstance(c.original_route, APIRoute) for m in c.original_route.methods]
    return app, [route for route in routes if route not in PUBLIC]


async def test_every_page_sends_a_stranger_to_sign_in_and_every_form_needs_its_csrf_token() -> None:
    calls: list[httpx.Request] = []
    app, routes = console(calls)
    assert len(routes) >= 12
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as browser:
        for method, path in routes:
            answer = await browser.request(method, path)
            if path == "/logout":  # signing out needs no valid sign-in, only the form's own token
                assert answer.status_code == 403 and "表单已失效" in answer.text
                continue
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/login?reason=none"), (method, path)
        browser.cookies.set("console-session", token("11360800MB0000001X", Role.CATALOG_COMPILER))
        for method, path in routes:
            if method == "POST":
                answer = await browser.post(path, data={"code": "101001/000001", "csrf_token": "forged"})
                assert answer.status_code == 403 and "表单已失效" in answer.text, path
                assert answer.headers["content-type"].startswith("text/html")
    assert calls == [], "a form without its CSRF token reached a service"


async def test_a_service_that_does_not_answer_is_a_page_that_says_so() -> None:
    calls: list[httpx.Request] = []
    app, _ = console(calls)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as browser:
        browser.cookies.set("console-session", token("11360800MB0000001X", Role.CATALOG_COMPILER))
        page = await browser.get("/catalog", params={"q": "企业"})
    assert page.status_code == 503 and "资源目录服务暂时无法访问" in page.text
    assert calls and calls[0].headers["authorization"].startswith("Bearer ")


async def test_the_sign_in_page_sets_a_csrf_cookie_that_scripts_cannot_read() -> None:
    transport = httpx.ASGITransport(app=build(ConsoleSettings()))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as browser:
        page = await browser.get("/login")
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert 'for="username"' in page.text and 'for="password"' in page.text


def test_production_cookies_are_secure_and_host_only() -> None:
    urls = {f"{name}_url": f"http://{name}:80" for name in ("directory", "catalog", "exchange", "notifier", "auditor")}
    production = {"environment": "production", "mongo_uri": "mongodb://db-0:27017/?replicaSet=rs0", **urls}
    settings = ConsoleSettings(**production)
    assert settings.cookies_secure
    from services.console.session import Cookies

    assert Cookies(settings).session == "__Host-console-session"
    with pytest.raises(ValidationError, match="secure_cookies"):
        ConsoleSettings(**production, secure_cookies=False)
    with pytest.raises(ValidationError, match="CONSOLE_NOTIFIER_URL"):
        ConsoleSettings(**production | {"notifier_url": "http://127.0.0.1:8003"})
    with pytest.raises(ValidationError, match="base URL"):
        ConsoleSettings(catalog_url="catalog:8001")


def test_the_entry_form_becomes_the_catalogs_content() -> None:
    form = FormData(
        [
            ("name", " 企业登记信息 "),
            ("share_type", "CONDITIONAL"),
            ("share_methods", "API"),
            ("share_methods", "ONLINE_BROWSE"),
            ("related_codes", "101001/000001，101001/000002"),
            ("item_rows", "3"),
            ("item_name_0", "统一社会信用代码"),
            ("item_length_0", "18"),
            ("item_sensitive_0", "on"),
            ("item_source_of_0", "DE0001"),
            ("item_name_1", ""),  # a blank row is left out
            ("item_name_2", "企业名称"),
            ("item_length_2", "很长"),  # not a number: no length, the catalog's default
            ("item_name_3", "beyond item_rows"),
            ("review_by", "保密员"),
            ("review_on", "2026-11-01"),
            ("review_conclusion", "不涉密"),
        ]
    )
    content = forms.content_of(form)
    assert content["name"] == "企业登记信息"
    assert content["share_methods"] == ["API", "ONLINE_BROWSE"]
    assert content["related_codes"] == ["101001/000001", "101001/000002"]
    assert [i["name"] for i in content["data_items"]] == ["统一社会信用代码", "企业名称"]
    first, second = content["data_items"]
    assert first["length"] == 18 and first["sensitive"] and first["source_of"] == "DE0001"
    assert second["length"] is None and not second["sensitive"] and second["share_type"] is None
    assert content["confidentiality_review"] == {
        "reviewed_by": "保密员",
        "reviewed_on": "2026-11-01",
        "conclusion": "不涉密",
    }
    assert "confidentiality_review" not in forms.content_of(FormData([("name", "x")]))


def test_findings_are_kept_only_with_a_field_and_words() -> None:
    form = FormData(
        [
            ("finding_field_0", "abstract"),
            ("finding_text_0", "摘要过简"),
            ("finding_field_1", "data_items[企业名称]"),
            ("finding_text_1", ""),
            ("finding_field_2", ""),
            ("finding_text_2", "无字段"),
        ]
    )
    assert forms.findings_of(form) == [{"field": "abstract", "finding": "摘要过简"}]
    fields = dict(forms.finding_fields({"data_items": [{"name": "企业名称"}]}))
    assert fields["abstract"] == "资源摘要" and fields["data_items[企业名称]"] == "信息项：企业名称"


def test_codes_and_return_addresses_stay_on_their_side() -> None:
    assert segment("101001/000321") == "101001/000321"
    assert segment("evt-1:11360800MB0000001X") == "evt-1%3A11360800MB0000001X"
    for hostile in ("../inbox", "101001/../x", "/etc", "a?b=1", "a#b", "a b", ""):
        with pytest.raises(Refused):
            segment(hostile)
    assert local_path("/inbox?unread=true") == "/inbox?unread=true"
    for elsewhere in ("https://evil.example/", "//evil.example", "/\\evil.example", None, "inbox"):
        assert local_path(elsewhere) == "/"


def test_a_token_is_read_for_display_and_times_are_shown_in_beijing() -> None:
    person = person_of(token("11360800MB0000001X", Role.CATALOG_REVIEWER, subject="li"))
    assert person is not None and person.subject == "li" and person.role_names == ["目录审核人"]
    assert person_of("not-a-token") is None
    assert local_time("2026-11-27T16:30:00+00:00") == "2026-11-28 00:30"
    assert local_time("2026-11-27") == "2026-11-27"


def test_a_tables_refusal_is_listed_row_by_row() -> None:
    message = "表格有 2 处错误，未导入任何条目：第 2 行：资源名称为必填项；第 3 行：更新周期不一致"
    assert forms.row_problems(message) == ["第 2 行：资源名称为必填项", "第 3 行：更新周期不一致"]
    assert forms.row_problems("请上传 .xlsx 或 .csv 文件") == []


async def test_what_a_person_typed_is_shown_escaped() -> None:
    def directory(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "invalid credentials", "error": "Unauthenticated"})

    app = build(ConsoleSettings(), transport=httpx.MockTransport(directory))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
        page = await browser.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        typed = "<script>alert(1)</script>"
        answer = await browser.post("/login", data={"username": typed, "password": "x", "csrf_token": token})
    assert answer.status_code == 401 and "登录名或密码不正确" in answer.text
    assert typed not in answer.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text


GRANT = {
    "grant_id": "g-1",
    "request_id": "r-1",
    "resource_code": "101001/000001",
    "provider_code": "11360800MB0000001X",
    "consumer_code": "11360800MB0000002X",
    "consumer_system": None,
    "items": ["统一社会信用代码", "企业名称", "法定代表人"],
    "scope": {"regions": ["360800"], "subjects": []},
    "purpose": "企业开办审批核验",
    "channels": ["ONLINE_BROWSE"],
    "valid_from": "2026-01-01",
    "valid_to": "2026-12-31",
    "entry_version": 1,
    "unmasked": [],
    "status": "ACTIVE",
    "ended_reason": None,
}


async def test_a_browse_page_is_the_exchanges_answer_to_the_call_with_the_purpose_the_person_states() -> None:
    calls: list[httpx.Request] = []

    def exchange(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.url.path.startswith("/inbox/"):  # the menu's unread count
            return httpx.Response(200, json={"total": 0, "items": []})
        if request.url.path == "/grants/g-1":
            return httpx.Response(200, json=GRANT)
        rows = [{"subject": "91360800MA0000100X", "fields": {"企业名称": "<b>甲</b>", "法定代表人": "***"},
                 "changed_at": "2026-11-27T16:30:00+00:00"}]  # fmt: skip
        if "after" in request.url.params:  # the key ranges after the first hold no row the grant shows
            return httpx.Response(200, json={"items": ["企业名称", "法定代表人"], "records": [], "next": "Cd_0-y"})
        return httpx.Response(200, json={"items": ["企业名称", "法定代表人"], "records": rows, "next": "Ab_9-x"})

    app = build(ConsoleSettings(), transport=httpx.MockTransport(exchange))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
        browser.cookies.set("console-session", token("11360800MB0000002X", Role.DATA_ADMINISTRATOR))
        params = [("grant", "g-1"), ("items", "企业名称"), ("items", "法定代表人"), ("items", "注册资本")]
        form = await browser.get("/browse", params=params)  # no purpose stated: the form, and nothing read
        assert form.status_code == 200 and 'name="purpose"' in form.text and "required" in form.text
        assert 'id="purpose-needed"' in form.text and not any(c.url.path.startswith("/browse/") for c in calls)
        stated = "核验企业开办申请材料"  # not the grant's purpose: the exchange decides, the console passes it on
        page = await browser.get("/browse", params=[*params, ("purpose", f" {stated} "), ("contains", " 甲 ")])
    assert page.status_code == 200, page.text
    browse, *followed = [c for c in calls if c.url.path.startswith("/browse/")]
    assert browse.url.path == "/browse/101001/000001/records" and browse.url.params["limit"] == "20"
    # the page fills itself following `next` (each a recorded access), at most FOLLOWED exchange pages
    assert len(followed) == FOLLOWED - 1 and followed[0].url.params["after"] == "Ab_9-x"
    assert all(c.url.params["limit"] == "19" and c.headers["x-purpose"] == quote(stated, safe="") for c in followed)
    assert browse.headers["x-grant-id"] == "g-1" and browse.headers["x-purpose"] == quote(stated, safe="")
    assert browse.url.params.get_list("items") == ["企业名称", "法定代表人"]  # none outside the grant is asked for
    assert browse.url.params["contains"] == "甲" and "after" not in browse.url.params
    assert "&lt;b&gt;甲&lt;/b&gt;" in page.text and "***" in page.text and "2026-11-28 00:30" in page.text
    following = page.text.split('rel="next"')[0].rsplit('href="', 1)[1]
    assert "after=Cd_0-y" in following and "purpose=" + quote_plus(stated) in following  # the purpose goes along


async def test_the_printable_application_is_shown_in_place() -> None:
    def exchange(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/inbox/"):
            return httpx.Response(200, json={"total": 0, "items": []})
        disposition = {"content-disposition": 'attachment; filename="r-1.pdf"'}
        return httpx.Response(200, content=b"%PDF-1.7 form", headers=disposition | {"content-type": "application/pdf"})

    app = build(ConsoleSettings(), transport=httpx.MockTransport(exchange))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
        browser.cookies.set("console-session", token("11360800MB0000002X", Role.DATA_ADMINISTRATOR))
        printed = await browser.get("/requests/form", params={"id": "r-1"})
    assert printed.content == b"%PDF-1.7 form" and printed.headers["content-type"] == "application/pdf"
    assert printed.headers["content-disposition"] == 'inline; filename="r-1.pdf"'
