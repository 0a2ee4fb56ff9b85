"""The console's sharing pages over HTTP as a browser uses them, against the real directory and exchange: a
consumer department's data administrator applies for a conditional resource, the provider's sees it among the
incoming requests with its working-day deadline (overdue in red), approves narrower or denies with reasons, and
each sees the state; the consumer browses the granted data online (each page a DataAccessed event), the
provider revokes the grant, a denial is disputed and ruled on; the exchange's refusals come back as pages that
say the reason in plain Chinese (the grant revoked, with its reason; a purpose not the grant's; another
department's grant; the role a step needs). A consumer subscribes to the unconditional items and lists its
subscriptions, and asks the provider's consent to publish some of them (Art. 18), which the provider gives."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from common.codec import EventCodec
from tests.integration.conftest import read_topic
from tests.integration.console_platform import csrf_of, sign_in
from tests.integration.console_sharing_platform import REQUEST_ID, Sharing, sharing_platform


@pytest.fixture(scope="module")
async def sharing(infra, topics, tmp_path_factory) -> AsyncIterator[Sharing]:
    async with sharing_platform(infra, tmp_path_factory.mktemp("console-sharing")) as running:
        yield running


async def apply(browser: httpx.AsyncClient, fields: dict) -> httpx.Response:
    token = csrf_of(await browser.get("/requests/new"))
    return await browser.post("/requests/new", data={"csrf_token": token, **fields})


async def test_a_consumer_applies_and_the_provider_approves_narrower_or_denies(sharing: Sharing) -> None:
    url = sharing.console.url
    async with httpx.AsyncClient(base_url=url) as consumer, httpx.AsyncClient(base_url=url) as provider:
        await sign_in(consumer, *sharing.logins["consumer"])
        await sign_in(provider, *sharing.logins["provider"])
        form = {
            "resource_code": sharing.resource,
            "items": "统一社会信用代码\n企业名称\n法定代表人",
            "regions": "3608",
            "purpose": "行政审批核验",
            "channels": ["API", "ONLINE_BROWSE"],
            "valid_to": "2027-09-30",
        }
        # the exchange's refusal comes back on the form, with what was typed kept
        refused = await apply(consumer, form | {"channels": []})
        assert refused.status_code == 422 and 'class="error"' in refused.text and "行政审批核验" in refused.text

        filed = await apply(consumer, form)
        assert filed.status_code == 303, filed.text
        rid = REQUEST_ID.search(filed.headers["location"]).group(1)
        shown = await consumer.get(filed.headers["location"])
        assert "待决定" in shown.text and "2026-10-20" in shown.text and "法定代表人" in shown.text
        assert "作出决定" not in shown.text  # the applicant does not decide

        # the provider's incoming requests: the deadline passed (today is after 2026-10-20), in red
        incoming = await provider.get("/requests")
        row = next(line for line in incoming.text.splitlines() if "2026-10-20" in line and "overdue" in line)
        assert "已逾期" in row
        assert rid in incoming.text
        mine = await consumer.get("/requests")
        assert rid in mine.text and "已逾期" not in mine.text

        # the applicant posting a decision is refused by the exchange, shown as a page
        token = csrf_of(await consumer.get(f"/requests/view?id={rid}"))
        forged = {"csrf_token": token, "request_id": rid, "decision": "APPROVED", "reasons": "自批"}
        denied = await consumer.post("/requests/decide", data=forged)
        assert denied.status_code == 403, denied.status_code

        # approved narrower: two items, the city's own registrations
        page = await provider.get(f"/requests/view?id={rid}")
        assert "作出决定" in page.text
        decision = {
            "csrf_token": csrf_of(page),
            "request_id": rid,
            "decision": "APPROVED",
            "reasons": "审批核验所需",
            "items": "统一社会信用代码\n企业名称",
            "regions": "360800",
        }
        decided = await provider.post("/requests/decide", data=decision)
        assert decided.status_code == 303, decided.text
        seen = (await consumer.get(f"/requests/view?id={rid}")).text
        assert "已同意" in seen and "审批核验所需" in seen
        granted = seen.split("同意的数据项")[1].split("</dd>")[0]
        assert "企业名称" in granted and "法定代表人" not in granted
        assert "360800" in seen.split("同意的数据范围")[1].split("</dd>")[0]
        # decided, it leaves the provider's list of those awaiting a decision; the applicant still lists it
        assert rid not in (await provider.get("/requests")).text
        assert rid in (await consumer.get("/requests")).text

        # another decision after it is the exchange's 409, worded on the request's page; the same one again (a
        # second click) shows the decision
        again = await provider.post("/requests/decide", data=decision | {"decision": "DENIED"})
        assert again.status_code == 409 and "已经答复（已同意）" in refusal_of(again)
        repeated = await provider.post("/requests/decide", data=decision)
        assert repeated.status_code == 303 and repeated.headers["location"] == f"/requests/view?id={rid}"

        # another application, denied with reasons
        second = await apply(consumer, form | {"purpose": "统计分析"})
        rid2 = REQUEST_ID.search(second.headers["location"]).group(1)
        page = await provider.get(f"/requests/view?id={rid2}")
        no = {"csrf_token": csrf_of(page), "request_id": rid2, "decision": "DENIED", "reasons": "用途与职责无关"}
        assert (await provider.post("/requests/decide", data=no)).status_code == 303
        seen = (await consumer.get(f"/requests/view?id={rid2}")).text
        assert "已拒绝" in seen and "用途与职责无关" in seen


PURPOSE = "市场主体核验"  # the consumer's application states it; the grant carries it
GRANT_ID = re.compile(r"/grants/view\?id=([^&\"]+)")


def refusal_of(page: httpx.Response) -> str:
    """The words of a refusal page (the reason, as the console words it)."""
    return page.text.split('id="refusal">')[1].split("</p>")[0]


def browse_rows(page: str) -> list[list[str]]:
    """The cells of the browse table, row by row (the subject and update time columns left out)."""
    body = page.split('id="browse-rows"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>")[1], re.S)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[1:-1] for row in rows]


async def approved_grant(sharing: Sharing, consumer: httpx.AsyncClient, provider: httpx.AsyncClient) -> str:
    """The consumer applies for three items of every region, by API and online browse; the provider grants two
    items of the city's own registrations. The grant's id, as the request's page links to it."""
    form = {
        "resource_code": sharing.resource,
        "items": "统一社会信用代码\n企业名称\n法定代表人",
        "regions": "3608",
        "purpose": PURPOSE,
        "channels": ["API", "ONLINE_BROWSE"],
        "valid_to": "2027-09-30",
    }
    filed = await apply(consumer, form)
    rid = REQUEST_ID.search(filed.headers["location"]).group(1)
    page = await provider.get(f"/requests/view?id={rid}")
    decision = {"csrf_token": csrf_of(page), "request_id": rid, "decision": "APPROVED", "reasons": "核验所需"}
    narrower = decision | {"items": "统一社会信用代码\n企业名称", "regions": "360800"}
    assert (await provider.post("/requests/decide", data=narrower)).status_code == 303
    return GRANT_ID.search((await consumer.get(f"/requests/view?id={rid}")).text).group(1)


async def test_the_consumer_browses_exactly_the_granted_items_and_rows_and_the_provider_revokes(
    infra, sharing: Sharing
) -> None:
    url = sharing.console.url
    async with httpx.AsyncClient(base_url=url) as consumer, httpx.AsyncClient(base_url=url) as provider:
        await sign_in(consumer, *sharing.logins["consumer"])
        await sign_in(provider, *sharing.logins["provider"])
        grant = await approved_grant(sharing, consumer, provider)

        # each side lists it: held by the consumer, given by the provider
        held = (await consumer.get("/grants")).text
        assert grant in held.split("本部门给出的授权")[0]
        assert grant in (await provider.get("/grants")).text.split("本部门给出的授权")[1]
        terms = await consumer.get(f"/grants/view?id={grant}")
        assert "在线浏览授权数据" in terms.text and "撤销授权" not in terms.text

        # nothing is read before the person states the purpose on the form
        form = await consumer.get(f"/browse?grant={grant}")
        assert form.status_code == 200 and 'id="purpose-needed"' in form.text and 'id="browse-rows"' not in form.text
        # the page shows the two granted items of the two city enterprises, none of the county's
        page = await consumer.get("/browse", params={"grant": grant, "purpose": PURPOSE})
        assert page.status_code == 200, page.text
        header = page.text.split('id="browse-rows"')[1].split("</thead>")[0]
        assert re.findall(r'<th scope="col">(.*?)</th>', header) == ["主体", "统一社会信用代码", "企业名称", "更新时间"]
        assert sorted(browse_rows(page.text)) == sorted([key, name] for key, name in sharing.city)
        assert all(name not in page.text for _, name in sharing.county) and "张0" not in page.text
        # filtered on a shown value, and one column chosen
        key, name = sharing.city[1]
        chosen = {"grant": grant, "purpose": PURPOSE, "contains": name, "items": "企业名称"}
        narrowed = await consumer.get("/browse", params=chosen)
        assert browse_rows(narrowed.text) == [[name]]
        # a purpose other than the grant's is the exchange's refusal, recorded with the purpose stated
        elsewhere = await consumer.get("/browse", params={"grant": grant, "purpose": "招商引资名单"})
        assert elsewhere.status_code == 403 and "无权执行此操作" in elsewhere.text
        assert "用途不一致" in refusal_of(elsewhere) and "访问规则" not in refusal_of(elsewhere)

        # each exchange page was read as an access, recorded by the exchange like an API call (a console page
        # follows `next` across key ranges: the rows of one may come in more than one access)
        codec = EventCodec.from_folder()

        def browsed(record) -> bool:
            return grant.encode() in record.value and b"browse" in record.value

        def settled(events: list[dict]) -> bool:
            shown = [e for e in events if e["result"] == "SERVED"]
            whole = sum(e["record_count"] for e in shown if e["items"] == ["统一社会信用代码", "企业名称"])
            one = sum(e["record_count"] for e in shown if e["items"] == ["企业名称"])
            return whole == 2 and one == 1 and any(e["result"] == "REFUSED" for e in events)

        deadline, events = time.monotonic() + 30, []
        while not settled(events):
            assert time.monotonic() < deadline, events
            records = await read_topic(infra.bootstrap, "exchange.data-accesses", len(events) + 1, 30, browsed)
            events = [codec.decode(r.value)[1] for r in records]
        assert {(e["channel"], e["operation"], e["grant_id"]) for e in events} == {("ONLINE_BROWSE", "browse", grant)}
        [refusal] = [e for e in events if e["result"] == "REFUSED"]
        assert refusal["purpose"] == "招商引资名单"  # the reason the auditor's out-of-purpose finding reads
        assert refusal["reason"].startswith("the stated purpose is not the grant's")
        served = [e for e in events if e["result"] == "SERVED" and e["record_count"]]
        assert {len(e["subject_hashes"]) for e in served} <= {1, 2} and key not in str(events)
        assert all(e["purpose"] == PURPOSE for e in events if e["result"] == "SERVED")

        # another department's browse of this grant is the exchange's refusal, in Chinese
        refused = await provider.get("/browse", params={"grant": grant, "purpose": PURPOSE})
        assert refused.status_code == 403 and "无权执行此操作" in refused.text
        assert "属于其他部门" in refusal_of(refused)

        # the provider's data administrator revokes it with a reason; the consumer's browse is refused after
        given = await provider.get(f"/grants/view?id={grant}")
        assert "撤销授权" in given.text
        revoked = await provider.post(
            "/grants/revoke", data={"csrf_token": csrf_of(given), "grant_id": grant, "reason": "核验已完成"}
        )
        assert revoked.status_code == 303, revoked.text
        shown = (await consumer.get(f"/grants/view?id={grant}")).text
        assert "已撤销" in shown and "核验已完成" in shown and "在线浏览授权数据" not in shown
        # the exchange trusts its copy of a grant for a second (EXCHANGE_GRANT_CACHE_SECONDS): refused within it
        deadline = time.monotonic() + 30
        while (after := await consumer.get("/browse", params={"grant": grant, "purpose": PURPOSE})).status_code == 200:
            assert time.monotonic() < deadline, "a revoked grant still opens its data"
            await asyncio.sleep(0.3)
        assert after.status_code == 403 and "无权执行此操作" in after.text
        # the reason, in plain Chinese, with the provider's own reason and what the consumer can do next
        assert "已被提供部门撤销" in refusal_of(after) and "核验已完成" in refusal_of(after)
        assert "重新提出共享申请" in after.text and 'href="/requests/new"' in after.text


async def test_a_denial_is_disputed_and_ruled_and_the_application_printed(sharing: Sharing) -> None:
    url = sharing.console.url
    async with (
        httpx.AsyncClient(base_url=url) as consumer,
        httpx.AsyncClient(base_url=url) as provider,
        httpx.AsyncClient(base_url=url) as office,
    ):
        await sign_in(consumer, *sharing.logins["consumer"])
        await sign_in(provider, *sharing.logins["provider"])
        await sign_in(office, *sharing.logins["it-office"])
        form = {
            "resource_code": sharing.resource,
            "items": "统一社会信用代码\n企业名称\n法定代表人",
            "regions": "3608",
            "purpose": "失信联合惩戒",
            "channels": ["ONLINE_BROWSE"],
            "valid_to": "2027-09-30",
        }
        filed = await apply(consumer, form)
        assert filed.status_code == 303, re.findall(r"class=\"error\"[^<]*<", filed.text)
        rid = REQUEST_ID.search(filed.headers["location"]).group(1)
        page = await provider.get(f"/requests/view?id={rid}")
        no = {"csrf_token": csrf_of(page), "request_id": rid, "decision": "DENIED", "reasons": "不属于职责范围"}
        assert (await provider.post("/requests/decide", data=no)).status_code == 303

        # the printable application: the exchange's PDF, shown in place
        printed = await consumer.get(f"/requests/form?id={rid}")
        assert printed.status_code == 200 and printed.content.startswith(b"%PDF")
        assert printed.headers["content-disposition"].startswith("inline")

        # the applicant disputes; the provider is offered no dispute form, the IT office a ruling
        page = await consumer.get(f"/requests/view?id={rid}")
        assert "提出异议" in page.text and "提出异议" not in (await provider.get(f"/requests/view?id={rid}")).text
        grounds = {"csrf_token": csrf_of(page), "request_id": rid, "grounds": "该数据为履职必需"}
        assert (await consumer.post("/requests/dispute", data=grounds)).status_code == 303
        listed = await office.get("/disputes")
        assert listed.status_code == 200 and rid in listed.text and "该数据为履职必需" in listed.text
        assert (await consumer.get("/disputes")).status_code == 403  # every department's disputes: oversight's
        ruling_page = await office.get(f"/requests/view?id={rid}")
        assert "该数据为履职必需" in ruling_page.text and "协调裁定" in ruling_page.text
        # a ruling posted by the applicant is the exchange's refusal
        forged = grounds | {"outcome": "DECISION_OVERTURNED", "reasons": "自裁"}
        assert (await consumer.post("/requests/ruling", data=forged)).status_code == 403
        ruling = {
            "csrf_token": csrf_of(ruling_page),
            "request_id": rid,
            "outcome": "DECISION_OVERTURNED",
            "reasons": "属于履职所需，予以共享",
            "items": "企业名称\n法定代表人",
        }
        assert (await office.post("/requests/ruling", data=ruling)).status_code == 303
        assert rid not in (await office.get("/disputes")).text  # ruled: no longer awaiting the IT office
        seen = (await consumer.get(f"/requests/view?id={rid}")).text
        assert "改变原决定" in seen and "属于履职所需" in seen and "提请领导小组裁定" in seen
        # a second ruling is the exchange's 409 on the request's page
        again = await office.post("/requests/ruling", data=ruling)
        assert again.status_code == 409 and 'class="error"' in again.text
        # the ruling issued a grant of the items it named and the regions applied for (3608: the city and its
        # counties): the consumer browses them, the sensitive item masked
        grant = GRANT_ID.search(seen).group(1)
        rows = browse_rows((await consumer.get("/browse", params={"grant": grant, "purpose": "失信联合惩戒"})).text)
        assert sorted(rows) == sorted([name, "***"] for _, name in sharing.city + sharing.county)


async def test_a_consumer_subscribes_to_unconditional_items_and_asks_consent_to_publish(sharing: Sharing) -> None:
    url = sharing.console.url
    async with (
        httpx.AsyncClient(base_url=url) as consumer,
        httpx.AsyncClient(base_url=url) as provider,
        httpx.AsyncClient(base_url=url) as office,
    ):
        await sign_in(consumer, *sharing.logins["consumer"])
        await sign_in(provider, *sharing.logins["provider"])
        await sign_in(office, *sharing.logins["it-office"])
        form = await consumer.get("/subscriptions/new", params={"resource": sharing.resource})
        assert form.status_code == 200 and f'value="{sharing.resource}"' in form.text
        fields = {
            "csrf_token": csrf_of(form),
            "resource_code": sharing.resource,
            "purpose": "企业名称核对",
            "channels": ["API", "ONLINE_BROWSE"],
            "valid_to": "2027-06-30",
        }
        # an item shared on conditions is the exchange's refusal, on the form kept as typed
        conditional = await consumer.post("/subscriptions/new", data=fields | {"items": "法定代表人"})
        assert conditional.status_code == 422 and 'id="refusal"' in conditional.text
        assert "企业名称核对" in conditional.text and "法定代表人 是有条件共享的数据项" in refusal_of(conditional)
        # a role that may not subscribe is told which may
        refused = await office.post("/subscriptions/new", data=fields | {"csrf_token": csrf_of(await office.get("/"))})
        assert refused.status_code == 403 and "数据管理员" in refusal_of(refused)

        # a channel the entry does not offer, a period already over: the exchange's reasons, in Chinese
        for wrong in ({"channels": ["OFFLINE"]}, {"valid_from": "2026-01-01", "valid_to": "2026-02-01"}):
            said = await consumer.post("/subscriptions/new", data=fields | wrong)
            assert said.status_code == 422 and 'id="refusal-detail"' not in said.text, said.text[-1500:]
            assert not re.search(r"[A-Za-z]{3,}", refusal_of(said)), refusal_of(said)

        # sent twice at once (a double click), the form makes one subscription
        twice = fields | {"once": re.search(r'name="once" value="([^"]+)"', form.text).group(1)}
        subscribed, again = await asyncio.gather(
            consumer.post("/subscriptions/new", data=twice), consumer.post("/subscriptions/new", data=twice)
        )
        assert subscribed.status_code == again.status_code == 303, subscribed.text[-1500:]
        assert subscribed.headers["location"] == again.headers["location"]
        grant = GRANT_ID.search(subscribed.headers["location"]).group(1)
        terms = (await consumer.get(f"/grants/view?id={grant}")).text
        assert "统一社会信用代码、企业名称" in terms and "有效" in terms and "来自申请" not in terms
        listed = await consumer.get("/subscriptions")
        assert listed.status_code == 200 and f'data-grant="{grant}"' in listed.text
        assert len(re.findall(r'<tr data-grant="', listed.text)) == 1  # one subscription from the two clicks
        theirs_listed = await provider.get("/subscriptions")
        assert theirs_listed.status_code == 200 and f'data-grant="{grant}"' not in theirs_listed.text  # the consumer's
        # read as a subscription: online browse shows the two unconditional items of every region
        page = await consumer.get("/browse", params={"grant": grant, "purpose": "企业名称核对"})
        assert sorted(browse_rows(page.text)) == sorted([k, n] for k, n in sharing.city + sharing.county)

        # Art. 18: the consumer asks the provider's consent to publish one item; the provider consents
        assert "申请对外发布同意" in terms
        ask = await consumer.get("/consents/new", params={"grant": grant})
        asked = {
            "csrf_token": csrf_of(ask),
            "grant_id": grant,
            "items": "企业名称",
            "audience": "市政府门户网站",
            "purpose": "公示本市登记企业名单",
        }
        outside = await consumer.post("/consents/new", data=asked | {"items": "法定代表人"})
        assert outside.status_code == 422 and "不在授权范围内：法定代表人" in refusal_of(outside)
        assert "市政府门户网站" in outside.text  # the form kept as typed
        asked["once"] = re.search(r'name="once" value="([^"]+)"', ask.text).group(1)
        filed, again = await asyncio.gather(
            consumer.post("/consents/new", data=asked), consumer.post("/consents/new", data=asked)
        )
        assert filed.status_code == again.status_code == 303, filed.text[-1500:]
        assert filed.headers["location"] == again.headers["location"]  # one consent asked from the two clicks
        consent = filed.headers["location"].split("id=")[1]
        assert f'data-consent="{consent}"' in (await provider.get("/consents")).text.split("待本部门答复")[1]
        shown = await provider.get(f"/consents/view?id={consent}")
        assert "待决定" in shown.text and "市政府门户网站" in shown.text and 'action="/consents/decide"' in shown.text
        theirs = await consumer.get(f"/consents/view?id={consent}")
        assert 'action="/consents/decide"' not in theirs.text
        # the consumer's own decision is the exchange's refusal, worded
        own = {"csrf_token": csrf_of(theirs), "consent_id": consent, "decision": "APPROVED", "reasons": "自批"}
        forged = await consumer.post("/consents/decide", data=own)
        assert forged.status_code == 403 and "本部门" in refusal_of(forged)
        yes = own | {"csrf_token": csrf_of(shown), "reasons": "名称属公开信息"}
        assert (await provider.post("/consents/decide", data=yes)).status_code == 303
        repeated = await provider.post("/consents/decide", data=yes)  # a second click: the decision is shown
        assert repeated.status_code == 303 and repeated.headers["location"] == f"/consents/view?id={consent}"
        seen = (await consumer.get(f"/consents/view?id={consent}")).text
        assert "已同意" in seen and "名称属公开信息" in seen
        mine = (await consumer.get("/consents")).text.split("待本部门答复")[0]
        assert f'data-consent="{consent}"' in mine
