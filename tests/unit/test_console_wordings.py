"""Every reason the console words in Chinese is made here by the real code that gives it (the access policy,
the exchange's grant checks, its subscription, application, decision and consent handlers, its lifecycle of
grants), so a reason reworded there fails here instead of reaching a person in English; the few the console
matches from the exchange's fixed texts are named in FIXED_TEXTS with where they are."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date

import pytest

from common.errors import DomainError, Invalid, NotFound
from common.policy import OVERSIGHT, RULES, AccessDenied, Principal, Target, authorize
from services.console.clients import Refused
from services.console.refusals import ENDED_REASONS, WORDINGS, ended_reason, explain
from services.exchange.sharing import handlers, queries
from services.exchange.sharing.access import resource_refusal, served_items, tightened
from services.exchange.sharing.commands import Decide, Escalate, Narrowing, RaiseDispute, RuleOnDispute, Subscribe
from services.exchange.sharing.consents import AskConsent, Consents, DecideConsent, ask, decide
from services.exchange.sharing.grants import Channel, GrantStatus
from services.exchange.sharing.requests import Step, check_period, rule_kept, stricter_rule
from tests.unit import test_console_refusals as policy_side
from tests.unit import test_downloads as consents_side
from tests.unit.test_sharing import APPROVAL, IT, LEADER, MARKET, admin, application, approved, filed, register, sharing

ASCII_WORDS = re.compile(r"[A-Za-z]{3,}")
# matched from the exchange's fixed texts, not made here: the access gate's checks of a call's headers
# (services/exchange/sharing/access.py `Access._grant`), reached only through a whole API call
FIXED_TEXTS = {
    r"no such grant for this resource",
    r"the call names no grant.*",
    r"the call states no purpose.*",
}


def as_console_sees(exc: DomainError) -> Refused:
    """A domain error as common.http answers it and the console reads it: the rule, and "field: rule"."""
    status = 404 if isinstance(exc, NotFound) else 422 if isinstance(exc, Invalid) else 409
    return Refused(status, str(exc), exc.field, None, "exchange", exc.rule, str(exc))


async def refused(step: Awaitable[object]) -> Refused:
    with pytest.raises((DomainError, AccessDenied)) as caught:
        await step
    exc = caught.value
    if isinstance(exc, AccessDenied):
        return policy_side.denied(exc.rule, exc.reason)
    return as_console_sees(exc)


def policy_refusals() -> list[Refused]:
    """Every rule of the access policy refusing someone without its roles, and one with them but of another
    department (or reviewing her own entry)."""
    found = []
    for name, rule in RULES.items():
        if rule.public:
            continue
        tried = [Principal("x", policy_side.OURS)]
        if rule.roles - OVERSIGHT:
            tried.append(Principal("x", policy_side.OURS, frozenset(rule.roles - OVERSIGHT)))
        for principal in tried:
            for target in (Target(department_code=policy_side.THEIRS), Target(policy_side.OURS, compiled_by="x")):
                try:
                    authorize(principal, name, target)
                except AccessDenied as exc:
                    found.append(policy_side.denied(exc.rule, exc.reason))
    return found


def grant_refusals() -> list[Refused]:
    grant, schema, reason = policy_side.GRANT, policy_side.SCHEMA, policy_side.grant_reason
    reasons = [
        reason(replace(grant, status=GrantStatus.REVOKED, ended_reason="核验已完成")),
        reason(replace(grant, status=GrantStatus.ENDED, ended_reason="superseded by the IT office's ruling")),
        reason(replace(grant, valid_to=date(2026, 10, 31))),
        reason(replace(grant, valid_from=date(2026, 11, 9))),
        reason(grant, department_code=policy_side.THEIRS),
        reason(replace(grant, consumer_system="报表系统")),
        reason(replace(grant, consumer_system="报表系统"), machine="consumer_system"),
        reason(grant, channel=Channel.FILE_DOWNLOAD),
        reason(grant, purpose="招商引资"),
        str(resource_refusal(None)),
        str(resource_refusal(replace(schema, share_type="NOT_SHARED", not_shared_basis="法规"))),
        str(resource_refusal(schema, Channel.OFFLINE)),
        str(resource_refusal(replace(schema, confidentiality_reviewed_on=None))),
        str(served_items(schema, grant, ("法定代表人",))),
        str(tightened(grant, replace(schema, version=2, share_methods=("API",)), Channel.ONLINE_BROWSE)),
    ]
    return [policy_side.denied("exchange.share.read", r) for r in reasons]


def subscription(**changes: object) -> Subscribe:
    base: dict = dict(
        resource_code=register().resource_code,
        items=(),
        purpose="核对",
        channels=frozenset({Channel.API}),
        consumer_system=None,
        valid_from=None,
        valid_to=date(2027, 1, 1),
    )
    return Subscribe(**(base | changes))


async def form_refusals() -> list[Refused]:
    """What the subscription, application, decision and consent forms meet, from the exchange's handlers."""
    s, store, _ = sharing()
    subscribe: Callable[..., Awaitable[object]] = lambda schema=None, **c: handlers.subscribe(  # noqa: E731
        subscription(**c), admin(APPROVAL), sharing(schema)[0] if schema else s
    )
    found = [
        await refused(subscribe(items=("法定代表人",))),  # conditional: apply
        await refused(subscribe(register(items=register().items[2:4]))),  # no unconditional item
        await refused(subscribe(register(published=False))),
        await refused(subscribe(register(share_type="NOT_SHARED"))),
        await refused(subscribe(items=("内部评级",))),  # an item not shared
        await refused(subscribe(register(confidentiality_reviewed_on=None))),
        await refused(subscribe(channels=frozenset({Channel.OFFLINE}))),
        await refused(subscribe(channels=frozenset())),
        await refused(subscribe(valid_from=date(2027, 2, 1))),  # valid_to before valid_from
        await refused(subscribe(valid_from=date(2026, 8, 1), valid_to=date(2026, 9, 1))),
        await refused(subscribe(valid_to=date(2032, 1, 1))),
        await refused(subscribe(valid_from=date(2027, 12, 1), valid_to=date(2028, 1, 1))),
        await refused(subscribe(items=("注册资本",))),
        await refused(subscribe(items=("企业名称", "企业名称"))),
        await refused(subscribe(purpose=" ")),
        await refused(handlers.file_request(application(), admin(MARKET), s)),  # its own resource
        await refused(handlers.file_request(application(items=("企业名称",)), admin(APPROVAL), s)),
        await refused(handlers.file_request(application(regions=("360",)), admin(APPROVAL), s)),
    ]
    # the platform's last day, checked after the five years a grant lasts at most: only a period starting near
    # it meets it
    last = check_period(date(2999, 6, 1), date(3000, 1, 1), date(2999, 6, 1))
    found.append(Refused(422, str(last), "valid_to", None, "exchange", last, f"valid_to: {last}"))
    request = await filed(s)
    await handlers.decide(Decide(request.request_id, False, "涉及商业秘密"), admin(MARKET), s)
    found.append(await refused(handlers.decide(Decide(request.request_id, True, "同意"), admin(MARKET), s)))
    found.append(await refused(queries.list_requests(admin(APPROVAL), store, **LISTING)))

    fakes = consents_side.ConsentFakes()
    held = Consents(fakes, consents_side.Day(date(2026, 6, 1)), consents_side.Weekdays(), 10)  # type: ignore[arg-type]
    person, grant = consents_side.PERSON, consents_side.FILE_GRANT
    found.append(await refused(ask(AskConsent("g-0", (), "门户网站", "公示"), person, held)))
    found.append(await refused(ask(AskConsent("g-1", ("注册资本",), "门户网站", "公示"), person, held)))
    found.append(await refused(ask(AskConsent("g-1", (), " ", "公示"), person, held)))
    fakes.grants["g-2"] = replace(grant, grant_id="g-2", status=GrantStatus.REVOKED)
    found.append(await refused(ask(AskConsent("g-2", (), "门户网站", "公示"), person, held)))
    fakes.grants["g-3"] = replace(grant, grant_id="g-3", valid_to=date(2026, 5, 1))
    found.append(await refused(ask(AskConsent("g-3", (), "门户网站", "公示"), person, held)))
    asked = await ask(AskConsent("g-1", (), "门户网站", "公示"), person, held)
    provider = admin(grant.provider_code)
    await decide(DecideConsent(asked.consent_id, True, "同意"), provider, held)
    found.append(await refused(decide(DecideConsent(asked.consent_id, False, "反悔"), provider, held)))
    return found


LISTING = {
    "as_provider": False,
    "department_code": None,
    "status": None,
    "offset": 0,
    "limit": 5,
    "awaiting": Step.IT_OFFICE_RULING,
}


async def ended_reasons() -> list[str]:
    """Why grants end, from the exchange's lifecycle: a stricter or withdrawn entry, the period over, a
    ruling that supersedes the grant."""
    grant, schema = policy_side.GRANT, policy_side.SCHEMA
    reasons = [
        stricter_rule(grant, replace(schema, published=False, version=2), *rule_kept(grant)),
        stricter_rule(grant, replace(schema, version=2, share_type="NOT_SHARED"), *rule_kept(grant)),
        stricter_rule(grant, replace(schema, version=2, confidentiality_reviewed_on=None), *rule_kept(grant)),
        stricter_rule(grant, replace(schema, version=2, share_methods=("API",)), *rule_kept(grant)),
        stricter_rule(grant, replace(schema, version=2, items=schema.items[:1]), *rule_kept(grant)),
    ]
    items = tuple(replace(i, share_type="NOT_SHARED") if i.name == "企业名称" else i for i in schema.items)
    reasons.append(stricter_rule(grant, replace(schema, version=2, items=items), *rule_kept(grant)))

    s, store, clock = sharing()
    short = await approved(s, valid_to=date(2026, 12, 31))
    clock.day = date(2027, 1, 1)
    await handlers.sweep(s)
    reasons.append(store.grants_[short.grant_id].ended_reason)

    for overturn_by, final in ((IT, None), (IT, LEADER)):
        s, store, _ = sharing()
        request = await filed(s)
        narrowed = Decide(request.request_id, True, "只给名称", Narrowing(items=("企业名称",)))
        first = (await handlers.decide(narrowed, admin(MARKET), s)).grant_id
        await handlers.raise_dispute(RaiseDispute(request.request_id, "审批需要全部"), admin(APPROVAL), s)
        ruled = await handlers.rule_on_dispute(RuleOnDispute(request.request_id, True, "应全部共享"), overturn_by, s)
        if final is not None:
            await handlers.escalate(Escalate(request.request_id, "涉及商业秘密"), admin(MARKET), s)
            await handlers.final_ruling(RuleOnDispute(request.request_id, False, "维持原答复"), final, s)
            first = ruled.grant_id
        reasons.append(store.grants_[first or ""].ended_reason)
    return [r for r in reasons if r]


async def test_every_wording_is_reached_from_the_domain_code() -> None:
    refusals = policy_refusals() + grant_refusals() + await form_refusals()
    reasons = [r.detail if r.status == 403 else r.rule or "" for r in refusals]
    never = [
        p.pattern for p, _ in WORDINGS if p.pattern not in FIXED_TEXTS and not any(p.fullmatch(r) for r in reasons)
    ]
    assert never == []
    ended = await ended_reasons()
    assert [p.pattern for p, _ in ENDED_REASONS if not any(p.fullmatch(r) for r in ended)] == []


async def test_what_the_subscription_consent_and_decision_forms_meet_is_said_in_chinese() -> None:
    for refusal in await form_refusals():
        said = explain(refusal)
        assert said.detail == "" and not ASCII_WORDS.search(said.message + said.next_step), (refusal.rule, said)


async def test_a_grant_ended_the_usual_way_says_why_in_chinese() -> None:
    for reason in await ended_reasons():
        worded = ended_reason(reason)
        assert not ASCII_WORDS.search(worded), (reason, worded)
        said = explain(policy_side.denied("exchange.share.read", f"the grant has ended: {reason}"))
        assert not ASCII_WORDS.search(said.message), said
    assert (
        ended_reason("a reason the console has not seen") == "数据交换服务记录的原因：a reason the console has not seen"
    )
