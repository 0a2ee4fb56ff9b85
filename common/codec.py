"""Avro single-object encoding of the platform's events (the one place events are encoded and decoded).

A value is C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's parsing canonical
form, then the Avro binary body; any Avro library can read it (the framing is shared with the adapter kit,
`datashare_adapter.avro`). The reader resolves the writer schema (found by fingerprint) against its own
schema of the same name.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datashare_adapter.avro import HEADER_LEN, MARKER, schema_fingerprint
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from common.events import Event

__all__ = ["MARKER", "DecodeError", "Event", "EventCodec", "EventSchema", "UnknownEventType", "schema_fingerprint"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "avro"


class DecodeError(ValueError):
    """A message that cannot be read as a platform event; it belongs in the dead-letter topic."""


class UnknownEventType(KeyError):
    pass


@dataclass(frozen=True)
class EventSchema:
    event_type: str
    raw: dict[str, Any]
    parsed: Any
    fingerprint: bytes


def load_schema(raw: dict[str, Any]) -> EventSchema:
    parsed = parse_schema(raw)
    return EventSchema(raw["name"], raw, parsed, schema_fingerprint(raw))


class EventCodec:
    """Encodes and decodes events by the schemas in `schemas/avro/` (one `.avsc` per event type)."""

    def __init__(self, schemas: list[EventSchema]) -> None:
        self._by_type = {s.event_type: s for s in schemas}
        self._by_fingerprint = {s.fingerprint: s for s in schemas}

    @classmethod
    def from_folder(cls, folder: Path = SCHEMA_DIR) -> EventCodec:
        """The current schemas, and the earlier versions kept in `history/` as writer schemas only: messages
        written with them (a compacted topic keeps them) still decode, resolved against the current one."""
        codec = cls([load_schema(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(folder.glob("*.avsc"))])
        for earlier in sorted((folder / "history").glob("*.avsc")):
            codec.add_writer_schema(json.loads(earlier.read_text(encoding="utf-8")))
        return codec

    def add_writer_schema(self, raw: dict[str, Any]) -> None:
        """Accept messages written with an older version of a schema (resolved against the current one)."""
        schema = load_schema(raw)
        self._by_fingerprint.setdefault(schema.fingerprint, schema)

    @property
    def event_types(self) -> list[str]:
        return sorted(self._by_type)

    def schema(self, event_type: str) -> EventSchema:
        try:
            return self._by_type[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def encode(self, event_type: str, payload: dict[str, Any]) -> bytes:
        schema = self.schema(event_type)
        buffer = io.BytesIO()
        buffer.write(MARKER + schema.fingerprint)
        schemaless_writer(buffer, schema.parsed, payload, strict_allow_default=True)
        return buffer.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Return (event_type, payload) read with this codec's schema for that type."""
        if len(data) < HEADER_LEN or data[:2] != MARKER:
            raise DecodeError("not Avro single-object encoded (missing C3 01 marker)")
        writer = self._by_fingerprint.get(data[2:HEADER_LEN])
        if writer is None:
            raise DecodeError(f"unknown writer schema fingerprint {data[2:HEADER_LEN].hex()}")
        reader = self._by_type.get(writer.event_type, writer)
        try:
            payload = schemaless_reader(
                io.BytesIO(data[HEADER_LEN:]),
                writer.parsed,
                None if reader is writer else reader.parsed,
            )
        except Exception as exc:  # fastavro raises several types for corrupt bodies
            raise DecodeError(f"{writer.event_type}: Avro body unreadable: {exc}") from exc
        return writer.event_type, payload  # type: ignore[return-value]
