"""The sharing lifecycle's handlers on in-memory fakes of their ports: subscriptions, applications,
decisions, disputes, rulings, revocation, grants ending by themselves and the deadline sweep."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import Any
from unittest.mock import ANY

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.auth import EventSigner
from common.calendar_source import build_calendar
from common.codec import EventCodec
from common.errors import Conflict, Invalid, RejectedEvent
from common.events import Event, Signature
from common.identifiers import CREDIT_CODE
from common.keys import KeySource
from common.policy import AccessDenied, Principal, Role
from common.settings import ServiceSettings
from services.exchange.domain.resources import ItemSpec, ResourceSchema
from services.exchange.sharing import handlers, queries
from services.exchange.sharing.adapters.directory_events import directory_handlers
from services.exchange.sharing.adapters.mongo import request_doc, request_of
from services.exchange.sharing.adapters.share_events import BusShareEvents
from services.exchange.sharing.commands import (
    Decide,
    DepartmentNamed,
    EntryPublished,
    EntryWithdrawn,
    Escalate,
    FileRequest,
    Narrowing,
    RaiseDispute,
    RevokeGrant,
    RuleOnDispute,
    Subscribe,
)
from services.exchange.sharing.grants import Channel, Grant, GrantStatus
from services.exchange.sharing.handlers import Sharing
from services.exchange.sharing.ports import ChangedMeanwhile
from services.exchange.sharing.requests import Deadlines, RequestStatus, ShareRequest, Step
from tests.tokens import JWKS_JSON, KEY

MARKET, APPROVAL, HEALTH = "market", "approval", "health"
REGISTER = "101001/000001"
ENTERPRISE = "91360821MA35XXXX0E"
BEFORE_NATIONAL_DAY = date(2026, 9, 30)  # holiday 1–7 October 2026; Saturday 10 October is worked (调休)
CALENDAR = build_calendar()
CODEC = EventCodec.from_folder()


def admin(department: str, subject: str | None = None) -> Principal:
    return Principal(subject or f"{department}-admin", department, frozenset({Role.DATA_ADMINISTRATOR}))


IT = Principal("it-operator", "it", frozenset({Role.IT_OFFICE_OPERATOR}))
LEADER = Principal("leader", "lg", frozenset({Role.LEADERSHIP_MEMBER}))
AUDITOR = Principal("auditor", "it", frozenset({Role.AUDITOR}))


def register(**changes: Any) -> ResourceSchema:
    base: dict[str, Any] = dict(
        resource_code=REGISTER,
        provider_code=MARKET,
        name="企业登记基本信息",
        items=(
            ItemSpec("统一社会信用代码", "string", 18, "UNCONDITIONAL"),
            ItemSpec("企业名称", "string", 100, "UNCONDITIONAL"),
            ItemSpec("法定代表人", "string", 50, None, True),
            ItemSpec("联系电话", "string", 20, None, True),
            ItemSpec("内部评级", "string", 10, "NOT_SHARED"),
        ),
        update_cycle="DAILY",
        version=1,
        share_type="CONDITIONAL",
        not_shared_basis="《企业信息公示暂行条例》第十四条",
        share_methods=("API", "FILE_DOWNLOAD"),
        confidentiality_reviewed_on=date(2026, 1, 5),
    )
    return ResourceSchema(**(base | changes))


# -- fakes -------------------------------------------------------------------------------------------------


class RecordedEvents:
    """What the lifecycle announced, as (event type, request or grant id, detail)."""

    def __init__(self, log: list[tuple[str, str, Any]]) -> None:
        self.log = log

    def request_filed(self, r: ShareRequest) -> None:
        self.log.append(("ShareRequested", r.request_id, r.decide_by))

    def request_refused(self, r: ShareRequest) -> None:
        self.log.append(("ShareRefused", r.request_id, r.refusal))

    def request_decided(self, r: ShareRequest) -> None:
        assert r.decision is not None
        self.log.append(("ShareDecided", r.request_id, r.decision.approved))

    def step_overdue(self, r: ShareRequest, step: Step, due: date, today: date) -> None:
        self.log.append(("ShareDecisionOverdue", r.request_id, (step, r.responsible_for(step))))

    def request_disputed(self, r: ShareRequest) -> None:
        self.log.append(("ShareDisputed", r.request_id, None))

    def dispute_ruled(self, r: ShareRequest, level: Any) -> None:
        self.log.append(("DisputeRuled", r.request_id, level))

    def dispute_escalated(self, r: ShareRequest) -> None:
        self.log.append(("DisputeEscalated", r.request_id, None))

    def grant_issued(self, g: Grant) -> None:
        self.log.append(("GrantIssued", g.grant_id, g.items))

    def grant_revoked(self, g: Grant, revoked_by: str, today: date) -> None:
        self.log.append(("GrantRevoked", g.grant_id, g.ended_reason))

    def grant_ended(self, g: Grant, cause: str, today: date) -> None:
        self.log.append(("GrantEnded", g.grant_id, cause))


@dataclass
class FakeStore:
    """Requests, grants and schemas in dicts; a transaction's writes and events count only if it commits."""

    schemas: dict[str, ResourceSchema] = field(default_factory=dict)
    requests_: dict[str, ShareRequest] = field(default_factory=dict)
    grants_: dict[str, Grant] = field(default_factory=dict)
    events: list[tuple[str, str, Any]] = field(default_factory=list)

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeTransaction]:
        tx = FakeTransaction(self)
        yield tx
        self.requests_ |= tx.requests_
        self.grants_ |= tx.grants_
        self.events += tx.log

    async def request(self, request_id: str) -> ShareRequest | None:
        return self.requests_.get(request_id)

    async def schema(self, resource_code: str) -> ResourceSchema | None:
        return self.schemas.get(resource_code)

    async def requests(
        self, *, consumer_code, provider_code, status, offset, limit, awaiting=None
    ) -> list[ShareRequest]:
        found = [
            r
            for r in self.requests_.values()
            if consumer_code in (None, r.consumer_code)
            and provider_code in (None, r.provider_code)
            and status in (None, r.status.value)
            and awaiting in (None, r.dispute and r.dispute.step and r.dispute.step.value)
        ]
        return found[offset : offset + limit]

    async def grant(self, grant_id: str) -> Grant | None:
        return self.grants_.get(grant_id)

    async def grants(self, *, consumer_code, provider_code, status, offset, limit) -> list[Grant]:
        found = [
            g
            for g in self.grants_.values()
            if consumer_code in (None, g.consumer_code)
            and provider_code in (None, g.provider_code)
            and status in (None, g.status)
        ]
        return found[offset : offset + limit]

    def of(self, event_type: str) -> list[tuple[str, str, Any]]:
        return [e for e in self.events if e[0] == event_type]


class FakeTransaction:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.requests_: dict[str, ShareRequest] = {}
        self.grants_: dict[str, Grant] = {}
        self.log: list[tuple[str, str, Any]] = []
        self.events = RecordedEvents(self.log)

    async def schema(self, resource_code: str) -> ResourceSchema | None:
        return self.store.schemas.get(resource_code)

    async def request(self, request_id: str) -> ShareRequest | None:
        return self.requests_.get(request_id) or self.store.requests_.get(request_id)

    async def add_request(self, request: ShareRequest) -> None:
        self.requests_[request.request_id] = request

    async def save_request(self, request: ShareRequest, read_revision: int) -> None:
        stored = await self.request(request.request_id)
        if stored is None or stored.revision != read_revision:
            raise Conflict("request_id", "changed meanwhile")
        self.requests_[request.request_id] = request

    async def grant(self, grant_id: str) -> Grant | None:
        return self.grants_.get(grant_id) or self.store.grants_.get(grant_id)

    async def put_grant(self, grant: Grant) -> None:
        self.grants_[grant.grant_id] = grant

    async def active_grants(self, resource_code: str | None = None, valid_before: date | None = None) -> list[Grant]:
        every = self.store.grants_ | self.grants_
        return [
            g
            for g in every.values()
            if g.status is GrantStatus.ACTIVE
            and resource_code in (None, g.resource_code)
            and (valid_before is None or g.valid_to < valid_before)
        ]

    async def awaiting_requests(self, due_before: date) -> list[ShareRequest]:
        every = self.store.requests_ | self.requests_
        return [
            r for r in every.values() if (a := r.awaiting) is not None and a[1] < due_before and a[0] not in r.overdue
        ]


@dataclass
class MovableClock:
    day: date

    def today(self) -> date:
        return self.day


def sharing(*schemas: ResourceSchema, today: date = BEFORE_NATIONAL_DAY) -> tuple[Sharing, FakeStore, MovableClock]:
    store = FakeStore({s.resource_code: s for s in schemas or (register(),)})
    clock = MovableClock(today)
    ids = count(1)
    return Sharing(store, clock, CALENDAR, Deadlines(), new_id=lambda: f"id{next(ids):04d}"), store, clock


def application(**changes: Any) -> FileRequest:
    base: dict[str, Any] = dict(
        resource_code=REGISTER,
        items=("统一社会信用代码", "企业名称", "法定代表人", "联系电话"),
        regions=("3608",),
        subjects=(),
        purpose="行政审批核验",
        channels=frozenset({Channel.API}),
        consumer_system="approval-system",
        valid_from=None,
        valid_to=date(2027, 9, 30),
    )
    return FileRequest(**(base | changes))


async def filed(s: Sharing, **changes: Any) -> ShareRequest:
    return await handlers.file_request(application(**changes), admin(APPROVAL), s)


# -- subscriptions -----------------------------------------------------------------------------------------


async def test_a_subscription_to_unconditional_items_is_a_grant_at_once() -> None:
    s, store, _ = sharing()
    command = Subscribe(REGISTER, (), "企业名称核验", frozenset({Channel.API}), None, None, date(2027, 1, 1))
    grant = await handlers.subscribe(command, admin(APPROVAL), s)
    assert grant.items == ("统一社会信用代码", "企业名称") and grant.request_id is None
    assert grant.scope.everything and grant.valid_from == BEFORE_NATIONAL_DAY
    assert store.of("GrantIssued") == [("GrantIssued", grant.grant_id, grant.items)]

    with pytest.raises(Invalid, match="apply"):
        await handlers.subscribe(replace(command, items=("法定代表人",)), admin(APPROVAL), s)
    with pytest.raises(Invalid, match="not data items"):
        await handlers.subscribe(replace(command, items=("注册资本",)), admin(APPROVAL), s)
    with pytest.raises(Invalid, match="not shared by OFFLINE"):
        await handlers.subscribe(replace(command, channels=frozenset({Channel.OFFLINE})), admin(APPROVAL), s)
    closed, _, _ = sharing(register(items=register().items[2:4]))
    with pytest.raises(Invalid, match="no unconditional data item"):
        await handlers.subscribe(command, admin(APPROVAL), closed)
    unreviewed, store2, _ = sharing(register(confidentiality_reviewed_on=None))
    with pytest.raises(handlers.SubscriptionRefused, match="第二十条"):
        await handlers.subscribe(command, admin(APPROVAL), unreviewed)
    assert store2.events == []


# -- applications ------------------------------------------------------------------------------------------


async def test_an_application_is_due_ten_working_days_later_counted_across_the_holiday() -> None:
    s, store, _ = sharing()
    request = await filed(s)
    assert request.status is RequestStatus.PENDING and request.decide_by == date(2026, 10, 20)
    assert request.decide_by == CALENDAR.add_working_days(BEFORE_NATIONAL_DAY, 10)
    assert request.asked.scope.regions == ("3608",) and request.provider_code == MARKET
    assert store.of("ShareRequested") == [("ShareRequested", request.request_id, date(2026, 10, 20))]


async def test_not_shared_items_and_unreviewed_entries_are_refused_at_once_citing_why() -> None:
    s, store, _ = sharing()
    refused = await filed(s, items=("企业名称", "内部评级"))
    assert refused.status is RequestStatus.REFUSED and "第十四条" in (refused.refusal or "")
    assert [e[0] for e in store.events] == ["ShareRefused"]

    unreviewed, store2, _ = sharing(register(confidentiality_reviewed_on=None))
    refused = await filed(unreviewed)
    assert refused.status is RequestStatus.REFUSED and "confidentiality review" in (refused.refusal or "")
    assert store2.of("ShareRefused")


async def test_bad_applications_are_refused_naming_the_field() -> None:
    s, store, _ = sharing()
    for changes, field_name in [
        ({"items": ("注册资本",)}, "items"),
        ({"items": ("企业名称",)}, "items"),  # unconditional only: subscribe
        ({"regions": ("36x8",)}, "regions"),
        ({"subjects": ("91360821MA35XXXX0Y",)}, "subjects"),
        ({"valid_to": date(2026, 1, 1)}, "valid_to"),
        ({"purpose": "  "}, "purpose"),
    ]:
        with pytest.raises(Invalid) as error:
            await filed(s, **changes)
        assert error.value.field == field_name, changes
    with pytest.raises(Invalid, match="provides"):
        await handlers.file_request(application(), admin(MARKET), s)
    with pytest.raises(AccessDenied):
        await handlers.file_request(application(), IT, s)
    assert store.events == []


# -- decisions ---------------------------------------------------------------------------------------------


async def test_an_approval_may_narrow_and_issues_a_grant_of_exactly_that() -> None:
    s, store, _ = sharing()
    request = await filed(s, unmasked=("法定代表人", "联系电话"))
    narrowing = Narrowing(
        items=("统一社会信用代码", "企业名称", "法定代表人"),
        regions=("360821",),
        valid_to=date(2027, 3, 31),
        unmasked=("法定代表人",),
    )
    decided = await handlers.decide(
        Decide(request.request_id, True, "用于审批核验，限本县", narrowing), admin(MARKET), s
    )
    assert decided.status is RequestStatus.APPROVED and decided.narrowed and decided.grant_id
    grant = store.grants_[decided.grant_id]
    assert grant.items == narrowing.items and grant.scope.regions == ("360821",)
    assert grant.valid_to == date(2027, 3, 31) and grant.unmasked == frozenset({"法定代表人"})
    assert grant.consumer_system == "approval-system" and grant.purpose == "行政审批核验"
    assert [e[0] for e in store.events[-2:]] == ["ShareDecided", "GrantIssued"]

    with pytest.raises(handlers.AlreadyDecided):
        await handlers.decide(Decide(request.request_id, False, "再议"), admin(MARKET), s)


async def test_a_decision_never_widens_and_always_gives_reasons() -> None:
    s, store, _ = sharing()
    request = await filed(s)
    for narrowing, field_name in [
        (Narrowing(items=("统一社会信用代码", "内部评级")), "items"),
        (Narrowing(regions=("36",)), "regions"),
        (Narrowing(valid_to=date(2028, 1, 1)), "valid_to"),
        (Narrowing(unmasked=("企业名称",)), "unmasked"),  # not sensitive
    ]:
        with pytest.raises(Invalid) as error:
            await handlers.decide(Decide(request.request_id, True, "可以", narrowing), admin(MARKET), s)
        assert error.value.field == field_name
    with pytest.raises(Invalid, match="reasons"):
        await handlers.decide(Decide(request.request_id, False, " "), admin(MARKET), s)
    assert store.of("ShareDecided") == []


async def test_only_sensitive_items_applied_for_in_clear_are_granted_in_clear() -> None:
    s, store, _ = sharing()
    with pytest.raises(Invalid) as error:
        await filed(s, unmasked=("企业名称",))  # not sensitive
    assert error.value.field == "unmasked"
    with pytest.raises(Invalid, match="unmasked"):
        await filed(s, items=("统一社会信用代码", "法定代表人"), unmasked=("联系电话",))  # not applied for
    masked = await filed(s)
    in_clear = await filed(s, unmasked=("法定代表人",))
    assert masked.asked.unmasked == frozenset() and in_clear.asked.unmasked == {"法定代表人"}
    form = await queries.get_application_form(in_clear.request_id, admin(MARKET), store, KnownNames())
    assert form.unmasked == ("法定代表人",)

    for request in (masked, in_clear):
        with pytest.raises(Invalid) as error:
            await handlers.decide(
                Decide(request.request_id, True, "可以", Narrowing(unmasked=("联系电话",))), admin(MARKET), s
            )
        assert error.value.field == "unmasked"
    await handlers.decide(Decide(masked.request_id, False, "涉及个人信息"), admin(MARKET), s)
    await handlers.raise_dispute(RaiseDispute(masked.request_id, "审批必需"), admin(APPROVAL), s)
    with pytest.raises(Invalid, match="in clear"):
        await handlers.rule_on_dispute(
            RuleOnDispute(masked.request_id, True, "应共享", Narrowing(unmasked=("法定代表人",))), IT, s
        )
    decided = await handlers.decide(
        Decide(in_clear.request_id, True, "可以", Narrowing(unmasked=("法定代表人",))), admin(MARKET), s
    )
    assert store.grants_[decided.grant_id or ""].unmasked == {"法定代表人"}


async def test_a_decision_naming_subjects_keeps_the_regions_applied_for() -> None:
    s, store, _ = sharing()
    other_province = "91110000MA01XXXX0Q"
    for decide_ruling in (False, True):
        request = await filed(s)
        named = Narrowing(regions=(), subjects=(ENTERPRISE, other_province))
        if decide_ruling:
            await handlers.decide(Decide(request.request_id, False, "不同意"), admin(MARKET), s)
            await handlers.raise_dispute(RaiseDispute(request.request_id, "审批必需"), admin(APPROVAL), s)
            done = await handlers.rule_on_dispute(RuleOnDispute(request.request_id, True, "限列明主体", named), IT, s)
        else:
            done = await handlers.decide(Decide(request.request_id, True, "限列明主体", named), admin(MARKET), s)
        scope = store.grants_[done.grant_id or ""].scope
        assert scope.regions == ("3608",) and scope.subjects == {ENTERPRISE, other_province}
        assert scope.covers(ENTERPRISE, CREDIT_CODE) and not scope.covers(other_province, CREDIT_CODE)


async def test_a_decision_or_ruling_checks_the_entry_in_force_and_the_day() -> None:
    s, store, clock = sharing()
    by_file = await filed(s, channels=frozenset({Channel.FILE_DOWNLOAD}))
    short = await filed(s, valid_to=date(2026, 12, 31))
    store.schemas[REGISTER] = register(version=2, share_methods=("API",))
    with pytest.raises(Invalid, match="not shared by FILE_DOWNLOAD") as error:
        await handlers.decide(Decide(by_file.request_id, True, "同意"), admin(MARKET), s)
    assert error.value.field == "channels"
    clock.day = date(2027, 1, 4)
    with pytest.raises(Invalid) as error:
        await handlers.decide(Decide(short.request_id, True, "同意"), admin(MARKET), s)
    assert error.value.field == "valid_to"
    await handlers.decide(Decide(short.request_id, False, "期限已过"), admin(MARKET), s)
    await handlers.raise_dispute(RaiseDispute(short.request_id, "审批必需"), admin(APPROVAL), s)
    with pytest.raises(Invalid) as error:
        await handlers.rule_on_dispute(RuleOnDispute(short.request_id, True, "应共享"), IT, s)
    assert error.value.field == "valid_to" and store.of("GrantIssued") == []


async def test_a_resource_whose_key_places_no_subject_is_not_limited_by_region() -> None:
    keyless = register(items=tuple(i for i in register().items if i.name != "统一社会信用代码"))
    s, _, _ = sharing(keyless)
    with pytest.raises(Invalid) as error:
        await filed(s, items=("企业名称", "法定代表人"))
    assert error.value.field == "regions"
    named = await filed(s, items=("企业名称", "法定代表人"), regions=(), subjects=(ENTERPRISE,))
    assert named.asked.scope.subjects == {ENTERPRISE} and not named.asked.scope.regions
    with pytest.raises(Invalid) as error:
        await handlers.decide(Decide(named.request_id, True, "同意", Narrowing(regions=("360821",))), admin(MARKET), s)
    assert error.value.field == "regions"


async def test_only_the_providers_data_administrator_decides() -> None:
    s, store, _ = sharing()
    request = await filed(s)
    for who in (admin(APPROVAL), admin(HEALTH), IT, Principal("compiler", MARKET, frozenset({Role.CATALOG_COMPILER}))):
        with pytest.raises(AccessDenied):
            await handlers.decide(Decide(request.request_id, True, "可以"), who, s)
    assert store.of("ShareDecided") == []


async def test_a_late_decision_is_marked_overdue_and_announced_once_against_the_provider() -> None:
    s, store, clock = sharing()
    request = await filed(s)
    clock.day = request.decide_by
    assert await handlers.sweep(s) == (0, 0)  # due today: not late yet
    clock.day = request.decide_by + timedelta(days=1)
    assert await handlers.sweep(s) == (0, 1)
    assert await handlers.sweep(s) == (0, 0)
    decided = await handlers.decide(Decide(request.request_id, False, "数据不足"), admin(MARKET), s)
    assert decided.decision is not None and decided.decision.overdue
    assert store.of("ShareDecisionOverdue") == [
        ("ShareDecisionOverdue", request.request_id, (Step.PROVIDER_DECISION, MARKET))
    ]

    late, store2, clock2 = sharing()
    other = await filed(late)
    clock2.day = date(2026, 11, 2)
    await handlers.decide(Decide(other.request_id, False, "数据不足"), admin(MARKET), late)
    await handlers.sweep(late)
    assert len(store2.of("ShareDecisionOverdue")) == 1  # at decision time, and only then


# -- disputes ----------------------------------------------------------------------------------------------


async def test_a_denial_disputed_overturned_by_the_it_office_and_upheld_finally() -> None:
    s, store, _ = sharing()
    request = await filed(s)
    await handlers.decide(Decide(request.request_id, False, "涉及商业秘密"), admin(MARKET), s)
    with pytest.raises(AccessDenied):
        await handlers.raise_dispute(RaiseDispute(request.request_id, "审批必需"), admin(HEALTH), s)
    disputed = await handlers.raise_dispute(RaiseDispute(request.request_id, "审批必需"), admin(APPROVAL), s)
    assert disputed.dispute is not None and disputed.dispute.rule_by == CALENDAR.add_working_days(
        BEFORE_NATIONAL_DAY, 10
    )
    with pytest.raises(handlers.NotDisputable):
        await handlers.raise_dispute(RaiseDispute(request.request_id, "再次"), admin(APPROVAL), s)

    with pytest.raises(AccessDenied):
        await handlers.rule_on_dispute(RuleOnDispute(request.request_id, True, "应共享"), admin(APPROVAL), s)
    ruled = await handlers.rule_on_dispute(RuleOnDispute(request.request_id, True, "审批确需"), IT, s)
    assert ruled.grant_id is not None and store.grants_[ruled.grant_id].items == request.asked.items

    with pytest.raises(AccessDenied):
        await handlers.escalate(Escalate(request.request_id, "不服"), admin(HEALTH), s)
    escalated = await handlers.escalate(Escalate(request.request_id, "涉及商业秘密"), admin(MARKET), s)
    assert escalated.dispute is not None and escalated.dispute.escalation is not None
    assert escalated.dispute.escalation.department_code == MARKET

    with pytest.raises(AccessDenied):
        await handlers.final_ruling(RuleOnDispute(request.request_id, False, "维持"), IT, s)
    final = await handlers.final_ruling(RuleOnDispute(request.request_id, False, "维持原答复"), LEADER, s)
    assert store.grants_[ruled.grant_id].status is GrantStatus.ENDED  # the provider's denial stands
    assert final.dispute is not None and final.dispute.final_ruling is not None
    with pytest.raises(handlers.NotDisputable):
        await handlers.final_ruling(RuleOnDispute(request.request_id, True, "改判"), LEADER, s)
    assert [e[0] for e in store.events] == [
        "ShareRequested",
        "ShareDecided",
        "ShareDisputed",
        "DisputeRuled",
        "GrantIssued",
        "DisputeEscalated",
        "DisputeRuled",
        "GrantEnded",
    ]


async def test_a_narrowing_may_be_disputed_an_approval_as_asked_not() -> None:
    s, store, _ = sharing()
    asked = await filed(s)
    await handlers.decide(Decide(asked.request_id, True, "同意"), admin(MARKET), s)
    with pytest.raises(handlers.NotDisputable, match="as applied for"):
        await handlers.raise_dispute(RaiseDispute(asked.request_id, "x"), admin(APPROVAL), s)
    narrowed = await filed(s)
    decided = await handlers.decide(
        Decide(narrowed.request_id, True, "限本县", Narrowing(regions=("360821",))), admin(MARKET), s
    )
    await handlers.raise_dispute(RaiseDispute(narrowed.request_id, "全市审批"), admin(APPROVAL), s)
    ruled = await handlers.rule_on_dispute(RuleOnDispute(narrowed.request_id, True, "全市所需"), IT, s)
    assert decided.grant_id is not None and store.grants_[decided.grant_id].status is GrantStatus.ENDED
    assert ruled.grant_id is not None and store.grants_[ruled.grant_id].scope.regions == ("3608",)


async def test_a_revoked_grant_stays_revoked_when_the_decision_is_upheld() -> None:
    s, store, _ = sharing()
    request = await filed(s)
    narrowed = Narrowing(regions=("360821",))
    decided = await handlers.decide(Decide(request.request_id, True, "限本县", narrowed), admin(MARKET), s)
    await handlers.raise_dispute(RaiseDispute(request.request_id, "全市审批"), admin(APPROVAL), s)
    await handlers.revoke_grant(RevokeGrant(decided.grant_id or "", "超范围使用"), admin(MARKET), s)
    ruled = await handlers.rule_on_dispute(RuleOnDispute(request.request_id, False, "维持原决定"), IT, s)
    assert ruled.grant_id == decided.grant_id and store.of("GrantIssued") == [("GrantIssued", decided.grant_id, ANY)]
    assert store.grants_[decided.grant_id or ""].status is GrantStatus.REVOKED

    await handlers.escalate(Escalate(request.request_id, "不服"), admin(APPROVAL), s)
    final = await handlers.final_ruling(RuleOnDispute(request.request_id, True, "全市所需"), LEADER, s)
    assert final.grant_id != decided.grant_id and len(store.of("GrantIssued")) == 2  # overturned: granted anew
    assert store.grants_[final.grant_id or ""].scope.regions == ("3608",)


async def test_a_ruling_issues_no_grant_whose_period_is_over() -> None:
    s, store, clock = sharing()
    request = await filed(s, valid_to=date(2026, 12, 31))
    narrowed = Narrowing(regions=("360821",))
    decided = await handlers.decide(Decide(request.request_id, True, "限本县", narrowed), admin(MARKET), s)
    await handlers.raise_dispute(RaiseDispute(request.request_id, "全市审批"), admin(APPROVAL), s)
    await handlers.rule_on_dispute(RuleOnDispute(request.request_id, True, "全市所需"), IT, s)
    await handlers.escalate(Escalate(request.request_id, "不服"), admin(MARKET), s)
    clock.day = date(2027, 1, 4)
    await handlers.final_ruling(RuleOnDispute(request.request_id, False, "维持原决定"), LEADER, s)
    assert len(store.of("GrantIssued")) == 2 and decided.grant_id is not None
    assert all(g.status is not GrantStatus.ACTIVE for g in store.grants_.values())


@dataclass
class RacedStore(FakeStore):
    """As the database does under two decisions at once: the next `races` transactions lose their write to
    a concurrent one (`meanwhile` runs and commits first) and store nothing."""

    races: int = 0
    meanwhile: Any = None

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeTransaction]:
        tx = FakeTransaction(self)
        yield tx
        if self.races:
            self.races -= 1
            if self.meanwhile is not None:
                await self.meanwhile()
            raise ChangedMeanwhile("request_id", "write conflict")
        self.requests_ |= tx.requests_
        self.grants_ |= tx.grants_
        self.events += tx.log


async def test_two_decisions_at_once_the_later_sees_the_first_and_is_told_so() -> None:
    store = RacedStore({REGISTER: register()})
    s = Sharing(store, MovableClock(BEFORE_NATIONAL_DAY), CALENDAR, Deadlines(), new_id=lambda: "id0001")
    request = await filed(s)
    store.races = 1
    store.meanwhile = lambda: handlers.decide(Decide(request.request_id, False, "不同意"), admin(MARKET, "other"), s)
    with pytest.raises(handlers.AlreadyDecided):
        await handlers.decide(Decide(request.request_id, True, "同意"), admin(MARKET), s)
    assert store.requests_[request.request_id].status is RequestStatus.DENIED and store.of("GrantIssued") == []

    store.races, store.meanwhile = 2, None  # losing twice: a conflict to answer, never an outage
    with pytest.raises(Conflict):
        await handlers.raise_dispute(RaiseDispute(request.request_id, "审批必需"), admin(APPROVAL), s)
    store.races = 1
    disputed = await handlers.raise_dispute(RaiseDispute(request.request_id, "审批必需"), admin(APPROVAL), s)
    assert disputed.dispute is not None and store.of("ShareDisputed") == [("ShareDisputed", request.request_id, None)]


async def test_the_databases_write_conflict_is_a_conflict_not_an_outage() -> None:
    from types import SimpleNamespace

    from pymongo.errors import AutoReconnect, OperationFailure

    from services.exchange.sharing.adapters.mongo import MongoSharingStore

    class Runtime:
        db = None
        error: Exception = OperationFailure("Write conflict", 112, {"errorLabels": ["TransientTransactionError"]})

        @asynccontextmanager
        async def transaction(self) -> AsyncIterator[Any]:
            yield SimpleNamespace(db=None, session=None, emit=lambda *_: None)
            raise self.error

    runtime = Runtime()
    with pytest.raises(ChangedMeanwhile):
        async with MongoSharingStore(runtime)():  # type: ignore[arg-type]
            pass
    runtime.error = AutoReconnect("primary stepped down")
    with pytest.raises(AutoReconnect):
        async with MongoSharingStore(runtime)():  # type: ignore[arg-type]
            pass


# -- grants ------------------------------------------------------------------------------------------------


async def approved(s: Sharing, **changes: Any) -> Grant:
    request = await filed(s, **changes)
    decided = await handlers.decide(Decide(request.request_id, True, "同意"), admin(MARKET), s)
    grant = await s.store.grant(decided.grant_id or "")
    assert grant is not None
    return grant


async def test_the_provider_revokes_a_grant_with_a_reason_once() -> None:
    s, store, _ = sharing()
    grant = await approved(s)
    with pytest.raises(AccessDenied):
        await handlers.revoke_grant(RevokeGrant(grant.grant_id, "不再需要"), admin(APPROVAL), s)
    with pytest.raises(Invalid):
        await handlers.revoke_grant(RevokeGrant(grant.grant_id, ""), admin(MARKET), s)
    revoked = await handlers.revoke_grant(RevokeGrant(grant.grant_id, "超范围使用"), admin(MARKET), s)
    assert revoked.status is GrantStatus.REVOKED and store.of("GrantRevoked")[0][2] == "超范围使用"
    with pytest.raises(Conflict):
        await handlers.revoke_grant(RevokeGrant(grant.grant_id, "again"), admin(MARKET), s)


async def test_grants_end_when_a_new_version_is_stricter_and_only_then() -> None:
    s, store, _ = sharing()
    grant = await approved(s, items=("统一社会信用代码", "法定代表人"))
    looser = register(version=2, share_type="UNCONDITIONAL")
    assert await handlers.entry_published(EntryPublished(looser), s) == 0
    renamed_other = register(version=3, items=register().items[:3])  # 联系电话 gone: not granted
    assert await handlers.entry_published(EntryPublished(renamed_other), s) == 0
    items = tuple(replace(i, share_type="NOT_SHARED") if i.name == "法定代表人" else i for i in register().items)
    assert await handlers.entry_published(EntryPublished(register(version=4, items=items)), s) == 1
    assert store.grants_[grant.grant_id].status is GrantStatus.ENDED
    assert "法定代表人" in (store.grants_[grant.grant_id].ended_reason or "")
    assert store.of("GrantEnded") == [("GrantEnded", grant.grant_id, "ENTRY_TIGHTENED")]

    s2, store2, _ = sharing()
    removed = await approved(s2)
    assert await handlers.entry_published(EntryPublished(register(version=2, items=register().items[1:])), s2) == 1
    strict = await approved(s2, valid_to=date(2027, 1, 1))  # issued under version 1 still in the fake store
    assert await handlers.entry_published(EntryPublished(register(version=3, confidentiality_reviewed_on=None)), s2)
    assert {store2.grants_[g].status for g in (removed.grant_id, strict.grant_id)} == {GrantStatus.ENDED}

    s3, store3, _ = sharing()
    by_api = await approved(s3)  # channels: API
    assert await handlers.entry_published(EntryPublished(register(version=2, share_methods=("API",))), s3) == 0
    assert await handlers.entry_published(EntryPublished(register(version=3, share_methods=("FILE_DOWNLOAD",))), s3)
    assert "no longer shared by API" in (store3.grants_[by_api.grant_id].ended_reason or "")


async def test_grants_end_when_the_entry_is_withdrawn_or_their_period_is_over() -> None:
    s, store, clock = sharing()
    grant = await approved(s)
    short = await approved(s, valid_to=date(2026, 12, 31))
    clock.day = date(2027, 1, 1)
    assert await handlers.sweep(s) == (1, 0)
    assert store.grants_[short.grant_id].status is GrantStatus.ENDED
    assert await handlers.entry_withdrawn(EntryWithdrawn(REGISTER, 1), s) == 1
    assert store.grants_[grant.grant_id].status is GrantStatus.ENDED
    assert [e[2] for e in store.of("GrantEnded")] == ["PERIOD_ENDED", "ENTRY_WITHDRAWN"]


# -- reads -------------------------------------------------------------------------------------------------


async def test_a_request_is_seen_by_its_applicant_its_provider_and_oversight_only() -> None:
    s, store, _ = sharing()
    request = await filed(s)
    for who in (admin(APPROVAL), admin(MARKET), AUDITOR, IT):
        assert await queries.get_request(request.request_id, who, store) == request
    with pytest.raises(AccessDenied):
        await queries.get_request(request.request_id, admin(HEALTH), store)
    mine = dict(as_provider=False, department_code=None, status=None, offset=0, limit=10)
    assert await queries.list_requests(admin(APPROVAL), store, **mine) == [request]
    assert await queries.list_requests(admin(MARKET), store, **mine) == []
    assert await queries.list_requests(admin(MARKET), store, **(mine | {"as_provider": True})) == [request]
    with pytest.raises(AccessDenied):
        await queries.list_requests(admin(HEALTH), store, **(mine | {"department_code": APPROVAL}))
    assert await queries.list_requests(AUDITOR, store, **(mine | {"department_code": APPROVAL})) == [request]


@dataclass
class KnownNames:
    """The departments' names as the directory said them, the latest statement kept."""

    known: dict[str, DepartmentNamed] = field(default_factory=dict)

    async def record(self, named: DepartmentNamed) -> bool:
        kept = self.known.get(named.department_code)
        if kept is not None and kept.named_at >= named.named_at:
            return False
        self.known[named.department_code] = named
        return True

    async def names(self, codes) -> dict[str, str]:
        return {c: self.known[c].name for c in codes if c in self.known}


async def test_the_printable_application_is_read_by_those_who_read_the_request_with_the_names_known() -> None:
    s, store, _ = sharing()
    request = await filed(s, subjects=(ENTERPRISE,))
    departments = KnownNames()
    at = datetime(2026, 9, 1, tzinfo=UTC)
    for code, name in ((APPROVAL, "吉安市行政审批局"), (MARKET, "吉安市市场监管局")):
        assert await handlers.department_named(DepartmentNamed(code, name, at), departments)
    renamed = DepartmentNamed(MARKET, "吉安市市场监督管理局", at + timedelta(days=1))
    assert await handlers.department_named(renamed, departments)
    assert not await handlers.department_named(DepartmentNamed(MARKET, "吉安市工商局", at), departments)  # older
    for who in (admin(APPROVAL), admin(MARKET), AUDITOR, IT):
        form = await queries.get_application_form(request.request_id, who, store, departments)
        assert (form.request_id, form.applicant_name, form.provider_name) == (
            request.request_id,
            "吉安市行政审批局",
            "吉安市市场监督管理局",
        )
        assert form.resource_name == "企业登记基本信息" and "1 个主体" in form.scope and ENTERPRISE not in form.scope
    with pytest.raises(AccessDenied):
        await queries.get_application_form(request.request_id, admin(HEALTH), store, departments)
    with pytest.raises(queries.RequestNotFound):
        await queries.get_application_form("none", admin(APPROVAL), store, departments)
    unknown = await queries.get_application_form(request.request_id, admin(APPROVAL), store, KnownNames())
    assert unknown.applicant_name.startswith(APPROVAL) and unknown.provider_name.startswith(MARKET)


# -- adapters ----------------------------------------------------------------------------------------------


def directory_event(event_type: str, payload: dict, key: Ed25519PrivateKey = KEY, **changes: Any) -> Event:
    """A directory event as the consumer receives it, signed with `key` as the directory signs its events."""
    event = Event(event_type, payload["department_code"], payload, "directory")
    value = CODEC.encode(event_type, payload)
    sent_at = event.occurred_at.isoformat()
    header = EventSigner(key).signature(event.event_id, event_type, sent_at, event.key.encode(), value).decode()
    signature = Signature(header, sent_at, hashlib.sha256(value).digest())
    return replace(event, **({"signature": signature} | changes))


def altered(event: Event, payload: dict) -> Event:
    """`event` with another value under its signature, as the consumer decodes it (the digest is the value's)."""
    assert event.signature is not None
    digest = hashlib.sha256(CODEC.encode(event.event_type, payload)).digest()
    return replace(event, payload=payload, signature=replace(event.signature, value_digest=digest))


async def test_only_department_events_the_directory_signed_name_departments() -> None:
    keys = KeySource(ServiceSettings(auth_jwks=JWKS_JSON))
    await keys.load()
    departments = KnownNames()
    on = directory_handlers(keys, departments)
    registered = {"department_code": MARKET, "name": "吉安市市场监管局", "level": "CITY", "parent_code": None}
    await on["DepartmentRegistered"](directory_event("DepartmentRegistered", registered))
    changed = {"department_code": MARKET, "name": "吉安市市场监督管理局", "parent_code": None, "active": True}
    await on["DepartmentChanged"](directory_event("DepartmentChanged", changed))
    assert await departments.names([MARKET, HEALTH]) == {MARKET: "吉安市市场监督管理局"}
    forged = {"department_code": MARKET, "name": "伪造的名称", "parent_code": None, "active": True}
    for event in (
        directory_event("DepartmentChanged", forged, key=Ed25519PrivateKey.generate()),  # another key
        directory_event("DepartmentChanged", forged, signature=None),  # unsigned
        altered(directory_event("DepartmentChanged", changed), forged),  # signed, then its value altered
        replace(directory_event("DepartmentChanged", forged), key=HEALTH),  # the signature covers the key
    ):
        with pytest.raises(RejectedEvent):
            await on["DepartmentChanged"](event)
    assert await departments.names([MARKET, HEALTH]) == {MARKET: "吉安市市场监督管理局"}


async def test_every_announcement_encodes_with_its_schema_and_a_request_survives_its_stored_form() -> None:
    s, store, _ = sharing()
    request = await filed(s, subjects=(ENTERPRISE,))
    decided = await handlers.decide(
        Decide(request.request_id, True, "限本县", Narrowing(regions=("360821",))), admin(MARKET), s
    )
    disputed = await handlers.raise_dispute(RaiseDispute(request.request_id, "全市"), admin(APPROVAL), s)
    ruled = await handlers.rule_on_dispute(RuleOnDispute(request.request_id, True, "改判"), IT, s)
    escalated = await handlers.escalate(Escalate(request.request_id, "不服"), admin(MARKET), s)
    assert request_of(request_doc(escalated)) == escalated

    codec = EventCodec.from_folder()
    sent: list[Event] = []
    events = BusShareEvents(lambda topic, event: sent.append(event))
    grant = store.grants_[ruled.grant_id or ""]
    events.request_filed(request)
    events.request_refused(replace(request, status=RequestStatus.REFUSED, refusal="不予共享"))
    events.request_decided(decided)
    events.step_overdue(request, Step.PROVIDER_DECISION, request.decide_by, date(2026, 10, 22))
    events.request_disputed(disputed)
    events.dispute_ruled(ruled, ruled.dispute.ruling.level)  # type: ignore[union-attr]
    events.dispute_escalated(escalated)
    events.grant_issued(grant)
    events.grant_revoked(replace(grant, status=GrantStatus.REVOKED, ended_reason="x"), "market-admin", date.today())
    events.grant_ended(replace(grant, status=GrantStatus.ENDED, ended_reason="y"), "PERIOD_ENDED", date.today())
    for event in sent:
        assert codec.decode(codec.encode(event.event_type, event.payload))[1] == event.payload
        assert ENTERPRISE not in str(event.payload)  # named subjects are counted, never sent
    assert {e.key for e in sent} == {request.request_id}


async def test_a_grant_is_seen_by_its_consumer_its_provider_and_oversight_only() -> None:
    s, store, _ = sharing()
    grant = await approved(s)
    for who in (admin(APPROVAL), admin(MARKET), AUDITOR):
        assert await queries.get_grant(grant.grant_id, who, store) == grant
    with pytest.raises(AccessDenied):
        await queries.get_grant(grant.grant_id, admin(HEALTH), store)
    mine = dict(as_provider=False, department_code=None, status=None, offset=0, limit=10)
    assert await queries.list_grants(admin(APPROVAL), store, **mine) == [grant]
    assert await queries.list_grants(admin(MARKET), store, **(mine | {"as_provider": True})) == [grant]
    assert await queries.list_grants(admin(APPROVAL), store, **(mine | {"status": GrantStatus.REVOKED})) == []


async def test_a_request_for_a_withdrawn_entry_can_still_be_denied_but_not_granted() -> None:
    s, store, _ = sharing()
    request = await filed(s)
    other = await filed(s)
    store.schemas[REGISTER] = register(published=False)
    with pytest.raises(handlers.ResourceNotShared):
        await handlers.decide(Decide(request.request_id, True, "同意"), admin(MARKET), s)
    denied = await handlers.decide(Decide(other.request_id, False, "资源已撤销"), admin(MARKET), s)
    assert denied.status is RequestStatus.DENIED and store.of("GrantIssued") == []


def test_the_catalogs_announcements_arrive_as_typed_events() -> None:
    from devstack.samples import catalog_published, catalog_withdrawn
    from services.exchange.sharing.adapters.catalog_events import entry_published, entry_withdrawn

    codec = EventCodec.from_folder()
    sample = catalog_published(REGISTER, MARKET, [{"name": "企业名称", "type": "string", "length": 100}], version=3)
    payload = sample.payload | {"confidentiality_reviewed_on": date(2026, 1, 5), "share_type": "UNCONDITIONAL"}
    _, decoded = codec.decode(codec.encode("CatalogEntryPublished", payload))
    event = entry_published(decoded)
    assert event.schema.version == 3 and event.schema.share_type == "UNCONDITIONAL"
    assert event.schema.confidentiality_reviewed_on == date(2026, 1, 5)
    assert event.schema.item_share_type("企业名称") == "UNCONDITIONAL"
    _, withdrawn = codec.decode(codec.encode("CatalogEntryWithdrawn", catalog_withdrawn(REGISTER, MARKET, 3).payload))
    assert entry_withdrawn(withdrawn) == EntryWithdrawn(REGISTER, 3)


def test_an_entry_that_names_no_share_method_is_shared_by_no_channel() -> None:
    from devstack.samples import catalog_published
    from services.exchange.sharing.adapters.catalog_events import entry_published

    payload = catalog_published(REGISTER, MARKET, [{"name": "企业名称", "type": "string"}], version=3).payload
    assert entry_published(payload).schema.share_methods == ("API",)
    for missing in ({k: v for k, v in payload.items() if k != "share_methods"}, payload | {"share_methods": None}):
        assert entry_published(missing).schema.share_methods == ()
    assert ResourceSchema(REGISTER, MARKET, "企业登记基本信息", (), None).share_methods == ()


async def test_each_dispute_step_has_its_own_deadline_announced_once_when_passed() -> None:
    s, store, clock = sharing()
    request = await filed(s)
    await handlers.decide(Decide(request.request_id, False, "不同意"), admin(MARKET), s)
    disputed = await handlers.raise_dispute(RaiseDispute(request.request_id, "必需"), admin(APPROVAL), s)
    assert disputed.dispute is not None
    clock.day = disputed.dispute.rule_by + timedelta(days=1)
    assert await handlers.sweep(s) == (0, 1)
    ruled = await handlers.rule_on_dispute(RuleOnDispute(request.request_id, False, "维持"), IT, s)
    escalated = await handlers.escalate(Escalate(request.request_id, "不服"), admin(APPROVAL), s)
    assert escalated.dispute is not None and escalated.dispute.escalation is not None
    assert escalated.dispute.escalation.rule_by == CALENDAR.add_working_days(clock.day, 10)
    clock.day = escalated.dispute.escalation.rule_by + timedelta(days=1)
    assert await handlers.sweep(s) == (0, 1)
    assert await handlers.sweep(s) == (0, 0)
    await handlers.final_ruling(RuleOnDispute(request.request_id, True, "改判"), LEADER, s)
    assert [e[2][0] for e in store.of("ShareDecisionOverdue")] == [Step.IT_OFFICE_RULING, Step.LEADERSHIP_RULING]
    assert ruled.overdue == frozenset({Step.IT_OFFICE_RULING})
