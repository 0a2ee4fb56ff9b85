"""End to end in a real headless Chromium (Debian's chromium and chromium-driver): a compiler drafts and
submits an entry, a reviewer returns it with a finding on a field, the compiler corrects it and submits
again, the reviewer approves; a wrong role gets the service's refusal as a page, saying which role it needs; the
department's inbox shows each step (submitted, returned, approved) to the compiler and the reviewer alike.
Then sharing: a consumer applies, the provider's data administrator sees the request arrive in the inbox and
approves narrower, the consumer sees the decision in the inbox and browses exactly the granted columns and rows.
Each notice is found by its kind, resource and reference, waited for with a deadline (the notifier is
asynchronous), never by its position.
Screenshots of the pages go to .var/screenshots/console/ (or CONSOLE_SCREENSHOTS) for a person to look at.

`make test-e2e` runs it (and CI, which installs the browser); `make test` leaves it out (marker `e2e`)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from devstack.processes import ROOT
from tests.integration.console_platform import Platform, console_platform
from tests.integration.console_sharing_platform import Sharing, sharing_platform
from tests.webdriver import CHROMEDRIVER, CHROMIUM, Browser, Driver

pytestmark = pytest.mark.e2e
SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", ROOT / ".var" / "screenshots" / "console"))


@pytest.fixture(scope="module")
async def platform(infra, topics, tmp_path_factory) -> AsyncIterator[Platform]:
    async with console_platform(infra, tmp_path_factory.mktemp("console-browser")) as running:
        yield running


@pytest.fixture(scope="module")
async def sharing(infra, topics, tmp_path_factory) -> AsyncIterator[Sharing]:
    folder = tmp_path_factory.mktemp("console-browser-sharing")
    async with sharing_platform(infra, folder, with_notifier=True) as running:
        yield running


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Iterator[Driver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            "the browser tests need Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver"
        )
    running = Driver(tmp_path_factory.mktemp("chromedriver") / "chromedriver.log").start()
    yield running
    running.stop()


def sign_in(browser: Browser, base: str, login: str, password: str) -> None:
    browser.open(f"{base}/login")
    browser.fill({"username": login, "password": password})
    browser.click_through("form[action='/login'] button[type=submit]")
    assert browser.url == f"{base}/", browser.page[-800:]


def sign_out(browser: Browser) -> None:
    browser.click_through("form[action='/logout'] button")
    assert "您已退出登录" in browser.page


NOTICES = (
    "return Array.from(document.querySelectorAll('ul.notices li')).map(li => ({kind: li.dataset.kind, "
    "resource: li.dataset.resource, reference: li.dataset.reference, title: li.querySelector('strong').innerText}))"
)


def wait_for_notices(
    browser: Browser, base: str, resource: str, wanted: dict[str, tuple[str, str | None]], timeout: float = 60
) -> list[dict]:
    """Open the inbox's notices of `resource` until, for each title prefix of `wanted`, a notice of that
    (kind, reference) is there — whatever their order, and whatever else the inbox holds."""
    deadline = time.monotonic() + timeout
    while True:
        browser.open(f"{base}/inbox?resource={quote(resource, safe='')}")
        notices = browser.script(NOTICES)
        assert isinstance(notices, list)
        missing = [
            title
            for title, (kind, reference) in wanted.items()
            if not any(
                n["kind"] == kind
                and n["resource"] == resource
                and n["title"].startswith(title)
                and reference in (None, n["reference"])
                for n in notices
            )
        ]
        if not missing:
            return notices
        assert time.monotonic() < deadline, (missing, notices)
        time.sleep(0.5)


async def test_a_compiler_and_a_reviewer_work_an_entry_through_in_the_browser(platform: Platform, driver) -> None:
    base, logins, passwords = platform.console.url, platform.logins, platform.passwords
    browser = driver.session()
    try:
        browser.open(f"{base}/inbox")  # not signed in: the sign-in page, in Chinese
        assert "/login" in browser.url and "请先登录" in browser.page
        browser.screenshot(SHOTS / "01-login.png")

        sign_in(browser, base, logins["t-compiler"], passwords["t-compiler"])
        browser.screenshot(SHOTS / "02-home.png")
        browser.open(f"{base}/compile/new")
        browser.fill(
            {
                "classification": "101001",
                "name": "浏览器测试资源",
                "abstract": "经由浏览器编制",
                "category": "BASE",
                "format": "数据库",
                "update_cycle": "DAILY",
                "share_conditions": "用于政务服务",
                "review_by": "保密员",
                "review_on": "11/01/2026",  # a date field takes the browser's own format
                "review_conclusion": "不涉密",
                "item_name_0": "统一社会信用代码",
                "item_length_0": "18",
                "item_name_1": "企业名称",
            }
        )
        browser.find("#m-API").click()
        browser.screenshot(SHOTS / "03-entry-form.png")
        browser.click_through("form.entry button[type=submit]")
        assert "草稿" in browser.page and "统一社会信用代码" in browser.page, browser.page[-1500:]
        code = re.search(r"code=([0-9%A-F]+)", browser.url).group(1).replace("%2F", "/")
        browser.click_through("form[action='/compile/submit'] button")
        assert "待审核" in browser.page
        browser.screenshot(SHOTS / "04-entry-submitted.png")

        # the compiler opens the review page (the console shows it; the catalog decides): the refusal, as a page
        browser.open(f"{base}/review/entry?code={code}")
        browser.click_through("form[action='/review/approve'] button")
        assert "无权执行此操作" in browser.page and "<main>" in browser.page
        assert "目录审核人" in browser.find("#refusal").text  # the role it needs, in plain Chinese
        browser.screenshot(SHOTS / "05-refused.png")
        sign_out(browser)

        sign_in(browser, base, logins["t-reviewer"], passwords["t-reviewer"])
        browser.open(f"{base}/review")
        browser.screenshot(SHOTS / "06-review-queue.png")
        browser.click_through(f"a[href='/review/entry?code={code}']")
        browser.fill({"finding_field_0": "abstract", "finding_text_0": "摘要过于简略，请写明数据范围"})
        browser.screenshot(SHOTS / "07-review-entry.png")
        browser.click_through("form[action='/review/return'] button[type=submit]")
        assert "退回修改" in browser.page
        sign_out(browser)

        sign_in(browser, base, logins["t-compiler"], passwords["t-compiler"])
        browser.open(f"{base}/compile/edit?code={code}")
        assert "资源摘要" in browser.page and "摘要过于简略" in browser.page
        browser.screenshot(SHOTS / "08-returned-with-findings.png")
        browser.fill({"abstract": "全市登记企业的基本信息"})
        browser.click_through("form.entry button[type=submit]")
        browser.click_through("form[action='/compile/submit'] button")
        sign_out(browser)

        sign_in(browser, base, logins["t-reviewer"], passwords["t-reviewer"])
        browser.open(f"{base}/review/entry?code={code}")
        browser.click_through("form[action='/review/approve'] button")
        assert "现行版本" in browser.page, browser.page[-1500:]
        browser.screenshot(SHOTS / "09-published.png")

        browser.open(f"{base}/catalog?q=浏览器测试")
        assert "浏览器测试资源" in browser.page
        browser.screenshot(SHOTS / "10-search.png")
        # each one's inbox shows the steps of the entry that are hers: the reviewer the submissions ...
        mine = wait_for_notices(browser, base, code, {"目录条目待审核": ("CATALOG_EVENT", code)})
        assert not any(n["title"].startswith(("目录条目被退回", "目录条目已审核通过并发布")) for n in mine), mine
        browser.screenshot(SHOTS / "11-inbox.png")
        sign_out(browser)
        # ... the compiler the return and the approval
        sign_in(browser, base, logins["t-compiler"], passwords["t-compiler"])
        reviewed = {title: ("CATALOG_EVENT", code) for title in ("目录条目被退回", "目录条目已审核通过并发布")}
        mine = wait_for_notices(browser, base, code, reviewed)
        assert not any(n["title"].startswith("目录条目待审核") for n in mine), mine
        browser.resize(390, 844)  # a phone
        browser.screenshot(SHOTS / "12-inbox-phone.png")
        browser.open(f"{base}/catalog?q=浏览器测试")
        browser.screenshot(SHOTS / "13-search-phone.png")
    finally:
        browser.close()


def table_cells(browser: Browser, css: str) -> list[list[str]]:
    """The text of each body row's cells of the table `css`, as the browser shows them."""
    rows = browser.script(
        f"return Array.from(document.querySelectorAll('{css} tbody tr'))"
        ".map(r => Array.from(r.querySelectorAll('td')).map(c => c.innerText.trim()))"
    )
    assert isinstance(rows, list)
    return rows


async def test_a_consumer_applies_the_provider_narrows_and_the_consumer_browses_the_grant(
    sharing: Sharing, driver
) -> None:
    base = sharing.console.url
    browser = driver.session()
    try:
        sign_in(browser, base, *sharing.logins["consumer"])
        browser.open(f"{base}/requests/new")
        browser.fill(
            {
                "resource_code": sharing.resource,
                "items": "统一社会信用代码\n企业名称\n法定代表人",
                "regions": "3608",
                "purpose": "浏览器测试核验",
                "valid_to": "09/30/2027",  # a date field takes the browser's own format
            }
        )
        browser.find("input[name=channels][value=ONLINE_BROWSE]").click()
        browser.screenshot(SHOTS / "20-apply.png")
        browser.click_through("form[action='/requests/new'] button[type=submit]")
        assert "待决定" in browser.page, browser.page[-1500:]
        request_url = browser.url
        request_id = re.search(r"id=([^&]+)", request_url).group(1)
        browser.screenshot(SHOTS / "21-applied.png")
        sign_out(browser)

        sign_in(browser, base, *sharing.logins["provider"])
        wait_for_notices(browser, base, sharing.resource, {"数据共享申请待答复": ("REQUEST_ARRIVED", request_id)})
        browser.screenshot(SHOTS / "21-provider-inbox.png")
        browser.open(request_url)
        browser.find("input[name=decision][value=APPROVED]").click()
        browser.fill({"reasons": "核验只需名称", "items": "统一社会信用代码\n企业名称", "regions": "360800"})
        browser.screenshot(SHOTS / "22-decide-narrower.png")
        browser.click_through("form[action='/requests/decide'] button[type=submit]")
        assert "已同意" in browser.page, browser.page[-1500:]
        sign_out(browser)

        sign_in(browser, base, *sharing.logins["consumer"])
        decided = {"共享申请已答复（同意）": ("REQUEST_DECIDED", request_id), "共享授权已生效": ("GRANT_ISSUED", None)}
        wait_for_notices(browser, base, sharing.resource, decided)
        browser.screenshot(SHOTS / "22-decided-consumer-inbox.png")
        browser.open(request_url)
        browser.click_through("a[href^='/grants/view']")
        grant_url = browser.url
        browser.screenshot(SHOTS / "23-grant.png")
        browser.click_through("a[href^='/browse']")
        assert "在线浏览" in browser.page and "purpose-needed" in browser.page, browser.page[-1500:]
        browser.fill({"purpose": "浏览器测试核验"})  # the person states it: nothing is read before
        browser.click_through("form.browse-filter button[type=submit]")
        assert "browse-rows" in browser.page, browser.page[-1500:]
        headers = browser.script(
            "return Array.from(document.querySelectorAll('#browse-rows thead th')).map(h => h.innerText.trim())"
        )
        assert headers == ["主体", "统一社会信用代码", "企业名称", "更新时间"]
        shown = sorted(row[1:3] for row in table_cells(browser, "#browse-rows"))
        assert shown == sorted([key, name] for key, name in sharing.city)
        assert all(name not in browser.page for _, name in sharing.county)
        browser.screenshot(SHOTS / "24-browse.png")
        browser.resize(390, 844)  # a phone
        browser.screenshot(SHOTS / "25-browse-phone.png")

        # the same department subscribes to the unconditional items (Art. 15) and finds it among its subscriptions
        browser.open(f"{base}/subscriptions/new?resource={quote(sharing.resource, safe='')}")
        browser.fill({"purpose": "企业名称核对", "valid_to": "06/30/2027"})
        browser.find("input[name=channels][value=API]").click()  # no catalog here to say which it offers
        browser.screenshot(SHOTS / "26-subscribe-phone.png")
        browser.resize(1366, 768)
        browser.click_through("form.subscribe button[type=submit]")
        assert "统一社会信用代码、企业名称" in browser.page and "来自申请" not in browser.page, browser.page[-1500:]
        grant = re.search(r"id=([^&]+)", browser.url).group(1)
        browser.open(f"{base}/subscriptions")
        assert sharing.resource in browser.find(f"tr[data-grant='{grant}']").text
        browser.screenshot(SHOTS / "27-subscriptions.png")
        sign_out(browser)

        # the provider revokes the application's grant; the consumer's next reading is refused, saying so with the
        # provider's reason and the day the department was told (once the notifier has delivered the notice)
        sign_in(browser, base, *sharing.logins["provider"])
        browser.open(grant_url)
        browser.fill({"reason": "核验已完成"})
        browser.click_through("form[action='/grants/revoke'] button[type=submit]")
        assert "已撤销" in browser.page, browser.page[-1500:]
        sign_out(browser)
        sign_in(browser, base, *sharing.logins["consumer"])
        reading = grant_url.replace("/grants/view?id=", "/browse?grant=") + "&purpose=" + quote("浏览器测试核验")
        deadline = time.monotonic() + 60
        while "收到撤销通知" not in browser.page:
            assert time.monotonic() < deadline, browser.page[-1500:]
            time.sleep(0.5)
            browser.open(reading)
        refusal = browser.find("#refusal").text
        assert "已被提供部门撤销" in refusal and "核验已完成" in refusal and "提出共享申请" in browser.page
        browser.screenshot(SHOTS / "28-revoked-refusal.png")
    finally:
        browser.close()
