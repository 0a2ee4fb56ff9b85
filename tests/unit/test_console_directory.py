"""The department's page and a finding's page as the console draws them from the services' answers (canned
here; tests/integration/test_console_city.py runs the real directory and auditor): whose logins are shown, the
one-time password, what was typed kept beside a refusal, a deactivation confirmed first, a rename that would
undo someone else's change, ids that are not one path segment, and a service's answer that is not JSON."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

import httpx

from common.policy import Role
from services.console.main import build
from services.console.settings import ConsoleSettings
from tests.tokens import token

P, Q = "11360800MB0000001X", "11360800MB0000002X"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TOMORROW = (date.today() + timedelta(days=2)).isoformat()  # in Beijing too, whatever the hour


@dataclass
class Services:
    """The directory's and the auditor's answers the pages read; every request the console sent."""

    sent: list[tuple[str, str, object]] = field(default_factory=list)
    department: dict = field(
        default_factory=lambda: {"code": P, "name": "市场监管局", "level": "CITY", "parent_code": None, "active": True}
    )
    logins_shown: bool = True  # the directory shows logins to those who administer people only
    answers: dict[tuple[str, str], httpx.Response] = field(default_factory=dict)
    finding: dict = field(
        default_factory=lambda: {
            "finding_id": "F1",
            "department_code": P,
            "article": "第二十四条（一）",
            "category": "CATALOG_NOT_MAINTAINED",
            "matter": "entry:101001/000001",
            "description": "目录逾期未更新",
            "evidence": ["UPDATE_AFTER_CHANGE due 2026-10-16"],
            "detected_on": "2026-10-09",
            "raised_by": "zhang.itoffice",
            "correct_by": TOMORROW,
            "status": "OPEN",
            "occurrences": 1,
            "corrected_on": None,
            "proof": None,
            "escalated_on": None,
        }
    )

    def people(self) -> list[dict]:
        found = [
            {"person_id": "wang.admin", "name": "王管理", "roles": ["data_administrator"], "active": True},
            {"person_id": "li.old", "name": "李前任", "roles": [], "active": False},
        ]
        return [p | {"department_code": P, "person_id": p["person_id"] if self.logins_shown else None} for p in found]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path.startswith("/inbox/"):
            return httpx.Response(200, json={"total": 0, "items": []})
        body = json.loads(request.content) if request.content else None
        self.sent.append((method, path, body))
        if (method, path) in self.answers:
            return self.answers[(method, path)]
        if path == f"/departments/{P}" and method == "GET":
            return httpx.Response(200, json=self.department)
        if path == f"/departments/{P}/people":
            return httpx.Response(200, json=self.people())
        if path == f"/departments/{P}/data-administrators":
            # as the directory answers: the names to every reader, the logins to those who administer people
            shown = self.logins_shown
            appointment = {
                "department_code": P,
                "since": "2026-10-01",
                "registered_by": "it-op" if shown else None,
                "person_id": "wang.admin" if shown else None,
                "person_name": "王管理",
                "replaces_person_id": "li.old" if shown else None,
                "replaces_person_name": "李前任",
            }
            return httpx.Response(200, json=[appointment])
        if path == "/departments":
            return httpx.Response(200, json=[self.department])
        if path == "/findings/F1":
            return httpx.Response(200, json=self.finding)
        return httpx.Response(404, json={"message": "没有这一项"})

    def posted(self) -> list[tuple[str, str, object]]:
        return [s for s in self.sent if s[0] in ("POST", "PUT")]


@asynccontextmanager
async def browser(services: Services, *roles: Role, department: str = P) -> AsyncIterator[httpx.AsyncClient]:
    app = build(ConsoleSettings(), transport=httpx.MockTransport(services))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        client.cookies.set("console-session", token(department, *roles, subject="it-op"))
        yield client


async def post_from(client: httpx.AsyncClient, shown: httpx.Response, action: str, form: dict) -> httpx.Response:
    """A form posted from a page already shown (its CSRF token)."""
    found = CSRF.search(shown.text)
    assert found, shown.text[-800:]
    return await client.post(action, data={"csrf_token": found[1]} | form)


async def posting(client: httpx.AsyncClient, page: str, action: str, form: dict) -> httpx.Response:
    """A form posted from the page it is on, read first."""
    return await post_from(client, await client.get(page), action, form)


DEPARTMENT_PAGE = f"/city/department?code={P}"
OFFICE = Role.IT_OFFICE_OPERATOR


# -- whose logins are shown ---------------------------------------------------------------------------------


async def test_appointments_show_names_and_logins_only_where_the_directory_showed_the_people_s_logins() -> None:
    services = Services(logins_shown=False)
    async with browser(services, Role.CATALOG_COMPILER, department=Q) as compiler:
        page = await compiler.get(DEPARTMENT_PAGE)
    assert page.status_code == 200
    assert "wang.admin" not in page.text and "li.old" not in page.text  # the appointments' logins
    assert "2026-10-01 登记" in page.text and "接替" in page.text

    services = Services()
    async with browser(services, OFFICE) as office:
        page = await office.get(DEPARTMENT_PAGE)
    assert re.search(r"2026-10-01 登记 王管理 <code>wang.admin</code>（接替 李前任 <code>li.old</code>）", page.text)


async def test_a_finding_names_the_it_office_to_the_department_and_its_operator_to_the_it_office() -> None:
    services = Services()
    async with browser(services, Role.CATALOG_COMPILER) as department:
        page = await department.get("/oversight/finding?id=F1")
    assert page.status_code == 200 and "zhang.itoffice" not in page.text and "市信息化工作办公室" in page.text
    async with browser(services, OFFICE) as office:
        page = await office.get("/oversight/finding?id=F1")
    assert "zhang.itoffice" in page.text


# -- the one-time password ----------------------------------------------------------------------------------


async def test_the_initial_password_is_shown_from_the_directory_s_answer_even_when_its_reads_fail() -> None:
    services = Services()
    async with browser(services, OFFICE) as office:
        shown = await office.get(DEPARTMENT_PAGE)
        # from now on the directory's reads fail: the registration's answer is all the page needs
        for read in ("", "/people", "/data-administrators"):
            services.answers[("GET", f"/departments/{P}{read}")] = httpx.Response(503)
        services.answers[("POST", "/people")] = httpx.Response(201, json={"login": "zhao.new", "secret": "S3cr3t"})
        added = await post_from(
            office,
            shown,
            "/city/people/add",
            {"department_code": P, "person_id": "zhao.new", "name": "赵新", "roles": ["catalog_compiler"]},
        )
    assert added.status_code == 200, added.text[-800:]
    assert '<code class="secret">S3cr3t</code>' in added.text and "zhao.new" in added.text
    assert "赵新" in added.text and "目录编制人" in added.text


async def test_a_registration_posted_again_says_the_login_is_taken_and_offers_a_new_password() -> None:
    services = Services()
    taken = {"message": "登录名已被使用", "field": "person_id"}
    services.answers[("POST", "/people")] = httpx.Response(409, json=taken)
    async with browser(services, OFFICE) as office:
        form = {"department_code": P, "person_id": "wang.admin", "name": "王管理", "roles": ["catalog_reviewer"]}
        again = await posting(office, DEPARTMENT_PAGE, "/city/people/add", form)
        assert again.status_code == 409 and "已登记为本部门的王管理" in again.text
        assert 'action="/city/people/reset-password"' in again.text
        new = {"login": "wang.admin", "secret": "N3w-once"}
        services.answers[("POST", "/people/wang.admin/reset-password")] = httpx.Response(200, json=new)
        reset = await post_from(
            office,
            again,
            "/city/people/reset-password",
            {"department_code": P, "person_id": "wang.admin", "name": "王管理"},
        )
    assert reset.status_code == 200 and '<code class="secret">N3w-once</code>' in reset.text and "新密码" in reset.text
    assert ("POST", "/people/wang.admin/reset-password", None) in services.sent


# -- what was typed, kept beside a refusal -----------------------------------------------------------------


async def test_a_refused_registration_keeps_the_login_the_name_and_the_roles_typed() -> None:
    services = Services()
    services.answers[("POST", "/people")] = httpx.Response(422, json={"message": "角色不适用", "field": "roles"})
    async with browser(services, OFFICE) as office:
        form = {"department_code": P, "person_id": "zhao.typed", "name": "赵某某", "roles": ["catalog_reviewer"]}
        refused = await posting(office, DEPARTMENT_PAGE, "/city/people/add", form)
    assert refused.status_code == 422 and "角色不适用" in refused.text
    assert 'value="zhao.typed"' in refused.text and 'value="赵某某"' in refused.text
    assert 'value="catalog_reviewer" checked' in refused.text and 'value="catalog_compiler" checked' not in refused.text


async def test_a_refused_rename_keeps_the_name_typed() -> None:
    services = Services()
    services.answers[("PUT", f"/departments/{P}")] = httpx.Response(
        422, json={"message": "名称不合规", "field": "name"}
    )
    async with browser(services, OFFICE) as office:
        form = {"department_code": P, "name": "新的部门名称", "seen_parent_code": "", "seen_active": "true"}
        refused = await posting(office, DEPARTMENT_PAGE, "/city/department/rename", form)
    assert refused.status_code == 422 and 'value="新的部门名称"' in refused.text


async def test_a_refused_reactivation_keeps_the_reason_typed_in_its_person_s_row() -> None:
    services = Services()
    refusal = httpx.Response(409, json={"message": "该人员已在用", "field": "person_id"})
    services.answers[("POST", "/people/li.old/reactivate")] = refusal
    async with browser(services, OFFICE) as office:
        form = {"department_code": P, "person_id": "li.old", "reason": "误停用，经核实恢复"}
        refused = await posting(office, DEPARTMENT_PAGE, "/city/people/reactivate", form)
    assert refused.status_code == 409 and 'value="误停用，经核实恢复"' in refused.text


async def test_a_refused_correction_keeps_the_proof_typed() -> None:
    services = Services()
    services.answers[("POST", "/findings/F1/correction")] = httpx.Response(422, json={"message": "证明不完整"})
    async with browser(services, OFFICE) as office:
        form = {"finding_id": "F1", "proof": "已补传十一月数据，见交换记录"}
        refused = await posting(office, "/oversight/finding?id=F1", "/oversight/findings/correct", form)
    assert refused.status_code == 422 and ">已补传十一月数据，见交换记录</textarea>" in refused.text


async def test_a_refused_rectification_report_keeps_its_text_and_reference() -> None:
    services = Services()
    services.answers[("POST", "/findings/F1/report")] = httpx.Response(409, json={"message": "已有待核实的整改报告"})
    async with browser(services, Role.DATA_ADMINISTRATOR) as department:
        form = {"finding_id": "F1", "text": "已于十一月补录目录", "reference": "吉市监〔2026〕12号"}
        refused = await posting(department, "/oversight/finding?id=F1", "/oversight/findings/report", form)
    assert refused.status_code == 409 and ">已于十一月补录目录</textarea>" in refused.text
    assert 'value="吉市监〔2026〕12号"' in refused.text


async def test_a_rectification_report_s_logins_are_shown_to_the_it_office_only() -> None:
    services = Services()
    report = {"submitted_on": "2026-11-02", "submitted_by": "wang.admin", "text": "已整改", "reference": None}
    answered = {"answer": "REJECTED", "answered_on": "2026-11-03", "answered_by": "zhang.itoffice", "reason": "不全"}
    services.finding = services.finding | {"reports": [report | answered], "held": False}
    async with browser(services, Role.DATA_ADMINISTRATOR) as department:
        page = await department.get("/oversight/finding?id=F1")
    assert page.status_code == 200 and "已整改" in page.text
    assert "wang.admin" not in page.text and "zhang.itoffice" not in page.text
    async with browser(services, OFFICE) as office:
        page = await office.get("/oversight/finding?id=F1")
    assert "wang.admin" in page.text and "zhang.itoffice" in page.text


# -- deactivation, rename -----------------------------------------------------------------------------------


async def test_deactivating_asks_first_saying_the_roles_go_and_the_department_loses_its_data_administrator() -> None:
    services = Services()
    async with browser(services, OFFICE) as office:
        asked = await posting(
            office, DEPARTMENT_PAGE, "/city/people/deactivate", {"department_code": P, "person_id": "wang.admin"}
        )
        assert asked.status_code == 200 and services.posted() == []  # nothing sent yet
        assert "确认停用 王管理" in asked.text and "清除其全部角色" in asked.text and "数据管理员" in asked.text
        assert "部门将没有数据管理员" in asked.text and 'name="confirmed" value="yes"' in asked.text
        services.answers[("POST", "/people/wang.admin/deactivate")] = httpx.Response(204)
        done = await post_from(
            office,
            asked,
            "/city/people/deactivate",
            {"department_code": P, "person_id": "wang.admin", "confirmed": "yes"},
        )
    assert done.status_code == 303 and services.posted() == [("POST", "/people/wang.admin/deactivate", None)]


async def test_a_rename_is_not_sent_when_the_parent_or_state_changed_since_the_page_was_shown() -> None:
    services = Services()
    async with browser(services, OFFICE) as office:
        shown = await office.get(DEPARTMENT_PAGE)
        assert 'name="seen_active" value="true"' in shown.text
        services.department = services.department | {"parent_code": Q}  # someone re-parents it meanwhile
        stale = await post_from(
            office,
            shown,
            "/city/department/rename",
            {"department_code": P, "name": "新的部门名称", "seen_parent_code": "", "seen_active": "true"},
        )
    assert stale.status_code == 409 and "上级部门或状态已被他人修改" in stale.text
    assert 'value="新的部门名称"' in stale.text and services.posted() == []


# -- findings: overdue, merged --------------------------------------------------------------------------------


async def test_a_deadline_is_marked_overdue_only_once_it_has_passed() -> None:
    services = Services()
    async with browser(services, OFFICE) as office:
        before = await office.get("/oversight/finding?id=F1")
        services.finding = services.finding | {"correct_by": "2026-01-05"}
        after = await office.get("/oversight/finding?id=F1")
    assert "已逾期" not in before.text and 'class="overdue"' not in before.text
    assert '<span class="overdue">2026-01-05前（已逾期）</span>' in after.text


async def test_a_raise_merged_into_the_open_finding_on_its_matter_says_so() -> None:
    services = Services()
    merged = services.finding | {"occurrences": 2, "evidence": [*services.finding["evidence"], "新的证据"]}
    services.answers[("POST", "/findings")] = httpx.Response(201, json=merged)
    services.finding = merged
    async with browser(services, OFFICE) as office:
        form = {
            "department_code": P,
            "category": "CATALOG_NOT_MAINTAINED",
            "matter": "entry:101001/000001",
            "description": "又一次",
            "evidence": "新的证据",
            "request_id": "abc123",
        }
        raised = await posting(office, "/oversight/findings/new", "/oversight/findings/raise", form)
        assert raised.status_code == 303 and raised.headers["location"] == "/oversight/finding?id=F1&merged=true"
        page = await office.get(raised.headers["location"])
    assert "并入了这一事项" in page.text


# -- ids that are not one path segment; answers that are not JSON -------------------------------------------


async def test_a_finding_or_person_id_with_a_slash_is_refused_before_anything_is_sent() -> None:
    services = Services()
    async with browser(services, OFFICE) as office:
        shown = await office.get("/oversight/finding?id=F1/notice.html")
        notice = await office.get("/oversight/finding/notice?id=F1/x")
        corrected = await posting(
            office, DEPARTMENT_PAGE, "/oversight/findings/correct", {"finding_id": "F1/notice.html", "proof": "x"}
        )
        reactivated = await posting(
            office,
            DEPARTMENT_PAGE,
            "/city/people/reactivate",
            {"department_code": P, "person_id": "li/x", "reason": "r"},
        )
    for page in (shown, notice, corrected, reactivated):
        assert page.status_code == 422 and "不能含有" in page.text, page.text[-600:]
    assert not [path for _, path, _ in services.sent if path.startswith(("/findings/", "/people/"))]


async def test_a_service_answering_something_other_than_json_is_a_bad_gateway_page() -> None:
    services = Services()
    page = httpx.Response(200, text="<html>a proxy's page</html>", headers={"content-type": "text/html"})
    services.answers[("GET", "/findings/F1")] = page
    async with browser(services, OFFICE) as office:
        shown = await office.get("/oversight/finding?id=F1")
    assert shown.status_code == 502 and "答复无法识别" in shown.text and "a proxy" not in shown.text
