"""Figures for the departments' evaluation (Art. 23), computed from events."""

from __future__ import annotations

from typing import Any

NOT_COUNTED = ""  # a refused call, or one that found nothing: the trail keeps it, the use count does not


def data_access_counted_for(payload: dict[str, Any]) -> str:
    """The department a data access is counted for: the consumer who used the shared data. Calls the exchange
    refused or that found nothing are not uses (NOT_COUNTED); events from before results were recorded were
    all served."""
    if payload.get("result", "SERVED") != "SERVED":
        return NOT_COUNTED
    return str(payload["consumer_code"])
