"""Share demands (共享需求, Art. 10, 14): what departments need, matched to published entries."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from common.errors import Conflict, Invalid, NotFound
from services.catalog.domain.dictionary import Dictionary, normal
from services.catalog.domain.entries import CatalogEntry, DataItem
from services.catalog.domain.wording import label, worded

MAX_WANTED_ITEMS = 50  # each wanted item is matched against every candidate entry's items


class DemandStatus(StrEnum):
    OPEN = "OPEN"  # unmet: visible to the IT office
    MATCHED = "MATCHED"
    CANCELLED = "CANCELLED"  # the requester no longer needs it
    UNMEETABLE = "UNMEETABLE"  # the IT office found it cannot be met, on legal grounds (Art. 14 ¶2)


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
    covered_items: tuple[str, ...] = ()  # the wanted items the matched entry carries
    match_reason: str = ""  # the IT office's reason for a match that carries none of the wanted items
    closed_by: str | None = None  # who cancelled it or found it unmeetable
    reason: str = ""  # why it was cancelled, found unmeetable or a match undone
    legal_basis: str = ""  # the grounds on which it cannot be met

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
        if len(items) > MAX_WANTED_ITEMS:
            raise worded(
                Invalid("wanted_items", f"at most {MAX_WANTED_ITEMS} wanted items ({len(items)} given)"),
                "catalog.demand.wanted_too_many",
                max=MAX_WANTED_ITEMS,
                count=len(items),
            )
        return cls(demand_id, requester_code, title.strip(), description.strip(), items, filed_by, today)

    def match(self, entry: CatalogEntry, confirmed_by: str, reason: str, dictionary: Dictionary) -> ShareDemand:
        """The entry meets the demand when it carries at least one wanted item, by name or alias; otherwise
        only with the IT office's reason."""
        self._open()
        version = entry.in_force
        if version is None:
            raise worded(
                Invalid("resource_code", f"{entry.resource_code} is not in force; only published entries meet demands"),
                "catalog.demand.entry_not_published",
                code=entry.resource_code,
            )
        covered = covered_items(self.wanted_items, version.content.data_items, dictionary)
        if not covered and not reason.strip():
            wanted = ", ".join(self.wanted_items) or "none named"
            raise worded(
                Invalid(
                    "reason",
                    f"{entry.resource_code} carries none of the wanted items ({wanted}); a match without them needs "
                    "the IT office's reason",
                ),
                "catalog.demand.match_uncovered",
                code=entry.resource_code,
                wanted="、".join(self.wanted_items) or "（未列出）",
            )
        return replace(
            self,
            status=DemandStatus.MATCHED,
            resource_code=entry.resource_code,
            confirmed_by=confirmed_by,
            covered_items=covered,
            match_reason=reason.strip(),
            reason="",
        )

    def unmatch(self, reason: str) -> ShareDemand:
        """Undo a match: the demand is open again."""
        if self.status is not DemandStatus.MATCHED:
            raise worded(
                Conflict("status", f"the demand is {self.status.value}, not matched"),
                "catalog.demand.not_matched",
                status=label(self.status),
            )
        if not reason.strip():
            raise worded(Invalid("reason", "say why the match is undone"), "catalog.demand.unmatch_reason")
        return replace(
            self,
            status=DemandStatus.OPEN,
            resource_code=None,
            confirmed_by=None,
            covered_items=(),
            match_reason="",
            reason=reason.strip(),
        )

    def cancel(self, by: str, reason: str) -> ShareDemand:
        if self.status in (DemandStatus.CANCELLED, DemandStatus.UNMEETABLE):
            raise worded(
                Conflict("status", f"the demand is already {self.status.value}"),
                "catalog.demand.closed",
                status=label(self.status),
            )
        if not reason.strip():
            raise worded(Invalid("reason", "say why the demand is withdrawn"), "catalog.demand.cancel_reason")
        return replace(self, status=DemandStatus.CANCELLED, closed_by=by, reason=reason.strip())

    def declare_unmeetable(self, by: str, reason: str, legal_basis: str) -> ShareDemand:
        """Art. 14 ¶2: a refusal to share cites its legal grounds."""
        self._open()
        if not reason.strip():
            raise worded(Invalid("reason", "say why the demand cannot be met"), "catalog.demand.unmeetable_reason")
        if not legal_basis.strip():
            raise worded(
                Invalid("legal_basis", "a demand found unmeetable cites its legal grounds (Art. 14)"),
                "catalog.demand.unmeetable_basis",
            )
        return replace(
            self, status=DemandStatus.UNMEETABLE, closed_by=by, reason=reason.strip(), legal_basis=legal_basis.strip()
        )

    def _open(self) -> None:
        if self.status is DemandStatus.MATCHED:
            raise worded(
                Conflict("status", f"already met by {self.resource_code}; undo that match first"),
                "catalog.demand.already_matched",
                code=self.resource_code or "",
            )
        if self.status is not DemandStatus.OPEN:
            raise worded(
                Conflict("status", f"the demand is {self.status.value}"),
                "catalog.demand.closed",
                status=label(self.status),
            )


def covered_items(wanted: tuple[str, ...], items: tuple[DataItem, ...], dictionary: Dictionary) -> tuple[str, ...]:
    """The wanted items an entry carries: by name, by an alias of the same element, or by the element an item
    is linked to (身份证号 is covered by 公民身份号码)."""
    carried = set()
    for item in items:
        carried.add(normal(item.name))
        for link in (item.source_of, item.refers_to):
            element = dictionary.get(link) if link else None
            if element is not None:
                carried |= {normal(n) for n in element.names}
    return tuple(w for w in wanted if dictionary.equivalents(w) & carried)


@dataclass(frozen=True)
class Candidate:
    resource_code: str
    name: str
    provider_code: str
    covered_items: tuple[str, ...]
    score: float


def candidates(demand: ShareDemand, found: list[tuple[CatalogEntry, float]], dictionary: Dictionary) -> list[Candidate]:
    """Published entries that may meet the demand, best first: `found` pairs entries the catalog search
    returned for the demand's words with their relevance; an entry carrying the wanted items (by name or
    through the dictionary's aliases) ranks first.
    Ties by resource code. The IT office confirms the match."""
    best = max((relevance for _, relevance in found), default=0.0) or 1.0
    ranked = []
    for entry, relevance in found:
        version = entry.in_force
        if version is None:
            continue
        covered = covered_items(demand.wanted_items, version.content.data_items, dictionary)
        score = len(covered) / max(len(demand.wanted_items), 1) + 0.5 * relevance / best
        ranked.append(Candidate(entry.resource_code, version.content.name, entry.provider_code, covered, score))
    return sorted(ranked, key=lambda c: (-c.score, c.resource_code))
