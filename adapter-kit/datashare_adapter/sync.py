"""Syncing a table into a resource (send only what changed since the last run) and checking a copy against
the center's digest (resend only the key ranges that differ)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from datashare_adapter.client import Adapter, Platform
from datashare_adapter.digest import ResourceDigest, bucket_of, differing_buckets, differing_tops, record_hash
from datashare_adapter.identifiers import InvalidIdentifier, key_kind, validate_subject_key
from datashare_adapter.snapshot import Snapshot, SyncPlan
from datashare_adapter.sources import SourceError, typed_record


@dataclass
class Table:
    """A source's records, typed by the resource's data items and keyed by its key item."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    ignored_columns: set[str] = field(default_factory=set)

    def hashes(self) -> dict[str, int]:
        return {k: record_hash(k, f) for k, f in self.records.items()}


def prepare(rows: Iterable[dict[str, Any]], resource: dict[str, Any]) -> Table:
    """Rows as the center will check them: only data-item columns, typed, keyed by the identifier the key
    item declares; a row with a bad key or a value of the wrong type is left out and reported."""
    types = {i["name"]: i["type"] for i in resource["items"]}
    key_item = resource.get("key_item")
    if not key_item:
        raise SourceError(f"{resource['resource_code']} has no key data item (统一社会信用代码 or 公民身份号码)")
    kind = key_kind(key_item)
    table = Table()
    for number, row in enumerate(rows, start=2):
        table.ignored_columns |= {c for c in row if c not in types}
        try:
            fields = typed_record({c: v for c, v in row.items() if c in types}, types)
            _, key = validate_subject_key(str(fields.get(key_item) or ""), kind)
        except (SourceError, InvalidIdentifier) as exc:
            table.problems.append(f"row {number}: {exc}")
            continue
        fields[key_item] = key
        table.records[key] = {k: v for k, v in fields.items() if v is not None}
    return table


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label, self.enabled = total, label, enabled
        self.done, self.shown = 0, 0.0

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self.shown > 0.2 or self.done == self.total):
            self.shown = now
            width = 30
            filled = width * self.done // max(self.total, 1)
            sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done:,}/{self.total:,}")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


@dataclass
class SyncSummary:
    resource_code: str
    source_version: int
    sent_upserts: int
    sent_deletions: int
    unchanged: int
    skipped_rows: list[str]
    ignored_columns: list[str]
    seconds: float

    def line(self) -> str:
        return (
            f"{self.resource_code}: {self.sent_upserts:,} new or changed, {self.sent_deletions:,} deleted, "
            f"{self.unchanged:,} unchanged, {len(self.skipped_rows):,} rows skipped "
            f"(version {self.source_version}, {self.seconds:.1f}s)"
        )


async def sync(
    adapter: Adapter,
    snapshot: Snapshot,
    resource_code: str,
    rows: Callable[[], Iterable[dict[str, Any]]],
    progress: bool = True,
) -> SyncSummary:
    started = time.monotonic()
    resource = await adapter.platform.resource(resource_code)
    table = prepare(rows(), resource)
    current = table.hashes()
    plan = snapshot.plan(resource_code, current)
    version = snapshot.begin_run(resource_code)
    bar = Progress(len(plan.upserts) + len(plan.deletions), resource_code, progress)
    for key in plan.upserts:
        await adapter.upsert(resource_code, key, table.records[key], version)
        bar.step()
    for key in plan.deletions:
        await adapter.delete(resource_code, key, version)
        bar.step()
    await adapter.flush()
    snapshot.complete_run(resource_code, current, plan)
    return SyncSummary(
        resource_code,
        version,
        len(plan.upserts),
        len(plan.deletions),
        plan.unchanged,
        table.problems,
        sorted(table.ignored_columns),
        time.monotonic() - started,
    )


async def differing_key_ranges(platform: Platform, resource_code: str, local: ResourceDigest) -> list[int]:
    """The buckets where `local` and the center's copy differ: 256 top nodes compared, then only the leaves
    under the differing ones fetched."""
    tops = differing_tops(local.tops(), await platform.digest_tops(resource_code))
    if not tops:
        return []
    theirs = await platform.digest_leaves(resource_code, tops)
    found: list[int] = []
    for top in tops:
        found += differing_buckets(top, local.leaves_under(top), theirs[top])
    return found


@dataclass
class CheckSummary:
    resource_code: str
    differing_buckets: int
    center_records_fetched: int
    resent_upserts: int
    resent_deletions: int
    seconds: float

    def line(self) -> str:
        return (
            f"{self.resource_code}: {self.differing_buckets} key ranges differ; fetched {self.center_records_fetched:,}"
            f" center records, resent {self.resent_upserts:,} records and {self.resent_deletions:,} deletions"
            f" ({self.seconds:.1f}s)"
        )


async def check(
    adapter: Adapter,
    snapshot: Snapshot,
    resource_code: str,
    rows: Callable[[], Iterable[dict[str, Any]]] | None,
) -> CheckSummary:
    """Compare what the adapter sent (its snapshot) with the center. With `rows` (the source), repair the
    differing ranges: resend the source's records there and delete what the center has beyond them."""
    started = time.monotonic()
    buckets = await differing_key_ranges(adapter.platform, resource_code, snapshot.digest(resource_code))
    if not buckets or rows is None:
        return CheckSummary(resource_code, len(buckets), 0, 0, 0, time.monotonic() - started)
    center = await adapter.platform.bucket_records(resource_code, buckets)
    center_hashes = {r["subject_key"]: record_hash(r["subject_key"], r["fields"]) for r in center}
    table = prepare(rows(), await adapter.platform.resource(resource_code))
    wanted = set(buckets)
    local = {k: h for k, h in table.hashes().items() if bucket_of(k) in wanted}
    version = snapshot.begin_run(resource_code)
    upserts = [k for k, h in local.items() if center_hashes.get(k) != h]
    deletions = [k for k in center_hashes if k not in local]
    for key in upserts:
        await adapter.upsert(resource_code, key, table.records[key], version)
    for key in deletions:
        await adapter.delete(resource_code, key, version)
    await adapter.flush()
    known = set(snapshot.keys_in(resource_code, buckets))
    plan_deletions = [k for k in known if k not in local]
    snapshot.complete_run(resource_code, local, SyncPlan(list(local), plan_deletions, 0))
    return CheckSummary(
        resource_code, len(buckets), len(center), len(upserts), len(deletions), time.monotonic() - started
    )
