"""Data changes told as batches: the ResourceChanged events of one resource that keep coming become one
notice per holder ("1,204 records changed, feed sequence 40,001–41,204"), not a notice per record."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

# Sequences as ascending, disjoint, non-adjacent closed ranges: ((1, 5000), (5002, 10000)).
Ranges = tuple[tuple[int, int], ...]
TOLD_RANGES_KEPT = 200  # beyond this, the lowest gaps are taken as told (a change lost for good leaves a gap)
RANGES_SHOWN = 4


def covers(ranges: Ranges, sequence: int) -> bool:
    return any(low <= sequence <= high for low, high in ranges)


def merged(ranges: Ranges, more: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    for low, high in sorted((*ranges, *more)):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return tuple(out)


def told_after(told: Ranges, batch: ChangeBatch) -> Ranges:
    """What was told once the batch is: its sequences join the told ones; too many gaps close from the lowest."""
    ranges = merged(told, batch.sequences)
    while len(ranges) > TOLD_RANGES_KEPT:
        (low, _), (_, high) = ranges[0], ranges[1]
        ranges = ((low, high), *ranges[2:])
    return ranges


def without(ranges: Ranges, told: Ranges) -> Ranges:
    """The sequences of `ranges` that `told` does not cover."""
    out: list[tuple[int, int]] = []
    for low, high in ranges:
        for told_low, told_high in told:
            if told_high < low or told_low > high:
                continue
            if told_low > low:
                out.append((low, told_low - 1))
            low = told_high + 1
            if low > high:
                break
        if low <= high:
            out.append((low, high))
    return tuple(out)


@dataclass(frozen=True)
class ChangeBatch:
    """The changes of a resource not yet told. Changes of one resource may arrive out of order (two exchange
    replicas, an outbox relay), so a batch keeps the sequences it counted, and a sequence counted in it or told
    before counts nothing. It stays open while changes keep coming, `window` after the latest, and is told at
    the latest `longest` after it opened."""

    resource_code: str
    provider_code: str
    sequences: Ranges
    deletes: int
    opened_at: datetime
    tell_at: datetime  # changes arriving until then join the batch

    @classmethod
    def opened(
        cls, resource_code: str, provider_code: str, sequence: int, deleted: bool, now: datetime, window: timedelta
    ) -> ChangeBatch:
        return cls(resource_code, provider_code, ((sequence, sequence),), int(deleted), now, now + window)

    def add(self, sequence: int, deleted: bool, now: datetime, window: timedelta, longest: timedelta) -> ChangeBatch:
        if covers(self.sequences, sequence):
            return self  # delivered again
        return replace(
            self,
            sequences=merged(self.sequences, ((sequence, sequence),)),
            deletes=self.deletes + int(deleted),
            tell_at=max(self.tell_at, min(now + window, self.opened_at + longest)),
        )

    def left_after(self, told: ChangeBatch) -> ChangeBatch | None:
        """What of this batch (as kept now) is still untold once `told` (as it was read) is: the changes
        counted in while its notices were being stored."""
        rest = without(self.sequences, told.sequences)
        if not rest:
            return None
        return replace(self, sequences=rest, deletes=max(0, self.deletes - told.deletes))

    @property
    def first(self) -> int:
        return self.sequences[0][0]

    @property
    def last(self) -> int:
        return self.sequences[-1][1]

    @property
    def count(self) -> int:
        return sum(high - low + 1 for low, high in self.sequences)

    @property
    def batch_id(self) -> str:
        """Stable for the batch: the same changes give the same id, however often their events arrive. No two
        batches share it: a later batch's first and last sequences were never told."""
        return f"changes:{self.resource_code}:{self.first}-{self.last}"


def add_change(
    batch: ChangeBatch | None,
    told: Ranges,
    *,
    resource_code: str,
    provider_code: str,
    sequence: int,
    deleted: bool,
    now: datetime,
    window: timedelta,
    longest: timedelta,
) -> ChangeBatch | None:
    """The batch with one more change; a change told before (in `told`) changes nothing."""
    if covers(told, sequence):
        return batch
    if batch is None:
        return ChangeBatch.opened(resource_code, provider_code, sequence, deleted, now, window)
    return batch.add(sequence, deleted, now, window, longest)


def _span(low: int, high: int) -> str:
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def described(batch: ChangeBatch) -> tuple[str, str]:
    """Title and body of the notice."""
    if len(batch.sequences) <= RANGES_SHOWN:
        span = "、".join(_span(low, high) for low, high in batch.sequences)
    else:
        span = f"{_span(batch.first, batch.last)} 之间（不连续，共 {len(batch.sequences):,} 段）"
    deleted = f"，其中删除 {batch.deletes:,} 条" if batch.deletes else ""
    title = f"数据已更新：{batch.resource_code}（{batch.count:,} 条记录）"
    body = (
        f"资源 {batch.resource_code} 有 {batch.count:,} 条记录发生变化{deleted}，变更序号 {span}。"
        f"请按序号增量同步（自上次同步的序号起）。"
    )
    return title, body
