"""The notifier's own rules on in-memory fakes: reminders in working days, batches of changes told once to
whoever holds the resource, how a new entry version is stricter, preferences and the daily digest."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest

from common.calendar_source import build_calendar
from common.policy import Role
from services.notifier import handlers
from services.notifier.domain.changes import TOLD_RANGES_KEPT, ChangeBatch, add_change, covers, told_after, without
from services.notifier.domain.events import CatalogEntryPublished, PublishedItem, ShareType
from services.notifier.domain.holdings import EntryTerms, Holding, tightened
from services.notifier.domain.notifications import Channel, Delivery, NotificationKind
from services.notifier.domain.preferences import Preferences, next_digest_at
from services.notifier.domain.reminders import CHINA, Deadline, ReminderPolicy, working_days_waited
from tests.contract.test_schemas import sample
from tests.unit.test_notifier import (
    CONSUMER,
    IT_OFFICE,
    PROVIDER,
    REQUEST,
    Autumn2026,
    FakeUnitOfWork,
    SettableClock,
    code,
    deliver,
    notifier_of,
)

OTHER = code("11360800MB4000003")
RESOURCE = "101001/000001"


def beijing(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHINA)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("due_on", "remind_on"),
    [
        (date(2026, 10, 9), date(2026, 9, 30)),  # Thursday 8 October, then back over the holiday
        (date(2026, 10, 12), date(2026, 10, 9)),  # Saturday 10 October is a working day (调休)
        (date(2026, 9, 28), date(2026, 9, 23)),  # Mid-Autumn Friday and the weekend are not
        (date(2026, 11, 25), date(2026, 11, 23)),  # an ordinary week
    ],
)
def test_a_reminder_comes_two_working_days_before_the_day_due(due_on: date, remind_on: date) -> None:
    assert ReminderPolicy(Autumn2026()).remind_on(due_on) == remind_on
    assert ReminderPolicy(build_calendar()).remind_on(due_on) == remind_on  # the platform's calendar agrees


def test_a_reminder_whose_day_came_goes_at_once_and_none_once_the_deadline_passed() -> None:
    policy = ReminderPolicy(Autumn2026(), lead=2, at=time(9, 0))
    ask = {"recipient_code": PROVIDER, "resource_code": RESOURCE, "reference": "r1", "due_on": date(2026, 10, 9)}
    early = policy.reminder(Deadline.REQUEST_DECISION, **ask, now=beijing(2026, 9, 28, 15, 0))
    assert early is not None and early.remind_at == beijing(2026, 9, 30, 9, 0)
    late = policy.reminder(Deadline.REQUEST_DECISION, **ask, now=beijing(2026, 10, 8, 15, 0))
    assert late is not None and late.remind_at == beijing(2026, 10, 8, 15, 0)
    assert policy.reminder(Deadline.REQUEST_DECISION, **ask, now=beijing(2026, 10, 10, 0, 1)) is None
    assert ReminderPolicy(Autumn2026(), lead=5).remind_on(date(2026, 10, 9)) == date(2026, 9, 24)


async def test_a_request_is_reminded_once_before_its_decision_and_not_once_decided() -> None:
    uow, clock = FakeUnitOfWork(), SettableClock(beijing(2026, 9, 28, 10, 0))
    n = notifier_of(uow, clock)
    await deliver(uow, "ShareRequested", REQUEST | {"decide_by": date(2026, 10, 9)}, "e1", n)
    await deliver(uow, "ShareRequested", REQUEST | {"request_id": "r2", "decide_by": date(2026, 10, 9)}, "e2", n)
    await deliver(uow, "ShareDecided", decided("r2"), "e3", n)
    assert await uow.next_due() == beijing(2026, 9, 30, 9, 0)
    assert await handlers.fire_due(n) == beijing(2026, 9, 30, 9, 0)  # nothing yet
    clock.at = beijing(2026, 9, 30, 9, 0, 1)
    assert await handlers.fire_due(n) is None
    [reminder] = [x for x in await uow.inbox_of(PROVIDER) if x.kind is NotificationKind.DEADLINE_APPROACHING]
    assert reminder.reference == "r1" and reminder.due_on == date(2026, 10, 9) and "2026-10-09" in reminder.body
    assert reminder.notification_id == f"reminder:REQUEST_DECISION:r1:{PROVIDER}"
    await deliver(uow, "ShareRequested", REQUEST | {"decide_by": date(2026, 10, 9)}, "e4", n)  # heard again
    await handlers.fire_due(n)
    assert len([x for x in await uow.inbox_of(PROVIDER) if x.kind is NotificationKind.DEADLINE_APPROACHING]) == 1


async def test_catalog_deadlines_are_reminded_and_settled_by_a_new_version() -> None:
    uow, clock = FakeUnitOfWork(), SettableClock(beijing(2026, 11, 2, 10, 0))
    n = notifier_of(uow, clock)
    reported = {"resource_code": RESOURCE, "provider_code": PROVIDER, "reported_on": date(2026, 11, 2),
                "due_on": date(2026, 11, 9), "reason": "新增数据项", "changed_on": None}  # fmt: skip
    await deliver(uow, "CatalogEntryChangeReported", reported, "c1", n)
    [update] = await uow.reminders_of(PROVIDER)
    assert update.deadline is Deadline.CATALOG_UPDATE and update.remind_at == beijing(2026, 11, 5, 9, 0)
    await deliver(uow, "CatalogEntryPublished", published(2, date(2026, 11, 4)), "p2", n)
    [maintenance] = await uow.reminders_of(PROVIDER)  # the update is done; the yearly maintenance is next
    assert maintenance.deadline is Deadline.YEARLY_MAINTENANCE and maintenance.due_on == date(2027, 11, 4)
    confirmed = {"resource_code": RESOURCE, "version": 2, "provider_code": PROVIDER, "confirmed_by": "admin",
                 "confirmed_on": date(2027, 10, 20), "note": "", "next_due_on": date(2028, 10, 20)}  # fmt: skip
    await deliver(uow, "CatalogEntryMaintenanceConfirmed", confirmed, "m1", n)
    assert [r.due_on for r in await uow.reminders_of(PROVIDER)] == [date(2028, 10, 20)]
    withdrawn = {"resource_code": RESOURCE, "version": 2, "provider_code": PROVIDER, "withdrawn_by": "x",
                 "reason": "停止采集"}  # fmt: skip
    await deliver(uow, "CatalogEntryWithdrawn", withdrawn, "w1", n)
    assert await uow.reminders_of(PROVIDER) == []


def test_changes_of_a_resource_make_one_batch_and_a_change_heard_again_counts_once() -> None:
    now, window, longest = datetime(2026, 11, 20, tzinfo=UTC), timedelta(seconds=2), timedelta(minutes=5)
    batch = None
    for sequence in [*range(40_001, 41_000), *range(40_990, 41_205)]:
        batch = add_change(batch, ((1, 40_000),), resource_code=RESOURCE, provider_code=PROVIDER,
                           sequence=sequence, deleted=sequence % 500 == 0, now=now, window=window,
                           longest=longest)  # fmt: skip
    assert batch == ChangeBatch(RESOURCE, PROVIDER, ((40_001, 41_204),), 2, now, now + window)
    assert batch.count == 1_204 and (batch.first, batch.last) == (40_001, 41_204)
    assert add_change(None, ((1, 41_204),), resource_code=RESOURCE, provider_code=PROVIDER, sequence=41_000,
                      deleted=False, now=now, window=window, longest=longest) is None  # fmt: skip


def test_told_ranges_merge_and_their_gaps_stay_open_until_too_many() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    batch = ChangeBatch(RESOURCE, PROVIDER, ((5, 9), (12, 12)), 0, now, now)
    assert told_after(((1, 4), (20, 30)), batch) == ((1, 9), (12, 12), (20, 30))
    assert covers(((1, 9), (12, 12)), 12) and not covers(((1, 9), (12, 12)), 10)
    sparse = tuple((s, s) for s in range(0, 2 * TOLD_RANGES_KEPT + 10, 2))
    kept = told_after(sparse, ChangeBatch(RESOURCE, PROVIDER, ((10_000, 10_000),), 0, now, now))
    assert len(kept) == TOLD_RANGES_KEPT and kept[-1] == (10_000, 10_000) and kept[0][0] == 0
    assert covers(kept, 1) and not covers(kept, 2 * TOLD_RANGES_KEPT + 7)  # the lowest gaps closed, not the latest


def test_what_is_left_of_a_batch_once_the_part_read_earlier_is_told() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    assert without(((1, 10), (20, 30)), ((3, 4), (8, 22))) == ((1, 2), (5, 7), (23, 30))
    assert without(((1, 10),), ((1, 10),)) == () and without(((5, 6),), ()) == ((5, 6),)
    read = ChangeBatch(RESOURCE, PROVIDER, ((1, 100),), 3, now, now)
    kept = ChangeBatch(RESOURCE, PROVIDER, ((1, 100), (150, 160)), 4, now, now + timedelta(seconds=2))
    assert kept.left_after(read) == ChangeBatch(RESOURCE, PROVIDER, ((150, 160),), 1, now, now + timedelta(seconds=2))
    assert read.left_after(read) is None


async def test_a_batch_for_many_holders_is_stored_in_parts_and_a_change_counted_meanwhile_is_told_next() -> None:
    uow, clock = FakeUnitOfWork(), SettableClock(beijing(2026, 11, 20, 10, 0))
    n = notifier_of(uow, clock)
    many = [f"HOLDER{i:04d}" for i in range(3 * handlers.ISSUED_PER_TRANSACTION + 5)]
    async with uow() as tx:
        for i, code in enumerate(many):
            await tx.hold(Holding(f"g{i}", RESOURCE, code, date(2026, 1, 1), date(2099, 12, 31), True))
    await handlers.resource_changes([(f"e{s}", changed(s)) for s in range(1, 11)], n)
    clock.at += n.change_window
    commits: list[int] = []

    class Watched:  # after the first part is stored, change 11 arrives
        def __getattr__(self, name: str):
            return getattr(uow, name)

        @asynccontextmanager
        async def __call__(self):
            async with uow() as tx:
                yield tx
            commits.append(len(told_changes(uow)))
            if len(commits) == 2:
                await handlers.resource_changes([("e11", changed(11))], n)

    await handlers.fire_due(replace(n, uow=Watched()))
    first = [x for x in uow.kept.values() if x.reference == "1-10"]
    assert sorted(x.recipient_code for x in first) == many  # each holder once
    assert handlers.ISSUED_PER_TRANSACTION in commits  # the first part was committed on its own
    clock.at += n.change_window
    await handlers.fire_due(n)
    later = [x for x in uow.kept.values() if x.reference == "11-11"]
    assert len(later) == len(many) and all("1 条记录" in x.body for x in later)


async def test_holders_hear_of_a_batch_of_changes_once_when_its_window_ends() -> None:
    uow, clock = FakeUnitOfWork(), SettableClock(beijing(2026, 11, 20, 10, 0))
    n = notifier_of(uow, clock)
    for grant_id, consumer, request_id, valid_to in (
        ("g1", CONSUMER, "r1", date(2027, 11, 30)),
        ("g2", OTHER, None, date(2027, 11, 30)),  # a subscription to an unconditional resource
        ("g3", IT_OFFICE, "r3", date(2026, 11, 19)),  # its period is over
    ):
        await deliver(uow, "GrantIssued", grant(grant_id, consumer, request_id, valid_to), f"i-{grant_id}", n)
    await deliver(uow, "GrantRevoked", revoked("g1"), "v1", n)
    await handlers.resource_changes([(f"e{s}", changed(s)) for s in range(40_001, 41_205)], n)
    await handlers.resource_changes([(f"e{s}", changed(s)) for s in range(41_000, 41_205)], n)  # again
    assert await handlers.fire_due(n) == clock.at + n.change_window  # the window is still open
    clock.at += n.change_window
    assert await handlers.fire_due(n) is None
    [told] = [x for x in uow.kept.values() if x.kind is NotificationKind.RESOURCE_CHANGED]
    assert told.recipient_code == OTHER and told.resource_code == RESOURCE
    assert "1,204 条记录" in told.body and "40,001–41,204" in told.body
    assert told.notification_id == f"changes:{RESOURCE}:40001-41204:{OTHER}"
    await handlers.resource_changes([(f"e{s}", changed(s)) for s in range(41_100, 41_205)], n)
    await handlers.fire_due(n)
    assert len([x for x in uow.kept.values() if x.kind is NotificationKind.RESOURCE_CHANGED]) == 1


def told_changes(uow: FakeUnitOfWork) -> list[str]:
    return sorted(x.body for x in uow.kept.values() if x.kind is NotificationKind.RESOURCE_CHANGED)


async def test_changes_arriving_out_of_order_are_each_told_once_and_none_is_skipped() -> None:
    uow, clock = FakeUnitOfWork(), SettableClock(beijing(2026, 11, 20, 10, 0))
    n = notifier_of(uow, clock)
    await deliver(uow, "GrantIssued", grant("g1", CONSUMER, "r1", date(2027, 11, 30)), "i-g1", n)
    # two ingestion replicas: 5,001–10,000 open the batch, 1–5,000 come after it, some of both twice
    await handlers.resource_changes([(f"e{s}", changed(s)) for s in range(5_001, 10_001)], n)
    await handlers.resource_changes([(f"e{s}", changed(s)) for s in [*range(1, 5_001), *range(9_000, 9_100)]], n)
    clock.at += n.change_window
    await handlers.fire_due(n)
    [body] = told_changes(uow)
    assert "10,000 条记录" in body and "变更序号 1–10,000。" in body
    # told, then the late half of another replica's changes: 12,001–14,000 told before 10,001–12,000
    await handlers.resource_changes([(f"e{s}", changed(s)) for s in range(12_001, 14_001)], n)
    clock.at += n.change_window
    await handlers.fire_due(n)
    await handlers.resource_changes([(f"e{s}", changed(s)) for s in [*range(10_001, 12_001), *range(1, 14_001, 7)]], n)
    clock.at += n.change_window
    await handlers.fire_due(n)
    bodies = told_changes(uow)
    assert len(bodies) == 3
    assert any("2,000 条记录" in b and "变更序号 12,001–14,000。" in b for b in bodies)
    assert any("2,000 条记录" in b and "变更序号 10,001–12,000。" in b for b in bodies)
    # gaps are said as they are: 20,001–20,010 and 20,021 in one batch
    await handlers.resource_changes([(f"e{s}", changed(s)) for s in [20_021, *range(20_001, 20_011)]], n)
    clock.at += n.change_window
    await handlers.fire_due(n)
    assert any("11 条记录" in b and "变更序号 20,001–20,010、20,021。" in b for b in told_changes(uow))


async def test_a_resource_changing_without_pause_is_told_once_per_longest_batch_not_per_window() -> None:
    uow, clock = FakeUnitOfWork(), SettableClock(beijing(2026, 11, 20, 10, 0))
    n = notifier_of(uow, clock)
    await deliver(uow, "GrantIssued", grant("g1", CONSUMER, "r1", date(2027, 11, 30)), "i-g1", n)
    start = clock.at
    step = n.change_window / 2  # a change every half window, for twice the longest a batch stays open
    per_batch = int(n.change_batch_longest / step)
    for number in range(2 * per_batch):
        clock.at = start + number * step
        await handlers.fire_due(n)
        await handlers.resource_changes([(f"e{number}", changed(number + 1))], n)
    assert len(told_changes(uow)) == 1  # the second batch is still open
    [first] = told_changes(uow)
    assert f"{per_batch:,} 条记录" in first and f"变更序号 1–{per_batch:,}。" in first
    clock.at += n.change_window  # the changes stop: told a window after the last one
    await handlers.fire_due(n)
    second = f"变更序号 {per_batch + 1:,}–{2 * per_batch:,}。"
    assert any(f"{per_batch:,} 条记录" in b and second in b for b in told_changes(uow))
    assert len(told_changes(uow)) == 2


def test_a_version_is_stricter_when_it_shares_less_or_under_stricter_terms() -> None:
    old = EntryTerms.of(entry(ShareType.UNCONDITIONAL, ("API", "FILE_DOWNLOAD"), item("企业名称"), item("法定代表人")))
    assert tightened(old, old) == []
    new = EntryTerms.of(
        entry(ShareType.CONDITIONAL, ("API",), item("企业名称", ShareType.NOT_SHARED), item("地址", sensitive=True))
    )
    found = tightened(old, new)
    assert found == [
        "共享类型由 UNCONDITIONAL 改为 CONDITIONAL",
        "删除数据项 法定代表人",
        "数据项 企业名称 共享条件收紧",
        "不再提供共享方式 FILE_DOWNLOAD",
    ]
    looser = EntryTerms.of(entry(ShareType.UNCONDITIONAL, ("API", "FILE_DOWNLOAD", "OFFLINE"), item("企业名称")))
    assert tightened(EntryTerms.of(entry(ShareType.CONDITIONAL, ("API",), item("企业名称"))), looser) == []


async def test_a_new_version_tells_its_compilers_and_those_who_use_it_how_it_is_stricter() -> None:
    uow = FakeUnitOfWork()
    n = notifier_of(uow)
    await deliver(uow, "CatalogEntryPublished", published(1, date(2026, 11, 2)), "p1", n)
    await deliver(uow, "GrantIssued", grant("g1", CONSUMER, "r1", date(2027, 11, 30)), "g1", n)
    stricter = published(2, date(2026, 11, 19)) | {"share_type": "NOT_SHARED"}
    await deliver(uow, "CatalogEntryPublished", stricter, "p2", n)
    approved = [x for x in await uow.inbox_of(PROVIDER) if x.kind is NotificationKind.CATALOG_EVENT]
    assert sorted(x.title for x in approved)[0].startswith("目录条目已审核通过并发布") and len(approved) == 2
    [changed_entry] = [x for x in await uow.inbox_of(CONSUMER) if x.kind is NotificationKind.ENTRY_CHANGED]
    assert "收紧" in changed_entry.title and "NOT_SHARED" in changed_entry.body


async def test_duplicates_and_demands_reach_the_department_and_the_it_office() -> None:
    uow = FakeUnitOfWork()
    flagged = {"resource_code": RESOURCE, "data_element": "身份证号", "existing_provider_code": OTHER,
               "existing_resource_code": "101002/000001", "new_provider_code": PROVIDER, "element_id": "DE0101",
               "element_name": "公民身份号码", "existing_provider_name": "吉安市公安局"}  # fmt: skip
    await deliver(uow, "DuplicateSourceFlagged", flagged, "f1")
    for party in (PROVIDER, IT_OFFICE, OTHER):  # the authoritative source's department too: its element
        [x] = await uow.inbox_of(party)
        assert x.kind is NotificationKind.DUPLICATE_SOURCE and "吉安市公安局" in x.body
    filed = {"demand_id": "d1", "requester_code": CONSUMER, "title": "企业登记", "description": "",
             "wanted_items": ["企业名称"], "filed_by": "x"}  # fmt: skip
    await deliver(uow, "ShareDemandFiled", filed, "d1")
    assert [x.kind for x in await uow.inbox_of(IT_OFFICE)][-1] is NotificationKind.DEMAND_EVENT
    assert await uow.inbox_of(CONSUMER) == []  # the requester knows what it filed


async def test_preferences_choose_kinds_and_channels_and_a_daily_digest_gathers_the_pushed_ones() -> None:
    uow, clock = FakeUnitOfWork(), SettableClock(beijing(2026, 11, 20, 10, 0))
    n = notifier_of(uow, clock)
    daily = Preferences(
        PROVIDER, frozenset({NotificationKind.REQUEST_ARRIVED}), frozenset(Channel), Delivery.DAILY_DIGEST
    )
    await handlers.choose_preferences(daily, n)
    for k in range(3):
        await deliver(
            uow, "ShareRequested", REQUEST | {"request_id": f"r{k}", "decide_by": date(2099, 1, 5)}, f"e{k}", n
        )
    await deliver(uow, "ShareDisputed", {**dispute(), "provider_code": PROVIDER}, "x1", n)
    notices = await uow.inbox_of(PROVIDER)
    dispute_notice = next(x for x in notices if x.kind is NotificationKind.DISPUTE_RAISED)
    assert dispute_notice.channels == frozenset()  # kept, sent nowhere: not a kind it chose
    assert all(x.in_digest for x in notices if x.kind is NotificationKind.REQUEST_ARRIVED)
    assert not [t for t, _ in uow.emitted if t == f"notifier.notices.{PROVIDER}"]  # nothing pushed yet
    assert uow.digests == {PROVIDER: beijing(2026, 11, 21, 8, 30)}
    clock.at = beijing(2026, 11, 21, 8, 30)
    await handlers.fire_due(n)
    [digest] = [x for x in await uow.inbox_of(PROVIDER) if x.kind is NotificationKind.DIGEST]
    assert "3 条" in digest.title and digest.body.count("数据共享申请待答复") == 3
    [(_, pushed)] = [(t, e) for t, e in uow.emitted if t == f"notifier.notices.{PROVIDER}"]
    assert pushed.payload["kind"] == "DIGEST"
    assert uow.digests == {PROVIDER: beijing(2026, 11, 22, 8, 30)}
    await handlers.choose_preferences(Preferences(PROVIDER), n)
    await handlers.fire_due(n)
    assert uow.digests == {}  # at once again: no more digests (the requests' reminders are all that is due)


def test_the_next_digest_is_today_or_tomorrow_in_beijing() -> None:
    assert next_digest_at(datetime(2026, 11, 20, 0, 0, tzinfo=UTC), time(8, 30)) == beijing(2026, 11, 20, 8, 30)
    assert next_digest_at(datetime(2026, 11, 20, 0, 30, tzinfo=UTC), time(8, 30)) == beijing(2026, 11, 21, 8, 30)


# -- payloads ---------------------------------------------------------------------------------------------


def decided(request_id: str) -> dict:
    parties = {"resource_code": RESOURCE, "provider_code": PROVIDER, "consumer_code": CONSUMER}
    return {"request_id": request_id, **parties, "decision": "APPROVED", "reasons": "同意", "decided_by": "admin",
            "decided_on": date(2026, 9, 29)}  # fmt: skip


def grant(grant_id: str, consumer: str, request_id: str | None, valid_to: date) -> dict:
    return {"grant_id": grant_id, "request_id": request_id, "resource_code": RESOURCE, "provider_code": PROVIDER,
            "consumer_code": consumer, "purpose": "企业开办", "data_items": ["企业名称"],
            "valid_from": date(2026, 1, 1), "valid_to": valid_to}  # fmt: skip


def revoked(grant_id: str) -> dict:
    return {"grant_id": grant_id, "resource_code": RESOURCE, "consumer_code": CONSUMER, "reason": "超出用途",
            "revoked_by": "admin"}  # fmt: skip


def dispute() -> dict:
    return {"dispute_id": "d1", "request_id": "r1", "consumer_code": CONSUMER, "provider_code": PROVIDER,
            "grounds": "属于职责范围", "raised_by": "x"}  # fmt: skip


def changed(sequence: int):  # type: ignore[no-untyped-def]
    from services.notifier.domain.events import ChangeOperation, ResourceChanged

    return ResourceChanged(RESOURCE, PROVIDER, sequence, f"c{sequence}", ChangeOperation.UPSERT)


def published(version: int, on: date) -> dict:
    import json

    from common.codec import SCHEMA_DIR

    raw = json.loads((SCHEMA_DIR / "CatalogEntryPublished.avsc").read_text(encoding="utf-8"))
    return sample(raw, {}) | {"resource_code": RESOURCE, "version": version, "provider_code": PROVIDER,
                              "share_type": "CONDITIONAL", "published_on": on, "reviewed_by": "reviewer"}  # fmt: skip


def item(name: str, share_type: ShareType | None = None, sensitive: bool = False) -> PublishedItem:
    return PublishedItem(name, share_type, sensitive)


def entry(share_type: ShareType, methods: tuple[str, ...], *items: PublishedItem) -> CatalogEntryPublished:
    return CatalogEntryPublished(RESOURCE, 1, "企业登记", PROVIDER, share_type, methods, items, date(2026, 1, 1), "r")


async def test_preferences_name_a_department_by_its_credit_code() -> None:
    n = notifier_of(FakeUnitOfWork())
    with pytest.raises(handlers.UnknownDepartment):
        await handlers.choose_preferences(Preferences("NOT-A-CODE"), n)


async def test_a_finding_is_reminded_before_its_correction_is_due_and_told_when_it_passes() -> None:
    uow, clock = FakeUnitOfWork(), SettableClock(beijing(2026, 9, 25, 10, 0))
    n = notifier_of(uow, clock)
    raised = {"finding_id": "f1", "department_code": PROVIDER, "category": "DATA_NOT_PROVIDED_IN_TIME",
              "description": "9 月数据未按时提供", "reference": RESOURCE, "correct_by": date(2026, 10, 9)}  # fmt: skip
    await deliver(uow, "AuditFindingRaised", raised, "a1", n)
    await deliver(uow, "AuditFindingRaised", raised | {"finding_id": "f2"}, "a2", n)
    [told, _] = [x for x in await uow.inbox_of(PROVIDER) if x.kind is NotificationKind.OTHER]
    assert "2026-10-09" in told.title and "未按要求及时提供共享数据" in told.body
    # two working days before Friday 9 October, back over the National Day holiday: Wednesday 30 September
    assert await uow.next_due() == beijing(2026, 9, 30, 9, 0)
    corrected = {"finding_id": "f2", "department_code": PROVIDER, "corrected_on": date(2026, 9, 28), "note": "已补报"}
    await deliver(uow, "AuditFindingCorrected", corrected, "a3", n)
    clock.at = beijing(2026, 9, 30, 9, 0, 1)
    await handlers.fire_due(n)
    [reminder] = [x for x in await uow.inbox_of(PROVIDER) if x.kind is NotificationKind.DEADLINE_APPROACHING]
    assert reminder.reference == "f1" and "审计发现问题整改" in reminder.title  # f2 was corrected: no reminder
    escalated = {"finding_id": "f1", "department_code": PROVIDER, "escalated_on": date(2026, 10, 12),
                 "notice": "通报批评"}  # fmt: skip
    await deliver(uow, "AuditFindingEscalated", escalated, "a4", n)
    [passed] = [x for x in await uow.inbox_of(PROVIDER) if x.kind is NotificationKind.DEADLINE_PASSED]
    assert passed.reference == "f1" and "整改期限已过" in passed.title


async def test_the_it_office_hears_of_a_rectification_report_and_the_department_of_its_rejection() -> None:
    uow = FakeUnitOfWork()
    n = notifier_of(uow, SettableClock(beijing(2026, 10, 9, 10, 0)))
    came = {"finding_id": "f7", "department_code": PROVIDER, "report": "已补报九月数据",
            "reference": "吉市监〔2026〕7号", "reported_by": "p-admin", "reported_by_department": PROVIDER,
            "reported_on": date(2026, 10, 9), "correct_by": date(2026, 10, 9)}  # fmt: skip
    await deliver(uow, "AuditFindingReported", came, "r1", n)
    [heard] = await uow.inbox_of(IT_OFFICE)
    assert heard.reference == "f7" and "收到整改报告" in heard.title and heard.audience == {Role.IT_OFFICE_OPERATOR}
    assert "已补报九月数据" in heard.body and "吉市监〔2026〕7号" in heard.body and PROVIDER in heard.body
    assert await uow.inbox_of(PROVIDER) == []  # the department knows what it sent
    back = {"finding_id": "f7", "department_code": PROVIDER, "reason": "未见交换记录", "rejected_by": "it-1",
            "rejected_by_department": IT_OFFICE, "rejected_on": date(2026, 10, 9), "reported_on": date(2026, 10, 9),
            "correct_by": date(2026, 10, 9)}  # fmt: skip
    await deliver(uow, "AuditFindingReportRejected", back, "r2", n)
    late = back | {"rejected_on": date(2026, 10, 12)}
    await deliver(uow, "AuditFindingReportRejected", late, "r3", n)
    in_time, too_late = await uow.inbox_of(PROVIDER)
    assert in_time.audience == frozenset()  # the department as a whole, as the finding
    assert "整改报告未通过" in in_time.title and "未见交换记录" in in_time.body and "重新报送" in in_time.body
    assert "已过" in too_late.body and "通报批评" in too_late.body and "重新报送" not in too_late.body


async def test_a_report_left_unanswered_is_told_as_how_long_it_waited_not_as_a_deadline() -> None:
    """Handed in on Friday 9 October 2026, a report has waited 5 working days on Thursday 15 October (Saturday
    10 October is a working day, 调休): the IT office hears whose report it is, since when and how long it has
    waited; no deadline of its own comes near, so the notice names none. Told late, it says the days waited."""
    uow, clock = FakeUnitOfWork(), SettableClock(beijing(2026, 10, 9, 10, 0))
    n = notifier_of(uow, clock)
    came = {"finding_id": "f8", "department_code": PROVIDER, "report": "已补报九月数据", "reference": None,
            "reported_on": date(2026, 10, 9), "correct_by": date(2026, 10, 16)}  # fmt: skip
    await deliver(uow, "AuditFindingReported", came, "r1", n)
    assert await uow.next_due() == beijing(2026, 10, 15, 9, 0)
    clock.at = beijing(2026, 10, 15, 9, 0, 1)
    await handlers.fire_due(n)
    [reminded] = [x for x in await uow.inbox_of(IT_OFFICE) if x.kind is NotificationKind.DEADLINE_APPROACHING]
    assert reminded.reference == "f8" and reminded.due_on is None and reminded.audience == {Role.IT_OFFICE_OPERATOR}
    assert "整改报告已待核实满 5 个工作日" in reminded.title and "临近期限" not in reminded.title
    assert f"部门 {PROVIDER} 于 2026-10-09 报送" in reminded.body and "应于" not in reminded.body
    # handed in Monday 12 October, its reminder due Monday 19 October, told only on Wednesday 21 October
    await deliver(uow, "AuditFindingReported", came | {"finding_id": "f9", "reported_on": date(2026, 10, 12)}, "r2", n)
    clock.at = beijing(2026, 10, 21, 10, 0)
    await handlers.fire_due(n)
    [late] = [
        x
        for x in await uow.inbox_of(IT_OFFICE)
        if x.kind is NotificationKind.DEADLINE_APPROACHING and x.reference == "f9"
    ]
    assert "整改报告已待核实满 7 个工作日" in late.title and "于 2026-10-12 报送" in late.body
    assert working_days_waited(Autumn2026(), date(2026, 10, 12), date(2026, 10, 12)) == 0


async def test_a_report_still_unanswered_is_reminded_again_every_five_working_days_until_it_is_answered() -> None:
    """Handed in on Friday 9 October 2026: reminded on Thursday 15 October (5 working days), again on Thursday 22
    October (10), and once the IT office rejects it, no more. A notifier back after a long stop sends one, not one
    per period it missed."""
    uow, clock = FakeUnitOfWork(), SettableClock(beijing(2026, 10, 9, 10, 0))
    n = notifier_of(uow, clock)
    came = {"finding_id": "f8", "department_code": PROVIDER, "report": "已补报九月数据", "reference": None,
            "reported_on": date(2026, 10, 9), "correct_by": date(2026, 10, 16)}  # fmt: skip

    async def reminded() -> list[str]:
        return [x.title for x in await uow.inbox_of(IT_OFFICE) if x.kind is NotificationKind.DEADLINE_APPROACHING]

    await deliver(uow, "AuditFindingReported", came, "r1", n)
    clock.at = beijing(2026, 10, 15, 9, 0, 1)
    await handlers.fire_due(n)
    assert await uow.next_due() == beijing(2026, 10, 22, 9, 0)  # the next, 5 working days on
    clock.at = beijing(2026, 10, 22, 9, 0, 1)
    await handlers.fire_due(n)
    assert [t.split("：")[0] for t in await reminded()] == [
        "整改报告已待核实满 5 个工作日",
        "整改报告已待核实满 10 个工作日",
    ]
    back = {"finding_id": "f8", "department_code": PROVIDER, "reason": "不充分",
            "rejected_on": date(2026, 10, 23), "correct_by": date(2026, 10, 16)}  # fmt: skip
    await deliver(uow, "AuditFindingReportRejected", back, "r2", n)
    assert await uow.next_due() is None  # answered: nothing more
    # another report, its reminders missed while the notifier was stopped for weeks: one now, the next a period on
    await deliver(uow, "AuditFindingReported", came | {"finding_id": "f9", "reported_on": date(2026, 10, 26)}, "r3", n)
    clock.at = beijing(2026, 11, 30, 10, 0)
    await handlers.fire_due(n)
    assert len([t for t in await reminded() if "f9" in t]) == 1
    assert await uow.next_due() == beijing(2026, 12, 7, 9, 0)


async def test_a_report_handled_after_its_reminder_time_is_reminded_only_after_a_grace_its_answer_can_drop_it() -> None:
    """Replayed on Monday 2 November, reports handed in on 9 October have long waited 5 working days: their
    reminders go 5 minutes later, not at once, and the rejection that follows one on the topic drops its."""
    uow, clock = FakeUnitOfWork(), SettableClock(beijing(2026, 11, 2, 10, 0))
    n = notifier_of(uow, clock)
    came = {"department_code": PROVIDER, "report": "已补报九月数据", "reference": None,
            "reported_on": date(2026, 10, 9), "correct_by": date(2026, 10, 16)}  # fmt: skip
    await deliver(uow, "AuditFindingReported", came | {"finding_id": "answered"}, "r1", n)
    await deliver(uow, "AuditFindingReported", came | {"finding_id": "waiting"}, "r2", n)
    assert await uow.next_due() == beijing(2026, 11, 2, 10, 5)
    await handlers.fire_due(n)  # the timer woke at once: nothing is due yet
    assert not [x for x in await uow.inbox_of(IT_OFFICE) if x.kind is NotificationKind.DEADLINE_APPROACHING]
    back = {"finding_id": "answered", "department_code": PROVIDER, "reason": "不充分",
            "rejected_on": date(2026, 10, 20), "correct_by": date(2026, 10, 16)}  # fmt: skip
    await deliver(uow, "AuditFindingReportRejected", back, "r3", n)
    clock.at = beijing(2026, 11, 2, 10, 5, 1)
    await handlers.fire_due(n)
    reminded = [x for x in await uow.inbox_of(IT_OFFICE) if x.kind is NotificationKind.DEADLINE_APPROACHING]
    assert [x.reference for x in reminded] == ["waiting"]
