"""Webhook signing secrets at rest: sealed with AES-256-GCM under a key from the configuration
(NOTIFIER_WEBHOOK_SECRET_KEYS), so that a copy of the database does not hand out the secrets that let anyone
sign as the notifier. Keys carry an id; the first key seals, every listed key opens, so a new key is put
first and the old one kept until the start-up pass has sealed every secret again under the new one."""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32


class SealingKeyError(ValueError):
    """A key list that cannot be used; the message says what to fix."""


class SecretSealer:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise SealingKeyError("at least one key is needed")
        self.current_id = keys[0][0]
        self.keys = {key_id: AESGCM(key) for key_id, key in keys}

    @classmethod
    def parse(cls, text: str) -> SecretSealer:
        """`id:base64-of-32-bytes`, comma-separated, the sealing key first."""
        keys = []
        for entry in (e.strip() for e in text.split(",") if e.strip()):
            key_id, _, encoded = entry.partition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise SealingKeyError(f"key {key_id!r} is not base64") from None
            if not key_id.isalnum() or len(key) != KEY_BYTES:
                raise SealingKeyError(f"key {key_id!r}: an alphanumeric id, a colon and {KEY_BYTES} bytes in base64")
            keys.append((key_id, key))
        return cls(keys)

    def seal(self, secret: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.keys[self.current_id].encrypt(nonce, secret.encode(), self.current_id.encode())
        return f"{self.current_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str) -> str:
        key_id, _, encoded = sealed.partition(":")
        if key_id not in self.keys:
            raise SealingKeyError(f"a webhook secret is sealed under key {key_id!r}, which is not configured")
        raw = base64.b64decode(encoded)
        try:
            return self.keys[key_id].decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], key_id.encode()).decode()
        except InvalidTag:
            raise SealingKeyError(f"a webhook secret does not open with key {key_id!r}") from None

    def is_current(self, sealed: str) -> bool:
        return sealed.partition(":")[0] == self.current_id
