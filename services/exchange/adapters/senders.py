"""Who sent a data change, known by its signature: an adapter's key as the directory announced it, or the
exchange's own key for the files it took over HTTP (uploads)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from datashare_adapter.signing import ChangeSigner, value_digest

from common.adapter_keys import AdapterKeys, change_signing_input, signing_key_id, verify_change
from common.events import Event, Signature
from common.kafka import KafkaPublisher
from common.metrics import EVENTS_PUBLISHED
from services.exchange.ports import DATA_CHANGES, UPLOADED_BY, Sender

ACK_SECONDS = 10.0  # for each batch of an upload


class SignedSenders:
    def __init__(self, adapter_keys: AdapterKeys, own_key: Ed25519PrivateKey) -> None:
        self.adapter_keys = adapter_keys
        self.own = ChangeSigner(own_key)

    async def known_at(self, moment: datetime) -> None:
        await self.adapter_keys.known_at(moment)

    def sender(self, event: Event, appended_at: datetime) -> Sender:
        if signing_key_id(event) == self.own.key_id:
            verify_change(self.own.key.public_key(), event)
            uploader = event.producer.removeprefix(UPLOADED_BY)
            return Sender("exchange", str(event.payload.get("provider_code", "")), uploaded_by=uploader)
        owner = self.adapter_keys.owner(event, appended_at)
        return Sender(owner.client_id, owner.department_code)


class BusChangePublisher:
    """Uploaded records go onto the bus like an adapter's, signed with the exchange's key (the exchange
    authenticated and authorized the uploader over HTTP): the ingestion checks them the same way. An upload
    sends hundreds of thousands of them: they are encoded and signed in a worker thread, and `send_all` gives
    the event loop a turn between every few sends, so that probes and heartbeats are answered meanwhile."""

    def __init__(self, publisher: KafkaPublisher, own_key: Ed25519PrivateKey) -> None:
        self.publisher = publisher
        self.signer = ChangeSigner(own_key)

    def signed(self, event: Event) -> tuple[Event, bytes]:
        value = self.publisher.encode(DATA_CHANGES, event)
        sent_at, digest = event.occurred_at.isoformat(), value_digest(value)
        covered = change_signing_input(event, digest, sent_at)
        signature = Signature(self.signer.header(covered).decode(), sent_at, digest)
        return replace(event, signature=signature), value

    async def publish_changes(self, events: list[Event]) -> None:
        """The uploader waits for the answer: while the broker is away it gets a 503 within ACK_SECONDS."""
        signed = await asyncio.to_thread(lambda: [self.signed(e) for e in events])
        await self.publisher.send_all([(DATA_CHANGES, e.key, v, e.headers()) for e, v in signed], ACK_SECONDS)
        EVENTS_PUBLISHED.labels(DATA_CHANGES, "DataChanged").inc(len(events))
