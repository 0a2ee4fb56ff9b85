"""The API channel on in-memory fakes: what a grant lets a call see, what every call leaves in the access
trail, and the group-committed access log."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import quote

import httpx
import pytest
from aiokafka.errors import KafkaTimeoutError
from datashare_adapter.digest import BUCKETS, ResourceDigest, bucket_of, record_hash
from datashare_adapter.identifiers import credit_code_check_character
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from common.errors import Invalid, NotFound
from common.events import Event
from common.policy import AccessDenied, MachineKind, Principal, Role
from services.exchange.domain.records import SubjectRecord
from services.exchange.domain.resources import ItemSpec, ResourceSchema
from services.exchange.sharing.access import (
    BROWSE_FILTER,
    BROWSE_PAGE,
    BROWSE_RANGES,
    MAX_BATCH,
    AccessResult,
    ApiChannel,
    BrowsePosition,
    Call,
    DataAccess,
    Operation,
    named_subjects,
    tightened,
)
from services.exchange.sharing.adapters.accesses import GroupedAccessLog, _Recent, access_payload
from services.exchange.sharing.api import browse as browse_router
from services.exchange.sharing.api import calls, purpose_of
from services.exchange.sharing.grants import MASK, Channel, Grant, GrantStatus, RowScope, pseudonym
from services.exchange.sharing.openapi import describe
from services.exchange.sharing.requests import rule_of, stricter_rule

CODE = "101001/000001"
MARKET, APPROVAL = "11360800MB0000001", "11360800MB0000002"
PURPOSE = "企业开办审批核验"
SECRET = b"s" * 32


def enterprise(county: str, n: int) -> str:
    body = f"91{county}MA{n:07d}"
    return body + credit_code_check_character(body)


HERE, THERE = enterprise("360821", 1), enterprise("360822", 2)  # in the grant's county, and in another
ABSENT = enterprise("360821", 3)
SCHEMA = ResourceSchema(
    CODE,
    MARKET,
    "企业登记基本信息",
    (
        ItemSpec("统一社会信用代码", "string", 18),
        ItemSpec("企业名称", "string", 100),
        ItemSpec("法定代表人", "string", 50, sensitive=True),
        ItemSpec("联系电话", "string", 20, sensitive=True),
        ItemSpec("注册资本", "decimal"),
        ItemSpec("内部备注", "string", share_type="NOT_SHARED"),
    ),
    "DAILY",
    share_type="CONDITIONAL",
    share_methods=("API",),
    confidentiality_reviewed_on=date(2026, 1, 5),
)
SYSTEM = Principal("approval-system", APPROVAL, machine=MachineKind.CONSUMER_SYSTEM)
GRANT = Grant(
    grant_id="g-1",
    request_id="r-1",
    resource_code=CODE,
    provider_code=MARKET,
    consumer_code=APPROVAL,
    consumer_system="approval-system",
    items=("统一社会信用代码", "企业名称", "法定代表人", "联系电话", "内部备注"),
    scope=RowScope(("360821",)),
    purpose=PURPOSE,
    channels=frozenset({Channel.API}),
    valid_from=date(2026, 1, 1),
    valid_to=date(2026, 12, 31),
    entry_version=1,
    unmasked=frozenset({"法定代表人"}),
    extra=rule_of(SCHEMA, ("统一社会信用代码", "企业名称", "法定代表人", "联系电话", "内部备注")),  # as issued
)


def fields(key: str, name: str) -> dict:
    return {"统一社会信用代码": key, "企业名称": name, "法定代表人": "张三", "联系电话": "13800000000",
            "注册资本": 100.0, "内部备注": "x"}  # fmt: skip


def stored(key: str, name: str, deleted: bool = False) -> SubjectRecord:
    f = {} if deleted else fields(key, name)
    return SubjectRecord(
        CODE, MARKET, key, "credit_code", f, 1, deleted, "c", None, record_hash(key, f), bucket_of(key)
    )


@dataclass
class Fakes:
    grants: dict[str, Grant] = field(default_factory=lambda: {GRANT.grant_id: GRANT})
    schemas: dict[str, ResourceSchema] = field(default_factory=lambda: {CODE: SCHEMA})
    records: dict[str, SubjectRecord] = field(
        default_factory=lambda: {HERE: stored(HERE, "吉安甲公司"), THERE: stored(THERE, "吉安乙公司")}
    )
    history: list[dict] = field(default_factory=list)
    accesses: list[DataAccess] = field(default_factory=list)
    recording_fails: bool = False
    position: int = 7  # the resource's last change
    scans: int = 0  # full reads of the resource's records
    ranges_read: int = 0  # the most key ranges one browse page read

    async def grant(self, grant_id: str) -> Grant | None:
        return self.grants.get(grant_id)

    async def schema(self, resource_code: str) -> ResourceSchema | None:
        return self.schemas.get(resource_code)

    async def schemas_all(self) -> list[ResourceSchema]:
        return list(self.schemas.values())

    async def record(self, resource_code: str, subject_key: str) -> SubjectRecord | None:
        return self.records.get(subject_key)

    async def records_of(self, resource_code: str, subject_keys: list[str]) -> list[SubjectRecord]:
        return [self.records[k] for k in subject_keys if k in self.records]

    async def changes_since(self, resource_code: str, sequence: int, limit: int) -> list[dict]:
        return [h for h in self.history if h["sequence"] > sequence][:limit]

    async def leaves(self, resource_code: str) -> dict[int, tuple[int, int]]:
        digest = ResourceDigest()
        for r in self.records.values():
            if not r.deleted:
                digest.add(r.subject_key, r.fields)
        return digest.leaves

    async def sequence(self, resource_code: str) -> int:
        return self.position

    async def records_in(self, resource_code: str) -> AsyncIterator[SubjectRecord]:
        self.scans += 1
        for r in self.records.values():
            if not r.deleted:
                yield r

    async def records_from(
        self, resource_code: str, bucket: int, after_key: str, until: int
    ) -> AsyncIterator[SubjectRecord]:
        self.ranges_read = max(self.ranges_read, until - bucket)
        ordered = sorted(self.records.values(), key=lambda r: (r.bucket, r.subject_key))
        for r in ordered:
            if not r.deleted and (bucket, after_key) < (r.bucket, r.subject_key) and r.bucket < until:
                yield r

    async def log(self, access: DataAccess) -> None:
        if self.recording_fails:
            raise ConnectionError("database away")
        self.accesses.append(access)


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


class Shim:
    """Binds the fakes to the ports' method names."""

    def __init__(self, fakes: Fakes) -> None:
        self.fakes = fakes

    async def schema(self, code: str) -> ResourceSchema | None:
        return await self.fakes.schema(code)

    async def schemas(self) -> list[ResourceSchema]:
        return await self.fakes.schemas_all()

    async def record(self, access: DataAccess) -> None:
        await self.fakes.log(access)


def channel_of(fakes: Fakes) -> ApiChannel:
    shim = Shim(fakes)
    return ApiChannel(grants=fakes, resources=shim, data=fakes, log=shim, clock=FixedClock(), secret=SECRET)  # type: ignore[arg-type]


def call(principal: Principal | None = SYSTEM, **changes) -> Call:
    return replace(Call(principal, CODE, "g-1", PURPOSE), **changes)


async def test_a_subject_is_served_with_the_granted_items_and_sensitive_ones_masked_unless_granted() -> None:
    fakes = Fakes()
    got = await channel_of(fakes).record(call(), HERE.lower())
    assert got["fields"] == {"统一社会信用代码": HERE, "企业名称": "吉安甲公司", "法定代表人": "张三", "联系电话": MASK}
    [access] = fakes.accesses
    assert access.result is AccessResult.SERVED and access.record_count == 1 and access.subject_keys == (HERE,)
    assert access.items == ("统一社会信用代码", "企业名称", "法定代表人", "联系电话")  # 内部备注 is never shared
    person = Principal("li", APPROVAL, frozenset({Role.DATA_ADMINISTRATOR}))  # a person of the consumer department
    fakes.grants["g-1"] = replace(GRANT, consumer_system=None)  # a grant to the department, not to one system
    chosen = await channel_of(fakes).record(call(person, items=("企业名称",)), HERE)
    assert chosen["fields"] == {"企业名称": "吉安甲公司"}


async def test_a_subject_outside_the_scope_is_answered_as_one_the_center_does_not_hold() -> None:
    fakes = Fakes()
    deleted = enterprise("360821", 5)
    fakes.records[deleted] = stored(deleted, "", deleted=True)
    answers = []
    for key in (THERE, ABSENT, deleted):
        with pytest.raises(NotFound) as refused:
            await channel_of(fakes).record(call(), key)
        answers.append(str(refused.value))
    assert answers[0] == answers[1] == answers[2]
    assert [a.result for a in fakes.accesses] == [AccessResult.NOT_FOUND] * 3
    assert all("吉安乙公司" not in a for a in answers)


async def test_a_batch_serves_the_subjects_in_scope_and_lists_the_rest_as_not_found() -> None:
    fakes = Fakes()
    got = await channel_of(fakes).batch(call(), [HERE, THERE, ABSENT, HERE])
    assert [r["subject_key"] for r in got["records"]] == [HERE]
    assert got["not_found"] == [THERE, ABSENT]
    assert "注册资本" not in got["records"][0]["fields"]
    [access] = fakes.accesses
    assert (access.subjects_requested, access.record_count, set(access.subject_keys)) == (4, 1, {HERE, THERE, ABSENT})


async def test_a_batch_of_ten_thousand_keys_is_refused_and_recorded() -> None:
    fakes = Fakes()
    with pytest.raises(Invalid, match="at most 1000"):
        await channel_of(fakes).batch(call(), [HERE] * 10_000)
    [access] = fakes.accesses
    assert access.result is AccessResult.REFUSED and access.subjects_requested == 10_000 and not access.subject_keys


async def test_a_malformed_key_is_refused_by_position_never_echoed() -> None:
    fakes = Fakes()
    with pytest.raises(Invalid) as refused:
        await channel_of(fakes).batch(call(), [HERE, "91360821MA0000001Z"])
    assert "#2" in str(refused.value) and "91360821MA0000001Z" not in str(refused.value)
    assert fakes.accesses[0].result is AccessResult.REFUSED


async def test_the_feed_carries_changes_of_subjects_in_scope_with_the_granted_items() -> None:
    fakes = Fakes()
    at = datetime(2026, 5, 1, tzinfo=UTC)
    for sequence, key in enumerate([HERE, THERE, HERE], start=1):
        fakes.history.append({"sequence": sequence, "subject_key": key, "subject_kind": "credit_code",
                              "operation": "UPSERT", "fields": fields(key, "n"), "source_version": sequence,
                              "changed_at": at})  # fmt: skip
    feed = await channel_of(fakes).changes(call(), 0, 2)
    assert [c["sequence"] for c in feed["changes"]] == [1] and feed["last_sequence"] == 2
    assert feed["changes"][0]["fields"]["联系电话"] == MASK and "注册资本" not in feed["changes"][0]["fields"]
    rest = await channel_of(fakes).changes(call(), feed["last_sequence"], 2)
    assert [c["sequence"] for c in rest["changes"]] == [3] and rest["last_sequence"] == 3
    assert fakes.accesses[0].subject_keys == (HERE,) and fakes.accesses[0].record_count == 1


async def test_the_feed_names_subjects_by_a_per_grant_pseudonym_when_the_key_item_is_not_served_in_clear() -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    history = [{"sequence": n, "subject_key": HERE, "subject_kind": "credit_code", "operation": "UPSERT",
                "fields": fields(HERE, "n"), "source_version": n, "changed_at": at} for n in (1, 2)]  # fmt: skip
    keyless = replace(GRANT, items=("企业名称", "法定代表人"))
    masked_key = SCHEMA.items[0]
    sensitive_key = replace(SCHEMA, items=(replace(masked_key, sensitive=True), *SCHEMA.items[1:]))
    for grant, schema in [(keyless, SCHEMA), (GRANT, sensitive_key)]:
        fakes = Fakes(grants={"g-1": grant}, schemas={CODE: schema}, history=list(history))
        feed = await channel_of(fakes).changes(call(), 0, 10)
        named = {c["subject_key"] for c in feed["changes"]}
        assert named == {pseudonym(HERE, "g-1", SECRET)} and HERE not in str(feed)
        assert pseudonym(HERE, "g-2", SECRET) not in named  # another grant's consumer cannot link them
        assert fakes.accesses[0].subject_keys == (HERE,)  # the trail still knows whom (hashed when sent)
    clear = await channel_of(Fakes(history=list(history))).changes(call(), 0, 10)
    assert {c["subject_key"] for c in clear["changes"]} == {HERE}


BROWSING = replace(GRANT, consumer_system=None, channels=frozenset({Channel.ONLINE_BROWSE}))
BROWSABLE = {CODE: replace(SCHEMA, share_methods=("API", "ONLINE_BROWSE"))}
READER = Principal("li", APPROVAL, frozenset({Role.DATA_ADMINISTRATOR}))


def browser_call(**changes) -> Call:
    return call(READER, channel=Channel.ONLINE_BROWSE, **changes)


async def browsed(fakes: Fakes, limit: int = 100, contains: str = "", grant: str = "g-1") -> list[dict]:
    """Every page of a browse, from the first on, as a browser follows `next`."""
    pages, after = [], None
    while True:
        pages.append(await channel_of(fakes).browse(browser_call(grant_id=grant), after, limit, contains))
        if (after := pages[-1]["next"]) is None:
            return pages


def shown_in(pages: list[dict]) -> list[str]:
    return [r["subject"] for p in pages for r in p["records"]]


async def test_a_browse_pages_through_the_rows_in_scope_with_the_granted_items_and_records_each_page() -> None:
    here = [enterprise("360821", n) for n in range(10, 17)]
    records = {k: stored(k, f"吉安{n}号公司") for n, k in enumerate(here)} | {THERE: stored(THERE, "吉安乙公司")}
    records = {k: replace(r, bucket=5) for k, r in records.items()}  # one key range: pages of 3 rows
    fakes = Fakes(grants={"g-1": BROWSING}, schemas=BROWSABLE, records=records)
    pages = await browsed(fakes, 3)
    shown = shown_in(pages)
    assert sorted(shown) == sorted(here) and len(shown) == len(set(shown))  # every row in scope once, THERE never
    assert [len(p["records"]) for p in pages if p["records"]] == [3, 3, 1]
    assert len(pages) == 2 + BUCKETS // BROWSE_RANGES and fakes.ranges_read == BROWSE_RANGES
    assert pages[0]["items"] == ["统一社会信用代码", "企业名称", "法定代表人", "联系电话"]
    first = pages[0]["records"][0]["fields"]
    assert first["联系电话"] == MASK and first["法定代表人"] == "张三"  # masked unless the grant names it
    assert [a.operation for a in fakes.accesses] == [Operation.BROWSE] * len(pages)
    assert all(a.call.channel is Channel.ONLINE_BROWSE and a.result is AccessResult.SERVED for a in fakes.accesses)
    assert [a.subject_keys for a in fakes.accesses] == [tuple(r["subject"] for r in p["records"]) for p in pages]
    assert "吉安乙公司" not in str(pages)
    spread = Fakes(grants={"g-1": BROWSING}, schemas=BROWSABLE, records={k: stored(k, "x") for k in here})
    assert sorted(shown_in(await browsed(spread, 3))) == sorted(here)  # rows in their own key ranges


async def test_a_browse_filters_on_the_shown_values_only_and_its_position_counts_no_hidden_row() -> None:
    fakes = Fakes(grants={"g-1": BROWSING}, schemas=BROWSABLE)
    found = await browsed(fakes, 10, "甲公司")
    assert shown_in(found) == [HERE] and found[-1]["next"] is None
    masked = await browsed(fakes, 10, "13800000000")  # a masked value is not searched
    assert shown_in(masked) == []
    hidden = await browsed(fakes, 10, "乙公司")  # out of the grant's rows
    assert shown_in(hidden) == []
    keyless = Fakes(grants={"g-1": replace(BROWSING, items=("企业名称",))}, schemas=BROWSABLE)
    named = await browsed(keyless, 10)
    assert shown_in(named) == [pseudonym(HERE, "g-1", SECRET)] and HERE not in str(named)
    with pytest.raises(Invalid):
        await channel_of(fakes).browse(browser_call(), "x.1", 10)
    assert fakes.accesses[-1].result is AccessResult.REFUSED


async def test_where_a_browse_page_stops_tells_nothing_of_the_rows_outside_the_grant() -> None:
    hidden = [enterprise("360822", n) for n in range(100, 2100)]  # another county: outside the grant's rows
    few = {HERE: stored(HERE, "吉安甲公司")} | {k: stored(k, "x") for k in hidden[:20]}
    many = {HERE: stored(HERE, "吉安甲公司")} | {k: stored(k, "x") for k in hidden}
    a = await browsed(Fakes(grants={"g-1": BROWSING}, schemas=BROWSABLE, records=few))
    b = await browsed(Fakes(grants={"g-1": BROWSING}, schemas=BROWSABLE, records=many))
    assert [[r["subject"] for r in p["records"]] for p in a] == [[r["subject"] for r in p["records"]] for p in b]
    assert [p["next"] for p in a] == [p["next"] for p in b]  # the same pages and positions, whatever is hidden
    assert len(a) == BUCKETS // BROWSE_RANGES  # each page reads its key ranges: the whole resource in 64


async def test_a_browse_goes_on_after_the_last_row_shown_whatever_changed_before_it() -> None:
    keys = sorted(enterprise("360821", n) for n in range(10, 16))
    records = {k: replace(stored(k, f"公司{n}"), bucket=7) for n, k in enumerate(keys)}  # all in one key range
    fakes = Fakes(grants={"g-1": BROWSING}, schemas=BROWSABLE, records=records)
    first = await channel_of(fakes).browse(browser_call(), None, 3)
    assert [r["subject"] for r in first["records"]] == keys[:3]
    del fakes.records[keys[0]]  # the provider deletes a row already shown
    fakes.records[keys[1]] = replace(records[keys[1]], deleted=True)
    second = await channel_of(fakes).browse(browser_call(), first["next"], 3)
    assert [r["subject"] for r in second["records"]] == keys[3:]  # none skipped, none repeated


async def test_a_browse_position_is_sealed_for_its_grant_and_a_made_up_one_is_refused_and_recorded() -> None:
    keys = sorted(enterprise("360821", n) for n in range(10, 16))
    records = {k: replace(stored(k, f"公司{n}"), bucket=9) for n, k in enumerate(keys)}  # one key range
    keyless = replace(BROWSING, items=("企业名称",))  # subjects by pseudonym: the position must not name them
    fakes = Fakes(grants={"g-1": keyless, "g-2": replace(keyless, grant_id="g-2")}, schemas=BROWSABLE, records=records)
    first = await channel_of(fakes).browse(browser_call(), None, 2)
    position = first["next"]
    assert position and re.fullmatch(r"[A-Za-z0-9_-]+", position)
    assert not any(k in position or k.encode().hex() in position for k in keys)
    opened = base64.urlsafe_b64decode(position + "=" * (-len(position) % 4))
    assert not any(k.encode() in opened for k in keys)  # encrypted, not only signed
    tampered = position[:-2] + ("AA" if position[-2:] != "AA" else "BB")
    for forged, grant in [
        (tampered, "g-1"),
        (position, "g-2"),  # another grant's position
        (BrowsePosition(70000).seal("g-1", SECRET), "g-1"),  # a key range that does not exist
        (BrowsePosition(0).seal("g-1", b"t" * 32), "g-1"),  # sealed by someone else
        ("12.1", "g-1"),
        ("²", "g-1"),  # not an ASCII digit: refused, never a 500
        ("A" * 401, "g-1"),
    ]:
        before = len(fakes.accesses)
        with pytest.raises(Invalid) as refused:
            await channel_of(fakes).browse(browser_call(grant_id=grant), forged, 2)
        assert refused.value.field == "after"
        [access] = fakes.accesses[before:]
        assert access.result is AccessResult.REFUSED and access.operation is Operation.BROWSE
    second = await channel_of(fakes).browse(browser_call(), position, 2)
    assert len(second["records"]) == 2 and not set(shown_in([second])) & set(shown_in([first]))


async def test_a_browse_page_out_of_bounds_is_refused_and_recorded() -> None:
    fakes = Fakes(grants={"g-1": BROWSING}, schemas=BROWSABLE)
    for limit, contains in [(0, ""), (BROWSE_PAGE + 1, ""), (10, "x" * (BROWSE_FILTER + 1))]:
        with pytest.raises(Invalid):
            await channel_of(fakes).browse(browser_call(), None, limit, contains)
        assert fakes.accesses[-1].result is AccessResult.REFUSED and fakes.accesses[-1].operation is Operation.BROWSE
    assert len(fakes.accesses) == 3
    found = await channel_of(fakes).browse(browser_call(), None, BROWSE_PAGE, "甲" * BROWSE_FILTER)  # the bounds
    assert found["records"] == [] and fakes.accesses[-1].result is AccessResult.SERVED


async def test_a_machine_cannot_browse_and_its_attempt_is_recorded() -> None:
    fakes = Fakes(grants={"g-1": replace(BROWSING, consumer_system="approval-system")}, schemas=BROWSABLE)
    with pytest.raises(AccessDenied, match="person"):
        await channel_of(fakes).browse(call(SYSTEM, channel=Channel.ONLINE_BROWSE), None, 10)
    [access] = fakes.accesses
    assert access.result is AccessResult.REFUSED and access.operation is Operation.BROWSE
    assert access.call.principal == SYSTEM and access.subject_keys == ()


async def test_a_browse_needs_a_grant_that_opens_online_browse() -> None:
    fakes = Fakes(grants={"g-1": replace(GRANT, consumer_system=None)}, schemas=BROWSABLE)  # API only
    with pytest.raises(AccessDenied, match="ONLINE_BROWSE"):
        await channel_of(fakes).browse(browser_call(), None, 10)
    [access] = fakes.accesses
    assert access.result is AccessResult.REFUSED and access.operation is Operation.BROWSE


async def test_the_digest_is_of_what_the_grant_shows() -> None:
    fakes = Fakes()
    partial = await channel_of(fakes).digest(call())
    expected = ResourceDigest()
    shown = (await channel_of(fakes).record(call(), HERE))["fields"]
    expected.add(HERE, shown)
    assert partial.tops() == expected.tops() and partial.records == 1
    whole = replace(GRANT, items=tuple(i.name for i in SCHEMA.items), scope=RowScope(),
                    unmasked=frozenset({"法定代表人", "联系电话"}))  # fmt: skip
    fakes.grants["g-1"] = whole
    fakes.schemas[CODE] = replace(SCHEMA, items=SCHEMA.items[:5])
    for r in fakes.records.values():
        r.fields.pop("内部备注")
    assert (await channel_of(fakes).digest(call())).tops() == ResourceDigest(await fakes.leaves(CODE)).tops()


class MovingClock:
    def __init__(self) -> None:
        self.at = FixedClock().now()

    def now(self) -> datetime:
        return self.at


async def test_a_partial_digest_is_computed_once_for_its_leaves_and_again_when_the_resource_moves() -> None:
    fakes = Fakes()
    for n in range(2500):  # a few slices
        key = enterprise("360821", 100 + n)
        fakes.records[key] = stored(key, f"企业{n}")
    clock = MovingClock()
    channel = replace(channel_of(fakes), clock=clock)
    digests = await asyncio.gather(*(channel.digest(call()) for _ in range(5)))  # together: one computation
    assert fakes.scans == 1 and {d.records for d in digests} == {2501}
    leaves = await channel.leaves(call(), [0, 1])
    assert fakes.scans == 1 and leaves[0] == [list(leaf) for leaf in digests[0].leaves_under(0)]
    narrowed = await channel.digest(call(items=("企业名称",)))  # other items: another digest
    assert fakes.scans == 2 and narrowed.tops() != digests[0].tops()
    fakes.position += 1  # a change: the digest is computed again
    await channel.digest(call())
    assert fakes.scans == 3
    clock.at += timedelta(minutes=5)  # kept a moment only
    await channel.digest(call())
    assert fakes.scans == 4
    assert [a.result for a in fakes.accesses] == [AccessResult.SERVED] * 9


ABUSES = [
    ("no grant named", call(grant_id=None), "names no grant"),
    ("no purpose", call(purpose=None), "states no purpose"),
    ("an unknown grant", call(grant_id="g-404"), "no such grant"),
    ("another purpose", call(purpose="别的用途"), "purpose is not the grant's"),
    ("items outside the grant", call(items=("注册资本",)), "items outside the grant: 注册资本"),
    ("an item never shared", call(items=("内部备注",)), "items outside the grant: 内部备注"),
    (
        "another consumer system",
        call(Principal("other-system", APPROVAL, machine=MachineKind.CONSUMER_SYSTEM)),
        "another consumer system's",
    ),
    ("another department", call(Principal("x", MARKET, frozenset({Role.AUDITOR}))), "another department's"),
    (
        "a person under a consumer system's grant",
        call(Principal("li", APPROVAL, frozenset({Role.DATA_ADMINISTRATOR}))),
        "the grant is for consumer system approval-system",
    ),
    ("no valid token", call(None), "no valid credentials"),
]


@pytest.mark.parametrize(("_", "refused_call", "reason"), ABUSES, ids=[a[0] for a in ABUSES])
async def test_each_abuse_is_refused_with_its_reason_and_recorded(_, refused_call: Call, reason: str) -> None:
    fakes = Fakes()
    with pytest.raises(AccessDenied) as refused:
        await channel_of(fakes).record(refused_call, HERE)
    assert reason in refused.value.reason and "吉安甲公司" not in refused.value.reason
    [access] = fakes.accesses
    assert access.result is AccessResult.REFUSED and reason in (access.reason or "")
    assert access.record_count == 0 and access.subject_keys == (HERE,)


@pytest.mark.parametrize(
    ("grant", "reason"),
    [
        (replace(GRANT, valid_to=date(2026, 5, 31)), "expired on 2026-05-31"),
        (replace(GRANT, status=GrantStatus.REVOKED, ended_reason="no longer needed"), "revoked: no longer needed"),
        (replace(GRANT, status=GrantStatus.ENDED, ended_reason="entry withdrawn"), "ended"),
        (replace(GRANT, resource_code="101001/000002"), "no such grant"),
        (replace(GRANT, channels=frozenset({Channel.FILE_DOWNLOAD})), "API channel"),
    ],
)
async def test_a_grant_that_ended_or_does_not_fit_opens_nothing(grant: Grant, reason: str) -> None:
    fakes = Fakes(grants={"g-1": grant})
    for attempt in (channel_of(fakes).changes(call(), 0, 10), channel_of(fakes).batch(call(), [HERE])):
        with pytest.raises(AccessDenied, match=reason):
            await attempt
    assert [a.result for a in fakes.accesses] == [AccessResult.REFUSED] * 2


def tightened_items(*names: str) -> tuple[ItemSpec, ...]:
    return tuple(replace(i, share_type="NOT_SHARED") if i.name in names else i for i in SCHEMA.items)


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (replace(SCHEMA, version=2, items=tightened_items("联系电话")), "makes the data item 联系电话 NOT_SHARED"),
        (replace(SCHEMA, version=2, share_methods=("API", "FILE_DOWNLOAD")), None),
        (replace(SCHEMA, version=1, items=tightened_items("联系电话")), None),  # the grant's own version
    ],
)
async def test_a_grant_from_an_earlier_entry_opens_nothing_once_the_entry_in_force_is_stricter(
    schema: ResourceSchema, reason: str | None
) -> None:
    """The lifecycle ends such a grant, but its consumer may lag: the channel checks the rule itself."""
    fakes = Fakes(schemas={CODE: schema})
    if reason is None:
        assert (await channel_of(fakes).record(call(), HERE))["fields"]["企业名称"] == "吉安甲公司"
        return
    with pytest.raises(AccessDenied, match=reason):
        await channel_of(fakes).record(call(), HERE)
    assert [a.result for a in fakes.accesses] == [AccessResult.REFUSED]


async def test_a_grant_from_an_earlier_entry_opens_nothing_once_its_channel_is_dropped() -> None:
    both = replace(GRANT, channels=frozenset({Channel.API, Channel.FILE_DOWNLOAD}))
    fakes = Fakes(grants={"g-1": both}, schemas={CODE: replace(SCHEMA, version=2)})
    with pytest.raises(AccessDenied, match="no longer shared by FILE_DOWNLOAD"):
        await channel_of(fakes).record(call(), HERE)
    unpublished = Fakes(schemas={CODE: replace(SCHEMA, version=2, published=False)})
    with pytest.raises(AccessDenied, match="no published resource"):
        await channel_of(unpublished).record(call(), HERE)
    assert tightened(GRANT, replace(SCHEMA, version=2, share_methods=("FILE_DOWNLOAD",))) is not None
    assert "withdrawn" in (stricter_rule(GRANT, replace(SCHEMA, version=2, published=False), "CONDITIONAL", {}) or "")


@dataclass(frozen=True)
class LifecycleDay:
    day: date

    def today(self) -> date:
        return self.day


async def test_a_grants_period_is_counted_by_the_lifecycles_day_not_the_channels_own() -> None:
    """A drill's fixed date (EXCHANGE_SHARING_TODAY) holds for the channel as for the lifecycle that issued
    the grant: open on exactly the days the lifecycle issued it for."""
    fakes = Fakes(grants={"g-1": replace(GRANT, valid_from=date(2027, 3, 1), valid_to=date(2027, 3, 31))})
    shim = Shim(fakes)

    def channel(day: date) -> ApiChannel:
        return ApiChannel(fakes, shim, fakes, shim, FixedClock(), LifecycleDay(day), secret=SECRET)  # type: ignore[arg-type]

    assert (await channel(date(2027, 3, 15)).record(call(), HERE))["fields"]["企业名称"] == "吉安甲公司"
    with pytest.raises(AccessDenied, match="valid from 2027-03-01"):
        await channel(date(2027, 2, 28)).record(call(), HERE)
    with pytest.raises(AccessDenied, match="expired on 2027-03-31"):
        await channel(date(2027, 4, 1)).record(call(), HERE)


async def test_a_resource_without_review_or_not_shared_by_api_opens_nothing() -> None:
    for schema, reason in [
        (replace(SCHEMA, confidentiality_reviewed_on=None), "confidentiality review"),
        (replace(SCHEMA, share_methods=("FILE_DOWNLOAD",)), "API channel"),
        (replace(SCHEMA, published=False), "no published resource"),
    ]:
        with pytest.raises(AccessDenied, match=reason):
            await channel_of(Fakes(schemas={CODE: schema})).record(call(), HERE)


async def test_an_access_that_cannot_be_recorded_is_not_served() -> None:
    with pytest.raises(ConnectionError):
        await channel_of(Fakes(recording_fails=True)).record(call(), HERE)


def test_the_purpose_is_read_percent_encoded_or_as_raw_utf8() -> None:
    from urllib.parse import quote

    assert purpose_of(quote(PURPOSE)) == PURPOSE
    assert purpose_of(PURPOSE.encode().decode("latin-1")) == PURPOSE  # how the server sees raw UTF-8 bytes
    assert purpose_of(" audit ") == "audit" and purpose_of(None) is None


@pytest.mark.parametrize("header", ["%FF", "%E4%B", "%C3", quote(PURPOSE)[:-1]])
async def test_a_malformed_purpose_is_refused_naming_the_header_and_recorded(header: str) -> None:
    with pytest.raises(Invalid, match="X-Purpose"):
        purpose_of(header)
    fakes = Fakes()
    request = SimpleNamespace(method="GET", url=SimpleNamespace(path=f"/services/{CODE}/records/{HERE}"))
    with pytest.raises(Invalid, match="X-Purpose") as refused:
        await calls()(request, CODE, channel_of(fakes), SYSTEM, "g-1", header, [])  # type: ignore[arg-type]
    assert refused.value.field == "X-Purpose"
    [access] = fakes.accesses
    assert access.result is AccessResult.REFUSED and "X-Purpose" in (access.reason or "")
    assert access.operation is Operation.RECORD and access.call.grant_id == "g-1"


def test_each_resource_has_an_openapi_description_with_its_items_as_typed_fields() -> None:
    document = describe(SCHEMA)
    fields_schema = document["components"]["schemas"]["Fields"]["properties"]
    assert fields_schema["注册资本"]["type"] == "number" and fields_schema["企业名称"]["maxLength"] == 100
    assert "内部备注" not in fields_schema and {"const": "***"} in fields_schema["联系电话"]["anyOf"]
    assert f"/services/{CODE}/records/{{subject_key}}" in document["paths"]
    with pytest.raises(NotFound):
        describe(replace(SCHEMA, share_type="NOT_SHARED"))


# -- the access log -----------------------------------------------------------------------------------------


@dataclass
class FakeBroker:
    transactions: list[list[Event]] = field(default_factory=list)  # each group sent
    fails: bool = False

    async def send(self, events: list[Event]) -> None:
        await asyncio.sleep(0.01)  # an acknowledgement takes a while: requests arriving meanwhile form the next group
        if self.fails:
            raise ConnectionError("broker away")
        self.transactions.append(events)


def served(n: int) -> DataAccess:
    return DataAccess(
        call(), Operation.RECORD, MARKET, FixedClock().now(), AccessResult.SERVED, None, (), 1, (HERE,), n
    )


async def test_accesses_are_written_in_groups_and_each_request_waits_for_its_own() -> None:
    outbox = FakeBroker()
    log = GroupedAccessLog(outbox.send, b"k" * 32, linger=0.002, most=50, timeout=2)
    writer = asyncio.create_task(log.run())
    try:
        await asyncio.gather(*(log.record(served(i)) for i in range(120)))
        written = [e.payload["record_count"] for t in outbox.transactions for e in t]
        assert sorted(written) == list(range(120)) and len(outbox.transactions) <= 5
        assert all(len(t) <= 50 for t in outbox.transactions)
        outbox.fails = True
        with pytest.raises(ConnectionError):
            await asyncio.gather(*(log.record(served(i)) for i in range(3)))
    finally:
        writer.cancel()


async def test_an_access_the_broker_does_not_acknowledge_fails_as_the_brokers_timeout() -> None:
    async def hangs(events: list[Event]) -> None:
        await asyncio.sleep(60)

    log = GroupedAccessLog(hangs, b"k" * 32, linger=0, most=50, timeout=0.05)
    writer = asyncio.create_task(log.run())
    try:
        with pytest.raises(KafkaTimeoutError):  # mapped to a 503 naming kafka, not the database
            await log.record(served(1))
    finally:
        writer.cancel()


async def test_a_request_waits_longer_than_its_groups_linger_and_send() -> None:
    async def slow(events: list[Event]) -> None:
        await asyncio.sleep(0.45)  # within the send's own timeout

    log = GroupedAccessLog(slow, b"k" * 32, linger=0.2, most=50, timeout=0.5)
    writer = asyncio.create_task(log.run())
    try:
        await log.record(served(1))
    finally:
        writer.cancel()


def test_an_access_event_names_subjects_only_by_keyed_hash() -> None:
    payload = access_payload(served(1), b"k" * 32)
    assert HERE not in str(payload) and len(payload["subject_hashes"][0]) == 64
    assert payload["subject_hashes"] != access_payload(served(1), b"j" * 32)["subject_hashes"]
    assert (payload["consumer_code"], payload["accessed_by"], payload["accessor_kind"]) == (
        APPROVAL,
        "approval-system",
        "machine",
    )
    assert payload["result"] == "SERVED" and payload["purpose"] == PURPOSE and payload["grant_id"] == "g-1"


def test_a_grant_read_is_trusted_for_a_moment_only() -> None:
    now = [0.0]
    recent = _Recent(1.0, lambda: now[0])
    recent.put("g", "active")
    assert recent.get("g") == (True, "active")
    now[0] = 1.0
    assert recent.get("g") == (False, None)  # a revocation is seen at the next read, within a second


async def test_requests_arriving_together_read_an_expired_grant_once() -> None:
    reads = []

    async def read() -> str:
        reads.append(1)
        await asyncio.sleep(0.01)
        return "active"

    recent = _Recent(1.0)
    assert await asyncio.gather(*(recent.fetch("g", read) for _ in range(50))) == ["active"] * 50
    assert await recent.fetch("g", read) == "active" and len(reads) == 1


def test_an_access_served_whole_names_each_subject_once_and_at_most_as_many_as_a_batch() -> None:
    keys = [f"K{n:04d}" for n in range(MAX_BATCH + 500)]
    named = named_subjects(["K0001", *keys])
    assert len(named) == MAX_BATCH and named[:3] == ("K0001", "K0000", "K0002")


class _Verifier:
    def verify(self, _token: str) -> Principal:
        return READER


async def test_a_browse_route_leaves_its_bounds_to_the_channel_so_each_refused_page_is_recorded() -> None:
    fakes = Fakes(grants={"g-1": BROWSING}, schemas=BROWSABLE)
    app = FastAPI()
    app.include_router(browse_router)
    app.add_exception_handler(Invalid, lambda _r, e: JSONResponse({"field": e.field}, 422))  # type: ignore[attr-defined]
    app.state.api_channel = channel_of(fakes)
    verifier = SimpleNamespace(verifier=_Verifier())
    app.state.runtime = SimpleNamespace(keys=verifier, revocations=SimpleNamespace(check=lambda _p: None))
    headers = {"Authorization": "Bearer x", "X-Grant-Id": "g-1", "X-Purpose": quote(PURPOSE)}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://exchange") as client:
        served = await client.get(f"/browse/{CODE}/records", headers=headers)
        assert served.status_code == 200 and served.json()["next"]
        for params in (
            {"after": "1" * 17},
            {"after": "²"},
            {"after": "12.1"},
            {"limit": 0},
            {"limit": BROWSE_PAGE + 1},
            {"contains": "x" * (BROWSE_FILTER + 1)},
        ):
            before = len(fakes.accesses)
            refused = await client.get(f"/browse/{CODE}/records", headers=headers, params=params)
            assert refused.status_code == 422 and refused.json()["field"] == next(iter(params))
            [access] = fakes.accesses[before:]
            assert access.result is AccessResult.REFUSED and access.operation is Operation.BROWSE
