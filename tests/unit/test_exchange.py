from dataclasses import replace
from datetime import UTC, datetime

import pytest

from common.identifiers import citizen_id_check_character
from services.exchange.domain.records import DataChange, Operation, apply_change
from services.exchange.domain.resources import publication_stands

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


def test_the_subject_key_is_validated_as_the_key_item_declares_and_normalised() -> None:
    from services.exchange.domain.resources import Rejection, admit

    admitted = admit(schema(), change(1, 公民身份号码=PERSON))
    assert isinstance(admitted, DataChange)
    assert admitted.subject_key == PERSON and admitted.subject_kind == "citizen_id"
    wrong = PERSON[:-1] + ("1" if PERSON[-1] != "1" else "2")
    refused = admit(schema(), replace(change(1, 公民身份号码=wrong), subject_key=wrong))
    assert isinstance(refused, Rejection) and refused.rule == "subject_key.check_character"


ALL_DIGIT_CREDIT_CODE = "914403001922038216"  # valid (GB 32100), and shaped like a citizen ID


def test_an_all_digit_credit_code_is_a_valid_key_of_a_resource_keyed_by_credit_codes() -> None:
    from services.exchange.domain.resources import ItemSpec, Rejection, ResourceSchema, admit

    enterprises = ResourceSchema(
        "101001/000002", "p", "企业", (ItemSpec("统一社会信用代码", "string", 18), ItemSpec("名称", "string")), None
    )
    assert enterprises.key_kind == "credit_code" and schema().key_kind == "citizen_id"
    reported = replace(change(1, 统一社会信用代码=ALL_DIGIT_CREDIT_CODE), resource_code="101001/000002")
    reported = replace(reported, subject_key=ALL_DIGIT_CREDIT_CODE)
    admitted = admit(enterprises, reported)
    assert isinstance(admitted, DataChange) and admitted.subject_kind == "credit_code"
    deleted = admit(enterprises, replace(reported, operation=Operation.DELETE, fields={}))
    assert isinstance(deleted, DataChange) and deleted.subject_kind == "credit_code"
    # a citizen ID is no key of that resource, nor is the credit code a key of a resource of persons
    person = admit(enterprises, replace(reported, subject_key=PERSON, fields={"统一社会信用代码": PERSON}))
    assert isinstance(person, Rejection) and person.rule.startswith("subject_key.")
    as_person = admit(schema(), replace(reported, resource_code="101001/000001", fields={}))
    assert isinstance(as_person, Rejection) and as_person.rule == "subject_key.birth_date"


def test_unpublished_and_foreign_resources_are_refused_before_the_key() -> None:
    from services.exchange.domain.resources import admit

    assert admit(None, change(1)).rule == "resource.not_published"  # type: ignore[union-attr]
    assert admit(schema(), replace(change(1), provider_code="q")).rule == "resource.provider"  # type: ignore[union-attr]


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


def test_changes_of_a_batch_apply_in_arrival_order_and_a_late_one_is_history_only() -> None:
    from services.exchange.domain.records import apply_in_order

    outcomes = apply_in_order([change(2, 姓名="新"), change(1, 姓名="旧"), change(3, "DELETE")], {})
    assert [o.after is not None for o in outcomes] == [True, False, True]
    assert outcomes[2].before is outcomes[0].after and outcomes[2].after.deleted
    assert outcomes[2].after.digest == 0 and outcomes[0].after.digest != 0  # deleted records leave the digest


SCHEMA_ITEMS = (
    ("公民身份号码", "string", 18),
    ("姓名", "string", 4),
    ("年龄", "integer", None),
    ("收入", "decimal", None),
    ("出生日期", "date", None),
    ("登记时间", "datetime", None),
    ("在册", "boolean", None),
)


def schema(cycle: str | None = "WEEKLY"):
    from services.exchange.domain.resources import ItemSpec, ResourceSchema

    return ResourceSchema("101001/000001", "p", "户籍人口", tuple(ItemSpec(*i) for i in SCHEMA_ITEMS), cycle)


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"公民身份号码": PERSON, "住址": "x"}, "field.unknown"),
        ({"公民身份号码": PERSON, "姓名": "欧阳娜娜娜"}, "field.type"),  # longer than 4
        ({"公民身份号码": PERSON, "年龄": "41"}, "field.type"),
        ({"公民身份号码": PERSON, "年龄": True}, "field.type"),
        ({"公民身份号码": PERSON, "收入": "many"}, "field.type"),
        ({"公民身份号码": PERSON, "出生日期": "1990-02-30"}, "field.type"),
        ({"公民身份号码": PERSON, "登记时间": "yesterday"}, "field.type"),
        ({"公民身份号码": PERSON, "在册": "是"}, "field.type"),
        ({"姓名": "张三"}, "key.missing"),
        ({"公民身份号码": "360802199001010029"}, "key.mismatch"),
    ],
)
def test_a_record_that_does_not_fit_the_catalog_entry_is_refused_naming_the_rule(fields: dict, rule: str) -> None:
    assert [p.rule for p in schema().problems(PERSON, fields)] == [rule]


def test_a_record_that_fits_passes() -> None:
    fields = {"公民身份号码": PERSON.lower(), "姓名": "张三", "年龄": 41, "收入": 3, "出生日期": "1990-01-01"}
    assert schema().problems(PERSON, fields | {"登记时间": "2026-01-01T08:00:00", "在册": True, "年龄": None}) == []


def test_a_resource_is_stale_once_its_update_cycle_passed_without_a_change() -> None:
    from datetime import timedelta

    published = datetime(2026, 11, 1, tzinfo=UTC)
    assert not schema().stale(None, published, published + timedelta(days=7))
    assert schema().stale(None, published, published + timedelta(days=8))
    assert not schema().stale(published + timedelta(days=5), published, published + timedelta(days=8))
    assert not schema(None).stale(None, published, published + timedelta(days=800))


def test_digests_find_exactly_the_differing_key_ranges() -> None:
    from datashare_adapter.digest import ResourceDigest, bucket_of, differing_buckets, differing_tops

    mine, theirs = ResourceDigest(), ResourceDigest()
    keys = [f"91360800MA{n:08d}" for n in range(2000)]
    for key in keys:
        mine.add(key, {"名称": key})
        theirs.add(key, {"名称": key} if key not in keys[5:8] else {"名称": "改"})
    theirs.add("91360800MAEXTRA001", {"名称": "多"})
    tops = differing_tops(mine.tops(), theirs.tops())
    found = [b for t in tops for b in differing_buckets(t, mine.leaves_under(t), theirs.leaves_under(t))]
    assert sorted(found) == sorted({bucket_of(k) for k in [*keys[5:8], "91360800MAEXTRA001"]})
    assert mine.records == 2000 and theirs.records == 2001


def test_the_adapter_snapshot_sends_only_what_changed(tmp_path) -> None:
    from datashare_adapter.snapshot import Snapshot

    snapshot = Snapshot(tmp_path / "state.sqlite")
    first = snapshot.plan("r", {"a": 1, "b": 2})
    version = snapshot.begin_run("r")
    assert snapshot.begin_run("r") == version  # an unfinished run keeps its version: resends are the same changes
    snapshot.complete_run("r", {"a": 1, "b": 2}, first)
    assert snapshot.begin_run("r") > version
    second = snapshot.plan("r", {"a": 1, "b": 3, "c": 4})
    assert (sorted(second.upserts), second.deletions, second.unchanged) == (["b", "c"], [], 1)
    assert snapshot.plan("r", {"a": 1}).deletions == ["b"]
    assert snapshot.digest("r").records == 2


def test_cells_become_the_types_the_data_items_declare() -> None:
    from datashare_adapter.sources import SourceError, typed_record

    types = {"年龄": "integer", "收入": "decimal", "在册": "boolean", "出生日期": "date"}
    row = {"年龄": "41", "收入": "3.5", "在册": "是", "出生日期": "1990-01-01 00:00:00", "备注": "x"}
    assert typed_record(row, types) == {"年龄": 41, "收入": 3.5, "在册": True, "出生日期": "1990-01-01", "备注": "x"}
    with pytest.raises(SourceError, match="年龄"):
        typed_record({"年龄": "四十"}, types)


def test_a_withdrawal_seen_first_keeps_its_version_and_older_ones_unpublished() -> None:
    assert publication_stands(1, None)
    assert not publication_stands(1, 1)  # the withdrawal of version 1 overtook its publication
    assert not publication_stands(1, 2)
    assert publication_stands(3, 2)  # published again after the withdrawal


def test_the_adapter_kit_checks_keys_as_the_resource_declares() -> None:
    from datashare_adapter.sync import prepare

    resource = {
        "resource_code": "101001/000002",
        "key_item": "统一社会信用代码",
        "items": [{"name": "统一社会信用代码", "type": "string"}, {"name": "名称", "type": "string"}],
    }
    table = prepare([{"统一社会信用代码": ALL_DIGIT_CREDIT_CODE, "名称": "甲"}, {"统一社会信用代码": PERSON}], resource)
    assert list(table.records) == [ALL_DIGIT_CREDIT_CODE] and "row 3: invalid credit_code" in table.problems[0]
    persons = resource | {"key_item": "公民身份号码", "items": [{"name": "公民身份号码", "type": "string"}]}
    table = prepare([{"公民身份号码": ALL_DIGIT_CREDIT_CODE}, {"公民身份号码": PERSON}], persons)
    assert list(table.records) == [PERSON] and "row 2: invalid citizen_id: birth_date" in table.problems[0]


async def test_a_subject_looked_up_by_key_alone_may_be_either_identifier() -> None:
    from common.errors import Invalid
    from common.policy import Principal, Role
    from services.exchange.domain.records import SubjectRecord
    from services.exchange.handlers import subject_records

    class Records:
        async def subject_records(self, subject_key: str) -> list[SubjectRecord]:
            return [SubjectRecord("101001/000002", "p", subject_key, "credit_code")]

    reader = Principal("a", "p", frozenset({Role.DATA_ADMINISTRATOR}))
    found = await subject_records(ALL_DIGIT_CREDIT_CODE, reader, Records())  # type: ignore[arg-type]
    assert [r.subject_key for r in found] == [ALL_DIGIT_CREDIT_CODE]
    assert [r.subject_key for r in await subject_records(PERSON.lower(), reader, Records())] == [PERSON]  # type: ignore[arg-type]
    with pytest.raises(Invalid):
        await subject_records("123", reader, Records())  # type: ignore[arg-type]


def enterprise(n: int) -> str:
    from common.identifiers import credit_code_check_character

    body = f"91360800MA{n:07d}"
    return body + credit_code_check_character(body)


class OneResource:
    """The exchange's store, as far as an upload reads it: one published resource keyed by credit codes."""

    def __init__(self) -> None:
        from services.exchange.domain.resources import ItemSpec, ResourceSchema
        from services.exchange.ports import ResourceState

        items = (ItemSpec("统一社会信用代码", "string", 18), ItemSpec("企业名称", "string", 20))
        schema = ResourceSchema("101001/000002", "p", "企业", items, None)
        self.state = ResourceState(schema, datetime(2026, 1, 1, tzinfo=UTC), None, 0, 0)

    async def resource(self, resource_code: str):
        return self.state


class Uploads:
    """The upload port as far as the handler reaches it: what it was asked to send."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def send(self, schema, table, deletions, version, uploaded_by) -> int:
        self.calls.append((schema.resource_code, table, deletions, version, uploaded_by))
        return 3


async def test_an_upload_is_sent_for_the_resource_in_the_uploaders_name_and_only_by_its_administrator() -> None:
    from common.policy import AccessDenied, Principal, Role
    from services.exchange.handlers import upload_rows

    uploads, table = Uploads(), object()
    uploader = Principal("u", "p", frozenset({Role.DATA_ADMINISTRATOR}))
    assert await upload_rows("101001/000002", table, [enterprise(9)], uploader, OneResource(), uploads) == 3
    [(code, sent, deletions, version, uploaded_by)] = uploads.calls
    assert (code, sent, deletions, uploaded_by) == ("101001/000002", table, [enterprise(9)], "u")
    assert abs(version - datetime.now(UTC).timestamp() * 1000) < 60_000  # one version for all its rows
    compiler = Principal("c", "p", frozenset({Role.CATALOG_COMPILER}))
    with pytest.raises(AccessDenied):
        await upload_rows("101001/000002", table, [], compiler, OneResource(), uploads)
    assert len(uploads.calls) == 1


def test_an_upload_becomes_batches_of_events_as_its_rows_are_read() -> None:
    from services.exchange.handlers import UPLOAD_BATCH, upload_batches

    rows = 3 * UPLOAD_BATCH + 7
    read: list[int] = [0]  # rows read so far

    def table():
        for n in range(1, rows + 1):
            read[0] = n
            yield {"统一社会信用代码": enterprise(n), "企业名称": f"{n}号公司", "备注": ""}

    schema = OneResource().state.schema
    batches, read_when_made = [], []
    for batch in upload_batches(schema, table(), [ALL_DIGIT_CREDIT_CODE], 7, "u"):
        batches.append(batch)
        read_when_made.append(read[0])
    assert [len(b) for b in batches] == [UPLOAD_BATCH] * 3 + [8]
    # made as read: one batch is all the upload holds at a time
    assert read_when_made[:2] == [UPLOAD_BATCH, 2 * UPLOAD_BATCH]
    events = [e for b in batches for e in b]
    assert [e.payload["subject_key"] for e in events[:2]] == [enterprise(1), enterprise(2)]
    assert events[-1].payload["operation"] == "DELETE" and events[-1].payload["subject_key"] == ALL_DIGIT_CREDIT_CODE
    assert {e.payload["source_version"] for e in events} == {7}
    assert {e.producer for e in events} == {"exchange-upload:u"}  # who uploaded, covered by the exchange's signature


def test_a_broken_upload_names_its_rows() -> None:
    from services.exchange.handlers import problems_refused, upload_problems

    def table():
        yield {"统一社会信用代码": enterprise(1), "企业名称": "甲"}
        yield {"统一社会信用代码": PERSON, "企业名称": "乙"}  # a citizen ID is no key of this resource
        for n in range(60):
            yield {
                "统一社会信用代码": enterprise(n + 2),
                "企业名称": "名字长于二十个字符的某某某某某某某某某某某公司",
            }

    refused = str(problems_refused(*upload_problems(OneResource().state.schema, table(), [])))
    assert "row 3: invalid credit_code" in refused and "row 4: field.type" in refused
    assert "… 11 more" in refused


def test_a_table_is_read_from_its_stream_one_row_at_a_time() -> None:
    import io

    from datashare_adapter.sources import SourceError, iter_table

    stream = io.BytesIO("\ufeff统一社会信用代码,企业名称\nA,甲\n\nB,乙\n".encode())
    rows = iter_table(stream, "r.CSV")
    assert next(rows) == {"统一社会信用代码": "A", "企业名称": "甲"}
    assert list(rows) == [{"统一社会信用代码": "B", "企业名称": "乙"}]
    assert not stream.closed  # the caller may read it again
    with pytest.raises(SourceError, match="UTF-8"):
        list(iter_table(io.BytesIO(b"a,b\n" + b"\xff\xfe,x\n"), "r.csv"))
    with pytest.raises(SourceError, match="empty"):
        list(iter_table(io.BytesIO(b""), "r.csv"))
    with pytest.raises(SourceError, match=r"\.csv or \.xlsx"):
        iter_table(stream, "r.txt")


def test_a_workbook_is_read_from_its_stream_too() -> None:
    import io

    from datashare_adapter.sources import iter_table
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (["统一社会信用代码", "注册资本"], ["A", 10], [None, None], ["B", 20.5]):
        sheet.append(row)
    stream = io.BytesIO()
    workbook.save(stream)
    assert list(iter_table(stream, "r.xlsx")) == [
        {"统一社会信用代码": "A", "注册资本": 10},
        {"统一社会信用代码": "B", "注册资本": 20.5},
    ]
    assert not stream.closed


def test_an_upload_naming_a_subject_twice_is_refused_whole() -> None:
    from services.exchange.handlers import upload_problems

    def table():
        yield {"统一社会信用代码": enterprise(1), "企业名称": "甲"}
        yield {"统一社会信用代码": enterprise(2), "企业名称": "乙"}
        yield {"统一社会信用代码": enterprise(1).lower(), "企业名称": "丙"}  # the same subject, as typed

    shown, problems = upload_problems(OneResource().state.schema, table(), [enterprise(2)])
    assert shown == [
        f"row 4: {enterprise(1)} is named more than once; one row per subject",
        f"delete {enterprise(2)}: {enterprise(2)} is named more than once; one row per subject",
    ]
    assert problems == 2
