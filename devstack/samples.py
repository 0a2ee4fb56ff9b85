"""Events as the platform's services announce them, for tests and benchmarks that stand in for a service."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from datashare_adapter.signing import key_id, load_public_key

from common.auth import EventSigner
from common.events import Event
from common.kafka import KafkaPublisher


def catalog_published(
    code: str, provider: str, items: list[dict], cycle: str = "DAILY", at: datetime | None = None, version: int = 1
) -> Event:
    """The catalog's announcement of a published entry, as the exchange learns resources from it."""
    payload = {
        "resource_code": code,
        "version": version,
        "name": "企业登记基本信息",
        "abstract": "",
        "provider_code": provider,
        "provider_name": "吉安市市场监督管理局",
        "category": "BASE",
        "share_type": "CONDITIONAL",
        "not_shared_basis": None,
        "share_methods": ["API"],
        "update_cycle": cycle,
        "data_items": [i | {"description": "", "share_type": None, "sensitive": False} for i in items],
        "published_on": datetime.now(UTC).date(),
        "reviewed_by": "reviewer",
        "format": "数据库",
        "share_conditions": "",
        "open_attribute": "NOT_OPEN",
        "related_codes": [],
        "confidentiality_reviewed_on": None,
    }
    event = Event("CatalogEntryPublished", code, payload, "catalog")
    return event if at is None else Event("CatalogEntryPublished", code, payload, "catalog", occurred_at=at)


def catalog_withdrawn(code: str, provider: str, version: int = 1) -> Event:
    """The catalog's announcement that the entry's version in force was withdrawn."""
    payload = {
        "resource_code": code,
        "version": version,
        "provider_code": provider,
        "withdrawn_by": "reviewer",
        "reason": "no longer collected",
    }
    return Event("CatalogEntryWithdrawn", code, payload, "catalog")


async def announce_adapter_key(
    publisher: KafkaPublisher, directory_key: Ed25519PrivateKey, client_id: str, department: str, adapter_key: str
) -> None:
    """An adapter's key registered, announced on directory.events and signed as the directory signs (for
    benchmarks and tests that run an exchange without a directory). `adapter_key`: the public key's PEM."""
    payload = {
        "key_id": key_id(load_public_key(adapter_key)),
        "client_id": client_id,
        "department_code": department,
        "public_key": adapter_key,
        "registered_by": "devstack",
        "registered_at": datetime.now(UTC),
    }
    event = Event("AdapterKeyRegistered", client_id, payload, "directory")
    value = publisher.encode("directory.events", event)
    signature = EventSigner(directory_key).signature(
        event.event_id, event.event_type, event.occurred_at.isoformat(), client_id.encode(), value
    )
    await (await publisher.send_raw("directory.events", client_id, value, [*event.headers(), ("signature", signature)]))
