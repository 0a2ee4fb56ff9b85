"""Ed25519 signatures of the trail's checkpoints: the auditor signs with its private key; anyone holding
the public key checks them (services.auditor.verify does so without the database)."""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.auth import key_id, load_signing_key
from services.auditor.domain.trail import Checkpoint


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PublicKeyCheck:
    """Checks checkpoints against one public key (the auditor's, as published at /.well-known/trail-checkpoint-key)."""

    def __init__(self, public: Ed25519PublicKey) -> None:
        self.public = public
        self.key_id = key_id(public)

    @classmethod
    def from_pem(cls, pem: str | bytes) -> PublicKeyCheck:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the checkpoint key must be an Ed25519 public key (PEM)")
        return cls(key)

    def pem(self) -> str:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def valid(self, checkpoint: Checkpoint) -> bool:
        if checkpoint.key_id != self.key_id:
            return False
        try:
            self.public.verify(_unb64(checkpoint.signature), checkpoint.message())
        except (InvalidSignature, ValueError):
            return False
        return True


class CheckpointSigner(PublicKeyCheck):
    def __init__(self, private: Ed25519PrivateKey) -> None:
        super().__init__(private.public_key())
        self.private = private

    @classmethod
    def from_private_pem(cls, pem: str) -> CheckpointSigner:
        return cls(load_signing_key(pem))

    def sign(self, message: bytes) -> str:
        return _b64(self.private.sign(message))
