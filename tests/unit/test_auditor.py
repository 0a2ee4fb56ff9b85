import dataclasses
from datetime import UTC, date, datetime

from common.events import Event
from services.auditor.domain.trail import next_entry, verify_chain


def trail(n: int) -> list:
    entries, previous = [], None
    for i in range(n):
        event = Event(
            "GrantRevoked",
            f"g{i}",
            {"grant_id": f"g{i}", "valid_to": date(2027, 1, i + 1)},
            "exchange",
            occurred_at=datetime(2026, 11, 25, tzinfo=UTC),
        )
        previous = next_entry(previous, event)
        entries.append(previous)
    return entries


def test_an_untouched_trail_verifies() -> None:
    report = verify_chain(trail(5))
    assert report.intact and report.entries == 5
    assert trail(1)[0].payload["valid_to"] == "2027-01-01"


def test_an_edited_entry_breaks_the_chain_where_it_was_edited() -> None:
    entries = trail(5)
    entries[2] = dataclasses.replace(entries[2], payload={"grant_id": "forged"})
    report = verify_chain(entries)
    assert not report.intact and report.first_broken_sequence == 3 and "altered" in (report.problem or "")


def test_a_deleted_or_rehashed_entry_is_detected() -> None:
    entries = trail(5)
    assert verify_chain(entries[:2] + entries[3:]).first_broken_sequence == 3
    forged = next_entry(entries[1], Event("GrantRevoked", "x", {}, "mallory"))
    assert verify_chain([*entries[:2], forged, *entries[3:]]).first_broken_sequence == 4


def test_only_served_data_accesses_count_as_a_departments_use() -> None:
    from services.auditor.domain.evaluation import NOT_COUNTED, data_access_counted_for

    assert data_access_counted_for({"consumer_code": "c", "result": "SERVED"}) == "c"
    assert data_access_counted_for({"consumer_code": "c"}) == "c"  # recorded before results were
    assert data_access_counted_for({"consumer_code": "c", "result": "REFUSED"}) == NOT_COUNTED
    assert data_access_counted_for({"consumer_code": "c", "result": "NOT_FOUND"}) == NOT_COUNTED
