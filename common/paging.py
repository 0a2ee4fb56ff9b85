"""Lists over REST, paged one way: `offset` and a bounded `limit` in (as the catalog's search pages), the
page with the `total` out. Each route states its order, and that order is stable (ties broken by a key),
so that walking the pages sees every item once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from common.fields import Position

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class Paging:
    offset: int = 0
    limit: int = DEFAULT_LIMIT

    def cut(self, items: Sequence[T]) -> list[T]:
        """This page of a list already in its order."""
        return list(items[self.offset : self.offset + self.limit])


def _paging(
    offset: Annotated[Position, Query(description="how many items to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="how many items at most")] = DEFAULT_LIMIT,
) -> Paging:
    return Paging(offset, limit)


PageOf = Annotated[Paging, Depends(_paging)]


class Page(BaseModel, Generic[T]):
    total: int = Field(description="items in the whole list, over all pages")
    offset: int
    limit: int
    items: list[T]

    @classmethod
    def of(cls, items: Sequence[T], total: int, paging: Paging) -> Page[T]:
        return cls(total=total, offset=paging.offset, limit=paging.limit, items=list(items))
