"""Online browse (Art. 16, 在线浏览): a person of the consumer department reads the data a grant opens, a
page at a time, in the browser. Every page is the exchange's own browse call with the person's token, the
grant and its purpose — checked and recorded there as a `DataAccessed` like an API call — so the page shows
only the grant's items and rows, masked as the grant says; the console only lays out what it answers."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common.fields import Code
from services.console.clients import segment
from services.console.web import ConsoleDep, PersonDep, render

router = APIRouter()
FILTER_LENGTH = 100  # the exchange's bound of a browse filter
POSITION = r"^\d{1,6}\.\d{1,6}$"  # the exchange's `next`: passed back as it came


@router.get("/browse")
async def browse(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    grant: Annotated[Code, Query()],
    after: Annotated[str | None, Query(pattern=POSITION)] = None,
    contains: Annotated[str, Query(max_length=FILTER_LENGTH)] = "",
    items: Annotated[list[str], Query(max_length=200)] = [],  # noqa: B006
) -> Response:
    terms = await console.services.call("exchange", "GET", f"/grants/{segment(grant)}", person.token)
    params: list[tuple[str, str | int]] = [("limit", console.settings.page_size)]
    params += [("after", after)] if after else []
    params += [("contains", contains.strip())] if contains.strip() else []
    params += [("items", i) for i in items if i in terms["items"]]
    headers = {"X-Grant-Id": terms["grant_id"], "X-Purpose": quote(terms["purpose"], safe="")}
    page = await console.services.call(
        "exchange",
        "GET",
        f"/browse/{segment(terms['resource_code'])}/records",
        person.token,
        params=params,
        headers=headers,
    )
    chosen = [i for i in items if i in terms["items"]]
    kept = [("grant", grant), ("contains", contains.strip()), *(("items", i) for i in chosen)]
    first = "/browse?" + urlencode(kept)
    following = "/browse?" + urlencode([*kept, ("after", page["next"])]) if page["next"] else None
    return render(
        request,
        "browse.html",
        g=terms,
        page=page,
        after=after,
        contains=contains.strip(),
        chosen=chosen,
        first=first,
        following=following,
    )
