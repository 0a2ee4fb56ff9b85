"""Consistency digests (Art. 17, 24(3)): a two-level hash tree over a resource's records, so that a provider
or a consumer and the center find the few key ranges where their copies differ without moving the table.

Keys fall into 65,536 ranges (buckets) by a hash of the subject key. A bucket's leaf is the sum (mod 2^64)
of its records' hashes and their count: order-free, so the center keeps it current with one increment per
change. 256 top nodes each hash 256 leaves. Comparing the 256 top nodes, then the leaves under the
differing ones, names the differing buckets; only their records are resent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

BUCKETS = 1 << 16
FANOUT = 256  # leaves under one top node; BUCKETS // FANOUT top nodes
TOPS = BUCKETS // FANOUT
MASK = (1 << 64) - 1
Leaf = tuple[int, int]  # (sum of record hashes mod 2^64, number of records)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def canonical(fields: Mapping[str, Any]) -> bytes:
    """One byte string per record content, whichever side computes it."""
    return json.dumps(
        {k: _plain(v) for k, v in fields.items()}, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode()


def record_hash(subject_key: str, fields: Mapping[str, Any]) -> int:
    """40 bits, so that a bucket's sum fits a signed 64-bit integer in any database."""
    digest = hashlib.blake2b(subject_key.encode() + b"\x00" + canonical(fields), digest_size=5).digest()
    return int.from_bytes(digest, "big")


def bucket_of(subject_key: str) -> int:
    return int.from_bytes(hashlib.blake2b(subject_key.encode(), digest_size=2).digest(), "big")


def top_of(bucket: int) -> int:
    return bucket // FANOUT


def node_hash(leaves: Iterable[Leaf]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for total, count in leaves:
        h.update(total.to_bytes(8, "big") + count.to_bytes(8, "big"))
    return h.hexdigest()


@dataclass
class ResourceDigest:
    """Leaves of one copy of a resource. Build it from records (`add`) or from stored leaves."""

    leaves: dict[int, Leaf] = field(default_factory=dict)  # bucket → leaf; empty buckets left out

    def add(self, subject_key: str, fields: Mapping[str, Any]) -> None:
        bucket = bucket_of(subject_key)
        total, count = self.leaves.get(bucket, (0, 0))
        self.leaves[bucket] = ((total + record_hash(subject_key, fields)) & MASK, count + 1)

    def leaf(self, bucket: int) -> Leaf:
        return self.leaves.get(bucket, (0, 0))

    def tops(self) -> list[str]:
        return [self.top(t) for t in range(TOPS)]

    def top(self, index: int) -> str:
        return node_hash(self.leaf(b) for b in range(index * FANOUT, (index + 1) * FANOUT))

    def leaves_under(self, index: int) -> list[Leaf]:
        return [self.leaf(b) for b in range(index * FANOUT, (index + 1) * FANOUT)]

    @property
    def records(self) -> int:
        return sum(count for _, count in self.leaves.values())


def differing_tops(mine: list[str], theirs: list[str]) -> list[int]:
    return [i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b]


def differing_buckets(index: int, mine: list[Leaf], theirs: list[Leaf]) -> list[int]:
    return [index * FANOUT + i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if tuple(a) != tuple(b)]
