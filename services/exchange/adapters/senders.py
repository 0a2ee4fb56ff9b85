"""Who sent a data change, known by its signature: an adapter's key as the directory announced it, or the
exchange's own key for the files it took over HTTP (uploads)."""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from datashare_adapter.signing import ChangeSigner

from common.adapter_keys import AdapterKeys, signing_key_id, verify_change
from common.events import Event
from services.exchange.ports import UPLOADED_BY, Sender


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
