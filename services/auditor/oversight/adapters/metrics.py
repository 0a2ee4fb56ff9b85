"""The evaluation as Prometheus metrics: the current month's score and indicator rates per department, its
rank, and the open findings per category."""

from __future__ import annotations

from prometheus_client import Gauge

from services.auditor.domain.findings import Category
from services.auditor.domain.scoring import Ranked

SCORE = Gauge("datashare_evaluation_score", "Evaluation score of the current month (0-100)", ["department"])
RANK = Gauge("datashare_evaluation_rank", "Rank of the department in the current month", ["department"])
RATE = Gauge(
    "datashare_evaluation_indicator_rate",
    "Rate (0-1) of an evaluation indicator in the current month; absent when it does not apply",
    ["department", "indicator"],
)
FINDINGS_OPEN = Gauge("datashare_findings_open", "Open Art. 24 findings", ["category"])


def show(ranked: list[Ranked], open_findings: dict[Category, int]) -> None:
    SCORE.clear()
    RANK.clear()
    RATE.clear()
    for r in ranked:
        code = r.figures.department_code
        SCORE.labels(code).set(r.figures.score)
        RANK.labels(code).set(r.rank)
        for i in r.figures.indicators:
            if i.rate is not None:
                RATE.labels(code, i.name).set(i.rate)
    for category in Category:
        FINDINGS_OPEN.labels(category.value).set(open_findings.get(category, 0))
