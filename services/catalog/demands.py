"""One handler per share-demand command."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date

from common.events import Event
from common.policy import Principal, Target, authorize
from services.catalog.domain.demands import Candidate, DemandNotFound, DemandStatus, ShareDemand, candidates
from services.catalog.domain.dictionary import Dictionary
from services.catalog.domain.entries import VersionStatus
from services.catalog.domain.search import MAX_LIMIT as MAX_SEARCH_LIMIT
from services.catalog.domain.search import Facet, SearchHit, SearchQuery, Viewer, as_seen_by
from services.catalog.domain.wording import worded
from services.catalog.handlers import not_found
from services.catalog.ports import DEMAND_EVENTS, CatalogTransaction, SearchIndex, UnitOfWork

PRODUCER = "catalog"


async def file_demand(
    title: str, description: str, wanted_items: tuple[str, ...], principal: Principal, uow: UnitOfWork, today: date
) -> ShareDemand:
    authorize(principal, "catalog.demand.file", Target(department_code=principal.department_code))
    demand = ShareDemand.file(
        uuid.uuid4().hex, principal.department_code, title, description, wanted_items, principal.subject, today
    )
    async with uow() as tx:
        await tx.save_demand(demand)
        tx.emit(
            DEMAND_EVENTS,
            Event(
                "ShareDemandFiled",
                demand.demand_id,
                {
                    "demand_id": demand.demand_id,
                    "requester_code": demand.requester_code,
                    "title": demand.title,
                    "description": demand.description,
                    "wanted_items": list(demand.wanted_items),
                    "filed_by": demand.filed_by,
                },
                PRODUCER,
            ),
        )
    return demand


async def get_demand(demand_id: str, uow: UnitOfWork) -> ShareDemand:
    demand = await uow.demand(demand_id)
    if demand is None:
        raise worded(
            DemandNotFound("demand_id", f"no demand {demand_id}"), "catalog.demand.not_found", demand_id=demand_id
        )
    return demand


MAX_CANDIDATES = 200  # search hits weighed for a demand; the best of them are paged


async def suggest(
    demand_id: str, uow: UnitOfWork, index: SearchIndex, viewer: Viewer | None, offset: int, limit: int
) -> tuple[list[Candidate], int]:
    """One page of the published entries that may meet the demand, best first, and how many there are: the
    entries search finds for the demand's words (at most MAX_CANDIDATES), as the viewer may read them."""
    demand = await get_demand(demand_id, uow)
    dictionary = await uow.dictionary()
    # The wanted items under every name the dictionary knows them by, so 身份证号 finds 公民身份号码.
    names = dict.fromkeys(n for w in demand.wanted_items for n in (w, *_names(w, dictionary)))
    words = " ".join((*names, demand.title, demand.description))[:200]
    published: dict[Facet, frozenset[str]] = {Facet.STATUS: frozenset({VersionStatus.PUBLISHED.value})}
    hits: list[SearchHit] = []
    while len(hits) < MAX_CANDIDATES:
        page = min(MAX_SEARCH_LIMIT, MAX_CANDIDATES - len(hits))
        result = index.search(SearchQuery(words, published, False, len(hits), page, viewer))
        hits += result.hits
        if not result.hits or len(hits) >= result.total:
            break
    relevance = {h.resource_code: h.score for h in hits}
    found = []
    for entry in await uow.entries_with_codes(list(relevance)):
        seen = entry if viewer is None else as_seen_by(entry, viewer)
        if seen is not None:
            found.append((seen, relevance[entry.resource_code]))
    ranked = candidates(demand, found, dictionary)
    return ranked[offset : offset + limit], len(ranked)


def _names(wanted: str, dictionary: Dictionary) -> list[str]:
    return [n for e in dictionary.matching(wanted) for n in e.names]


async def confirm_match(
    demand_id: str, resource_code: str, reason: str, principal: Principal, uow: UnitOfWork
) -> ShareDemand:
    """The IT office confirms that a published entry meets the demand."""
    authorize(principal, "catalog.demand.match")
    async with uow() as tx:
        demand = await _load(tx, demand_id)
        entry = await tx.entry(resource_code)
        if entry is None:
            raise not_found(resource_code)
        matched = demand.match(entry, principal.subject, reason, await tx.dictionary())
        await tx.save_demand(matched)
        payload = {
            "resource_code": resource_code,
            "confirmed_by": principal.subject,
            "covered_items": list(matched.covered_items),
            "reason": matched.match_reason,
        }
        tx.emit(DEMAND_EVENTS, _event("ShareDemandMatched", demand, payload))
    return matched


async def undo_match(demand_id: str, reason: str, principal: Principal, uow: UnitOfWork) -> ShareDemand:
    authorize(principal, "catalog.demand.settle")
    async with uow() as tx:
        demand = await _load(tx, demand_id)
        reopened = demand.unmatch(reason)
        await tx.save_demand(reopened)
        payload = {
            "resource_code": demand.resource_code or "",
            "reason": reopened.reason,
            "undone_by": principal.subject,
        }
        tx.emit(DEMAND_EVENTS, _event("ShareDemandUnmatched", demand, payload))
    return reopened


async def cancel_demand(demand_id: str, reason: str, principal: Principal, uow: UnitOfWork) -> ShareDemand:
    """The requesting department withdraws its demand."""
    async with uow() as tx:
        demand = await _load(tx, demand_id)
        authorize(principal, "catalog.demand.file", Target(department_code=demand.requester_code))
        cancelled = demand.cancel(principal.subject, reason)
        await tx.save_demand(cancelled)
        payload = {"reason": cancelled.reason, "cancelled_by": principal.subject}
        tx.emit(DEMAND_EVENTS, _event("ShareDemandCancelled", demand, payload))
    return cancelled


async def declare_unmeetable(
    demand_id: str, reason: str, legal_basis: str, principal: Principal, uow: UnitOfWork
) -> ShareDemand:
    """The IT office finds the demand cannot be met, citing the legal grounds (Art. 14 ¶2)."""
    authorize(principal, "catalog.demand.settle")
    async with uow() as tx:
        demand = await _load(tx, demand_id)
        closed = demand.declare_unmeetable(principal.subject, reason, legal_basis)
        await tx.save_demand(closed)
        payload = {"reason": closed.reason, "legal_basis": closed.legal_basis, "declared_by": principal.subject}
        tx.emit(DEMAND_EVENTS, _event("ShareDemandUnmeetable", demand, payload))
    return closed


async def _load(tx: CatalogTransaction, demand_id: str) -> ShareDemand:
    demand = await tx.demand(demand_id)
    if demand is None:
        raise worded(
            DemandNotFound("demand_id", f"no demand {demand_id}"), "catalog.demand.not_found", demand_id=demand_id
        )
    return demand


def _event(event_type: str, demand: ShareDemand, payload: Mapping[str, object]) -> Event:
    return Event(
        event_type,
        demand.demand_id,
        {"demand_id": demand.demand_id, "requester_code": demand.requester_code, **payload},
        PRODUCER,
    )


async def list_demands(
    uow: UnitOfWork, status: DemandStatus | None, requester_code: str | None, offset: int, limit: int
) -> tuple[list[ShareDemand], int]:
    """One page of the demands, oldest first, and how many there are in all."""
    found = await uow.demands(status=status, requester_code=requester_code, offset=offset, limit=limit)
    return found, await uow.count_demands(status=status, requester_code=requester_code)
