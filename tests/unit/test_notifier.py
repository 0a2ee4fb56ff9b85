"""The notifier on in-memory fakes: events as the consumer hands them over (Avro payloads), through the same
subscriptions the service wires, into inboxes."""

import copy
import json
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from common.codec import SCHEMA_DIR, EventCodec
from common.errors import RejectedEvent
from common.events import Event
from common.identifiers import credit_code_check_character
from common.policy import Role
from common.topics import load_topic_family, load_topics
from services.directory import demo_data
from services.notifier.adapters.events import (
    DEPARTMENT_FIELDS,
    directory_subscriptions,
    resource_changes,
    subscriptions,
    typed,
)
from services.notifier.domain import events as domain_events
from services.notifier.domain.changes import ChangeBatch, Ranges, told_after
from services.notifier.domain.events import Dispute
from services.notifier.domain.holdings import EntryTerms, Holding
from services.notifier.domain.notifications import READERS_KEPT, Audience, Channel, Notification, NotificationKind
from services.notifier.domain.preferences import Preferences
from services.notifier.domain.reminders import Deadline, Reminder, ReminderPolicy
from services.notifier.handlers import DisputeNotHeard, Notifier
from services.notifier.ports import DIRECTORY_EVENTS, NOTIFICATIONS, RESOURCE_CHANGES, SUBSCRIBED, InboxQuery
from services.notifier.settings import NotifierSettings
from tests.contract.test_schemas import sample


def code(serial: str) -> str:
    return serial + credit_code_check_character(serial)


IT_OFFICE = code("11360800MB0000002")
PROVIDER = code("11360800MB2000001")
CONSUMER = code("11360800MB3000002")


class NoWebhooks:
    """No department here registered a webhook (tests/unit/test_webhooks.py has some)."""

    async def endpoints_of(self, department_codes) -> list:
        return []

    async def queue(self, deliveries) -> None:
        raise AssertionError("no endpoint, so nothing to queue")


class FakeTransaction:
    def __init__(self, uow: "FakeUnitOfWork") -> None:
        self.uow = uow
        self.kept = dict(uow.kept)
        self.disputes = dict(uow.disputes)
        self.held = dict(uow.held)
        self.entries = dict(uow.entries)
        self.feeds = dict(uow.feeds)
        self.reminders = dict(uow.reminders)
        self.chosen = dict(uow.chosen)
        self.digests = dict(uow.digests)
        self.emitted: list[tuple[str, Event]] = []
        self.webhooks = NoWebhooks()

    async def existing(self, notification_ids: Collection[str]) -> set[str]:
        return set(notification_ids) & set(self.kept)

    async def add_all(self, notifications: list[Notification]) -> None:
        for n in notifications:
            assert n.notification_id not in self.kept  # the key is unique, as the database's _id
            self.kept[n.notification_id] = n

    def emit(self, topic: str, event: Event) -> None:
        self.emitted.append((topic, event))

    async def preferences(self, department_codes: Collection[str]) -> dict[str, Preferences]:
        return {c: p for c, p in self.chosen.items() if c in department_codes}

    async def remember_dispute(self, dispute: Dispute) -> None:
        self.disputes[dispute.dispute_id] = dispute

    async def dispute(self, dispute_id: str) -> Dispute | None:
        return self.disputes.get(dispute_id)

    async def hold(self, holding: Holding) -> None:
        known = self.held.get(holding.grant_id)
        self.held[holding.grant_id] = replace(holding, ended=known is not None and known.ended)

    async def end_holding(self, grant_id: str) -> None:
        known = self.held.get(grant_id) or Holding(grant_id, "", "", date.min, date.min, False)
        self.held[grant_id] = replace(known, ended=True)

    async def holdings(self, resource_code: str) -> list[Holding]:
        return [h for h in self.held.values() if h.resource_code == resource_code and not h.ended]

    async def entry_terms(self, resource_code: str) -> EntryTerms | None:
        return self.entries.get(resource_code)

    async def keep_entry_terms(self, terms: EntryTerms) -> None:
        self.entries[terms.resource_code] = terms

    async def change_batches(self, resource_codes: Collection[str]) -> dict[str, tuple[ChangeBatch | None, Ranges]]:
        return {c: self.feeds[c] for c in resource_codes if c in self.feeds}

    async def keep_change_batch(self, batch: ChangeBatch) -> None:
        self.feeds[batch.resource_code] = (batch, self.feeds.get(batch.resource_code, (None, ()))[1])

    async def due_change_batch(self, now: datetime) -> ChangeBatch | None:
        due = [b for b, _ in self.feeds.values() if b is not None and b.tell_at <= now]
        return min(due, key=lambda b: b.tell_at, default=None)

    async def batch_told(self, batch: ChangeBatch) -> None:
        kept, told = self.feeds[batch.resource_code]
        self.feeds[batch.resource_code] = (kept.left_after(batch) if kept else None, told_after(told, batch))

    async def schedule(self, reminder: Reminder) -> None:
        self.reminders.setdefault(reminder.reminder_id, (reminder, False))

    async def cancel_reminders(self, deadline: Deadline, reference: str) -> None:
        for key, (r, sent) in list(self.reminders.items()):
            if r.deadline is deadline and r.reference == reference and not sent:
                del self.reminders[key]

    async def due_reminders(self, now: datetime, limit: int) -> list[Reminder]:
        due = sorted(
            (r for r, sent in self.reminders.values() if not sent and r.remind_at <= now), key=lambda r: r.remind_at
        )
        return due[:limit]

    async def reminder_sent(self, reminder_id: str) -> None:
        self.reminders[reminder_id] = (self.reminders[reminder_id][0], True)

    async def set_preferences(self, preferences: Preferences) -> None:
        self.chosen[preferences.department_code] = preferences

    async def schedule_digest(self, department_code: str, at: datetime | None) -> None:
        if at is None:
            self.digests.pop(department_code, None)
        else:
            self.digests[department_code] = at

    async def due_digest(self, now: datetime) -> tuple[str, datetime] | None:
        due = sorted((at, code) for code, at in self.digests.items() if at <= now)
        return (due[0][1], due[0][0]) if due else None

    async def digest_audiences(self, department_code: str) -> list[Audience]:
        found = {n.audience for n in self.kept.values() if n.recipient_code == department_code and n.in_digest}
        return sorted(found, key=lambda a: sorted(a))

    async def awaiting_digest(
        self, department_code: str, audience: Audience, limit: int
    ) -> tuple[list[Notification], int]:
        waiting = [
            n
            for n in self.kept.values()
            if n.recipient_code == department_code and n.in_digest and n.audience == audience
        ]
        return waiting[:limit], len(waiting)

    async def digested(self, department_code: str) -> None:
        for key, n in self.kept.items():
            if n.recipient_code == department_code and n.in_digest:
                self.kept[key] = replace(n, in_digest=False)


def _wanted(n: Notification, query: InboxQuery) -> bool:
    return (
        not (query.unread_only and n.read_for(query.reader))
        and query.kind in (None, n.kind)
        and query.resource_code in (None, n.resource_code)
    )


class FakeUnitOfWork:
    """Commits a transaction's writes only when its block ends without an error, as the MongoDB one does."""

    def __init__(self) -> None:
        self.kept: dict[str, Notification] = {}
        self.disputes: dict[str, Dispute] = {}
        self.held: dict[str, Holding] = {}
        self.entries: dict[str, EntryTerms] = {}
        self.feeds: dict[str, tuple[ChangeBatch | None, Ranges]] = {}
        self.reminders: dict[str, tuple[Reminder, bool]] = {}
        self.chosen: dict[str, Preferences] = {}
        self.digests: dict[str, datetime] = {}
        self.emitted: list[tuple[str, Event]] = []

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeTransaction]:
        tx = FakeTransaction(self)
        yield tx
        self.kept, self.disputes, self.held = tx.kept, tx.disputes, tx.held
        self.entries, self.feeds, self.reminders = tx.entries, tx.feeds, tx.reminders
        self.chosen, self.digests = tx.chosen, tx.digests
        self.emitted += tx.emitted

    async def inbox_of(self, department_code: str) -> list[Notification]:
        return [n for n in self.kept.values() if n.recipient_code == department_code]

    async def inbox(self, query: InboxQuery) -> tuple[list[Notification], int]:
        """As the MongoDB inbox filters: one department's inbox (or every department's), her roles'."""

        def shown(n: Notification) -> bool:
            if not _wanted(n, query):
                return False
            if query.department_code is not None or n.recipient_code == query.own_code:
                mine = query.department_code in (None, n.recipient_code)
                return mine and Channel.INBOX in n.channels and (query.roles is None or n.concerns(query.roles))
            if query.own_code is not None:
                return Channel.INBOX in n.channels  # the IT office overseeing: the others' inboxes whole
            return query.roles is None or n.concerns(query.roles)

        found = sorted(filter(shown, self.kept.values()), key=lambda n: (n.created_at, n.notification_id))[::-1]
        return found[query.offset : query.offset + query.limit], len(found)

    async def mark_read(
        self, department_code: str | None, notification_id: str, reader: str, roles: frozenset[Role] | None = None
    ) -> bool:
        n = self.kept.get(notification_id)
        if (
            n is None
            or Channel.INBOX not in n.channels
            or department_code not in (None, n.recipient_code)
            or (roles is not None and not n.concerns(roles))
        ):
            return False
        if reader not in n.read_by and len(n.read_by) < READERS_KEPT:
            self.kept[notification_id] = replace(n, read_by=n.read_by | {reader})
        return True

    async def preferences_of(self, department_code: str) -> Preferences | None:
        return self.chosen.get(department_code)

    async def next_due(self) -> datetime | None:
        times = [b.tell_at for b, _ in self.feeds.values() if b is not None] + list(self.digests.values())
        times += [r.remind_at for r, sent in self.reminders.values() if not sent]
        return min(times, default=None)

    async def reminders_of(self, department_code: str, followed: Collection[Deadline] = ()) -> list[Reminder]:
        whose = [r for r, sent in self.reminders.values() if not sent]
        return [r for r in whose if r.recipient_code == department_code or r.deadline in followed]


class FakeTopics:
    def __init__(self) -> None:
        self.opened: set[str] = set()

    def topic(self, department_code: str) -> str:
        return f"notifier.notices.{department_code}"

    async def open(self, department_codes: Collection[str]) -> None:
        self.opened.update(department_codes)


class FakeTimer:
    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


class SettableClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


class Autumn2026:
    """The State Council's 2026 schedule around Mid-Autumn (25 September) and National Day (1–7 October), with
    its adjusted workdays (Sunday 20 September, Saturday 10 October)."""

    holidays = frozenset({date(2026, 9, 25), *(date(2026, 10, d) for d in range(1, 8))})
    workdays = frozenset({date(2026, 9, 20), date(2026, 10, 10)})

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day not in self.holidays and day.weekday() < 5


NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 in Ji'an


def notifier_of(uow: FakeUnitOfWork, clock: SettableClock | None = None) -> Notifier:
    return Notifier(
        uow=uow,
        clock=clock or SettableClock(NOW),
        topics=FakeTopics(),
        timer=FakeTimer(),
        reminders=ReminderPolicy(Autumn2026()),
        it_office_code=IT_OFFICE,
    )


REQUEST = {
    "request_id": "r1",
    "resource_code": "101001/000001",
    "provider_code": PROVIDER,
    "consumer_code": CONSUMER,
    "purpose": "企业开办一件事",
    "scope": "吉州区登记的企业",
    "data_items": [f"数据项{n}" for n in range(12)],
    "period_from": date(2026, 12, 1),
    "period_to": date(2027, 11, 30),
    "requested_by": "officer-9",
    "decide_by": date(2026, 12, 11),
}
DISPUTE = {
    "dispute_id": "d1",
    "request_id": "r1",
    "consumer_code": CONSUMER,
    "provider_code": PROVIDER,
    "grounds": "所需数据项属于职责范围",
    "raised_by": "officer-9",
}
RULING = {
    "dispute_id": "d1",
    "request_id": "r1",
    "level": "IT_OFFICE",
    "outcome": "DECISION_OVERTURNED",
    "reasons": "申请符合共享条件",
    "ruled_by": "xxb-operator",
    "final": False,
}
GRANT = {
    "grant_id": "g1",
    "request_id": "r1",
    "resource_code": "101001/000001",
    "provider_code": PROVIDER,
    "consumer_code": CONSUMER,
    "purpose": "企业开办一件事",
    "data_items": ["企业名称", "法定代表人"],
    "valid_from": date(2026, 12, 1),
    "valid_to": date(2027, 11, 30),
}


async def deliver(
    uow: FakeUnitOfWork, event_type: str, payload: dict, event_id: str | None = None, n: Notifier | None = None
) -> Event:
    event = Event(event_type, "r1", payload, "exchange", **({"event_id": event_id} if event_id else {}))
    await subscriptions(n or notifier_of(uow))[event_type](event)
    return event


async def test_a_request_tells_the_provider_what_is_asked_and_by_when() -> None:
    uow = FakeUnitOfWork()
    event = await deliver(uow, "ShareRequested", REQUEST)
    [note] = await uow.inbox_of(PROVIDER)
    assert note.kind is NotificationKind.REQUEST_ARRIVED and note.reference == "r1"
    assert note.due_on == date(2026, 12, 11) and "2026-12-11" in note.body
    assert CONSUMER in note.body and "吉州区登记的企业" in note.body and "等 12 项" in note.body
    assert note.notification_id == f"{event.event_id}:{PROVIDER}"
    [(topic, issued), (own_topic, own)] = uow.emitted
    assert topic == NOTIFICATIONS and issued.event_type == "NotificationIssued" and issued.key == PROVIDER
    assert own_topic == f"notifier.notices.{PROVIDER}" and own.payload == issued.payload


async def test_the_same_event_delivered_twice_notifies_once() -> None:
    uow = FakeUnitOfWork()
    await deliver(uow, "ShareRequested", REQUEST, event_id="e1")
    await deliver(uow, "ShareRequested", REQUEST, event_id="e1")
    assert len(await uow.inbox_of(PROVIDER)) == 1 and len(uow.emitted) == 2  # the platform's and its own topic


async def test_the_applicant_hears_of_a_decision_and_of_a_refusal_with_its_legal_basis() -> None:
    uow = FakeUnitOfWork()
    decided = {
        "request_id": "r1",
        "resource_code": "R",
        "provider_code": PROVIDER,
        "consumer_code": CONSUMER,
        "decision": "REJECTED",
        "reasons": "超出职责范围",
        "decided_by": "admin",
        "decided_on": date(2026, 12, 3),
    }
    await deliver(uow, "ShareDecided", decided)
    refused = {"request_id": "r2", "resource_code": "S", "consumer_code": CONSUMER, "legal_basis": "《保守国家秘密法》"}
    await deliver(uow, "ShareRefused", refused)
    notes = {n.reference: n for n in await uow.inbox_of(CONSUMER)}
    assert "不同意" in notes["r1"].title and "超出职责范围" in notes["r1"].body
    assert notes["r2"].kind is NotificationKind.REQUEST_DECIDED and "《保守国家秘密法》" in notes["r2"].body
    assert await uow.inbox_of(PROVIDER) == []


async def test_a_dispute_reaches_the_it_office_and_the_ruling_both_parties() -> None:
    uow = FakeUnitOfWork()
    await deliver(uow, "ShareDisputed", DISPUTE)
    [to_office] = await uow.inbox_of(IT_OFFICE)
    assert to_office.kind is NotificationKind.DISPUTE_RAISED and "所需数据项属于职责范围" in to_office.body
    assert [n.kind for n in await uow.inbox_of(PROVIDER)] == [NotificationKind.DISPUTE_RAISED]

    await deliver(uow, "DisputeRuled", RULING)
    for party in (CONSUMER, PROVIDER):
        [ruling] = [n for n in await uow.inbox_of(party) if n.kind is NotificationKind.DISPUTE_RULED]
        assert "撤销原答复" in ruling.title and "申请符合共享条件" in ruling.body and "领导小组" in ruling.body
    await deliver(uow, "DisputeRuled", RULING | {"level": "LEADERSHIP_GROUP", "final": True})
    finals = [n for n in await uow.inbox_of(CONSUMER) if "最终" in n.title]
    assert len(finals) == 1 and "市政务数据共享工作领导小组" in finals[0].body
    # the IT office's operators hear the final ruling alone (the first was theirs), and its auditors
    rulings = [n for n in await uow.inbox_of(IT_OFFICE) if n.kind is NotificationKind.DISPUTE_RULED]
    assert [(n.title, n.audience) for n in rulings] == [(finals[0].title, {Role.IT_OFFICE_OPERATOR, Role.AUDITOR})]


async def test_a_ruling_on_a_dispute_never_heard_of_is_refused_at_once_and_notifies_nobody() -> None:
    """The dispute came before its ruling on the same partition (both keyed by the request): a ruling that
    does not name the parties itself can never be told once its dispute was missed. Dead-lettered at once."""
    uow = FakeUnitOfWork()
    with pytest.raises(DisputeNotHeard) as refused:
        await deliver(uow, "DisputeRuled", RULING)
    assert isinstance(refused.value, RejectedEvent) and refused.value.rule == "dispute_id"
    assert uow.kept == {} and uow.emitted == []


async def test_a_ruling_that_names_the_parties_reaches_both_without_its_dispute() -> None:
    uow = FakeUnitOfWork()
    await deliver(uow, "DisputeRuled", RULING | {"consumer_code": CONSUMER, "provider_code": PROVIDER})
    for party in (CONSUMER, PROVIDER):
        [note] = await uow.inbox_of(party)
        assert note.kind is NotificationKind.DISPUTE_RULED and note.reference == "r1"


FINDING = {
    "finding_id": "f1",
    "department_code": PROVIDER,
    "category": "DATA_NOT_PROVIDED_IN_TIME",
    "description": "9 月数据未按时提供",
    "correct_by": date(2026, 12, 9),
}


@pytest.mark.parametrize(
    ("event_type", "payload", "rule", "says"),
    [
        ("AuditFindingRaised", FINDING | {"department_code": "DEPT-X"}, "department", "department_code"),
        ("GrantIssued", GRANT | {"consumer_code": CONSUMER[:-1] + "1"}, "department", "GrantIssued.consumer_code"),
        ("ShareRequested", REQUEST | {"provider_code": ""}, "department", "provider_code"),
        ("DisputeRuled", RULING | {"consumer_code": "c", "provider_code": PROVIDER}, "department", "consumer_code"),
        ("AuditFindingRaised", FINDING | {"correct_by": date(9999, 12, 31)}, "payload", "9999-12-31"),
        ("GrantIssued", GRANT | {"valid_from": date(1, 1, 1)}, "payload", "valid_from"),
    ],
)
async def test_an_event_naming_no_department_or_a_day_out_of_range_is_refused_at_once(
    event_type: str, payload: dict, rule: str, says: str
) -> None:
    """Such an event can never be handled: no department will ever bear a code that fails its check, and a
    day in year 9999 breaks the reminders' arithmetic. A RejectedEvent, which the consumer dead-letters at
    once; before, each was tried five times (the department's topic could not be named) and nobody heard."""
    uow = FakeUnitOfWork()
    with pytest.raises(RejectedEvent, match=says) as refused:
        await deliver(uow, event_type, payload)
    assert refused.value.rule == rule
    assert uow.kept == {} and uow.emitted == [] and uow.reminders == {}


async def test_a_department_the_notifier_has_not_heard_of_is_told_all_the_same() -> None:
    """Its DepartmentRegistered may still be on its way on directory.events: its notice waits in its inbox."""
    uow = FakeUnitOfWork()
    newcomer = code("11360800MB9000001")
    await deliver(uow, "AuditFindingRaised", FINDING | {"department_code": newcomer})
    [note] = await uow.inbox_of(newcomer)
    assert note.reference == "f1"


async def test_the_consumer_hears_of_its_grant_and_of_its_revocation() -> None:
    uow = FakeUnitOfWork()
    await deliver(uow, "GrantIssued", GRANT)
    revoked = {
        "grant_id": "g1",
        "resource_code": "101001/000001",
        "consumer_code": CONSUMER,
        "reason": "超出用途使用",
        "revoked_by": "admin",
    }
    await deliver(uow, "GrantRevoked", revoked)
    issued, ended = sorted(await uow.inbox_of(CONSUMER), key=lambda n: n.kind)
    assert issued.kind is NotificationKind.GRANT_ISSUED and "企业名称、法定代表人" in issued.body
    assert "2027-11-30" in issued.body and issued.reference == "g1"
    assert ended.kind is NotificationKind.GRANT_REVOKED and "超出用途使用" in ended.body


async def test_a_grant_that_ends_by_itself_tells_the_consumer_why() -> None:
    uow = FakeUnitOfWork()
    ended = {
        "grant_id": "g1",
        "request_id": "r1",
        "resource_code": "101001/000001",
        "provider_code": PROVIDER,
        "consumer_code": CONSUMER,
        "cause": "ENTRY_TIGHTENED",
        "reason": "法定代表人 不再共享",
        "ended_on": date(2026, 12, 20),
    }
    await deliver(uow, "GrantEnded", ended)
    [note] = await uow.inbox_of(CONSUMER)
    assert note.kind is NotificationKind.GRANT_ENDED and note.reference == "g1"
    assert "收紧" in note.body and "法定代表人 不再共享" in note.body and "2026-12-20" in note.body
    assert await uow.inbox_of(PROVIDER) == []


async def test_a_passed_deadline_tells_whoever_owes_the_step_and_the_applicant() -> None:
    uow = FakeUnitOfWork()
    overdue = {
        "request_id": "r1",
        "resource_code": "101001/000001",
        "provider_code": PROVIDER,
        "consumer_code": CONSUMER,
        "step": "PROVIDER_DECISION",
        "responsible_code": PROVIDER,
        "due_on": date(2026, 10, 20),
        "detected_on": date(2026, 10, 21),
    }
    await deliver(uow, "ShareDecisionOverdue", overdue, event_id="o1")
    for party in (PROVIDER, CONSUMER):
        [note] = await uow.inbox_of(party)
        assert (
            note.kind is NotificationKind.DEADLINE_PASSED and "2026-10-20" in note.body and "提供部门答复" in note.title
        )
    assert await uow.inbox_of(IT_OFFICE) == []
    await deliver(uow, "ShareDecisionOverdue", overdue | {"step": "IT_OFFICE_RULING", "responsible_code": "x"}, "o2")
    [owed] = await uow.inbox_of(IT_OFFICE)
    assert "协调裁定" in owed.title and len(await uow.inbox_of(PROVIDER)) == 1


async def test_an_escalation_reaches_the_leadership_groups_office_and_the_other_party() -> None:
    uow = FakeUnitOfWork()
    escalated = {
        "dispute_id": "d1",
        "request_id": "r1",
        "resource_code": "101001/000001",
        "consumer_code": CONSUMER,
        "provider_code": PROVIDER,
        "escalated_by": "consumer-admin",
        "escalated_by_department": CONSUMER,
        "grounds": "协调裁定未考虑职责依据",
        "escalated_on": date(2026, 11, 2),
        "rule_by": date(2026, 11, 16),
    }
    await deliver(uow, "DisputeEscalated", escalated)
    for party in (IT_OFFICE, PROVIDER):
        [note] = await uow.inbox_of(party)
        assert note.kind is NotificationKind.DISPUTE_ESCALATED and "2026-11-16" in note.body
    assert await uow.inbox_of(CONSUMER) == []  # who escalated knows


async def test_a_returned_entry_tells_the_provider_each_finding() -> None:
    uow = FakeUnitOfWork()
    payload = {
        "resource_code": "R",
        "version": 2,
        "provider_code": PROVIDER,
        "reviewed_by": "reviewer",
        "findings": [{"field": "abstract", "finding": "摘要不完整"}, {"field": "items", "finding": "缺少类型"}],
    }
    await deliver(uow, "CatalogEntryReturned", payload)
    [note] = await uow.inbox_of(PROVIDER)
    assert "abstract：摘要不完整" in note.body and "items：缺少类型" in note.body


async def test_a_field_added_to_a_schema_later_changes_nothing_and_a_missing_one_is_refused() -> None:
    uow = FakeUnitOfWork()
    await deliver(uow, "GrantIssued", GRANT | {"channels": ["API"]})
    assert len(await uow.inbox_of(CONSUMER)) == 1
    with pytest.raises(RejectedEvent, match=r"GrantIssued\.consumer_code is missing"):
        await deliver(uow, "GrantIssued", {k: v for k, v in GRANT.items() if k != "consumer_code"})
    with pytest.raises(RejectedEvent, match=r"DisputeRuled\.level"):
        await deliver(uow, "DisputeRuled", RULING | {"level": "COURT"})


def test_every_event_the_notifier_hears_travels_on_its_topics_and_reads_from_its_schema() -> None:
    """Each typed event reads a payload as the codec decodes it from the committed schema."""
    codec = EventCodec.from_folder()
    carried = {event for name in SUBSCRIBED for event in load_topics()[name].events}
    handled = subscriptions(notifier_of(FakeUnitOfWork())) | directory_subscriptions(
        notifier_of(FakeUnitOfWork()), None
    )  # type: ignore[arg-type]
    handled |= {"ResourceChanged": resource_changes(notifier_of(FakeUnitOfWork()))}  # type: ignore[dict-item]
    carried |= set(load_topics()[RESOURCE_CHANGES].events) | set(load_topics()[DIRECTORY_EVENTS].events)
    assert set(handled) <= carried
    for event_type in handled:
        raw = json.loads((SCHEMA_DIR / f"{event_type}.avsc").read_text())
        given = sample(copy.deepcopy(raw), {})
        given |= {name: CONSUMER for name in DEPARTMENT_FIELDS if name in given}  # sample text names no department
        _, payload = codec.decode(codec.encode(event_type, given))
        event = typed(getattr(domain_events, event_type), payload)
        assert type(event).__name__ == event_type


def test_the_it_office_is_a_setting_the_demo_directory_matches_and_production_must_set() -> None:
    assert NotifierSettings().it_office_code == demo_data.credit_code(demo_data.CITY_REGION, 2)  # the demo's
    with pytest.raises(ValidationError, match="NOTIFIER_IT_OFFICE_CODE"):
        NotifierSettings(environment="production", mongo_uri="mongodb://m0/?replicaSet=rs0")
    with pytest.raises(ValidationError, match="it_office_code"):
        NotifierSettings(it_office_code="11360800MB0000002X")
    assert NotifierSettings(it_office_code=IT_OFFICE.lower()).it_office_code == IT_OFFICE


def test_a_batch_of_changes_may_not_be_shorter_than_its_window() -> None:
    assert NotifierSettings().change_batch_max_seconds == 300
    with pytest.raises(ValidationError, match="NOTIFIER_CHANGE_BATCH_MAX_SECONDS"):
        NotifierSettings(change_window_seconds=10, change_batch_max_seconds=5)


def test_a_topic_family_is_read_as_the_declared_topics_are_with_its_configs(tmp_path) -> None:
    declared = tmp_path / "topics.toml"
    declared.write_text(
        '[defaults]\nretention_ms = 1000\n[[topic]]\nname = "a"\npartitions = 1\n'
        '[[topic_family]]\nprefix = "x."\npartitions = 3\nconfigs = { "message.timestamp.type" = "LogAppendTime" }\n',
        encoding="utf-8",
    )
    family = load_topic_family("x.", declared, replication_factor=3)
    assert (family.name, family.partitions, family.replication_factor, family.retention_ms) == ("x.", 3, 3, 1000)
    assert family.config() == {
        "cleanup.policy": "delete", "message.timestamp.type": "LogAppendTime", "retention.ms": "1000"
    }  # fmt: skip
    with pytest.raises(ValueError, match=r"no topic_family with prefix 'y\.'"):
        load_topic_family("y.", declared)
    assert load_topic_family("notifier.notices.").partitions == 3  # the platform's own


def test_the_data_changes_consumer_fetches_more_often_when_idle_than_the_others() -> None:
    """A change must reach its holders within seconds: the consumer it passes through waits less between idle
    fetches; the notifier's other consumers, once a second, cost an idle platform less."""
    from services.notifier import main as notifier_main

    settings = NotifierSettings(changes_idle_pause_max_seconds=0.5, kafka_idle_pause_max_seconds=1.0)
    _, runtime = notifier_main.build(settings)
    pauses = {c.group: c.settings.kafka_idle_pause_max_seconds for c in runtime.consumers}
    assert pauses == {"notifier": 1.0, "notifier-changes": 0.5, "notifier-directory": 1.0}
    assert runtime.settings.kafka_idle_pause_max_seconds == 1.0
