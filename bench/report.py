"""Benchmark results: one JSON file per result under bench/results/, one summary line each."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(
    name: str,
    *,
    metric: str,
    unit: str,
    value: float,
    baseline_name: str | None,
    baseline_value: float | None,
    goal: str,
    met: bool,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    result = {
        "name": name,
        "metric": metric,
        "unit": unit,
        "value": round(value, 2),
        "baseline": {"name": baseline_name, "value": round(baseline_value, 2)} if baseline_name else None,
        "ratio": round(value / baseline_value, 3) if baseline_value else None,
        "goal": goal,
        "goal_met": met,
        "cores": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()} python {platform.python_version()}",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "details": details or {},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    ratio = f" = {result['ratio']:.0%} of {baseline_name} ({baseline_value:,.0f})" if baseline_name else ""
    print(f"{name}: {metric} {value:,.0f} {unit}{ratio}; goal {goal}: {'met' if met else 'NOT met'}", flush=True)
    return result
