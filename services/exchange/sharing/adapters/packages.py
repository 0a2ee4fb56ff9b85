"""The offline channel's outbound adapters: departments' age keys and the hand-ins taken in the exchange's
database, the directory's adapter keys as the revocation follower keeps them, and the center's own keys from
configuration."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from datashare_adapter import packages as fmt
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.adapter_keys import AdapterKeys
from common.auth import load_signing_key
from services.exchange.sharing.packages import INGESTED, INGESTING, CenterKeys, HandInClaim

RECIPIENTS = "exchange_package_recipients"
HAND_INS = "exchange_package_hand_ins"


DIGEST_INDEX = "manifest_sha256_1"  # unique once; it added nothing to the _id (see ensure_indexes)


async def ensure_indexes(db: AsyncDatabase) -> None:
    """A package is taken once by its id, the _id. A unique index on the manifest's digest added nothing: the
    signed manifest names the package's id, so a copy under another id has another digest. It is dropped
    where an earlier version made it; the digest is kept on each document, for the record."""
    if DIGEST_INDEX in await db[HAND_INS].index_information():
        await db[HAND_INS].drop_index(DIGEST_INDEX)


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


class MongoHandIns:
    """One document per hand-in package taken, its _id the package's: the unique _id decides which of two
    hand-ins of it at once is the one ingested; the other finds the first's document and leaves it as it is —
    unless it is still INGESTING from before the bound, an ingest that died: that one is taken over, in one
    atomic update (of two at once, one takes it)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[HAND_INS]

    async def claim(self, claim: HandInClaim, stale_before: datetime) -> HandInClaim | None:
        fields = {
            "manifest_sha256": claim.manifest_sha256,
            "resource_code": claim.resource_code,
            "sender": claim.sender,
            "handed_in_by": claim.handed_in_by,
            "handed_in_at": claim.handed_in_at,
            "status": INGESTING,
            "token": claim.token,
        }
        try:
            await self.collection.insert_one({"_id": claim.package_id} | fields)
            return None
        except DuplicateKeyError:
            pass
        dead = {"_id": claim.package_id, "status": INGESTING, "handed_in_at": {"$lt": stale_before}}
        if await self.collection.find_one_and_update(dead, {"$set": fields}) is not None:
            return None
        first = await self.collection.find_one({"_id": claim.package_id})
        if first is None:  # released meanwhile: its ingest failed, and this one may go
            return await self.claim(claim, stale_before)
        return HandInClaim(
            first["_id"], first["manifest_sha256"], first["resource_code"], first["sender"],
            first["handed_in_by"], first["handed_in_at"].replace(tzinfo=UTC), first["status"], first.get("token", ""),
        )  # fmt: skip

    async def ingested(self, claim: HandInClaim, sent: int) -> None:
        await self.collection.update_one(
            {"_id": claim.package_id, "token": claim.token}, {"$set": {"status": INGESTED, "sent": sent}}
        )

    async def release(self, claim: HandInClaim) -> None:
        await self.collection.delete_one({"_id": claim.package_id, "status": INGESTING, "token": claim.token})
