"""The access trail's domain: what each event becomes, the chain, checkpoints and verification."""

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from common.events import Event
from common.topics import load_topics
from services.auditor.domain.trail import (
    GENESIS,
    SHAPES,
    ChainCheck,
    Checkpoint,
    Head,
    StoredBlock,
    TrailEntry,
    block_terms,
    content_hash,
    csv_row,
    describe,
    due_checkpoints,
    entry_view,
    identifier_hash,
    link,
    verify_proof,
)
from services.auditor.ports import AUDITED_TOPICS

SECRET = b"s" * 32
CITIZEN = "36080219800101001X"  # shaped like a citizen ID
PROVIDER, CONSUMER = "91360800MA35F0XX1A", "11360800014511789K"
AT = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)


def accessed(**changes: object) -> Event:
    payload = {
        "access_id": "a1",
        "resource_code": "101001/000001",
        "provider_code": PROVIDER,
        "consumer_code": CONSUMER,
        "grant_id": "g1",
        "channel": "API",
        "purpose": "企业开办审批核验",
        "record_count": 2,
        "accessed_by": "approval-system",
        "accessed_at": AT,
        "accessor_kind": "machine",
        "operation": "batch",
        "items": ["企业名称", "统一社会信用代码"],
        "subjects_requested": 3,
        "subject_hashes": ["h1", "h2", "h3"],
        "result": "SERVED",
        "reason": None,
    } | changes
    return Event("DataAccessed", "101001/000001", payload, "exchange", event_id="e-access", occurred_at=AT)


def revoked(n: int) -> Event:
    payload = {
        "grant_id": f"g{n}",
        "resource_code": "101001/000001",
        "consumer_code": CONSUMER,
        "reason": f"用途不符 {n}",
        "revoked_by": "scjgj-admin",
        "provider_code": PROVIDER,
        "request_id": None,
        "revoked_on": date(2026, 11, 25),
    }
    return Event("GrantRevoked", f"g{n}", payload, "exchange", event_id=f"e{n}", occurred_at=AT)


def trail(n: int) -> list[TrailEntry]:
    return link(Head(), [describe(revoked(i), SECRET) for i in range(n)])


def signed(entry: TrailEntry) -> Checkpoint:
    """A checkpoint whose 'signature' the fake check below accepts: the test signs with a known word."""
    return Checkpoint(entry.sequence, entry.hash, "2026-11-25T09:00:00+00:00", "k", "good")


def good(c: Checkpoint) -> bool:
    return c.signature == "good"


def verify(entries: list[TrailEntry], checkpoints: list[Checkpoint] = (), first: int = 1, last: int | None = None):
    last = max([e.sequence for e in entries] + [c.sequence for c in checkpoints]) if last is None else last
    anchor = max((c for c in checkpoints if c.sequence < first), key=lambda c: c.sequence, default=None)
    check = ChainCheck.start(first, last, anchor, [c for c in checkpoints if c is not anchor], good)
    for entry in entries:
        if (anchor.sequence if anchor else 0) < entry.sequence <= last and not check.feed(entry):
            break
    return check.finish()


def test_every_audited_event_type_says_who_what_and_how() -> None:
    topics = load_topics()
    audited = {t for name in AUDITED_TOPICS for t in topics[name].events}
    assert audited - set(SHAPES) == set()


def test_a_data_access_becomes_who_what_why_when_and_result() -> None:
    entry = describe(accessed(), SECRET)
    assert (entry.action, entry.actor, entry.actor_kind, entry.actor_department) == (
        "data.access",
        "approval-system",
        "system",
        CONSUMER,
    )
    assert (entry.owner_department, entry.resource, entry.items, entry.subjects) == (
        PROVIDER,
        "101001/000001",
        ("企业名称", "统一社会信用代码"),
        2,
    )
    assert (entry.purpose, entry.grant, entry.result) == ("企业开办审批核验", "g1", "SERVED")
    assert entry.occurred_at == "2026-11-25T08:30:00.000000+00:00"
    assert entry.subject_hashes == ("h1", "h2", "h3") and "subject_hashes" not in entry.payload
    assert entry.departments == tuple(sorted({PROVIDER, CONSUMER}))
    person = describe(accessed(accessor_kind="person", accessed_by="xzspj-admin"), SECRET)
    assert (person.actor, person.actor_kind) == ("xzspj-admin", "person")


def test_identifiers_in_an_events_text_are_hashed_but_the_departments_named_stay() -> None:
    entry = describe(accessed(result="REFUSED", reason=f"subject {CITIZEN} outside the scope"), SECRET)
    text = json.dumps(entry_view(entry), ensure_ascii=False)
    assert CITIZEN not in text
    assert entry.reason == f"subject id:{identifier_hash(CITIZEN, SECRET)} outside the scope"
    assert entry.payload["provider_code"] == PROVIDER and entry.payload["consumer_code"] == CONSUMER
    assert identifier_hash(CITIZEN, SECRET) != identifier_hash(CITIZEN, b"t" * 32)  # keyed


def test_an_identifier_standing_alone_in_a_payload_field_is_hashed_and_a_department_named_stays() -> None:
    hashed = "id:" + identifier_hash(CITIZEN, SECRET)
    entry = describe(accessed(accessed_by=CITIZEN, operation=[CITIZEN, "batch"], grant_id=None), SECRET)
    assert entry.payload["accessed_by"] == hashed and entry.payload["operation"] == [hashed, "batch"]
    assert entry.payload["provider_code"] == PROVIDER and entry.payload["grant_id"] is None


def test_system_events_name_the_producing_service_as_actor() -> None:
    ended = Event(
        "GrantEnded",
        "g",
        {
            "grant_id": "g",
            "resource_code": "r",
            "provider_code": PROVIDER,
            "consumer_code": CONSUMER,
            "cause": "EXPIRED",
        },
        "exchange",
    )
    entry = describe(ended, SECRET)
    assert (entry.actor, entry.actor_kind, entry.actor_department, entry.action) == (
        "exchange",
        "system",
        None,
        "grant.change",
    )
    assert entry.grant == "g" and entry.departments == tuple(sorted({PROVIDER, CONSUMER}))


def test_an_untouched_trail_verifies() -> None:
    entries = trail(5)
    assert [e.sequence for e in entries] == [1, 2, 3, 4, 5] and entries[0].previous_hash == GENESIS
    report = verify(entries, [signed(entries[2])])
    assert report.intact and report.entries == 5 and report.signed_through == 3


def test_an_edited_entry_breaks_the_chain_where_it_was_edited() -> None:
    entries = trail(5)
    entries[2] = dataclasses.replace(entries[2], purpose="another purpose")
    report = verify(entries)
    assert not report.intact and report.first_broken_sequence == 3 and "altered" in (report.problem or "")


def test_a_deleted_entry_is_detected_also_at_the_end_when_a_checkpoint_names_it() -> None:
    entries = trail(5)
    assert verify(entries[:2] + entries[3:]).first_broken_sequence == 3
    report = verify(entries[:4], [signed(entries[4])])
    assert not report.intact and report.first_broken_sequence == 5 and "missing" in (report.problem or "")


def test_an_inserted_entry_with_every_later_hash_recomputed_disagrees_with_the_signed_checkpoint() -> None:
    entries = trail(6)
    checkpoint = signed(entries[4])
    forged = describe(revoked(99), SECRET)
    rewritten = link(Head(2, entries[1].hash), [forged, *entries[2:]])  # all later links and hashes redone
    report = verify(entries[:2] + rewritten, [checkpoint])
    assert not report.intact and report.first_broken_sequence == 5 and "signed checkpoint" in (report.problem or "")


def test_reordered_entries_are_detected() -> None:
    entries = trail(5)
    swapped = [entries[0], entries[2], entries[1], *entries[3:]]
    assert verify(swapped).first_broken_sequence == 2


def test_a_range_is_verified_from_the_nearest_checkpoint_before_it() -> None:
    entries = trail(10)
    report = verify(entries, [signed(entries[3]), signed(entries[7])], first=6, last=9)
    assert report.intact and report.anchor == 4 and report.entries == 5 and report.signed_through == 8
    forged_anchor = dataclasses.replace(signed(entries[3]), signature="forged")
    report = verify(entries, [forged_anchor], first=6, last=9)
    assert not report.intact and report.first_broken_sequence == 4 and "signature" in (report.problem or "")


def test_checkpoints_are_due_every_n_entries_and_when_the_last_is_old() -> None:
    linked = trail(25)
    head = Head(checkpoint_at=AT)
    assert [e.sequence for e in due_checkpoints(head, linked, AT + timedelta(seconds=5), 10, 60)] == [10, 20]
    assert [e.sequence for e in due_checkpoints(head, linked, AT + timedelta(seconds=61), 10, 60)] == [10, 20, 25]
    assert [e.sequence for e in due_checkpoints(Head(), linked[:3], AT, 10, 60)] == [3]  # the first ever


def test_a_proof_file_verifies_with_only_the_signature_check() -> None:
    entries = trail(8)
    checkpoints = [signed(entries[2]), signed(entries[5])]
    lines = [
        json.dumps({"range": {"first": 4, "last": 8}}),
        *(json.dumps({"checkpoint": c.__dict__}) for c in checkpoints),
        *(json.dumps({"entry": entry_view(e)}, ensure_ascii=False) for e in entries[3:]),
    ]
    report = verify_proof(lines, good)
    assert report.intact and report.anchor == 3 and report.entries == 5 and report.signed_through == 6
    tampered = entry_view(entries[4]) | {"result": "SERVED"}
    lines[4] = json.dumps({"entry": tampered}, ensure_ascii=False)
    report = verify_proof(lines, good)
    assert not report.intact and report.first_broken_sequence == 5


def test_an_entrys_hash_covers_everything_but_itself() -> None:
    entry = trail(1)[0]
    assert content_hash(entry.content()) == entry.hash and "hash" not in entry.content()
    assert csv_row(entry)[0] == "1" and "用途不符 0" in csv_row(entry)


@pytest.mark.parametrize("kind", ["ShareDecided", "NotificationIssued", "CatalogEntryPublished", "PersonRolesChanged"])
def test_events_of_other_kinds_name_their_actor_and_departments(kind: str) -> None:
    payloads = {
        "ShareDecided": {"decided_by": "p", "provider_code": PROVIDER, "consumer_code": CONSUMER, "decision": "DENIED"},
        "NotificationIssued": {"recipient_code": CONSUMER, "kind": "REQUEST_ARRIVED"},
        "CatalogEntryPublished": {"reviewed_by": "r", "provider_code": PROVIDER, "resource_code": "101001/000001"},
        "PersonRolesChanged": {"changed_by": "op", "department_code": CONSUMER, "person_id": "p1"},
    }
    entry = describe(Event(kind, "k", payloads[kind], "x"), SECRET)
    assert entry.departments and entry.action and entry.result
    if kind == "ShareDecided":
        assert (entry.result, entry.actor, entry.actor_department) == ("DENIED", "p", PROVIDER)


def test_only_served_data_accesses_count_as_a_departments_use() -> None:
    from services.auditor.domain.evaluation import NOT_COUNTED, data_access_counted_for

    assert data_access_counted_for({"consumer_code": "c", "result": "SERVED"}) == "c"
    assert data_access_counted_for({"consumer_code": "c"}) == "c"  # recorded before results were
    assert data_access_counted_for({"consumer_code": "c", "result": "REFUSED"}) == NOT_COUNTED
    assert data_access_counted_for({"consumer_code": "c", "result": "NOT_FOUND"}) == NOT_COUNTED


def stored_blocks(entries: list[TrailEntry], size: int) -> list[StoredBlock]:
    """Entries as the store keeps them: runs of `size`, their texts and hashes, and the terms they name."""
    runs = [entries[i : i + size] for i in range(0, len(entries), size)]
    return [
        StoredBlock(
            run[0].sequence,
            [e.text for e in run],
            [e.hash for e in run],
            {name: frozenset(values) for name, values in block_terms(vars(e) for e in run).items()},
            min(e.occurred_at for e in run),
            max(e.occurred_at for e in run),
        )
        for run in runs
    ]


def verify_blocks(blocks: list[StoredBlock], checkpoints: list[Checkpoint] = (), after: int = 0, last: int = 10):
    anchor = next((c for c in checkpoints if c.sequence == after), None)
    check = ChainCheck.start(after + 1, last, anchor, [c for c in checkpoints if c is not anchor], good)
    all(check.feed_block(block, after, last) for block in blocks)
    return check.finish()


def test_blocks_verify_from_their_stored_texts_and_a_range_from_a_checkpoint_inside_a_block() -> None:
    entries = trail(10)
    blocks = stored_blocks(entries, 4)
    report = verify_blocks(blocks, [signed(entries[4]), signed(entries[9])])
    assert report.intact and report.checked == 10 and report.signed_through == 10
    report = verify_blocks(blocks[1:], [signed(entries[4]), signed(entries[9])], after=5, last=7)
    assert report.intact and report.checked == 2 and report.anchor == 5  # entries 6 and 7 of the block 5-8


def test_a_changed_missing_or_unnamed_entry_in_a_block_breaks_the_chain() -> None:
    entries = trail(10)
    changed = stored_blocks(entries, 4)
    changed[1].texts[2] = changed[1].texts[2].replace("用途不符", "用途相符")
    report = verify_blocks(changed)
    assert (report.first_broken_sequence, report.problem) == (7, "its content was altered after it was recorded")
    missing = stored_blocks(entries, 4)
    del missing[2].texts[0], missing[2].hashes[0]
    assert verify_blocks(missing).first_broken_sequence == 9
    hidden = stored_blocks(entries, 4)
    hidden[0] = dataclasses.replace(hidden[0], terms=hidden[0].terms | {"actors": frozenset()})
    report = verify_blocks(hidden)
    assert report.first_broken_sequence == 1 and "query terms" in (report.problem or "")
    mismatched = stored_blocks(entries, 4)
    mismatched[1].hashes.pop()
    assert verify_blocks(mismatched).first_broken_sequence == 5


# The hashes of one fixed access, described and linked first after the genesis: pinned, so that a change of
# what an entry holds, of its canonical text or of the hashing shows here (a stored trail would no longer
# verify), not only a change that breaks the code's agreement with itself.
FIXED_CONTENT_HASH = "dd1335d46dbca2a6feeb2558c498755dc3a2f1682c156db92e420850a33dbab1"
FIXED_FIRST_HASH = "7cf349525931ac8b7fba6c9b75586e18072108e7d3de3c8d3511aace9fba486b"


def test_a_described_entry_is_the_entry_its_fields_make() -> None:
    entry = describe(accessed(), SECRET)
    assert entry == TrailEntry.from_content(entry.content(), "") and (entry.hash, entry.text) == ("", "")
    assert content_hash(entry.content()) == FIXED_CONTENT_HASH
    [first] = link(Head(), [entry])
    assert (first.sequence, first.previous_hash, first.hash) == (1, GENESIS, FIXED_FIRST_HASH)
    assert '"subjects":2' in first.text and '"subject_hashes":["h1","h2","h3"]' in first.text
