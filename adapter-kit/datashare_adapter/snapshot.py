"""What the adapter last sent, per resource, kept in a local SQLite file: each subject's record hash. A sync
compares the source with it and sends only what changed; the consistency check compares its digest with
the center's.

A run's source version is fixed when the run starts and kept until the run completes, so a run that
crashed and is started again resends the same change ids (the center stores them once)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from datashare_adapter.digest import MASK, ResourceDigest, bucket_of


@dataclass
class SyncPlan:
    upserts: list[str]  # subject keys, new or changed
    deletions: list[str]  # subject keys no longer in the source
    unchanged: int


class Snapshot:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS record (
                resource_code TEXT NOT NULL, subject_key TEXT NOT NULL, bucket INTEGER NOT NULL,
                hash INTEGER NOT NULL, PRIMARY KEY (resource_code, subject_key));
            CREATE TABLE IF NOT EXISTS run (
                resource_code TEXT PRIMARY KEY, version INTEGER NOT NULL, pending INTEGER NOT NULL);
            """
        )

    def close(self) -> None:
        self.db.close()

    def begin_run(self, resource_code: str) -> int:
        """The source version of this run: the unfinished run's, or a new one above every earlier run."""
        row = self.db.execute("SELECT version, pending FROM run WHERE resource_code = ?", (resource_code,)).fetchone()
        if row and row[1]:
            return int(row[0])
        version = max(int(time.time() * 1000), (row[0] + 1) if row else 0)
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO run (resource_code, version, pending) VALUES (?, ?, 1)",
                (resource_code, version),
            )
        return version

    def hashes(self, resource_code: str) -> dict[str, int]:
        rows = self.db.execute("SELECT subject_key, hash FROM record WHERE resource_code = ?", (resource_code,))
        return dict(rows)

    def plan(self, resource_code: str, current: dict[str, int]) -> SyncPlan:
        """`current`: subject key → record hash of the source now."""
        known = self.hashes(resource_code)
        upserts = [k for k, h in current.items() if known.get(k) != h]
        deletions = [k for k in known if k not in current]
        return SyncPlan(upserts, deletions, len(current) - len(upserts))

    def complete_run(self, resource_code: str, current: dict[str, int], plan: SyncPlan) -> None:
        """Record what the center now has, once the broker acknowledged every change of the run."""
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO record (resource_code, subject_key, bucket, hash) VALUES (?, ?, ?, ?)",
                ((resource_code, k, bucket_of(k), current[k]) for k in plan.upserts),
            )
            self.db.executemany(
                "DELETE FROM record WHERE resource_code = ? AND subject_key = ?",
                ((resource_code, k) for k in plan.deletions),
            )
            self.db.execute("UPDATE run SET pending = 0 WHERE resource_code = ?", (resource_code,))

    def digest(self, resource_code: str) -> ResourceDigest:
        rows = self.db.execute(
            "SELECT bucket, SUM(hash), COUNT(*) FROM record WHERE resource_code = ? GROUP BY bucket", (resource_code,)
        )
        return ResourceDigest({bucket: (total & MASK, count) for bucket, total, count in rows})

    def keys_in(self, resource_code: str, buckets: Iterable[int]) -> list[str]:
        wanted = sorted(set(buckets))
        found: list[str] = []
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            found += [
                k
                for (k,) in self.db.execute(
                    f"SELECT subject_key FROM record WHERE resource_code = ? AND bucket IN ({marks})",
                    (resource_code, *part),
                )
            ]
        return found
