"""Adapters' signing keys for tests: announced on directory.events as the directory announces them (signed with
the test session's directory key, tests.tokens.KEY), and data changes signed with them as the adapter kit
signs them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from datashare_adapter.signing import ChangeSigner, generate_key, key_id, private_pem, public_pem
from datashare_adapter.signing import value_digest as digest_of

from common.adapter_keys import change_signing_input
from common.auth import EventSigner
from common.codec import EventCodec
from common.events import Event, Signature
from common.kafka import KafkaPublisher
from common.topics import load_topics
from devstack.processes import Infra
from tests.integration.conftest import settings_for
from tests.tokens import KEY

CODEC = EventCodec.from_folder()
DIRECTORY = EventSigner(KEY)


@cache
def adapter_key(client_id: str) -> Ed25519PrivateKey:
    """One key per adapter identity for the whole session."""
    return generate_key()


def key_file(client_id: str, folder: Path) -> Path:
    path = folder / f"{client_id}.pem"
    path.write_text(private_pem(adapter_key(client_id)))
    return path


def directory_event(event_type: str, key: str, payload: dict) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A directory event's value and headers, signed as the directory signs its events."""
    event = Event(event_type, key, payload, "directory")
    value = CODEC.encode(event_type, payload)
    occurred_at = event.occurred_at.isoformat()
    signature = DIRECTORY.signature(event.event_id, event_type, occurred_at, key.encode(), value)
    return value, [*event.headers(), ("signature", signature)]


async def announce(publisher: KafkaPublisher, event_type: str, key: str, payload: dict) -> None:
    value, headers = directory_event(event_type, key, payload)
    await (await publisher.send_raw("directory.events", key, value, headers))


def registered(client_id: str, department: str) -> dict:
    public = adapter_key(client_id).public_key()
    return {
        "key_id": key_id(public),
        "client_id": client_id,
        "department_code": department,
        "public_key": public_pem(public),
        "registered_by": "tester",
        "registered_at": datetime.now(UTC),
    }


def revoked(client_id: str, department: str, at: datetime | None = None) -> dict:
    return {
        "key_id": key_id(adapter_key(client_id).public_key()),
        "client_id": client_id,
        "department_code": department,
        "reason": "test",
        "revoked_by": "tester",
        "revoked_at": at or datetime.now(UTC),
    }


async def directory_says(infra: Infra, *announcements: tuple[str, str, dict]) -> None:
    """Announce (event type, key, payload) on directory.events, as the directory does."""
    publisher = KafkaPublisher(settings_for(infra), CODEC, load_topics())
    await publisher.start()
    try:
        for event_type, key, payload in announcements:
            await announce(publisher, event_type, key, payload)
    finally:
        await publisher.stop()


async def register_adapter_key(infra: Infra, client_id: str, department: str) -> None:
    """The adapter's key announced on directory.events, as the directory does when it is registered."""
    await directory_says(infra, ("AdapterKeyRegistered", client_id, registered(client_id, department)))


def signed(event: Event, client_id: str, key: Ed25519PrivateKey | None = None) -> Event:
    """`event` (a DataChanged) signed with the adapter's key, with the adapter kit's producer name."""
    producer = f"adapter-{client_id}"
    value = CODEC.encode(event.event_type, event.payload)
    sent_at, digest = event.occurred_at.isoformat(), digest_of(value)
    covered = change_signing_input(replace(event, producer=producer), digest, sent_at)
    header = ChangeSigner(key or adapter_key(client_id)).header(covered).decode()
    return replace(event, producer=producer, signature=Signature(header, sent_at, digest))
