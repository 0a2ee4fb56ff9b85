"""Signed data changes: an adapter signs each change with an Ed25519 key whose public half its department's
data administrator registered with the directory. The signature travels in the `signature` header as
`<key id>:<base64url signature>`; it covers the event id, resource, subject, operation, source version, the
digest of the encoded value and the time the change was sent. A message read off the topic proves who sent it
and opens nothing: no bearer token ever goes onto the bus.

Standard library and `cryptography` only: the center verifies with the same functions.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_HEADER = "signature"
DOMAIN = b"datashare-change-v1"


class InvalidKey(ValueError):
    """A key file or public key that is not an Ed25519 key in PEM."""


def key_id(public: Ed25519PublicKey) -> str:
    """The key's id: derived from its public bytes, so the directory and the adapter agree without asking."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return uuid.uuid5(uuid.NAMESPACE_OID, raw.hex()).hex[:16]


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_private_key(pem: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidKey(f"not a PEM private key without passphrase: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidKey("the signing key must be an Ed25519 private key (PKCS#8 PEM)")
    return key


def load_private_key_file(path: Path) -> Ed25519PrivateKey:
    try:
        return load_private_key(path.read_text())
    except OSError as exc:
        raise InvalidKey(f"cannot read the signing key {path}: {exc}") from None


def load_public_key(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise InvalidKey(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidKey("adapter keys are Ed25519 public keys (PEM, as `openssl pkey -pubout` prints them)")
    return key


def value_digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def signing_input(
    event_id: str,
    resource_code: str,
    subject_key: str,
    operation: str,
    source_version: int,
    value_digest: bytes,
    sent_at: str,
    producer: str,
) -> bytes:
    """What a change's signature covers (`value_digest`: of the encoded Avro value); length-prefixed, so that
    no two different changes read alike."""
    parts = [
        DOMAIN,
        event_id.encode(),
        resource_code.encode(),
        subject_key.encode(),
        operation.encode(),
        str(source_version).encode(),
        value_digest,
        sent_at.encode(),
        producer.encode(),
    ]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


@dataclass(frozen=True)
class ChangeSigner:
    key: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id(self.key.public_key())

    def header(self, signed: bytes) -> bytes:
        """The `signature` header's value for a change whose `signing_input` is `signed`."""
        signature = base64.urlsafe_b64encode(self.key.sign(signed)).decode()
        return f"{self.key_id}:{signature}".encode()


def parse_header(raw: str) -> tuple[str, bytes]:
    """(key id, signature) of a `signature` header; ValueError when it is not one."""
    kid, sep, encoded = raw.partition(":")
    if not sep or not kid:
        raise ValueError("not <key id>:<signature>")
    return kid, base64.urlsafe_b64decode(encoded)
