"""Whom in a department each notice is for (the directory's roles), and what a person's inbox shows of it: the
notices for her roles and those for the whole department; a machine, and the IT office overseeing another
department, every one."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from common.codec import SCHEMA_DIR
from common.policy import MachineKind, Principal, Role
from services.directory import demo_data
from services.notifier import handlers
from services.notifier.domain.notifications import Notification, NotificationKind
from services.notifier.domain.preferences import Delivery, Preferences
from services.notifier.domain.reminders import Deadline
from services.notifier.ports import InboxQuery
from services.notifier.settings import DEMO_LEADERSHIP_GROUP_CODE, NotifierSettings
from tests.contract.test_schemas import sample
from tests.unit.test_notifier import CONSUMER, IT_OFFICE, PROVIDER, REQUEST, FakeUnitOfWork, code, deliver, notifier_of

LEADERSHIP = code("11360800MB0000003")
RESOURCE = "101001/000001"
COMPILER, REVIEWER, ADMIN = Role.CATALOG_COMPILER, Role.CATALOG_REVIEWER, Role.DATA_ADMINISTRATOR
OPERATOR, MEMBER, AUDITOR = Role.IT_OFFICE_OPERATOR, Role.LEADERSHIP_MEMBER, Role.AUDITOR


def payload(event_type: str, **values: object) -> dict:
    raw = json.loads((SCHEMA_DIR / f"{event_type}.avsc").read_text(encoding="utf-8"))
    return sample(copy.deepcopy(raw), {}) | values


ENTRY = {"resource_code": RESOURCE, "provider_code": PROVIDER, "version": 1}
REQUESTED = {"request_id": "r1", "resource_code": RESOURCE, "provider_code": PROVIDER, "consumer_code": CONSUMER}

# (event type, its payload) -> {recipient: the roles the notice is for there}; empty: the whole department
CASES = [
    ("ShareRequested", REQUEST, {PROVIDER: {ADMIN}}),
    ("ShareDecided", payload("ShareDecided", **REQUESTED), {CONSUMER: {ADMIN}}),
    ("ShareRefused", payload("ShareRefused", request_id="r1", consumer_code=CONSUMER), {CONSUMER: {ADMIN}}),
    (
        "ShareDisputed",
        payload("ShareDisputed", dispute_id="d1", **REQUESTED),
        {IT_OFFICE: {OPERATOR}, PROVIDER: {ADMIN}},
    ),
    ("GrantIssued", payload("GrantIssued", grant_id="g1", **REQUESTED), {CONSUMER: set()}),
    ("GrantRevoked", payload("GrantRevoked", grant_id="g1", **REQUESTED), {CONSUMER: set()}),
    ("CatalogEntrySubmitted", payload("CatalogEntrySubmitted", **ENTRY), {PROVIDER: {REVIEWER}}),
    ("CatalogEntryReturned", payload("CatalogEntryReturned", **ENTRY), {PROVIDER: {COMPILER}}),
    ("CatalogEntryPublished", payload("CatalogEntryPublished", **ENTRY), {PROVIDER: {COMPILER}}),
    (
        "DuplicateSourceFlagged",
        payload(
            "DuplicateSourceFlagged",
            resource_code=RESOURCE,
            new_provider_code=PROVIDER,
            existing_provider_code=CONSUMER,
        ),
        {PROVIDER: {COMPILER, REVIEWER}, CONSUMER: {COMPILER, REVIEWER}, IT_OFFICE: {OPERATOR}},
    ),
    ("ShareDemandFiled", payload("ShareDemandFiled", demand_id="m1", requester_code=CONSUMER), {IT_OFFICE: {OPERATOR}}),
    (
        "ShareDemandMatched",
        payload("ShareDemandMatched", demand_id="m1", requester_code=CONSUMER, resource_code=RESOURCE),
        {CONSUMER: {COMPILER, REVIEWER, ADMIN}},
    ),
    (
        "CatalogEntryOverdue",
        payload("CatalogEntryOverdue", resource_code=RESOURCE, provider_code=PROVIDER),
        {PROVIDER: {COMPILER, REVIEWER}, IT_OFFICE: {OPERATOR}},
    ),
    (  # the IT office's operators follow a finding to its rectification, its auditors keep the record
        "AuditFindingRaised",
        payload("AuditFindingRaised", finding_id="f1", department_code=PROVIDER),
        {PROVIDER: set(), IT_OFFICE: {OPERATOR, AUDITOR}},
    ),
    (  # 通报批评: the IT office's operators ask for it (Art. 24), its auditors keep it on record
        "AuditFindingEscalated",
        payload("AuditFindingEscalated", finding_id="f1", department_code=PROVIDER),
        {PROVIDER: set(), IT_OFFICE: {OPERATOR, AUDITOR}},
    ),
    (  # a finding against the IT office itself: one notice, for the whole of it
        "AuditFindingRaised",
        payload("AuditFindingRaised", finding_id="f1", department_code=IT_OFFICE),
        {IT_OFFICE: set()},
    ),
    (  # a ruling the parties may still escalate: the parties alone
        "DisputeRuled",
        payload("DisputeRuled", dispute_id="d1", level="IT_OFFICE", final=False, **REQUESTED),
        {CONSUMER: {ADMIN}, PROVIDER: {ADMIN}},
    ),
    (  # the final ruling: the IT office's operators, who keep the group's office, and its auditors
        "DisputeRuled",
        payload("DisputeRuled", dispute_id="d1", level="LEADERSHIP_GROUP", final=True, **REQUESTED),
        {CONSUMER: {ADMIN}, PROVIDER: {ADMIN}, IT_OFFICE: {OPERATOR, AUDITOR}},
    ),
    (
        "DisputeEscalated",
        payload("DisputeEscalated", dispute_id="d1", escalated_by_department=CONSUMER, **REQUESTED),
        {IT_OFFICE: {OPERATOR}, PROVIDER: {ADMIN}, LEADERSHIP: {MEMBER}},
    ),
    (  # the IT office applied and escalated: its operators, who keep the leadership group's office, hear
        "DisputeEscalated",
        payload("DisputeEscalated", dispute_id="d1", escalated_by_department=IT_OFFICE, **REQUESTED)
        | {"consumer_code": IT_OFFICE},
        {IT_OFFICE: {OPERATOR}, PROVIDER: {ADMIN}, LEADERSHIP: {MEMBER}},
    ),
    (  # the IT office applied itself: one notice, for its operators and its data administrators
        "ShareDecisionOverdue",
        payload("ShareDecisionOverdue", **(REQUESTED | {"consumer_code": IT_OFFICE}), step="IT_OFFICE_RULING"),
        {IT_OFFICE: {OPERATOR, ADMIN}},
    ),
    (
        "ShareDecisionOverdue",
        payload("ShareDecisionOverdue", **REQUESTED, step="LEADERSHIP_RULING"),
        {IT_OFFICE: {OPERATOR}, LEADERSHIP: {MEMBER}, CONSUMER: {ADMIN}},
    ),
]


@pytest.mark.parametrize(("event_type", "body", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_each_trigger_addresses_the_roles_that_act_on_it(
    event_type: str, body: dict, expected: dict[str, set[Role]]
) -> None:
    uow = FakeUnitOfWork()
    n = notifier_of(uow)
    n = handlers.Notifier(**{**n.__dict__, "leadership_group_code": LEADERSHIP})
    await deliver(uow, event_type, body, "e1", n)
    told = {x.recipient_code: set(x.audience) for x in uow.kept.values()}
    assert told == expected


async def test_without_the_leadership_groups_code_the_it_office_hears_of_an_escalation_alone() -> None:
    uow = FakeUnitOfWork()
    body = payload("DisputeEscalated", dispute_id="d1", escalated_by_department=CONSUMER, **REQUESTED)
    await deliver(uow, "DisputeEscalated", body, "e1", notifier_of(uow))
    assert {x.recipient_code for x in uow.kept.values()} == {IT_OFFICE, PROVIDER}


async def test_reminders_go_to_whoever_owes_the_step() -> None:
    uow = FakeUnitOfWork()
    n = notifier_of(uow)
    await deliver(uow, "ShareRequested", REQUEST | {"decide_by": date(2026, 11, 23)}, "e1", n)
    await deliver(
        uow,
        "CatalogEntryChangeReported",
        payload("CatalogEntryChangeReported", **ENTRY, due_on=date(2026, 11, 24)),
        "e2",
        n,
    )
    n.clock.at = n.clock.at.replace(day=25)  # type: ignore[attr-defined]
    await handlers.fire_due(n)
    reminded = {x.reference: x.audience for x in uow.kept.values() if x.kind is NotificationKind.DEADLINE_APPROACHING}
    assert reminded == {"r1": {ADMIN}, RESOURCE: {COMPILER, REVIEWER}}


async def test_a_findings_rectification_reminder_reaches_the_department_and_the_it_offices_operators() -> None:
    """The IT office's operators follow a finding to its rectification (Art. 24): they are reminded with the
    department, and hear when its deadline passed; its auditors hear that it was escalated."""
    uow = FakeUnitOfWork()
    n = notifier_of(uow)
    found = payload("AuditFindingRaised", finding_id="f1", department_code=PROVIDER, correct_by=date(2026, 11, 25))
    await deliver(uow, "AuditFindingRaised", found, "e1", n)
    # scheduled: listed to the department's people, and to the IT office's operators (not its auditors)
    followed = await uow.reminders_of(IT_OFFICE, [Deadline.FINDING_RECTIFICATION])
    assert await uow.reminders_of(IT_OFFICE) == [] and [r.recipient_code for r in followed] == [PROVIDER]
    assert handlers.reminders_shown(followed, frozenset({OPERATOR}), IT_OFFICE) == followed
    assert handlers.reminders_shown(followed, frozenset({AUDITOR}), IT_OFFICE) == []
    assert handlers.reminders_shown(await uow.reminders_of(PROVIDER), frozenset({COMPILER}), PROVIDER) == followed
    n.clock.at = n.clock.at.replace(day=25)  # type: ignore[attr-defined]
    await handlers.fire_due(n)
    reminded = {
        x.recipient_code: (x.audience, x.notification_id, x.body)
        for x in uow.kept.values()
        if x.kind is NotificationKind.DEADLINE_APPROACHING
    }
    assert {k: v[0] for k, v in reminded.items()} == {PROVIDER: set(), IT_OFFICE: {OPERATOR}}
    assert reminded[IT_OFFICE][1] == f"reminder:FINDING_RECTIFICATION:f1:2026-11-25:{IT_OFFICE}"
    assert PROVIDER in reminded[IT_OFFICE][2]  # the office follows many departments: it is told whose
    assert "责任部门" not in reminded[PROVIDER][2]  # the department is not named to itself
    await handlers.fire_due(n)  # fired again: nobody is reminded twice
    assert len([x for x in uow.kept.values() if x.kind is NotificationKind.DEADLINE_APPROACHING]) == 2
    escalated = payload("AuditFindingEscalated", finding_id="f1", department_code=PROVIDER)
    await deliver(uow, "AuditFindingEscalated", escalated, "e2", n)
    passed = {x.recipient_code: x.audience for x in uow.kept.values() if x.kind is NotificationKind.DEADLINE_PASSED}
    assert passed == {PROVIDER: set(), IT_OFFICE: {OPERATOR, AUDITOR}}
    # an operator's inbox shows the reminder and the escalation, an auditor's the escalation alone
    for roles, kinds in (({OPERATOR}, {"DEADLINE_APPROACHING", "DEADLINE_PASSED"}), ({AUDITOR}, {"DEADLINE_PASSED"})):
        shown, _ = await uow.inbox(InboxQuery(IT_OFFICE, roles=frozenset(roles)))
        assert {x.kind.value for x in shown if x.reference == "f1"} >= kinds
        assert {x.kind.value for x in shown if x.kind.value.startswith("DEADLINE")} == kinds


def notice(number: int, *audience: Role, recipient: str = PROVIDER) -> Notification:
    return Notification(f"n{number}", recipient, NotificationKind.OTHER, "t", "b", audience=frozenset(audience))


def test_a_person_sees_the_notices_for_her_roles_and_the_departments_a_machine_all() -> None:
    kept = [
        notice(1, COMPILER),
        notice(2, REVIEWER),
        notice(3, ADMIN),
        notice(4),
        notice(5, COMPILER, REVIEWER),
        notice(6, OPERATOR, recipient=IT_OFFICE),
    ]

    def seen(principal: Principal, department: str = PROVIDER) -> set[str]:
        roles = handlers.roles_reading(principal, department)
        mine = [x for x in kept if x.recipient_code == department]
        return {x.notification_id for x in mine if roles is None or x.concerns(roles)}

    assert seen(Principal("c", PROVIDER, frozenset({COMPILER}))) == {"n1", "n4", "n5"}
    assert seen(Principal("r", PROVIDER, frozenset({REVIEWER}))) == {"n2", "n4", "n5"}
    assert seen(Principal("a", PROVIDER, frozenset({ADMIN, COMPILER}))) == {"n1", "n3", "n4", "n5"}
    assert seen(Principal("adapter", PROVIDER, machine=MachineKind.ADAPTER)) == {"n1", "n2", "n3", "n4", "n5"}
    # the IT office: its own notices for its operators; another department's, all of them (oversight)
    operator = Principal("o", IT_OFFICE, frozenset({OPERATOR}))
    assert seen(operator, IT_OFFICE) == {"n6"}
    assert seen(operator) == {"n1", "n2", "n3", "n4", "n5"}
    assert seen(Principal("aud", IT_OFFICE, frozenset({Role.AUDITOR})), IT_OFFICE) == set()


async def test_every_departments_notices_by_roles_without_the_readers_department_is_no_query() -> None:
    """The stores would disagree on it (the database dropped the roles, the fake kept them): it is refused."""
    with pytest.raises(ValueError, match="own_code"):
        InboxQuery(None, roles=frozenset({OPERATOR}))
    uow = FakeUnitOfWork()
    uow.kept = {n.notification_id: n for n in (notice(1, COMPILER), notice(2, ADMIN, recipient=IT_OFFICE))}
    everyone, _ = await uow.inbox(InboxQuery(None))  # every department's, whole: a machine of the IT office
    assert {n.notification_id for n in everyone} == {"n1", "n2"}
    overseen, _ = await uow.inbox(InboxQuery(None, roles=frozenset({OPERATOR}), own_code=IT_OFFICE))
    assert {n.notification_id for n in overseen} == {"n1"}


def test_the_leadership_group_is_a_setting_the_demo_directory_matches_and_production_names_or_leaves_empty() -> None:
    assert NotifierSettings().leadership_group_code == DEMO_LEADERSHIP_GROUP_CODE
    assert DEMO_LEADERSHIP_GROUP_CODE == demo_data.credit_code(demo_data.CITY_REGION, 3)  # the demo's (directory cli)
    production = {"environment": "production", "mongo_uri": "mongodb://m0/?replicaSet=rs0"}
    production["it_office_code"] = code("11360800MB0000008")
    with pytest.raises(ValidationError, match="NOTIFIER_LEADERSHIP_GROUP_CODE"):
        NotifierSettings(**production)
    for named in ("", code("11360800MB0000009")):  # the IT office alone, or the group: the next check is the key's
        with pytest.raises(ValidationError, match="webhook_secret_keys"):
            NotifierSettings(**production, leadership_group_code=named)
    assert NotifierSettings(leadership_group_code="").leadership_group_code is None
    assert NotifierSettings(leadership_group_code=LEADERSHIP.lower()).leadership_group_code == LEADERSHIP
    with pytest.raises(ValidationError, match="leadership group"):
        NotifierSettings(leadership_group_code="11360800MB0000003X")


async def test_a_daily_digest_is_one_per_audience_and_names_only_what_its_readers_see() -> None:
    """A compiler's inbox shows no digest naming the request her data administrator decides."""
    uow = FakeUnitOfWork()
    n = notifier_of(uow)
    await handlers.choose_preferences(Preferences(PROVIDER, delivery=Delivery.DAILY_DIGEST), n)
    await deliver(uow, "ShareRequested", REQUEST, "e1", n)
    await deliver(uow, "CatalogEntryReturned", payload("CatalogEntryReturned", **ENTRY), "e2", n)
    request = next(x for x in uow.kept.values() if x.kind is NotificationKind.REQUEST_ARRIVED)
    returned = next(x for x in uow.kept.values() if x.kind is NotificationKind.CATALOG_EVENT)
    n.clock.at = n.clock.at + timedelta(days=1)  # type: ignore[attr-defined]
    await handlers.fire_due(n)

    async def digests(*roles: Role) -> list[Notification]:
        query = InboxQuery(PROVIDER, kind=NotificationKind.DIGEST, roles=frozenset(roles))
        return (await uow.inbox(query))[0]

    [compilers] = await digests(COMPILER)
    assert returned.title in compilers.body and request.title not in compilers.body
    [admins] = await digests(ADMIN)
    assert request.title in admins.body and returned.title not in admins.body
    assert len(await digests(COMPILER, ADMIN)) == 2
    assert await digests(Role.AUDITOR) == []


def test_a_notice_names_its_audience_there_is_no_department_wide_default() -> None:
    with pytest.raises(TypeError, match="audience"):
        Notification("n1", PROVIDER, NotificationKind.OTHER, "t", "b")  # type: ignore[call-arg]


async def test_a_person_is_shown_the_reminders_whose_notices_will_be_hers() -> None:
    uow = FakeUnitOfWork()
    n = notifier_of(uow)
    await deliver(uow, "ShareRequested", REQUEST | {"decide_by": date(2026, 11, 23)}, "e1", n)
    found = payload("AuditFindingRaised", finding_id="f1", department_code=PROVIDER, correct_by=date(2026, 12, 30))
    await deliver(uow, "AuditFindingRaised", found, "e2", n)
    scheduled = await uow.reminders_of(PROVIDER)
    assert {r.reference for r in scheduled} == {"r1", "f1"}

    def shown(*roles: Role) -> set[str]:
        reader = Principal("p", PROVIDER, frozenset(roles))
        return {r.reference for r in handlers.reminders_shown(scheduled, handlers.roles_reading(reader, PROVIDER))}

    assert shown(COMPILER) == {"f1"}  # the finding's rectification is the whole department's
    assert shown(ADMIN) == {"r1", "f1"}
    adapter = Principal("a", PROVIDER, machine=MachineKind.ADAPTER)
    assert {r.reference for r in handlers.reminders_shown(scheduled, handlers.roles_reading(adapter, PROVIDER))} == {
        "r1",
        "f1",
    }
