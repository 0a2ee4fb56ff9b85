from datetime import UTC, datetime

import pytest

from common.errors import RejectedEvent
from common.identifiers import citizen_id_check_character
from services.exchange.domain.records import DataChange, Operation, apply_change

PERSON = "36080219900101001" + citizen_id_check_character("36080219900101001")


def change(version: int, operation: str = "UPSERT", **fields: object) -> DataChange:
    return DataChange.from_payload(
        {
            "change_id": f"c{version}{operation}",
            "resource_code": "101001/000001",
            "provider_code": "p",
            "operation": operation,
            "subject_key": PERSON.lower(),
            "fields": fields,
            "source_version": version,
            "changed_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )


def test_the_subject_key_is_validated_and_normalised() -> None:
    assert change(1).subject_key == PERSON and change(1).subject_kind == "citizen_id"
    with pytest.raises(RejectedEvent, match=r"subject_key\.check_character"):
        DataChange.from_payload({"subject_key": PERSON[:-1] + ("1" if PERSON[-1] != "1" else "2")})


def test_last_source_version_wins_whatever_the_arrival_order() -> None:
    changes = [change(1, name="a"), change(3, name="c"), change(2, name="b")]
    for order in ([0, 1, 2], [2, 1, 0], [1, 0, 2]):
        record = None
        for i in order:
            record = apply_change(record, changes[i]) or record
        assert record is not None and record.fields == {"name": "c"} and record.source_version == 3


def test_a_delete_keeps_a_tombstone_with_its_version() -> None:
    record = apply_change(apply_change(None, change(1, name="a")), change(2, "DELETE"))
    assert record is not None and record.deleted and record.fields == {}
    assert apply_change(record, change(1, name="a")) is None  # a late upsert does not resurrect it
    assert change(2, "DELETE").operation is Operation.DELETE
