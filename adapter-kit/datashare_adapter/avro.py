"""Avro single-object encoding, the platform's wire format for events: C3 01, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema's parsing canonical form, then the Avro binary body."""

from __future__ import annotations

import io
from typing import Any

from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

MARKER = b"\xc3\x01"
HEADER_LEN = 10


def schema_fingerprint(schema: dict[str, Any]) -> bytes:
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


class SingleObjectWriter:
    """Writes payloads of one schema, e.g. the `DataChanged` schema fetched from the platform."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.parsed = parse_schema(schema)
        self.header = MARKER + schema_fingerprint(schema)

    def encode(self, payload: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(self.header)
        schemaless_writer(buffer, self.parsed, payload, strict_allow_default=True)
        return buffer.getvalue()
