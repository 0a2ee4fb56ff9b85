"""One handler per auditor event or query."""

from __future__ import annotations

from common.events import Event
from services.auditor.domain.trail import ChainReport, next_entry, verify_chain
from services.auditor.ports import UnitOfWork


async def record_in_trail(event: Event, uow: UnitOfWork) -> None:
    async with uow() as tx:
        if await tx.recorded(event.event_id):
            return
        await tx.append(next_entry(await tx.last(), event))


async def verify_trail(uow: UnitOfWork) -> ChainReport:
    return verify_chain(await uow.all_entries())
