"""One handler for every event that calls for a notification. Events arrive typed (adapters/events.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from common.errors import Invalid, NotFound, RejectedEvent
from common.events import Event
from common.identifiers import InvalidIdentifier, validate_credit_code
from common.policy import Principal, Role
from services.notifier import webhooks
from services.notifier.domain import notifications
from services.notifier.domain.changes import ChangeBatch, add_change
from services.notifier.domain.events import (
    AuditFindingCorrected,
    AuditFindingEscalated,
    AuditFindingRaised,
    AuditFindingReported,
    AuditFindingReportRejected,
    CatalogEntryChangeReported,
    CatalogEntryMaintenanceConfirmed,
    CatalogEntryPublished,
    CatalogEntryWithdrawn,
    ChangeOperation,
    DepartmentRegistered,
    Dispute,
    DisputeRuled,
    GrantEnded,
    GrantIssued,
    GrantRevoked,
    PublicationConsentDecided,
    PublicationConsentRequested,
    ResourceChanged,
    ShareDecided,
    ShareDisputed,
    ShareRefused,
    ShareRequested,
)
from services.notifier.domain.holdings import EntryTerms, Holding, holders, tightened
from services.notifier.domain.notifications import (
    FOLLOWED_BY_IT_OFFICE,
    REMINDED,
    Audience,
    Channel,
    Delivery,
    Notification,
    Rule,
    concerns,
)
from services.notifier.domain.preferences import DIGEST_SHOWN, Preferences, defaults, digest, next_digest_at
from services.notifier.domain.reminders import (
    CHINA,
    Deadline,
    Reminder,
    ReminderPolicy,
    after_waiting,
    one_year_after,
    working_days_waited,
)
from services.notifier.ports import NOTIFICATIONS, Clock, DepartmentTopics, NotifierTransaction, UnitOfWork, Wakeable

PRODUCER = "notifier"
FIRED_PER_TRANSACTION = 50
ISSUED_PER_TRANSACTION = 50  # a batch of changes told to many holders: the first transaction stores this many
ISSUED_PER_TRANSACTION_MOST = 400


class NotificationNotFound(NotFound):
    pass


class DisputeNotHeard(RejectedEvent):
    """A ruling that does not name the parties (written before rulings did), on a dispute whose ShareDisputed
    was not handled. It never will be: the exchange keys both by the request, so the dispute came first on
    the same partition, and was refused or came before this consumer group's start. Dead-lettered at once
    with this reason, to be replayed once the dispute is in."""


@dataclass(frozen=True)
class Notifier:
    """What the handlers need, built once in main.py (fakes in the unit tests)."""

    uow: UnitOfWork
    clock: Clock
    topics: DepartmentTopics
    timer: Wakeable
    reminders: ReminderPolicy
    it_office_code: str
    leadership_group_code: str | None = None  # None: the IT office, which keeps its office, hears for it
    change_window: timedelta = timedelta(seconds=1)
    change_batch_longest: timedelta = timedelta(minutes=5)
    digest_time: time = time(8, 30)
    report_answer_days: int = 5  # working days a rectification report waits before the IT office is reminded
    # a reminder of a waiting report whose time had come when it was scheduled waits this long (`after_waiting`)
    overdue_grace: timedelta = timedelta(minutes=5)

    def today(self) -> date:
        return self.clock.now().astimezone(CHINA).date()


async def notify(event_id: str, event: Any, n: Notifier, rule: Rule) -> None:
    """Put each notice the rule gives in its recipient's inbox and announce it, once per event."""
    async with n.uow() as tx:
        await _issue(tx, n, rule(event_id, event))


async def dispute_raised(event_id: str, disputed: ShareDisputed, n: Notifier) -> None:
    """Tell the IT office, which coordinates, and keep the parties: its ruling will name only the dispute."""
    async with n.uow() as tx:
        await tx.remember_dispute(
            Dispute(disputed.dispute_id, disputed.request_id, disputed.consumer_code, disputed.provider_code)
        )
        await _issue(tx, n, notifications.dispute_raised(event_id, disputed, n.it_office_code))


async def dispute_ruled(event_id: str, ruled: DisputeRuled, n: Notifier) -> None:
    async with n.uow() as tx:
        dispute = ruled.parties() or await tx.dispute(ruled.dispute_id)
        if dispute is None:
            raise DisputeNotHeard("dispute_id", f"no ShareDisputed {ruled.dispute_id} was heard before its ruling")
        await _issue(tx, n, notifications.dispute_ruled(event_id, ruled, dispute, n.it_office_code))


# -- who holds what ---------------------------------------------------------------------------------------


async def grant_issued(event_id: str, e: GrantIssued, n: Notifier) -> None:
    """The consumer holds the resource from now on: its changes concern it."""
    async with n.uow() as tx:
        await tx.hold(Holding.of(e))
        await _issue(tx, n, notifications.grant_issued(event_id, e))


async def grant_gone(event_id: str, e: GrantRevoked | GrantEnded, n: Notifier, rule: Rule) -> None:
    async with n.uow() as tx:
        await tx.end_holding(e.grant_id)
        await _issue(tx, n, rule(event_id, e))


async def resource_changes(events: list[tuple[str, ResourceChanged]], n: Notifier) -> None:
    """Count a fetched batch of stored changes into each resource's open batch (told once changes pause for
    the window, or once it has been open the longest a batch may be)."""
    now = n.clock.now()
    async with n.uow() as tx:
        known = await tx.change_batches({e.resource_code for _, e in events})
        for _, e in events:
            batch, told = known.get(e.resource_code, (None, ()))
            batch = add_change(
                batch,
                told,
                resource_code=e.resource_code,
                provider_code=e.provider_code,
                sequence=e.sequence,
                deleted=e.operation is ChangeOperation.DELETE,
                now=now,
                window=n.change_window,
                longest=n.change_batch_longest,
            )
            known[e.resource_code] = (batch, told)
        for batch, _ in known.values():
            if batch is not None:
                await tx.keep_change_batch(batch)
    n.timer.wake()


# -- the catalog ------------------------------------------------------------------------------------------


async def entry_published(event_id: str, e: CatalogEntryPublished, n: Notifier) -> None:
    """Its compilers hear it passed review; those who use it, that it changed (and how it is stricter); its
    yearly maintenance is due a year on, and a reported change is settled."""
    async with n.uow() as tx:
        before = await tx.entry_terms(e.resource_code)
        terms = EntryTerms.of(e)
        notices = notifications.entry_approved(event_id, e)
        if (before.version < e.version) if before is not None else e.version > 1:
            # a version the notifier did not see the predecessor of still tells them, without the comparison
            stricter = tightened(before, terms) if before is not None else []
            users = holders(await tx.holdings(e.resource_code), n.today())
            notices += notifications.entry_changed(event_id, e, stricter, users)
        if before is None or before.version <= e.version:
            await tx.keep_entry_terms(terms)
        await tx.cancel_reminders(Deadline.CATALOG_UPDATE, e.resource_code)
        await _remind(
            tx, n, Deadline.YEARLY_MAINTENANCE, e.provider_code, e.resource_code, one_year_after(e.published_on)
        )
        await _issue(tx, n, notices)
    n.timer.wake()


async def entry_withdrawn(event_id: str, e: CatalogEntryWithdrawn, n: Notifier) -> None:
    async with n.uow() as tx:
        users = holders(await tx.holdings(e.resource_code), n.today())
        for deadline in (Deadline.CATALOG_UPDATE, Deadline.YEARLY_MAINTENANCE):
            await tx.cancel_reminders(deadline, e.resource_code)
        await _issue(tx, n, notifications.entry_withdrawn(event_id, e, users))


async def change_reported(event_id: str, e: CatalogEntryChangeReported, n: Notifier) -> None:
    """The entry must be updated within 5 working days: its department is reminded before."""
    async with n.uow() as tx:
        await _remind(tx, n, Deadline.CATALOG_UPDATE, e.provider_code, e.resource_code, e.due_on)
    n.timer.wake()


async def maintenance_confirmed(event_id: str, e: CatalogEntryMaintenanceConfirmed, n: Notifier) -> None:
    async with n.uow() as tx:
        await _remind(tx, n, Deadline.YEARLY_MAINTENANCE, e.provider_code, e.resource_code, e.next_due_on)
    n.timer.wake()


# -- requests' deadlines ----------------------------------------------------------------------------------


async def share_requested(event_id: str, e: ShareRequested, n: Notifier) -> None:
    """The provider hears of the request now, and again before its decision is due."""
    async with n.uow() as tx:
        await _remind(tx, n, Deadline.REQUEST_DECISION, e.provider_code, e.resource_code, e.decide_by, e.request_id)
        await _issue(tx, n, notifications.share_requested(event_id, e))
    n.timer.wake()


async def share_answered(event_id: str, e: ShareDecided | ShareRefused, n: Notifier, rule: Rule) -> None:
    async with n.uow() as tx:
        await tx.cancel_reminders(Deadline.REQUEST_DECISION, e.request_id)
        await _issue(tx, n, rule(event_id, e))


async def consent_requested(event_id: str, e: PublicationConsentRequested, n: Notifier) -> None:
    """The provider hears of the request to publish now, and again before its decision is due."""
    async with n.uow() as tx:
        if e.decide_by is not None:
            due = e.decide_by
            await _remind(tx, n, Deadline.CONSENT_DECISION, e.provider_code, e.resource_code, due, e.consent_id)
        await _issue(tx, n, notifications.consent_requested(event_id, e))
    n.timer.wake()


async def consent_decided(event_id: str, e: PublicationConsentDecided, n: Notifier) -> None:
    async with n.uow() as tx:
        await tx.cancel_reminders(Deadline.CONSENT_DECISION, e.consent_id)
        await _issue(tx, n, notifications.consent_decided(event_id, e))


async def finding_raised(event_id: str, e: AuditFindingRaised, n: Notifier) -> None:
    """The department hears of an Art. 24 finding now, and again before its correction is due."""
    async with n.uow() as tx:
        about = e.reference or e.finding_id
        await _remind(tx, n, Deadline.FINDING_RECTIFICATION, e.department_code, about, e.correct_by, e.finding_id)
        await _issue(tx, n, notifications.finding_raised(event_id, e, n.it_office_code))
    n.timer.wake()


async def finding_closed(event_id: str, e: AuditFindingCorrected | AuditFindingEscalated, n: Notifier) -> None:
    """Corrected: no reminder any more. Escalated (its deadline passed): the department is told so."""
    async with n.uow() as tx:
        await tx.cancel_reminders(Deadline.FINDING_RECTIFICATION, e.finding_id)
        await tx.cancel_reminders(Deadline.REPORT_ANSWER, e.finding_id)  # no report waits on a closed finding
        if isinstance(e, AuditFindingEscalated):
            await _issue(tx, n, notifications.finding_escalated(event_id, e, n.it_office_code))


async def finding_reported(event_id: str, e: AuditFindingReported, n: Notifier) -> None:
    """The IT office hears of the rectification report now, and is reminded once it has waited
    `report_answer_days` working days unanswered, and again every as many (_reminded_again) until it is answered
    (the waiting report holds the finding's escalation)."""
    async with n.uow() as tx:
        await tx.cancel_reminders(Deadline.REPORT_ANSWER, e.finding_id)
        await tx.schedule(_answer_reminder(n, e.finding_id, e.department_code, e.reported_on, n.overdue_grace))
        await _issue(tx, n, notifications.finding_reported(event_id, e, n.it_office_code))
    n.timer.wake()


async def report_rejected(event_id: str, e: AuditFindingReportRejected, n: Notifier) -> None:
    """The report is answered: no reminder any more; the department hears why."""
    async with n.uow() as tx:
        await tx.cancel_reminders(Deadline.REPORT_ANSWER, e.finding_id)
        await _issue(tx, n, notifications.finding_report_rejected(event_id, e))


async def _remind(
    tx: NotifierTransaction,
    n: Notifier,
    deadline: Deadline,
    recipient: str,
    resource_code: str,
    due_on: date,
    reference: str | None = None,
) -> None:
    """One reminder per deadline: a new due day replaces the reminder of the old one."""
    await tx.cancel_reminders(deadline, reference or resource_code)
    reminder = n.reminders.reminder(
        deadline,
        recipient_code=recipient,
        resource_code=resource_code,
        reference=reference or resource_code,
        due_on=due_on,
        now=n.clock.now(),
    )
    if reminder is not None:
        await tx.schedule(reminder)


# -- the timer: batches of changes whose window ended, reminders whose time came ----------------------------


async def fire_due(n: Notifier) -> datetime | None:
    """Tell what is due now, each in a transaction of its own with the record that it was told; return when
    the next thing is due (None: nothing is scheduled)."""
    while True:
        now, today = n.clock.now(), n.today()
        async with n.uow() as tx:
            batch = await tx.due_change_batch(now)
            users = holders(await tx.holdings(batch.resource_code), today) if batch is not None else []
        if batch is not None:
            await _tell_changes(n, batch, notifications.changes_told(batch, users))
            continue
        async with n.uow() as tx:
            if (digest_due := await tx.due_digest(now)) is not None:
                await _send_digest(tx, n, *digest_due)
                continue
            due = await tx.due_reminders(now, FIRED_PER_TRANSACTION)
            for reminder in due:
                await _issue(tx, n, _reminded(n, reminder, today))
                await tx.reminder_sent(reminder.reminder_id)
                if (again := _reminded_again(n, reminder, today)) is not None:
                    await tx.schedule(again)
        if len(due) < FIRED_PER_TRANSACTION:
            return await n.uow.next_due()


def _reminded_again(n: Notifier, reminder: Reminder, today: date) -> Reminder | None:
    """A report still unanswered is reminded again every `report_answer_days` working days (from today, so a
    notifier that was down long sends one, not one per period missed), until its answer or the finding's closure
    cancels the next; a deadline is reminded once."""
    if reminder.deadline is not Deadline.REPORT_ANSWER:
        return None
    again = _answer_reminder(n, reminder.reference, reminder.about_code, max(reminder.due_on, today))
    return replace(again, since=reminder.since)  # waiting since the report, as the first said


def _answer_reminder(
    n: Notifier, finding_id: str, department_code: str | None, since: date, grace: timedelta = timedelta(0)
) -> Reminder:
    """The IT office's reminder of a finding's report `report_answer_days` working days after `since`."""
    return after_waiting(
        n.reminders,
        Deadline.REPORT_ANSWER,
        recipient_code=n.it_office_code,
        resource_code=finding_id,
        reference=finding_id,
        since=since,
        working_days=n.report_answer_days,
        now=n.clock.now(),
        about_code=department_code,
        grace=grace,
    )


def _reminded(n: Notifier, reminder: Reminder, today: date) -> list[Notification]:
    """A deadline's reminder says it comes near; a report left unanswered says how long it has waited."""
    if reminder.deadline is Deadline.REPORT_ANSWER:
        waited = n.report_answer_days  # scheduled before the day it began was kept: at least this long
        if reminder.since is not None:
            waited = max(working_days_waited(n.reminders.calendar, reminder.since, today), 1)
        return [notifications.report_unanswered(reminder, waited)]
    return notifications.reminder_due(reminder, n.it_office_code)


async def _tell_changes(n: Notifier, batch: ChangeBatch, notices: list[Notification]) -> None:
    """A batch's notices in transactions of ISSUED_PER_TRANSACTION, then twice as many each time (up to
    ISSUED_PER_TRANSACTION_MOST): the first are delivered while the rest are stored, and a transaction's own
    cost is paid a few times, not once per hundred notices. The record that it was told goes with the last.
    Should the process stop between them, the batch is still due and told again: the notices stored before
    are not issued twice."""
    chunks, size = [], ISSUED_PER_TRANSACTION
    while notices:
        chunks.append(notices[:size])
        notices, size = notices[size:], min(2 * size, ISSUED_PER_TRANSACTION_MOST)
    for number, chunk in enumerate(chunks or [[]], start=1):
        async with n.uow() as tx:
            await _issue(tx, n, chunk)
            if number == max(len(chunks), 1):
                await tx.batch_told(batch)


async def _send_digest(tx: NotifierTransaction, n: Notifier, department_code: str, at: datetime) -> None:
    """What waited for the department's digest goes as one notice per audience (those for its compilers in
    one, for its data administrators in another, the department-wide ones in a third …), so a person's inbox
    shows no digest naming a notice not hers; the next digest is due tomorrow (none once the department wants
    its notices at once again)."""
    digests = []
    for audience in await tx.digest_audiences(department_code):  # one digest each: none names another's notice
        waiting, total = await tx.awaiting_digest(department_code, audience, DIGEST_SHOWN)
        digests.append(digest(department_code, at, waiting, total, audience))
    if digests:
        await _issue(tx, n, digests)
        await tx.digested(department_code)
    chosen = (await tx.preferences({department_code})).get(department_code)
    daily = chosen is not None and chosen.delivery is Delivery.DAILY_DIGEST
    await tx.schedule_digest(department_code, next_digest_at(n.clock.now(), n.digest_time) if daily else None)


class UnknownDepartment(Invalid):
    pass


async def choose_preferences(chosen: Preferences, n: Notifier) -> None:
    """Keep the department's choice. A daily digest is scheduled; back to immediate delivery, what waited for
    the digest goes at once."""
    if not is_credit_code(chosen.department_code):
        raise UnknownDepartment("department_code", "a department is named by its unified social credit code")
    async with n.uow() as tx:
        await tx.set_preferences(chosen)
        daily = chosen.delivery is Delivery.DAILY_DIGEST
        now = n.clock.now()
        await tx.schedule_digest(chosen.department_code, next_digest_at(now, n.digest_time) if daily else now)
    n.timer.wake()


def is_credit_code(code: str) -> bool:
    try:
        validate_credit_code(code)
    except InvalidIdentifier:
        return False
    return True


# -- the directory ------------------------------------------------------------------------------------------


async def department_registered(event_id: str, e: DepartmentRegistered, n: Notifier) -> None:
    """A new department gets its own notice topic before its first notice."""
    await n.topics.open([e.department_code])


# -- issuing ------------------------------------------------------------------------------------------------


async def _issue(tx: NotifierTransaction, n: Notifier, notices: list[Notification]) -> None:
    """Keep each new notice, routed by its recipient's preferences, and announce it: on the platform's topic
    always, on the recipient's own topic when it listens there; queue it for the recipient's webhooks that
    want it (in the same transaction: kept and queued, or neither)."""
    seen = await tx.existing([x.notification_id for x in notices])
    fresh = [x for x in notices if x.notification_id not in seen]
    if not fresh:
        return
    chosen = await tx.preferences({x.recipient_code for x in fresh})
    routed = [_routed(x, chosen.get(x.recipient_code) or defaults(x.recipient_code)) for x in fresh]
    unwanted = await webhooks.queue_deliveries(tx.webhooks, [x for x in routed if Channel.WEBHOOK in x.channels])
    routed = [_fallen_back(x) if x.notification_id in unwanted else x for x in routed]
    await tx.add_all(routed)
    pushed = [x for x in routed if Channel.KAFKA in x.channels and not x.in_digest]
    await n.topics.open({x.recipient_code for x in pushed})
    for notice in routed:
        payload = notice.issued_payload()
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, notice.notification_id).hex  # the same for the same notice
        tx.emit(NOTIFICATIONS, Event("NotificationIssued", notice.recipient_code, payload, PRODUCER, event_id))
        if Channel.KAFKA in notice.channels and not notice.in_digest:
            key = notice.resource_code or notice.recipient_code  # in order per resource
            tx.emit(
                n.topics.topic(notice.recipient_code), Event("NotificationIssued", key, payload, PRODUCER, event_id)
            )


NO_ENDPOINT = "no active webhook endpoint of the department takes this notice: kept in its inbox instead"


def _fallen_back(notice: Notification) -> Notification:
    """A notice for webhooks that no endpoint takes reaches its recipient's inbox, saying why."""
    return notice if Channel.INBOX in notice.channels else notice.to_inbox(NO_ENDPOINT)


def _routed(notice: Notification, preferences: Preferences) -> Notification:
    channels = preferences.channels_for(notice.kind)
    pushed = bool(channels & {Channel.KAFKA, Channel.WEBHOOK})
    return replace(notice, channels=channels, in_digest=pushed and not preferences.pushes_now(notice.kind))


def roles_reading(principal: Principal, department_code: str | None) -> frozenset[Role] | None:
    """Whose notices `principal` sees of `department_code`'s (None: every department's): in her own
    department a person sees those for her roles and those for the whole department; a machine (its systems
    get every notice by topic and webhook too) and the IT office overseeing another department, all of them.
    A role is always of the recipient department: the IT office's staff see their own department's notices
    for the IT office, never another's by their role."""
    if principal.machine is not None or department_code != principal.department_code:
        return None
    return principal.roles


def reminders_shown(
    reminders: list[Reminder], roles: frozenset[Role] | None, department_code: str | None = None
) -> list[Reminder]:
    """The reminders a reader of `department_code` with `roles` (None: all, roles_reading) is shown: those whose
    notice will be for her, as the inbox shows notices (another department's, followed by the IT office: those
    its copy is for)."""

    def audience(r: Reminder) -> Audience:
        mine = department_code in (None, r.recipient_code)
        return REMINDED[r.deadline] if mine else FOLLOWED_BY_IT_OFFICE.get(r.deadline, REMINDED[r.deadline])

    return [r for r in reminders if roles is None or concerns(audience(r), roles)]


def reader_of(principal: Principal) -> str:
    """Whose read state: each person's and each machine's (an adapter keeps its own, as a person does)."""
    return f"{principal.kind}:{principal.subject}"


async def mark_read(
    department_code: str | None,
    notification_id: str,
    uow: UnitOfWork,
    reader: str,
    roles: frozenset[Role] | None = None,
) -> None:
    """Mark a notice read for `reader` alone (her colleagues' read state is theirs): only one she sees."""
    if not await uow.mark_read(department_code, notification_id, reader, roles):
        raise NotificationNotFound("notification_id", f"no notification {notification_id} in this inbox")
