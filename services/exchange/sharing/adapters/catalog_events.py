"""The catalog's announcements as the sharing lifecycle reads them: Avro payloads translated into typed
events here, at the edge, and handed to their handlers."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Any

from common.events import Event
from common.kafka import Handler
from services.exchange.domain.resources import ItemSpec, ResourceSchema
from services.exchange.sharing import handlers
from services.exchange.sharing.commands import EntryPublished, EntryWithdrawn
from services.exchange.sharing.handlers import Sharing


def entry_published(payload: dict[str, Any]) -> EntryPublished:
    reviewed: date | None = payload.get("confidentiality_reviewed_on")
    return EntryPublished(
        ResourceSchema(
            resource_code=payload["resource_code"],
            provider_code=payload["provider_code"],
            name=payload["name"],
            items=tuple(
                ItemSpec(i["name"], i["type"], i.get("length"), i.get("share_type"), i.get("sensitive", False))
                for i in payload["data_items"]
            ),
            update_cycle=payload.get("update_cycle"),
            published=True,
            version=payload["version"],
            share_type=payload.get("share_type") or "CONDITIONAL",
            not_shared_basis=payload.get("not_shared_basis"),
            share_methods=tuple(payload.get("share_methods") or ()),  # none named: no channel
            confidentiality_reviewed_on=reviewed,
        )
    )


def entry_withdrawn(payload: dict[str, Any]) -> EntryWithdrawn:
    return EntryWithdrawn(payload["resource_code"], payload["version"])


async def _on_published(event: Event, sharing: Sharing) -> None:
    await handlers.entry_published(entry_published(event.payload), sharing)


async def _on_withdrawn(event: Event, sharing: Sharing) -> None:
    await handlers.entry_withdrawn(entry_withdrawn(event.payload), sharing)


def catalog_handlers(sharing: Sharing) -> dict[str, Handler]:
    """The consumer's handlers by event type."""
    return {
        "CatalogEntryPublished": partial(_on_published, sharing=sharing),
        "CatalogEntryWithdrawn": partial(_on_withdrawn, sharing=sharing),
    }
