"""The IT office's dashboard and oversight pages without the services: figures summed per department, the
chart images the page carries (SVG, text kept as text, no script), a month for the reports, and the page drawn
from what the services answer (here canned answers; tests/integration/test_console_city.py runs the real ones)."""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from common.policy import Role
from services.console import charts
from services.console.charts import Bars, bar_svg
from services.console.main import build
from services.console.pages.city import volumes
from services.console.pages.oversight import last_month, pager, period_or_last_month
from services.console.settings import ConsoleSettings
from tests.tokens import token

P, Q, C = "11360800MB0000001X", "11360800MB0000002X", "11360800MB0000003X"
IMAGE = re.compile(r'<img class="chart" src="data:image/svg\+xml;base64,([^"]+)"')


def resource(code: str, provider: str, records: int, last: str | None, published: bool = True) -> dict:
    return {
        "resource_code": code,
        "provider_code": provider,
        "records": records,
        "last_change_at": last,
        "published": published,
    }


def test_volumes_are_summed_per_provider_with_the_latest_change_and_stale_resources() -> None:
    held = [
        resource("101001/000001", P, 10, "2026-11-01T02:00:00+00:00"),
        resource("101001/000002", P, 5, "2026-11-20T02:00:00+00:00"),
        resource("101001/000003", P, 0, None),
        resource("101002/000001", Q, 40, None),
    ]
    found = volumes(held, [resource("101001/000001", P, 10, None)], {P: "市场监管局"})
    assert [(v.provider_code, v.name, v.resources, v.records, v.stale) for v in found] == [
        (Q, "", 1, 40, 0),
        (P, "市场监管局", 3, 15, 1),
    ]
    assert found[1].last_change_at == "2026-11-20T02:00:00+00:00" and found[0].last_change_at is None


def test_a_withdrawn_resource_is_not_counted_in_the_volumes() -> None:
    held = [
        resource("101001/000001", P, 10, "2026-11-01T02:00:00+00:00"),
        resource("101001/000002", P, 500, "2026-11-20T02:00:00+00:00", published=False),
        resource("101002/000001", Q, 40, None, published=False),
    ]
    found = volumes(held, [], {P: "市场监管局"})
    assert [(v.provider_code, v.resources, v.records, v.last_change_at) for v in found] == [
        (P, 1, 10, "2026-11-01T02:00:00+00:00")
    ]


def test_reports_default_to_last_month_and_pages_know_their_neighbours() -> None:
    assert last_month(date(2026, 1, 15)) == "2025-12" and last_month(date(2026, 11, 28)) == "2026-10"
    assert period_or_last_month("2026-Q3") == "2026-Q3"
    assert re.fullmatch(r"\d{4}-\d{2}", period_or_last_month("2026-13"))  # not a period: last month instead
    assert pager(total=45, offset=20, limit=20) == {"offset": 20, "previous": 0, "next": 40}
    assert pager(total=40, offset=20, limit=20) == {"offset": 20, "previous": 0, "next": None}


def test_a_trend_draws_each_series_on_an_axis_of_its_own_so_a_small_one_is_not_flat() -> None:
    months = [f"2026-{m:02d}" for m in range(1, 13)]
    series = {"数据访问次数": [4000 + m for m in range(12)], "发布的目录版本": [m % 3 for m in range(12)]}
    svg = charts.months_svg(charts.Months("近12个月", months, series | {"接收的数据变更": [5] * 12}))
    assert len(re.findall(r'<g id="axes_\d+">', svg)) == 3 and all(name in svg for name in [*series, "接收的数据变更"])
    assert re.search(r">\s*2\s*</text>", svg)  # the versions' own scale: a tick at 2, not only the thousands


def test_a_chart_is_svg_whose_words_stay_text_without_script() -> None:
    svg = bar_svg(Bars("目录条目（按状态）", ["已发布", "草稿"], [3, 1]))
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "已发布" in svg and "目录条目（按状态）" in svg
    assert "<script" not in svg and not re.search(r'href="(https?:)?//', svg)  # nothing to run or fetch


def test_a_chinese_font_installed_after_matplotlib_cached_its_fonts_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib import font_manager

    if not [p for p in font_manager.findSystemFonts() if charts.FONT_FILE in p.lower()]:
        pytest.skip("no Chinese font installed (.ci/run installs fonts-arphic-uming)")
    stale = [font for font in font_manager.fontManager.ttflist if font.name != charts.FONTS[0]]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)  # as read from a cache older than the font
    charts._know_installed_fonts.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph … missing from font(s) DejaVu Sans" would raise
        bar_svg(Bars("目录条目（按状态）", ["已发布", "草稿"], [3, 1]))
    assert charts.FONTS[0] in {font.name for font in font_manager.fontManager.ttflist}


CANNED = {
    "/search": {"total": 6, "hits": [], "facets": {"status": [{"value": "PUBLISHED", "label": "已发布", "count": 3},
                                                           {"value": "DRAFT", "label": "草稿", "count": 1},
                                                           {"value": "WITHDRAWN", "label": "已撤销", "count": 2}]}},
    "/overdue": {"total": 1, "offset": 0, "limit": 20, "items": [
        {"resource_code": "101001/000009", "provider_code": P, "provider_name": "市场监管局", "name": "企业年报",
         "kind": "YEARLY_MAINTENANCE", "due_on": "2026-11-02"}]},
    "/requests/tally": {"on": "2026-11-28", "by_status": {"PENDING": 2, "APPROVED": 1},
                        "overdue_by_provider": {Q: 2}},
    "/resources": [resource("101001/000001", P, 12, "2026-11-01T02:00:00+00:00"),
                   resource("101002/000001", Q, 900, None, published=False)],
    "/resources/stale": [],
    "/evaluation/data-accesses": {C: 7},
    "/evaluation/trends": [{"month": f"2026-{m:02d}", "accesses": 10 * m, "changes_stored": 3,
                            "entries_published": m % 3} for m in range(1, 12)]
                          + [{"month": "2026-12", "accesses": 4321, "changes_stored": 0, "entries_published": 2}],
    "/departments": [{"code": P, "name": "市场监管局"}, {"code": Q, "name": "自然资源局"},
                     {"code": C, "name": "行政审批局"}],
}  # fmt: skip


async def test_the_dashboard_shows_each_figure_as_a_table_and_a_chart() -> None:
    asked: list[str] = []

    def services(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path.startswith("/inbox/"):
            return httpx.Response(200, json={"total": 0, "items": []})
        return httpx.Response(200, json=CANNED[request.url.path])

    app = build(ConsoleSettings(), transport=httpx.MockTransport(services))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
        browser.cookies.set("console-session", token(P, Role.IT_OFFICE_OPERATOR))
        page = await browser.get("/city")
    assert page.status_code == 200, page.text[-1500:]
    assert set(CANNED) <= set(asked)
    text = page.text
    assert "企业年报" in text and "逾期未年度维护" in text  # the overdue entry, in the catalog's words
    late = text[text.index("逾期未决定的申请（按提供部门）</h3>") :]
    assert "自然资源局" in late and '<span class="overdue">2</span>' in late
    assert "待决定" in text and "行政审批局" in text
    assert re.search(r"<strong>4</strong><span>目录条目", text)  # the two withdrawn are listed, not counted
    assert '<td data-label="条目数">2</td>' in text[text.index('id="entries"') : text.index('id="overdue"')]
    held = text[text.index('id="volumes"') : text.index('id="accesses"')]
    assert "市场监管局" in held and "900" not in held  # the withdrawn resource is not the city's data
    charts = [base64.b64decode(found).decode() for found in IMAGE.findall(text)]
    assert len(charts) == 6 and any("自然资源局" in svg for svg in charts)
    # the trends: a table of the 12 months, and one chart with a line per series over them
    trends = text[text.index('id="trends"') :]
    assert trends.count('<td data-label="月份">') == 12 and '<td data-label="数据访问次数">4321</td>' in trends
    [trend] = [svg for svg in charts if "近12个月" in svg]
    assert "数据访问次数" in trend and "发布的目录版本" in trend and "26-01" in trend and "26-12" in trend
    assert "接收的数据变更" in trend  # every series the docs name
    assert "img-src 'self' data:" in page.headers["content-security-policy"]


async def test_the_services_answers_to_the_console_are_counted_by_outcome() -> None:
    from prometheus_client import REGISTRY

    def count(service: str, outcome: str) -> float:
        labels = {"service": service, "outcome": outcome}
        return REGISTRY.get_sample_value("datashare_console_service_calls_total", labels) or 0.0

    def answering(status: int) -> httpx.MockTransport:
        def services(request: httpx.Request) -> httpx.Response:
            if request.url.path.startswith("/inbox/"):
                return httpx.Response(200, json={"total": 0, "items": []})
            return httpx.Response(status, json={"message": "仅限信息化工作办公室"})

        return httpx.MockTransport(services)

    kinds = (("notifier", "answered"), ("directory", "refused"), ("directory", "unavailable"))
    before = {k: count(*k) for k in kinds}
    pages = []
    for status in (403, 503):
        app = build(ConsoleSettings(), transport=answering(status))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
            browser.cookies.set("console-session", token(C, Role.DATA_ADMINISTRATOR))
            pages.append(await browser.get("/city/departments"))
    assert [p.status_code for p in pages] == [403, 503] and "仅限信息化工作办公室" in pages[0].text
    counted = {k: count(*k) - before[k] for k in kinds}
    assert counted == {("notifier", "answered"): 2, ("directory", "refused"): 1, ("directory", "unavailable"): 1}


async def test_the_report_is_the_auditors_document_fetched_with_the_persons_token_and_sandboxed() -> None:
    asked: list[httpx.Request] = []

    def services(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if request.url.path.startswith("/inbox/"):
            return httpx.Response(200, json={"total": 0, "items": []})
        if request.url.path.endswith(".pdf"):
            return httpx.Response(200, content=b"%PDF-1.7 report", headers={"content-type": "application/pdf"})
        html = "<html><style>h1{color:red}</style><h1>2026-10 考核报告</h1></html>"
        return httpx.Response(200, text=html, headers={"content-type": "text/html; charset=utf-8"})

    app = build(ConsoleSettings(), transport=httpx.MockTransport(services))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
        browser.cookies.set("console-session", token(P, Role.IT_OFFICE_OPERATOR))
        page = await browser.get("/oversight/report", params={"period": "2026-10"})
        pdf = await browser.get("/oversight/report", params={"period": "2026-10", "format": "pdf"})
        odd = await browser.get("/oversight/report", params={"period": "../x"})
    assert page.status_code == 200 and "2026-10 考核报告" in page.text
    assert page.headers["content-security-policy"].startswith("sandbox;")  # its own styles, no script, no form
    assert pdf.content.startswith(b"%PDF") and "evaluation-2026-10.pdf" in pdf.headers["content-disposition"]
    reports = [r for r in asked if "/evaluation/" in r.url.path]
    assert [r.url.path for r in reports[:2]] == [
        "/evaluation/periods/2026-10/report.html",
        "/evaluation/periods/2026-10/report.pdf",
    ]
    assert all(r.headers["authorization"].startswith("Bearer ") for r in reports)
    assert odd.status_code == 200 and not any(".." in r.url.path for r in asked)  # last month's instead


async def test_a_notice_of_criticism_is_the_auditors_document_passed_on_sandboxed_or_as_a_pdf() -> None:
    asked: list[httpx.Request] = []

    def services(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/inbox/"):
            return httpx.Response(200, json={"total": 0, "items": []})
        asked.append(request)
        if request.url.path.endswith(".pdf"):
            return httpx.Response(200, content=b"%PDF-1.7 notice", headers={"content-type": "application/pdf"})
        html = "<html><h1>关于对市场监管局的通报批评</h1></html>"
        return httpx.Response(200, text=html, headers={"content-type": "text/html; charset=utf-8"})

    app = build(ConsoleSettings(), transport=httpx.MockTransport(services))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
        browser.cookies.set("console-session", token(P, Role.CATALOG_COMPILER))
        page = await browser.get("/oversight/finding/notice", params={"id": "F0123ABC"})
        pdf = await browser.get("/oversight/finding/notice", params={"id": "F0123ABC", "format": "pdf"})
        odd = await browser.get("/oversight/finding/notice", params={"id": "../x"})
    assert page.status_code == 200 and "通报批评" in page.text
    assert page.headers["content-security-policy"].startswith("sandbox;")
    assert pdf.content.startswith(b"%PDF") and 'filename="notice-F0123ABC.pdf"' in pdf.headers["content-disposition"]
    assert [r.url.path for r in asked] == ["/findings/F0123ABC/notice.html", "/findings/F0123ABC/notice.pdf"]
    assert all(r.headers["authorization"].startswith("Bearer ") for r in asked)
    assert odd.status_code == 404  # never sent on


async def test_the_findings_filter_for_all_statuses_and_its_pages_carry_no_empty_filter() -> None:
    asked: list[httpx.Request] = []

    def services(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if request.url.path.startswith("/inbox/"):
            return httpx.Response(200, json={"total": 0, "items": []})
        if request.url.path == "/departments":
            return httpx.Response(200, json=CANNED["/departments"])
        return httpx.Response(200, json={"total": 45, "offset": 0, "limit": 20, "items": []})

    app = build(ConsoleSettings(), transport=httpx.MockTransport(services))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as browser:
        browser.cookies.set("console-session", token(P, Role.IT_OFFICE_OPERATOR))
        every = await browser.get("/oversight/findings", params={"department": "", "status": ""})  # 全部, as sent
        odd = await browser.get("/oversight/findings", params={"status": "NOT_A_STATUS", "offset": 20})
        chosen = await browser.get("/oversight/findings", params={"department": P, "status": "OPEN"})
    assert [r.status_code for r in (every, odd, chosen)] == [200, 200, 200], every.text[-800:]
    findings = [dict(r.url.params) for r in asked if r.url.path == "/findings"]
    assert findings == [
        {"offset": "0", "limit": "20"},
        {"offset": "20", "limit": "20"},
        {"offset": "0", "limit": "20", "department_code": P, "status": "OPEN"},
    ]

    def links(page: httpx.Response) -> list[dict[str, list[str]]]:
        nav = page.text[page.text.index('class="pager"') :]
        return [parse_qs(urlsplit(href.replace("&amp;", "&")).query, keep_blank_values=True)
                for href in re.findall(r'<a href="([^"]+)"', nav)]  # fmt: skip

    assert links(every) == [{"offset": ["20"]}]
    assert links(odd) == [{"offset": ["0"]}, {"offset": ["40"]}]
    assert links(chosen) == [{"department": [P], "status": ["OPEN"], "offset": ["20"]}]


def test_pages_waiting_for_their_charts_leave_the_default_thread_pool_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawing is held until the event is set: meanwhile the loop's default pool (getaddrinfo's) must answer."""
    drawing = threading.Event()
    release = threading.Event()

    def held(chart: Bars) -> str:
        drawing.set()
        release.wait(60)
        return "<svg/>"

    monkeypatch.setattr(charts, "bar_svg", held)

    async def dashboards() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))
        pages = [asyncio.create_task(charts.draw({"a": Bars("t", ["x"], [1])})) for _ in range(3)]
        try:
            await asyncio.to_thread(drawing.wait, 60)  # one page is drawing, the others wait their turn
            resolved = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo("localhost", 80), 30)
            assert resolved
        finally:
            release.set()
        assert [len(p) for p in await asyncio.gather(*pages)] == [1, 1, 1]

    asyncio.run(dashboards())
