"""One handler per auditor event or query."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from common.events import Event
from services.auditor.domain.trail import (
    ChainCheck,
    ChainReport,
    Checkpoint,
    Head,
    TrailEntry,
    checkpoint_message,
    describe,
    due_checkpoints,
    link,
)
from services.auditor.ports import Clock, Signer, TrailQuery, TrailStore

T = TypeVar("T")
IN_LOOP = 200  # smaller batches are described and linked on the event loop; larger ones in a worker thread


@dataclass(frozen=True)
class TrailKeys:
    """What appending needs besides the store: the checkpoint signer, the identifiers' hash key, the clock,
    and how often to sign (every `every_entries` entries, and at an append once the last is older than
    `every_seconds`)."""

    signer: Signer
    secret: bytes
    clock: Clock
    every_entries: int
    every_seconds: float


async def record_in_trail(events: list[Event], trail: TrailStore, keys: TrailKeys) -> dict[str, str]:
    """Append a consumed batch in one transaction: the chain is computed in memory, entries already in the
    trail (a redelivery) are skipped, and due checkpoints are signed with the batch."""
    described = await _off_loop(len(events), lambda: [describe(e, keys.secret) for e in events])
    async with trail.append() as tx:
        head = await tx.head()
        fresh = await tx.unseen([e.event_id for e in described])
        new = []
        for entry in described:
            if entry.event_id in fresh:
                fresh.discard(entry.event_id)  # twice in one batch: once
                new.append(entry)
        if not new:
            return {}
        linked = await _off_loop(len(new), lambda: link(head, new))
        now = keys.clock.now()
        signed = [
            sign(e, keys.signer, now.isoformat())
            for e in due_checkpoints(head, linked, now, keys.every_entries, keys.every_seconds)
        ]
        last = linked[-1]
        await tx.append(
            linked,
            signed,
            Head(
                last.sequence,
                last.hash,
                *((signed[-1].sequence, now) if signed else (head.checkpoint_sequence, head.checkpoint_at)),
            ),
        )
    return {}


def sign(entry: TrailEntry, signer: Signer, signed_at: str) -> Checkpoint:
    signature = signer.sign(checkpoint_message(entry.sequence, entry.hash, signed_at))
    return Checkpoint(entry.sequence, entry.hash, signed_at, signer.key_id, signature)


async def verify_trail(
    trail: TrailStore, signature_valid: Callable[[Checkpoint], bool], first: int = 1, last: int | None = None
) -> ChainReport:
    """Verify entries `first`..`last` (the end of the trail when None) from the nearest signed checkpoint
    before `first`, a slice at a time off the event loop; the first broken link is reported."""
    end = await trail.last_sequence()
    last = end if last is None else min(last, end)
    anchor = await trail.anchor(before=first)
    start = anchor.sequence if anchor else 0
    check = ChainCheck.start(first, last, anchor, await trail.checkpoints(start + 1, last), signature_valid)
    blocks = aiter(trail.blocks(start + 1, last))
    block = await anext(blocks, None)
    while block is not None:
        # the next block is read while this one is checked (hashing and parsing in a worker thread)
        checked, block = await asyncio.gather(
            asyncio.to_thread(check.feed_block, block, start, last), anext(blocks, None)
        )
        if not checked:
            break
    return check.finish()


async def search_trail(
    trail: TrailStore, query: TrailQuery, *, offset: int, limit: int
) -> tuple[list[TrailEntry], int]:
    return await trail.find(query, offset=offset, limit=limit)


async def _off_loop(size: int, work: Callable[[], T]) -> T:
    return work() if size <= IN_LOOP else await asyncio.to_thread(work)
