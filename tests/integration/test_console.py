"""The web console driven over HTTP as a browser would (cookies, forms, redirects) against the real
directory, catalog and notifier: sign in, CSRF, the inbox, search, a compiler's draft and submission, a
reviewer's return with findings and approval, a service's refusal and an expired sign-in shown as pages."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from common.auth import TokenIssuer
from common.policy import Principal, Role
from services.catalog.domain import sheet
from services.directory.demo_data import credit_code
from tests.integration.console_platform import Platform, console_platform, csrf_of, sign_in
from tests.tokens import KEY, bearer

REVISION = re.compile(r'name="revision" value="(\d+)"')


@pytest.fixture(scope="module")
async def platform(infra, topics, tmp_path_factory) -> AsyncIterator[Platform]:
    """Started once for this module's tests: each service starts in seconds, and both tests need all four."""
    async with console_platform(infra, tmp_path_factory.mktemp("console")) as running:
        yield running


async def post_form(client: httpx.AsyncClient, page: str, action: str, fields: dict) -> httpx.Response:
    token = csrf_of(await client.get(page))
    return await client.post(action, data={"csrf_token": token, **fields})


ENTRY_FORM = {
    "classification": "101001",
    "name": "控制台测试资源",
    "abstract": "经由控制台编制的资源",
    "category": "BASE",
    "format": "数据库",
    "update_cycle": "DAILY",
    "share_type": "CONDITIONAL",
    "open_attribute": "NOT_OPEN",
    "share_methods": ["API", "ONLINE_BROWSE"],
    "share_conditions": "用于政务服务",
    "review_by": "保密员",
    "review_on": "2026-11-01",
    "review_conclusion": "不涉密",
    "item_rows": "3",
    "item_name_0": "统一社会信用代码",
    "item_type_0": "string",
    "item_length_0": "18",
    "item_name_1": "企业名称",
    "item_type_1": "string",
}


async def test_a_compiler_drafts_and_submits_and_a_reviewer_returns_then_approves(platform: Platform) -> None:
    url, logins, passwords = platform.console.url, platform.logins, platform.passwords
    async with httpx.AsyncClient(base_url=url) as compiler, httpx.AsyncClient(base_url=url) as reviewer:
        # sign-in: the login form, CSRF refused without its token, wrong password told in Chinese
        assert (await compiler.get("/", follow_redirects=False)).headers["location"].startswith("/login")
        login = await compiler.get("/login")
        assert 'for="username"' in login.text and 'for="password"' in login.text
        refused = await compiler.post("/login", data={"username": "x", "password": "y"})
        assert refused.status_code == 403 and "表单已失效" in refused.text
        wrong = await compiler.post(
            "/login", data={"username": "t-compiler-x", "password": "nope", "csrf_token": csrf_of(login)}
        )
        assert wrong.status_code == 401 and "登录名或密码不正确" in wrong.text
        await sign_in(compiler, logins["t-compiler"], passwords["t-compiler"])
        await sign_in(reviewer, logins["t-reviewer"], passwords["t-reviewer"])
        home = await compiler.get("/")
        assert home.status_code == 200 and "目录编制人" in home.text

        # a form without its CSRF token is refused once signed in too, and changes nothing
        no_token = await compiler.post("/compile/new", data=ENTRY_FORM)
        assert no_token.status_code == 403 and "表单已失效" in no_token.text

        # the compiler drafts an entry with its data items, then submits it
        drafted = await post_form(compiler, "/compile/new", "/compile/new", ENTRY_FORM)
        assert drafted.status_code == 303, drafted.text[-800:]
        entry_url = drafted.headers["location"]
        code = httpx.URL(entry_url).params["code"]
        entry = await compiler.get(entry_url)
        assert "控制台测试资源" in entry.text and "统一社会信用代码" in entry.text and "草稿" in entry.text
        submitted = await compiler.post(
            "/compile/submit",
            data={"csrf_token": csrf_of(entry), "code": code, "revision": REVISION.search(entry.text).group(1)},
        )
        assert submitted.status_code == 303
        assert "待审核" in (await compiler.get(entry_url)).text

        # the reviewer finds it in the queue and returns it with a finding on one field
        queue = await reviewer.get("/review")
        assert code in queue.text, queue.text[-1500:]
        page = await reviewer.get("/review/entry", params={"code": code})
        assert page.status_code == 200 and "退回修改" in page.text
        returned = await reviewer.post(
            "/review/return",
            data={
                "csrf_token": csrf_of(page),
                "code": code,
                "revision": REVISION.search(page.text).group(1),
                "finding_field_0": "abstract",
                "finding_text_0": "摘要过于简略，请写明数据范围",
            },
        )
        assert returned.status_code == 303, returned.text[-800:]

        # the compiler sees the finding by its field, in Chinese, on the edit form
        edit = await compiler.get("/compile/edit", params={"code": code})
        assert "资源摘要" in edit.text and "摘要过于简略" in edit.text and 'for="abstract"' in edit.text
        fields = ENTRY_FORM | {"code": code, "revision": REVISION.search(edit.text).group(1)}
        fields["abstract"] = "全市企业登记信息，范围为本市登记的全部企业"
        del fields["classification"]
        saved = await compiler.post("/compile/edit", data={"csrf_token": csrf_of(edit), **fields})
        assert saved.status_code == 303, saved.text[-800:]
        entry = await compiler.get(entry_url)
        await compiler.post(
            "/compile/submit",
            data={"csrf_token": csrf_of(entry), "code": code, "revision": REVISION.search(entry.text).group(1)},
        )

        # the compiler may not approve: the catalog's 403, in Chinese, on an ordinary page
        entry = await compiler.get(entry_url)
        assert "待审核" in entry.text
        forbidden = await compiler.post(
            "/review/approve", data={"csrf_token": csrf_of(entry), "code": code, "revision": "9"}
        )
        assert forbidden.status_code == 403 and "无权执行此操作" in forbidden.text and "<html" in forbidden.text
        refusal = forbidden.text.split('id="refusal">')[1].split("</p>")[0]
        assert "目录审核人" in refusal and "访问规则" not in refusal  # the role it needs, in plain Chinese

        page = await reviewer.get("/review/entry", params={"code": code})
        approved = await reviewer.post(
            "/review/approve",
            data={"csrf_token": csrf_of(page), "code": code, "revision": REVISION.search(page.text).group(1)},
        )
        assert approved.status_code == 303, approved.text[-800:]
        published = await reviewer.get(entry_url)
        assert "现行版本" in published.text and "第 1 版" in published.text

        # the compiler reports a change of the published resource: the entry shows its 5-working-day deadline
        entry = await compiler.get(entry_url)
        reported = await compiler.post(
            "/compile/change",
            data={"csrf_token": csrf_of(entry), "code": code, "reason": "新增经营范围字段", "changed_on": ""},
        )
        assert reported.status_code == 303, reported.text[-800:]
        assert "报告变更（新增经营范围字段）" in (await compiler.get(entry_url)).text

        # versions and their difference
        assert (await reviewer.get("/catalog/entry", params={"code": code, "version": 1})).status_code == 200

        # search in Chinese finds it, with the catalog's facets as filters
        found = await reviewer.get("/catalog", params={"q": "控制台测试"})
        assert found.status_code == 200 and code in found.text and "共享类型" in found.text
        assert 'name="share_type" value="CONDITIONAL"' in found.text
        filtered = await reviewer.get("/catalog", params={"q": "控制台测试", "share_type": "UNCONDITIONAL"})
        assert code not in filtered.text

        # each one's inbox shows the steps of the review that are hers (the notifier's, by her token's roles):
        # the reviewer the submissions, the compiler the return and the approval; unread counted, then read
        to_review = await _inbox_with(reviewer, "未读 2 条")  # submitted twice
        assert "目录条目待审核" in to_review.text
        assert "目录条目被退回" not in to_review.text and "已审核通过并发布" not in to_review.text
        inbox = await _inbox_with(compiler, "已审核通过并发布")
        assert "目录条目被退回" in inbox.text and "目录条目待审核" not in inbox.text
        unread = int(re.search(r"未读 (\d+) 条", inbox.text).group(1))
        assert unread == 2
        notice = re.search(r'name="notification_id" value="([^"]+)"', inbox.text).group(1)
        marked = await compiler.post("/inbox/read", data={"csrf_token": csrf_of(inbox), "notification_id": notice})
        assert marked.status_code == 303
        unread_now = await compiler.get("/inbox", params={"unread": "true"})
        assert notice not in unread_now.text and "目录条目" in unread_now.text  # that one is read, the others not

        # sign-out ends the session in this browser
        signed_out = await compiler.post("/logout", data={"csrf_token": csrf_of(inbox)})
        assert signed_out.headers["location"] == "/login?reason=out"
        assert (await compiler.get("/inbox", follow_redirects=False)).status_code == 303


async def _inbox_with(client: httpx.AsyncClient, text: str, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        page = await client.get("/inbox")
        if text in page.text or time.monotonic() > deadline:
            assert text in page.text, page.text[-1500:]
            return page
        await asyncio.sleep(0.3)


async def test_an_expired_sign_in_is_renewed_or_sends_the_person_to_sign_in_again(platform: Platform) -> None:
    expired = TokenIssuer(KEY, "jian-datashare", "jian-datashare", ttl_seconds=-60).issue(
        Principal(platform.logins["t-reviewer"], platform.department, frozenset({Role.CATALOG_REVIEWER}))
    )[0]
    async with httpx.AsyncClient(base_url=platform.console.url) as browser:
        # signed in: the access token expires, the refresh token renews it without a word to the person
        await sign_in(browser, platform.logins["t-reviewer"], platform.passwords["t-reviewer"])
        browser.cookies.set("console-session", expired, domain="127.0.0.1")
        page = await browser.get("/review")
        assert page.status_code == 200 and "待审核的条目" in page.text
        renewed = browser.cookies.get("console-session")
        assert renewed and renewed != expired

        # without a refresh token (or with one no longer valid): to sign-in, with the reason in Chinese
        browser.cookies.set("console-session", expired, domain="127.0.0.1")
        browser.cookies.set("console-refresh", "no-longer-valid", domain="127.0.0.1")
        sent = await browser.get("/review", follow_redirects=False)
        assert sent.status_code == 303 and sent.headers["location"].startswith("/login?reason=expired")
        login = await browser.get(sent.headers["location"])
        assert "登录已过期，请重新登录" in login.text and 'name="next" value="/review"' in login.text


def _table(department: str, rows: list[dict[str, str]]) -> bytes:
    """A table in the 共享目录 layout, as CSV."""
    base = {
        "资源名称": "控制台导入资源",
        "资源提供方代码": department,
        "资源提供方": "测试局",
        "资源摘要": "经由控制台导入",
        "资源分类": "基础",
        "资源格式": "数据库",
        "共享类型": "有条件共享",
        "共享条件": "用于行政审批",
        "共享方式": "接口",
        "更新周期": "每日",
        "分类码": "101002",
    }
    columns = [*sheet.COLUMNS, "分类码"]
    table = [columns, *[[{**base, **r}.get(c, "") for c in columns] for r in rows]]
    return ("\r\n".join(",".join(row) for row in table) + "\r\n").encode()


async def test_a_compiler_imports_a_table_and_sees_its_row_errors(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.console.url) as compiler:
        await sign_in(compiler, platform.logins["t-compiler"], platform.passwords["t-compiler"])
        page = await compiler.get("/compile/import")
        assert page.status_code == 200 and 'for="file"' in page.text
        wrong = [{"信息项名称": "企业名称"}, {"信息项名称": "注册资本", "更新周期": "每月"}]  # one entry, two cycles
        refused = await compiler.post(
            "/compile/import",
            data={"csrf_token": csrf_of(page)},
            files={"file": ("目录.csv", _table(platform.department, wrong), "text/csv")},
        )
        assert refused.status_code == 422, refused.text[-1000:]
        assert "未导入任何条目" in refused.text and "更新周期" in refused.text, refused.text[-1500:]

        good = [{"信息项名称": "企业名称"}, {"信息项名称": "注册资本"}]
        deadline = time.monotonic() + 20
        while True:  # the catalog learns of the department from the directory's event
            imported = await compiler.post(
                "/compile/import",
                data={"csrf_token": csrf_of(page)},
                files={"file": ("目录.csv", _table(platform.department, good), "text/csv")},
            )
            if imported.status_code != 422 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert imported.status_code == 201, imported.text[-1000:]
        code = re.search(r"code=(101002[^\"&]+)", imported.text).group(1).replace("%2F", "/")
        listed = await compiler.get("/compile")
        assert code in listed.text and "控制台导入资源" in listed.text


def browser_at(url: str, address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any 127.x.y.z is this host's loopback)."""
    return httpx.AsyncClient(base_url=url, transport=httpx.AsyncHTTPTransport(local_address=address))


async def test_failed_sign_ins_of_one_browser_do_not_slow_another_and_a_forged_address_is_ignored(
    platform: Platform,
) -> None:
    """The console passes on each browser's address; the directory believes it from the console only
    (DIRECTORY_TRUSTED_PROXIES=127.0.0.1 here), so a guesser at one browser slows himself, not his colleagues."""
    operator = bearer(credit_code("360800", 9003), Role.IT_OFFICE_OPERATOR, subject="it-operator")
    async with httpx.AsyncClient(base_url=platform.directory.url, headers=operator) as client:
        person = {
            "person_id": f"t-throttled-{platform.department}",
            "name": "t-throttled",
            "department_code": platform.department,
            "roles": [Role.CATALOG_COMPILER],
        }
        issued = await client.post("/people", json=person)
        assert issued.status_code == 201, issued.text
        login, password = issued.json()["login"], issued.json()["secret"]

    url = platform.console.url
    async with browser_at(url, "127.0.0.2") as guesser, browser_at(url, "127.0.0.3") as colleague:
        token = csrf_of(await guesser.get("/login"))
        for _ in range(5):  # the free failures of a login from one address
            wrong = await guesser.post("/login", data={"username": login, "password": "nope", "csrf_token": token})
            assert wrong.status_code == 401 and "登录名或密码不正确" in wrong.text
        slowed = await guesser.post("/login", data={"username": login, "password": password, "csrf_token": token})
        assert slowed.status_code == 401 and "登录失败次数过多" in slowed.text  # even the right password waits
        await sign_in(colleague, login, password)  # another browser through the same console: not slowed
        assert "目录编制人" in (await colleague.get("/")).text

    # A browser cannot pose as many by forging X-Forwarded-For at the console (it trusts no proxy here)
    async with browser_at(url, "127.0.0.1") as forging:
        token = csrf_of(await forging.get("/login"))
        answers = []
        for n in range(6):
            answer = await forging.post(
                "/login",
                data={"username": login, "password": "nope", "csrf_token": token},
                headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
            )
            answers.append("登录失败次数过多" in answer.text)
        assert answers == [False] * 5 + [True]

    # Straight at the directory from an address it does not trust: X-Forwarded-For is ignored, so a new
    # forged address with every guess does not escape the throttle.
    async with browser_at(platform.directory.url, "127.0.0.4") as forger:
        statuses = []
        for n in range(6):
            answer = await forger.post(
                "/token",
                data={"grant_type": "password", "username": login, "password": "nope"},
                headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
            )
            statuses.append(answer.status_code)
        assert statuses == [401] * 5 + [429]
