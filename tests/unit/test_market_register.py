"""The demo's market register: `make demo` run again simulates a business day each time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from examples.market_register import register


def test_business_days_in_a_row_found_new_enterprises_under_new_numbers(tmp_path: Path) -> None:
    source = tmp_path / "register.sqlite"
    register.create(source, 300)
    for day in range(4):  # each day deregisters one enterprise: its number is not handed out again
        assert register.business_day(source, seed=day) == 300 // 50 + 300 // 100
    with sqlite3.connect(source) as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM enterprise").fetchone()
        (distinct,) = db.execute("SELECT COUNT(DISTINCT 内部档案号) FROM enterprise").fetchone()
    assert rows == distinct == 300 + 4 * (300 // 100) - 4
