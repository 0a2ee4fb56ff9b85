"""Adapters' signing keys as the directory announces them on its (signed) topic, and the check of a signed
data change against them: a registered key, its owner, and not revoked when the broker appended the message.

Key state is known up to a moment (`known_until`): the follower of the directory's topic has read every
event the broker had appended before then. A change is checked only once that moment has passed the change's
own append time, so that a key revoked just before a change arrived refuses it even when the revocation is
read a little later than the change.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from datashare_adapter.signing import InvalidKey, load_public_key, parse_header, signing_input

from common.events import Event
from common.policy import Unauthenticated

KEY_EVENTS = frozenset({"AdapterKeyRegistered", "AdapterKeyRevoked", "MachineIdentityRevoked"})


@dataclass
class AdapterKey:
    key_id: str
    client_id: str
    department_code: str
    public: Ed25519PublicKey
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class KeyOwner:
    """Whose key signed a change."""

    client_id: str
    department_code: str
    key_id: str


def change_signing_input(event: Event, value_digest: bytes, sent_at: str) -> bytes:
    """What the signature of `event` (a DataChanged) covers, from its payload and producer."""
    p = event.payload
    return signing_input(
        event.event_id,
        p["resource_code"],
        p["subject_key"],
        str(p["operation"]),
        p["source_version"],
        value_digest,
        sent_at,
        event.producer,
    )


def verify_change(public: Ed25519PublicKey, event: Event) -> str:
    """Raise Unauthenticated unless `event` (a DataChanged) carries a valid signature by `public`; returns the
    key id the signature names."""
    if event.signature is None:
        raise Unauthenticated("unsigned change: adapters sign each change with their registered key")
    kid, signed = _parse(event.signature.header)
    try:
        public.verify(signed, change_signing_input(event, event.signature.value_digest, event.signature.sent_at))
    except (InvalidSignature, KeyError):
        raise Unauthenticated("change signature does not verify") from None
    return kid


def signing_key_id(event: Event) -> str:
    if event.signature is None:
        raise Unauthenticated("unsigned change: adapters sign each change with their registered key")
    return _parse(event.signature.header)[0]


def _parse(header: str) -> tuple[str, bytes]:
    try:
        return parse_header(header)
    except ValueError:
        raise Unauthenticated("malformed signature header") from None


class AdapterKeys:
    def __init__(self) -> None:
        self.keys: dict[str, AdapterKey] = {}
        self.machines_revoked: dict[str, datetime] = {}
        self.known_until = 0.0  # epoch seconds: key state is known for messages appended before
        self.wanted = asyncio.Event()  # someone waits for `known_until` to move: the follower polls at once

    def apply(self, event_type: str, payload: dict[str, Any], occurred_at: datetime) -> None:
        """One of the directory's key events (already checked to be the directory's)."""
        if event_type == "AdapterKeyRegistered":
            try:
                public = load_public_key(payload["public_key"])
            except InvalidKey:
                return
            known = self.keys.get(payload["key_id"])
            self.keys[payload["key_id"]] = AdapterKey(
                payload["key_id"],
                payload["client_id"],
                payload["department_code"],
                public,
                known.revoked_at if known else None,  # replayed registration never un-revokes
            )
        elif event_type == "AdapterKeyRevoked":
            key = self.keys.get(payload["key_id"])
            if key is not None:
                revoked_at = payload["revoked_at"]
                key.revoked_at = min(key.revoked_at, revoked_at) if key.revoked_at else revoked_at
        elif event_type == "MachineIdentityRevoked":
            client = payload["client_id"]
            self.machines_revoked[client] = min(self.machines_revoked.get(client, occurred_at), occurred_at)

    def advanced(self, until: float) -> None:
        if until > self.known_until:
            self.known_until = until

    async def known_at(self, moment: datetime, timeout: float = 10.0) -> None:
        """Return once key state is known for messages appended at `moment`; TimeoutError when the directory's
        topic cannot be read that far (the consumer retries: it says nothing about the message)."""
        deadline = time.monotonic() + timeout
        while self.known_until < moment.timestamp():
            if time.monotonic() > deadline:
                raise TimeoutError("adapter key state not known yet: the directory's events are being read")
            self.wanted.set()
            await asyncio.sleep(0.02)

    def owner(self, event: Event, appended_at: datetime) -> KeyOwner:
        """The key owner of a signed change, if the signature verifies and the key was valid when the broker
        appended the change; Unauthenticated otherwise."""
        kid = signing_key_id(event)
        key = self.keys.get(kid)
        if key is None:
            raise Unauthenticated("change signed by a key the directory never registered")
        verify_change(key.public, event)
        revoked = [t for t in (key.revoked_at, self.machines_revoked.get(key.client_id)) if t is not None]
        if revoked and appended_at >= min(revoked):
            raise Unauthenticated("change signed with a key revoked before the change reached the broker")
        return KeyOwner(key.client_id, key.department_code, kid)
