"""Share demands (共享需求, Art. 10, 14): what departments need, matched to published entries."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from common.errors import Conflict, Invalid, NotFound
from services.catalog.domain.entries import CatalogEntry
from services.catalog.domain.wording import worded


class DemandStatus(StrEnum):
    OPEN = "OPEN"  # unmet: visible to the IT office
    MATCHED = "MATCHED"


class DemandNotFound(NotFound):
    pass


@dataclass(frozen=True)
class ShareDemand:
    demand_id: str
    requester_code: str
    title: str
    description: str
    wanted_items: tuple[str, ...]
    filed_by: str
    filed_on: date
    status: DemandStatus = DemandStatus.OPEN
    resource_code: str | None = None
    confirmed_by: str | None = None

    @classmethod
    def file(
        cls,
        demand_id: str,
        requester_code: str,
        title: str,
        description: str,
        wanted_items: tuple[str, ...],
        filed_by: str,
        today: date,
    ) -> ShareDemand:
        if not title.strip():
            raise worded(Invalid("title", "say what data is needed"), "catalog.demand.title_missing")
        items = tuple(dict.fromkeys(i.strip() for i in wanted_items if i.strip()))
        return cls(demand_id, requester_code, title.strip(), description.strip(), items, filed_by, today)

    def match(self, entry: CatalogEntry, confirmed_by: str) -> ShareDemand:
        if self.status is DemandStatus.MATCHED:
            raise worded(
                Conflict("status", f"already met by {self.resource_code}"),
                "catalog.demand.already_matched",
                code=self.resource_code or "",
            )
        if entry.in_force is None:
            raise worded(
                Invalid("resource_code", f"{entry.resource_code} is not in force; only published entries meet demands"),
                "catalog.demand.entry_not_published",
                code=entry.resource_code,
            )
        return replace(self, status=DemandStatus.MATCHED, resource_code=entry.resource_code, confirmed_by=confirmed_by)


@dataclass(frozen=True)
class Candidate:
    resource_code: str
    name: str
    provider_code: str
    covered_items: tuple[str, ...]
    score: float


def candidates(demand: ShareDemand, found: list[tuple[CatalogEntry, float]], limit: int = 10) -> list[Candidate]:
    """Published entries that may meet the demand, best first: `found` pairs entries the catalog search
    returned for the demand's words with their relevance; an entry carrying the wanted items ranks first.
    The IT office confirms the match."""
    best = max((relevance for _, relevance in found), default=0.0) or 1.0
    ranked = []
    for entry, relevance in found:
        version = entry.in_force
        if version is None:
            continue
        items = {i.name for i in version.content.data_items}
        covered = tuple(i for i in demand.wanted_items if i in items)
        score = len(covered) / max(len(demand.wanted_items), 1) + 0.5 * relevance / best
        ranked.append(Candidate(entry.resource_code, version.content.name, entry.provider_code, covered, score))
    return sorted(ranked, key=lambda c: -c.score)[:limit]
