"""The catalog as everyone reads it: search in Chinese with the catalog's facets, an entry with its
versions, one version, and what changed between two."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common.fields import Code, Name, Position
from services.console.clients import segment
from services.console.labels import FACET_NAMES
from services.console.pages import shared
from services.console.web import ConsoleDep, PersonDep, render

router = APIRouter()
FacetValues = Annotated[list[Name], Query(max_length=50)]


@router.get("/catalog")
async def search(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    q: Annotated[Name, Query()] = "",
    provider_code: FacetValues = [],  # noqa: B006 — FastAPI copies query defaults
    category: FacetValues = [],  # noqa: B006
    share_type: FacetValues = [],  # noqa: B006
    share_method: FacetValues = [],  # noqa: B006
    update_cycle: FacetValues = [],  # noqa: B006
    status: FacetValues = [],  # noqa: B006
    offset: Annotated[Position, Query(le=100_000)] = 0,
) -> Response:
    chosen = {
        "provider_code": provider_code,
        "category": category,
        "share_type": share_type,
        "share_method": share_method,
        "update_cycle": update_cycle,
        "status": status,
    }
    limit = console.settings.page_size
    params: list[tuple[str, Any]] = [("q", q), ("offset", offset), ("limit", limit)]
    params += [(facet, value) for facet, values in chosen.items() for value in values]
    result = await console.services.call("catalog", "GET", "/search", person.token, params=params)
    return render(
        request,
        "search.html",
        q=q,
        result=result,
        chosen=chosen,
        facet_names=FACET_NAMES,
        offset=offset,
        limit=limit,
        base_query=[(k, v) for k, v in params if k not in ("offset", "limit")],
    )


@router.get("/catalog/entry")
async def entry(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    code: Annotated[Code, Query()],
    version: Annotated[Position | None, Query()] = None,
) -> Response:
    found = await console.services.call("catalog", "GET", f"/entries/{segment(code)}", person.token)
    shown = None
    if version is not None:
        shown = await console.services.call(
            "catalog", "GET", f"/entries/{segment(code)}/versions/{version}", person.token
        )
    in_force = found.get("in_force")
    offered = shared.ways(in_force["content"]) if in_force else shared.Ways(False, False)
    return render(request, "entry.html", entry=found, shown=shown, ways=offered)


@router.get("/catalog/diff")
async def diff(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    code: Annotated[Code, Query()],
    older: Annotated[Position, Query(alias="from")],
    newer: Annotated[Position, Query(alias="to")],
) -> Response:
    changes = await console.services.call(
        "catalog", "GET", f"/entries/{segment(code)}/diff", person.token, params={"from": older, "to": newer}
    )
    return render(request, "diff.html", code=code, older=older, newer=newer, changes=changes)
