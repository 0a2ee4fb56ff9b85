"""A refusal in plain Chinese: the reasons the access policy and the exchange's checks really give (made by the
domain code itself here, so a reworded reason fails this test instead of falling back unnoticed) are each
worded with what the person can do next; a few reasons are matched from the exchange's fixed texts (FIXED_TEXTS
says which and where). Anything else is the service's own Chinese message, or a Chinese sentence with the
service's words in small print."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest

from common.errors import Invalid
from common.policy import AccessDenied, Principal, Role, Target, authorize
from services.console.clients import Refused
from services.console.refusals import ended_reason, explain
from services.exchange.domain.resources import ItemSpec, ResourceSchema
from services.exchange.sharing.access import resource_refusal, served_items, tightened
from services.exchange.sharing.grants import Channel, Grant, GrantStatus, RowScope

OURS, THEIRS = "11360800MB0000001X", "11360800MB0000002X"
TODAY = date(2026, 11, 2)
SCHEMA = ResourceSchema(
    "101001/000001",
    THEIRS,
    "企业登记",
    (ItemSpec("统一社会信用代码", "string"), ItemSpec("企业名称", "string")),
    "DAILY",
    version=1,
    share_methods=("API", "ONLINE_BROWSE"),
    confidentiality_reviewed_on=date(2026, 1, 5),
)
GRANT = Grant(
    "g1",
    "r1",
    SCHEMA.resource_code,
    THEIRS,
    OURS,
    None,
    ("统一社会信用代码", "企业名称"),
    RowScope(),
    "企业核验",
    frozenset({Channel.API, Channel.ONLINE_BROWSE}),
    date(2026, 10, 1),
    date(2026, 12, 31),
    1,
)
PERSON = Principal("p1", OURS, frozenset({Role.DATA_ADMINISTRATOR}))


ASCII_WORDS = re.compile(r"[A-Za-z]{3,}")


def denied(rule: str, reason: str) -> Refused:
    """The console's view of a 403 as common.guard answers it."""
    message = f"无权执行此操作：访问规则 {rule} 不允许您的角色或所在部门执行"
    return Refused(403, message, None, "access.denied", "exchange", rule, reason)


def policy_reason(principal: Principal, rule: str, target: Target | None = None) -> AccessDenied:
    with pytest.raises(AccessDenied) as refused:
        authorize(principal, rule, target)
    return refused.value


def grant_reason(grant: Grant, channel: Channel = Channel.ONLINE_BROWSE, purpose: str = "企业核验", **who) -> str:
    reason = grant.refusal(replace(PERSON, **who), channel, purpose, TODAY)
    assert reason is not None
    return reason


def test_a_wrong_role_is_told_which_roles_may_do_it() -> None:
    compiler = Principal("c1", OURS, frozenset({Role.CATALOG_COMPILER}))
    exc = policy_reason(compiler, "catalog.entry.review")
    said = explain(denied(exc.rule, exc.reason))
    assert "目录审核人" in said.message and "目录编制人" not in said.message
    assert "信息化工作办公室" in said.next_step
    revoker = policy_reason(compiler, "exchange.grant.revoke")
    assert "数据管理员" in explain(denied(revoker.rule, revoker.reason)).message


def test_the_policys_department_and_four_eyes_reasons_are_worded() -> None:
    reviewer = Principal("r1", OURS, frozenset({Role.CATALOG_REVIEWER}))
    own = policy_reason(reviewer, "catalog.entry.review", Target(department_code=THEIRS))
    assert "本部门" in explain(denied(own.rule, own.reason)).message
    four_eyes = policy_reason(reviewer, "catalog.entry.review", Target(OURS, compiled_by="r1"))
    said = explain(denied(four_eyes.rule, four_eyes.reason))
    assert "自己编制" in said.message and "另一位审核人" in said.next_step
    party = policy_reason(reviewer, "exchange.grant.read", Target(department_code=THEIRS))
    assert "申请部门、提供部门" in explain(denied(party.rule, party.reason)).message


def test_a_revoked_expired_or_ended_grant_says_why_and_to_apply_again() -> None:
    revoked = grant_reason(replace(GRANT, status=GrantStatus.REVOKED, ended_reason="核验已完成"))
    said = explain(denied("exchange.share.read", revoked))
    assert "已被提供部门撤销" in said.message and "撤销理由：核验已完成" in said.message
    assert "重新提出共享申请" in said.next_step and said.link == ("/requests/new", "提出共享申请")

    expired = explain(denied("exchange.share.read", grant_reason(replace(GRANT, valid_to=date(2026, 10, 31)))))
    assert "已于 2026-10-31 到期" in expired.message and "重新提出共享申请" in expired.next_step
    early = explain(denied("exchange.share.read", grant_reason(replace(GRANT, valid_from=date(2026, 11, 9)))))
    assert "自 2026-11-09 起生效" in early.message

    withdrawn = replace(SCHEMA, published=False, version=2)
    why = tightened(GRANT, replace(withdrawn, published=True, share_methods=("API",)), Channel.ONLINE_BROWSE)
    assert why is not None and "第 2 版" in explain(denied("exchange.share.read", why)).message
    from services.exchange.sharing.requests import rule_kept, stricter_rule

    ended_why = stricter_rule(GRANT, withdrawn, *rule_kept(GRANT))
    assert ended_why is not None and ended_reason(ended_why) == "目录条目已撤销（第 2 版）"
    ended = grant_reason(replace(GRANT, status=GrantStatus.ENDED, ended_reason=ended_why))
    assert "已终止" in explain(denied("exchange.share.read", ended)).message
    assert "目录条目已撤销（第 2 版）" in explain(denied("exchange.share.read", ended)).message


def test_the_grants_other_checks_are_worded() -> None:
    cases = {
        grant_reason(GRANT, department_code=THEIRS): "属于其他部门",
        grant_reason(replace(GRANT, consumer_system="consumer_system-x")): "消费系统 consumer_system-x",
        grant_reason(GRANT, channel=Channel.FILE_DOWNLOAD): "没有开通“文件下载”方式",
        grant_reason(GRANT, purpose="招商引资"): "用途不一致",
        str(resource_refusal(None)): "没有这项已发布的资源",
        str(resource_refusal(replace(SCHEMA, share_type="NOT_SHARED", not_shared_basis="法规"))): "依据：法规",
        str(resource_refusal(SCHEMA, Channel.OFFLINE)): "不提供“离线交换”",
        str(resource_refusal(replace(SCHEMA, confidentiality_reviewed_on=None))): "保密审查",
        str(served_items(SCHEMA, GRANT, ("法定代表人",))): "不在授权范围内：法定代表人",
    }
    for reason, words in cases.items():
        said = explain(denied("exchange.share.read", reason))
        assert words in said.message, (reason, said)
        assert "访问规则" not in said.message  # the specific words, not the generic refusal


def test_an_unknown_reason_or_another_status_is_the_services_own_message() -> None:
    unknown = denied("exchange.share.read", "something the console has no words for")
    assert explain(unknown).message == unknown.message and explain(unknown).next_step == ""
    english = Refused(409, "the moon is not shared", "x", None, "exchange", "the moon is not shared", "x: the moon")
    said = explain(english)  # no Chinese of the service's own: a Chinese sentence, its words in small print
    assert not ASCII_WORDS.search(said.message) and said.detail == "x: the moon"
    stale = "revision 3 is not the current one"
    conflict = Refused(409, "条目已被他人修改", "revision", None, "catalog", stale, f"revision: {stale}")
    assert explain(conflict).message == "条目已被他人修改"
    empty = "name must not be empty"
    catalog = Refused(422, "资源名称不能为空", "name", "catalog.entry.name_missing", "catalog", empty, f"name: {empty}")
    assert explain(catalog).message == "资源名称不能为空"  # the catalog's own Chinese


def test_every_wording_fills_its_blanks() -> None:
    samples = {
        "requires one of: catalog_compiler": None,
        "the grant was revoked": None,
        "the grant has ended: something new": "something new",
    }
    for reason, kept in samples.items():
        said = explain(denied("nonexistent.rule", reason))
        assert "{" not in said.message and "访问规则" not in said.message
        if kept:
            assert kept in said.message


async def test_a_subscription_or_consent_refused_by_the_exchange_is_worded() -> None:
    from services.exchange.sharing import handlers
    from services.exchange.sharing.commands import Subscribe

    class Store:
        """Just enough of the sharing store for `subscribe` to reach its item checks."""

        def __call__(self) -> Store:
            return self

        async def __aenter__(self) -> Store:
            return self

        async def __aexit__(self, *_: object) -> None:
            return None

        async def schema(self, _code: str) -> ResourceSchema:
            return SCHEMA

    class Clock:
        def today(self) -> date:
            return TODAY

    sharing = handlers.Sharing(Store(), Clock(), None)  # type: ignore[arg-type]
    command = Subscribe(
        SCHEMA.resource_code, ("企业名称",), "核对", frozenset({Channel.API}), None, None, date(2027, 1, 1)
    )
    with pytest.raises(Invalid) as conditional:
        await handlers.subscribe(command, PERSON, sharing)
    refused = conditional.value  # as common.http answers a domain error: its rule, and "field: rule" as detail
    said = explain(Refused(422, str(refused), refused.field, None, "exchange", refused.rule, str(refused)))
    assert "企业名称 是有条件共享的数据项" in said.message and said.link == ("/requests/new", "提出共享申请")
