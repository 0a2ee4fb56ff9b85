"""Data changes told as batches: the ResourceChanged events of one resource within a short window become one
notice per holder ("1,204 records changed, feed sequence 40,001–41,204"), not a notice per record."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ChangeBatch:
    """The changes of a resource not yet told. Sequences of a resource are consecutive and arrive in order
    (one key, one partition), so a batch is a range, and a sequence at or below `last` was counted before."""

    resource_code: str
    provider_code: str
    first: int
    last: int
    count: int
    deletes: int
    tell_at: datetime  # the window's end: changes arriving until then join the batch

    @classmethod
    def opened(
        cls, resource_code: str, provider_code: str, sequence: int, deleted: bool, now: datetime, window: timedelta
    ) -> ChangeBatch:
        return cls(resource_code, provider_code, sequence, sequence, 1, int(deleted), now + window)

    def add(self, sequence: int, deleted: bool) -> ChangeBatch:
        if sequence <= self.last:
            return self  # delivered again
        return replace(self, last=sequence, count=self.count + 1, deletes=self.deletes + int(deleted))

    @property
    def batch_id(self) -> str:
        """Stable for the batch: the same changes give the same id, however often their events arrive."""
        return f"changes:{self.resource_code}:{self.first}-{self.last}"


def add_change(
    batch: ChangeBatch | None,
    told_through: int,
    *,
    resource_code: str,
    provider_code: str,
    sequence: int,
    deleted: bool,
    now: datetime,
    window: timedelta,
) -> ChangeBatch | None:
    """The batch with one more change; a change told before (at or below `told_through`) changes nothing."""
    if sequence <= told_through:
        return batch
    if batch is None:
        return ChangeBatch.opened(resource_code, provider_code, sequence, deleted, now, window)
    return batch.add(sequence, deleted)


def described(batch: ChangeBatch) -> tuple[str, str]:
    """Title and body of the notice."""
    span = f"{batch.first:,}" if batch.first == batch.last else f"{batch.first:,}–{batch.last:,}"
    deleted = f"，其中删除 {batch.deletes:,} 条" if batch.deletes else ""
    title = f"数据已更新：{batch.resource_code}（{batch.count:,} 条记录）"
    body = (
        f"资源 {batch.resource_code} 有 {batch.count:,} 条记录发生变化{deleted}，变更序号 {span}。"
        f"请按序号增量同步（自上次同步的序号起）。"
    )
    return title, body
