"""Event contracts: every schema parses, round-trips in single-object encoding, and stays backward
compatible with each of its committed versions."""

import copy
import itertools
import json
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

from common.codec import MARKER, SCHEMA_DIR, DecodeError, EventCodec, load_schema, schema_fingerprint
from common.compat import backward_problems
from common.topics import load_topics

CODEC = EventCodec.from_folder()
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.avsc"))
ROOT = SCHEMA_DIR.parent.parent


def sample(schema: Any, named: dict[str, Any]) -> Any:
    """A value for every field, exercising each type (the non-null branch of unions)."""
    if isinstance(schema, list):
        return sample(next(s for s in schema if s != "null"), named)
    if isinstance(schema, str):
        short = schema.rpartition(".")[2]
        if short in named:
            return sample(named[short], named)
        return {
            "string": "吉安 sample",
            "int": 7,
            "long": 7_000_000_000,
            "boolean": True,
            "double": 1.5,
            "float": 0.5,
            "bytes": b"\x00\x01",
            "null": None,
        }[schema]
    logical = schema.get("logicalType")
    if logical == "date":
        return date(2026, 2, 14)
    if logical == "timestamp-millis":
        return datetime(2026, 10, 10, 9, 30, tzinfo=UTC)
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        if "namespace" in schema:
            named[f"{schema['namespace']}.{schema['name']}"] = schema
        return {f["name"]: sample(f["type"], named) for f in schema["fields"]}
    if kind == "enum":
        named[schema["name"]] = schema
        if "namespace" in schema:
            named[f"{schema['namespace']}.{schema['name']}"] = schema
        return schema["symbols"][-1]
    if kind == "array":
        return [sample(schema["items"], named), sample(schema["items"], named)]
    if kind == "map":
        return {"k1": sample(schema["values"], named)}
    return sample(kind, named)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.stem)
def test_schema_parses_and_round_trips(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["name"] == path.stem, "file name must be the event type"
    assert raw.get("doc"), "every event says what it means"
    payload = sample(copy.deepcopy(raw), {})
    encoded = CODEC.encode(raw["name"], payload)
    assert encoded[:2] == MARKER
    assert encoded[2:10] == schema_fingerprint(raw)  # the fingerprint any Avro library computes
    assert CODEC.decode(encoded) == (raw["name"], payload)


def test_any_avro_library_reads_the_body_with_the_plain_schema() -> None:
    raw = json.loads((SCHEMA_DIR / "DataChanged.avsc").read_text())
    payload = sample(copy.deepcopy(raw), {})
    encoded = CODEC.encode("DataChanged", payload)
    import io

    assert fastavro.schemaless_reader(io.BytesIO(encoded[10:]), fastavro.parse_schema(raw)) == payload


def test_reader_resolves_an_older_writer_schema() -> None:
    current = json.loads((SCHEMA_DIR / "ShareDemandMatched.avsc").read_text())
    newer = copy.deepcopy(current)
    newer["fields"].append({"name": "note", "type": "string", "default": ""})
    writer = EventCodec([load_schema(current)])  # a producer still on today's schema
    reader = EventCodec([load_schema(newer)])  # a consumer already on the next version
    reader.add_writer_schema(current)
    payload = {"demand_id": "d1", "requester_code": "r", "resource_code": "c", "confirmed_by": "it"}
    payload |= {"covered_items": ["企业名称"], "reason": ""}
    assert reader.decode(writer.encode("ShareDemandMatched", payload)) == ("ShareDemandMatched", payload | {"note": ""})


def test_unknown_or_corrupt_messages_are_decode_errors() -> None:
    with pytest.raises(DecodeError, match="marker"):
        CODEC.decode(b"{json: true}")
    with pytest.raises(DecodeError, match="fingerprint"):
        CODEC.decode(MARKER + b"\x00" * 8 + b"\x02")
    good = CODEC.encode(
        "GrantRevoked", {"grant_id": "g", "resource_code": "r", "consumer_code": "c", "reason": "x", "revoked_by": "y"}
    )
    with pytest.raises(DecodeError, match="unreadable"):
        CODEC.decode(good[:12])


def test_every_declared_event_has_a_schema_and_every_schema_a_topic() -> None:
    declared = {event for spec in load_topics().values() for event in spec.events}
    assert declared == set(CODEC.event_types)


# -- compatibility with committed versions ---------------------------------------------------------


def committed_versions(path: Path) -> list[dict[str, Any]]:
    """Every committed version of the file, oldest first."""
    rel = path.relative_to(ROOT).as_posix()
    log = subprocess.run(["git", "log", "--format=%H", "--", rel], cwd=ROOT, capture_output=True, text=True, check=True)
    versions = []
    for commit in reversed(log.stdout.split()):
        shown = subprocess.run(["git", "show", f"{commit}:{rel}"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode == 0:
            versions.append(json.loads(shown.stdout))
    return versions


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.stem)
def test_schema_is_backward_compatible_with_its_committed_versions(path: Path) -> None:
    versions = [*committed_versions(path), json.loads(path.read_text(encoding="utf-8"))]
    for older, newer in itertools.pairwise(versions):
        assert backward_problems(newer, older) == [], f"{path.name} broke compatibility"


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.stem)
def test_messages_written_with_every_committed_version_are_still_read(path: Path) -> None:
    """Messages stay on the topics until retention ends: a consumer on today's schemas reads every older
    writer's (the versions are kept in schemas/avro/history/, the image has no git)."""
    for older in committed_versions(path):
        writer = EventCodec([load_schema(older)])
        payload = sample(copy.deepcopy(older), {})
        event_type, read = CODEC.decode(writer.encode(older["name"], payload))
        assert event_type == path.stem
        assert {k: read[k] for k in payload if k in read} == {k: v for k, v in payload.items() if k in read}


# -- the checker itself ----------------------------------------------------------------------------

BASE = json.loads((SCHEMA_DIR / "DataAccessed.avsc").read_text())


def changed(mutate) -> dict[str, Any]:
    schema = copy.deepcopy(BASE)
    mutate(schema)
    return schema


def field_of(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda s: s["fields"].append({"name": "region", "type": "string"}), "new field without a default"),
        (lambda s: field_of(s, "record_count").update(type="string"), "cannot be read as string"),
        (lambda s: field_of(s, "purpose").update(type="int"), "cannot be read as int"),
        (
            lambda s: (
                field_of(s, "channel")["type"].pop("default"),
                field_of(s, "channel")["type"]["symbols"].remove("OFFLINE"),
            ),
            "removed",
        ),
        (lambda s: field_of(s, "grant_id").update(type="string"), "writer's null cannot be read as string"),
        (lambda s: s.update(name="DataRead"), "renamed"),
    ],
    ids=[
        "new-field-no-default",
        "int-to-string",
        "string-to-int",
        "enum-symbol-removed",
        "optional-made-required",
        "renamed",
    ],
)
def test_checker_catches_incompatible_changes(mutate, problem: str) -> None:
    problems = backward_problems(changed(mutate), BASE)
    assert problems and problem in " ".join(problems)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s["fields"].append({"name": "region", "type": "string", "default": ""}),
        lambda s: field_of(s, "record_count").update(type="long"),
        lambda s: field_of(s, "purpose").update(type=["null", "string"]),
        lambda s: field_of(s, "channel")["type"]["symbols"].append("SATELLITE"),
        lambda s: s["fields"].remove(field_of(s, "purpose")),
    ],
    ids=["new-field-with-default", "int-to-long", "made-optional", "enum-symbol-added", "field-removed"],
)
def test_checker_accepts_compatible_changes(mutate) -> None:
    assert backward_problems(changed(mutate), BASE) == []
