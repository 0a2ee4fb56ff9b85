"""The city's dashboard, for the IT office and the leadership group: catalog entries by status and the
overdue ones, share requests by state and the decisions past their deadline, data volumes and freshness per
department, data accesses per consumer department, and over the last 12 months the accesses, the catalog
versions published (approved) and the data changes stored per month — each figure as a service answers it
(the catalog's search facets and overdue list, the exchange's resources and request tally, the auditor's access
counts and monthly totals), with charts. The services decide who may see the city's figures: anyone else gets
their refusal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.console import labels
from services.console.charts import Bars, Months, draw
from services.console.web import ConsoleDep, PersonDep, render

router = APIRouter()
STATUSES = tuple(labels.LABELS["status"])  # an entry version's states, in the catalog's order
NOT_IN_CATALOG = frozenset({"WITHDRAWN"})  # listed by status, left out of the entries' total
TREND_MONTHS = 12
IMAGES_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"


@dataclass(frozen=True)
class Volume:
    """What the exchange holds of one department's published resources."""

    provider_code: str
    name: str
    resources: int
    records: int
    last_change_at: str | None
    stale: int


def volumes(resources: list[dict[str, Any]], stale: list[dict[str, Any]], names: dict[str, str]) -> list[Volume]:
    """Per provider department: published resources, records and the latest change, most records first (the
    exchange keeps a withdrawn resource with `published` false: it is no longer shared, so not counted)."""
    late = {r["resource_code"] for r in stale}
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        if not r["published"]:
            continue
        by_provider.setdefault(r["provider_code"], []).append(r)
    found = [
        Volume(
            provider_code=code,
            name=names.get(code, ""),
            resources=len(held),
            records=sum(int(r["records"]) for r in held),
            last_change_at=max((r["last_change_at"] for r in held if r.get("last_change_at")), default=None),
            stale=sum(r["resource_code"] in late for r in held),
        )
        for code, held in by_provider.items()
    ]
    return sorted(found, key=lambda v: (-v.records, v.provider_code))


def entries_total(statuses: list[tuple[str, str, int]]) -> int:
    """The catalog's entries: every status counted but the withdrawn (no longer in the catalog)."""
    return sum(count for value, _, count in statuses if value not in NOT_IN_CATALOG)


def named(counts: dict[str, int], names: dict[str, str]) -> list[tuple[str, str, int]]:
    """(code, name, count) per department, largest first."""
    return sorted(((c, names.get(c, ""), n) for c, n in counts.items()), key=lambda t: (-t[2], t[0]))


@router.get("/city")
async def city(request: Request, console: ConsoleDep, person: PersonDep) -> Response:
    def call(service: str, path: str, **params: Any) -> Any:
        return console.services.call(service, "GET", path, person.token, params=params or None)

    catalog, overdue, tally, resources, stale, accesses, trends, departments = await asyncio.gather(
        # naming every status: oversight then counts every department's entries, not only the published
        console.services.call(
            "catalog", "GET", "/search", person.token, params=[("limit", 1), *(("status", s) for s in STATUSES)]
        ),
        call("catalog", "/overdue", limit=console.settings.page_size),
        call("exchange", "/requests/tally"),
        call("exchange", "/resources"),
        call("exchange", "/resources/stale"),
        call("auditor", "/evaluation/data-accesses"),
        call("auditor", "/evaluation/trends", months=TREND_MONTHS),
        call("directory", "/departments"),
    )
    names = {d["code"]: d["name"] for d in departments}
    statuses = [(f["value"], f["label"], int(f["count"])) for f in catalog["facets"].get("status", [])]
    held = volumes(resources, stale, names)
    late_decisions = named(tally["overdue_by_provider"], names)
    uses = named(accesses, names)
    request_states = [(s, labels.label(s, "request_status"), int(n)) for s, n in tally["by_status"].items()]
    charts = await draw(
        {
            "entries": Bars("目录条目（按状态）", [t[1] for t in statuses], [t[2] for t in statuses]),
            "requests": Bars("共享申请（按状态）", [t[1] for t in request_states], [t[2] for t in request_states]),
            "late": Bars(
                "逾期未决定的申请（按提供部门）",
                [n or c for c, n, _ in late_decisions],
                [k for _, _, k in late_decisions],
                "#c0392b",
            ),
            "volumes": Bars(
                "数据量（记录数，按提供部门）", [v.name or v.provider_code for v in held], [v.records for v in held]
            ),
            "trends": Months(
                "近12个月（按月）",
                [m["month"] for m in trends],
                {
                    "数据访问次数": [m["accesses"] for m in trends],
                    "发布的目录版本": [m["entries_published"] for m in trends],
                    "接收的数据变更": [m["changes_stored"] for m in trends],
                },
            ),
            "accesses": Bars(
                "数据访问次数（按使用部门）", [n or c for c, n, _ in uses], [k for _, _, k in uses], "#2f855a"
            ),
        }
    )
    response = render(
        request,
        "city.html",
        statuses=statuses,
        entries_total=entries_total(statuses),
        overdue=overdue,
        tally=tally,
        request_states=request_states,
        late_decisions=late_decisions,
        volumes=held,
        stale=stale,
        uses=uses,
        trends=trends,
        names=names,
        charts=charts,
    )
    response.headers["Content-Security-Policy"] = IMAGES_CSP  # the charts are SVG images in data: URIs
    return response
