"""Figures for the departments' evaluation (Art. 23), computed from events."""

from __future__ import annotations

from typing import Any


def data_access_counted_for(payload: dict[str, Any]) -> str:
    """The department a data access is counted for: the consumer who used the shared data."""
    return str(payload["consumer_code"])
