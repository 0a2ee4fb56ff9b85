"""Who holds what: the notifier's own projection of the grants and subscriptions it hears of on the share
events, and of the catalog terms in force, so that it knows whom a change of a resource concerns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.notifier.domain.events import CatalogEntryPublished, GrantIssued, ShareType


@dataclass(frozen=True)
class Holding:
    """A grant of a conditional resource, or a subscription to an unconditional one (no request)."""

    grant_id: str
    resource_code: str
    consumer_code: str
    valid_from: date
    valid_to: date
    subscription: bool
    ended: bool = False

    @classmethod
    def of(cls, e: GrantIssued) -> Holding:
        return cls(e.grant_id, e.resource_code, e.consumer_code, e.valid_from, e.valid_to, e.request_id is None)

    def in_force(self, today: date) -> bool:
        return not self.ended and self.valid_from <= today <= self.valid_to


def holders(holdings: list[Holding], today: date) -> list[str]:
    """The departments a resource's changes concern today, each once, in a stable order."""
    return sorted({h.consumer_code for h in holdings if h.in_force(today)})


STRICTNESS = {ShareType.UNCONDITIONAL: 0, ShareType.CONDITIONAL: 1, ShareType.NOT_SHARED: 2}


@dataclass(frozen=True)
class EntryTerms:
    """What of a published entry decides how its data may be used."""

    resource_code: str
    version: int
    name: str
    share_type: ShareType
    methods: frozenset[str]
    items: dict[str, tuple[ShareType | None, bool]]  # name -> (own share type, sensitive)

    @classmethod
    def of(cls, e: CatalogEntryPublished) -> EntryTerms:
        items = {i.name: (i.share_type, i.sensitive) for i in e.data_items}
        return cls(e.resource_code, e.version, e.name, e.share_type, frozenset(e.share_methods), items)

    def item_strictness(self, name: str) -> int:
        own, _ = self.items[name]
        return max(STRICTNESS[self.share_type], STRICTNESS[own] if own is not None else 0)


def tightened(old: EntryTerms, new: EntryTerms) -> list[str]:
    """How the new version is stricter than the old one for those who use it (empty: it is not)."""
    found = []
    if STRICTNESS[new.share_type] > STRICTNESS[old.share_type]:
        found.append(f"共享类型由 {old.share_type.value} 改为 {new.share_type.value}")
    dropped = sorted(set(old.items) - set(new.items))
    if dropped:
        found.append(f"删除数据项 {'、'.join(dropped)}")
    stricter = sorted(n for n in set(old.items) & set(new.items) if new.item_strictness(n) > old.item_strictness(n))
    if stricter:
        found.append(f"数据项 {'、'.join(stricter)} 共享条件收紧")
    sensitive = sorted(n for n in set(old.items) & set(new.items) if new.items[n][1] and not old.items[n][1])
    if sensitive:
        found.append(f"数据项 {'、'.join(sensitive)} 标为敏感")
    methods = sorted(old.methods - new.methods)
    if methods:
        found.append(f"不再提供共享方式 {'、'.join(methods)}")
    return found
