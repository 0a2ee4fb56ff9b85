"""The directory's retired signing keys: public halves of keys it signed with before a rotation, each with the
time it was retired. It publishes them in its JWKS beside the current key (which alone signs), marked with that
time (`retired_at`), so the events it signed before the rotation still verify when the services read
`directory.events` again from the beginning — and nothing else: no token, no event appended afterwards."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from common.auth import RETIRED_AT, RetiredKey, public_keys, retirement_time

PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.DOTALL)
RETIRED_LINE = re.compile(r"^\s*retired_at\s*[:=]\s*(\S+)\s*$", re.MULTILINE)
MAX_RETIRED = 20
NEEDS_TIME = (
    "each retired key needs the time it was retired: a line `retired_at: 2026-11-27T22:00:00Z` before its PEM "
    'block, or a "retired_at" member (unix seconds) in each JWK'
)


def retired_keys(text: str) -> list[RetiredKey]:
    """PEM public keys one after another, each after a line `retired_at: <ISO 8601 time with zone>`, or a JWKS
    document whose every key carries `"retired_at": <unix seconds>` (as the directory publishes retired keys);
    ValueError saying what is wrong otherwise. A private key is refused: only public halves."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("{"):
        keys = _from_jwks(text)
    else:
        keys = _from_pems(text)
    if len(keys) > MAX_RETIRED:
        raise ValueError(f"{len(keys)} keys; keep at most {MAX_RETIRED} retired keys")
    if any(k.retired_at > datetime.now(UTC) for k in keys):
        raise ValueError("a retired_at in the future: until then the key would verify new events")
    return keys


def _from_pems(text: str) -> list[RetiredKey]:
    blocks = list(PEM_BLOCK.finditer(text))
    if not blocks:
        raise ValueError("neither PEM public keys nor a JWKS document")
    keys, start = [], 0
    for block in blocks:
        key = _from_pem(block.group(1), block.group(0))
        times = RETIRED_LINE.findall(text[start : block.start()])
        if len(times) != 1:
            raise ValueError(NEEDS_TIME)
        keys.append(RetiredKey(key, _iso_time(times[0])))
        start = block.end()
    return keys


def _iso_time(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"retired_at {value[:40]!r} is not an ISO 8601 time such as 2026-11-27T22:00:00Z") from None
    if at.tzinfo is None:
        raise ValueError(f"retired_at {value[:40]!r} needs its zone (Z or +08:00)")
    return at


def _from_pem(label: str, block: str) -> Ed25519PublicKey:
    if "PRIVATE" in label:
        raise ValueError("a private key: give its public half (`openssl pkey -in old.pem -pubout`)")
    try:
        key = serialization.load_pem_public_key(block.encode())
    except ValueError as exc:
        raise ValueError(f"an unreadable PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def _from_jwks(text: str) -> list[RetiredKey]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError('a JWKS document needs a non-empty "keys" list')
    if any(isinstance(jwk, dict) and "d" in jwk for jwk in entries):
        raise ValueError("a private key: give only public keys")
    if not all(isinstance(jwk, dict) and retirement_time(jwk.get(RETIRED_AT)) is not None for jwk in entries):
        raise ValueError(NEEDS_TIME)
    keys = public_keys(document)
    if len(keys.retired) != len(entries):
        raise ValueError("every key must be an Ed25519 public key (kty OKP, crv Ed25519) with its kid")
    return list(keys.retired.values())
