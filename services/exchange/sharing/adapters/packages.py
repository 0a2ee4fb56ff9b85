"""The offline channel's outbound adapters: departments' age keys in the exchange's database, the directory's
adapter keys as the revocation follower keeps them, and the center's own keys from configuration."""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from datashare_adapter import packages as fmt
from pymongo.asynchronous.database import AsyncDatabase

from common.adapter_keys import AdapterKeys
from common.auth import load_signing_key
from services.exchange.sharing.packages import CenterKeys

RECIPIENTS = "exchange_package_recipients"


class MongoRecipients:
    """One document per department: the age public key its packages are encrypted to, who set it and when."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[RECIPIENTS]

    async def recipient(self, department_code: str) -> str | None:
        doc = await self.collection.find_one({"_id": department_code})
        return str(doc["recipient"]) if doc is not None else None

    async def register(self, department_code: str, recipient: str, registered_by: str, at: datetime) -> None:
        doc = {"_id": department_code, "recipient": recipient, "registered_by": registered_by, "registered_at": at}
        await self.collection.replace_one({"_id": department_code}, doc, upsert=True)


class RegisteredKeys:
    """Adapters' Ed25519 keys as the directory announced them (common.adapter_keys): a hand-in is the
    department's when one of its keys signed it and neither the key nor its machine identity is revoked."""

    def __init__(self, keys: AdapterKeys) -> None:
        self.keys = keys

    def key(self, key_id: str) -> tuple[str, Ed25519PublicKey] | None:
        key = self.keys.keys.get(key_id)
        if key is None or key.revoked_at is not None or key.client_id in self.keys.machines_revoked:
            return None
        return key.department_code, key.public


def center_keys(signing_pem: str, age_identity: str) -> CenterKeys:
    return CenterKeys(load_signing_key(signing_pem), fmt.identity_of(age_identity))
