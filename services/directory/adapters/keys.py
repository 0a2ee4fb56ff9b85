"""The directory's retired signing keys: public halves of keys it signed with before a rotation. It publishes
them in its JWKS beside the current key (which alone signs), so the events it signed before the rotation still
verify when the services read `directory.events` again from the beginning."""

from __future__ import annotations

import json
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from common.auth import public_keys

PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.DOTALL)
MAX_RETIRED = 20


def retired_keys(text: str) -> list[Ed25519PublicKey]:
    """PEM public keys one after another, or a JWKS document (as /.well-known/jwks.json served it before the
    rotation); ValueError saying what is wrong otherwise. A private key is refused: only public halves."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("{"):
        keys = _from_jwks(text)
    else:
        blocks = list(PEM_BLOCK.finditer(text))
        if not blocks:
            raise ValueError("neither PEM public keys nor a JWKS document")
        keys = [_from_pem(block.group(1), block.group(0)) for block in blocks]
    if len(keys) > MAX_RETIRED:
        raise ValueError(f"{len(keys)} keys; keep at most {MAX_RETIRED} retired keys")
    return keys


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


def _from_jwks(text: str) -> list[Ed25519PublicKey]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError('a JWKS document needs a non-empty "keys" list')
    if any(isinstance(jwk, dict) and "d" in jwk for jwk in entries):
        raise ValueError("a private key: give only public keys")
    keys = public_keys(document)
    if len(keys) != len(entries):
        raise ValueError("every key must be an Ed25519 public key (kty OKP, crv Ed25519) with its kid")
    return list(keys.values())
