"""How a grant is kept in MongoDB (`exchange_grants`): the one layout the sharing lifecycle writes and the
channels read."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from services.exchange.sharing.grants import Channel, Grant, GrantStatus, RowScope

GRANTS = "exchange_grants"


def _day(value: date) -> datetime:
    return datetime.combine(value, datetime.min.time())


def grant_doc(g: Grant) -> dict[str, Any]:
    return {
        "_id": g.grant_id,
        "request_id": g.request_id,
        "resource_code": g.resource_code,
        "provider_code": g.provider_code,
        "consumer_code": g.consumer_code,
        "consumer_system": g.consumer_system,
        "items": list(g.items),
        "scope": {"regions": list(g.scope.regions), "subjects": sorted(g.scope.subjects)},
        "purpose": g.purpose,
        "channels": sorted(c.value for c in g.channels),
        "valid_from": _day(g.valid_from),
        "valid_to": _day(g.valid_to),
        "entry_version": g.entry_version,
        "unmasked": sorted(g.unmasked),
        "status": g.status.value,
        "ended_reason": g.ended_reason,
        **g.extra,
    }


KNOWN = {
    "_id", "request_id", "resource_code", "provider_code", "consumer_code", "consumer_system", "items", "scope",
    "purpose", "channels", "valid_from", "valid_to", "entry_version", "unmasked", "status", "ended_reason",
}  # fmt: skip


def grant_of(doc: dict[str, Any]) -> Grant:
    return Grant(
        grant_id=doc["_id"],
        request_id=doc.get("request_id"),
        resource_code=doc["resource_code"],
        provider_code=doc["provider_code"],
        consumer_code=doc["consumer_code"],
        consumer_system=doc.get("consumer_system"),
        items=tuple(doc["items"]),
        scope=RowScope(tuple(doc["scope"]["regions"]), frozenset(doc["scope"]["subjects"])),
        purpose=doc["purpose"],
        channels=frozenset(Channel(c) for c in doc["channels"]),
        valid_from=doc["valid_from"].date(),
        valid_to=doc["valid_to"].date(),
        entry_version=doc["entry_version"],
        unmasked=frozenset(doc.get("unmasked", ())),
        status=GrantStatus(doc["status"]),
        ended_reason=doc.get("ended_reason"),
        extra={k: v for k, v in doc.items() if k not in KNOWN},
    )
