"""One handler per share-demand command."""

from __future__ import annotations

import uuid
from datetime import date

from common.events import Event
from common.policy import Principal, Target, authorize
from services.catalog.domain.demands import Candidate, DemandNotFound, DemandStatus, ShareDemand, candidates
from services.catalog.domain.entries import VersionStatus
from services.catalog.domain.search import Facet, SearchQuery
from services.catalog.domain.wording import worded
from services.catalog.handlers import not_found
from services.catalog.ports import DEMAND_EVENTS, SearchIndex, UnitOfWork

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


async def suggest(demand_id: str, uow: UnitOfWork, index: SearchIndex) -> list[Candidate]:
    demand = await get_demand(demand_id, uow)
    words = " ".join((demand.title, demand.description, *demand.wanted_items))
    query = SearchQuery(words[:200], {Facet.STATUS: frozenset({VersionStatus.PUBLISHED})}, match_all=False, limit=50)
    found = []
    for hit in index.search(query).hits:
        entry = await uow.entry(hit.resource_code)
        if entry is not None:
            found.append((entry, hit.score))
    return candidates(demand, found)


async def confirm_match(demand_id: str, resource_code: str, principal: Principal, uow: UnitOfWork) -> ShareDemand:
    """The IT office confirms that a published entry meets the demand."""
    authorize(principal, "catalog.demand.match")
    async with uow() as tx:
        demand = await tx.demand(demand_id)
        if demand is None:
            raise worded(
                DemandNotFound("demand_id", f"no demand {demand_id}"), "catalog.demand.not_found", demand_id=demand_id
            )
        entry = await tx.entry(resource_code)
        if entry is None:
            raise not_found(resource_code)
        matched = demand.match(entry, principal.subject)
        await tx.save_demand(matched)
        tx.emit(
            DEMAND_EVENTS,
            Event(
                "ShareDemandMatched",
                demand_id,
                {
                    "demand_id": demand_id,
                    "requester_code": demand.requester_code,
                    "resource_code": resource_code,
                    "confirmed_by": principal.subject,
                },
                PRODUCER,
            ),
        )
    return matched


async def list_demands(
    uow: UnitOfWork, status: DemandStatus | None, requester_code: str | None, offset: int, limit: int
) -> tuple[list[ShareDemand], int]:
    """One page of the demands, oldest first, and how many there are in all."""
    found = await uow.demands(status=status, requester_code=requester_code, offset=offset, limit=limit)
    return found, await uow.count_demands(status=status, requester_code=requester_code)
