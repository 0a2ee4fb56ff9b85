"""Online browse (Art. 16, 在线浏览): a person of the consumer department reads the data a grant opens, a
page at a time, in the browser. The person states the purpose of the reading on the form (never taken from
the grant: the exchange checks it against the grant's, and the auditor finds reading for another purpose).
Every page is the exchange's own browse call with the person's token, the grant and that purpose — checked
and recorded there as a `DataAccessed` like an API call — so the page shows only the grant's items and rows,
masked as the grant says; the console only lays out what it answers."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from common.fields import Code
from services.console.clients import Refused, SignInNeeded, Unavailable, segment
from services.console.web import UNREAD_TIMEOUT_SECONDS, ConsoleDep, PersonDep, local_time, render

router = APIRouter()
FILTER_LENGTH = 100  # the exchange's bound of a browse filter
PURPOSE_LENGTH = 200  # characters of a stated purpose
POSITION = r"^[A-Za-z0-9_-]{1,400}$"  # the exchange's sealed `next`: passed back as it came
FOLLOWED = 16  # exchange pages one console page follows at most to fill itself: each reads 1/16 of the key ranges


@router.get("/browse")
async def browse(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    grant: Annotated[Code, Query()],
    purpose: Annotated[str, Query(max_length=PURPOSE_LENGTH)] = "",
    after: Annotated[str | None, Query(pattern=POSITION)] = None,
    contains: Annotated[str, Query(max_length=FILTER_LENGTH)] = "",
    items: Annotated[list[str], Query(max_length=200)] = [],  # noqa: B006
) -> Response:
    terms = await console.services.call("exchange", "GET", f"/grants/{segment(grant)}", person.token)
    chosen = [i for i in items if i in terms["items"]]
    stated = purpose.strip()
    shown = {"g": terms, "purpose": stated, "contains": contains.strip(), "chosen": chosen, "after": after}
    if not stated:  # nothing is read before the person says what for
        return render(request, "browse.html", page=None, first=None, following=None, **shown)
    params: list[tuple[str, str | int]] = [("contains", contains.strip())] if contains.strip() else []
    params += [("items", i) for i in chosen]
    headers = {"X-Grant-Id": terms["grant_id"], "X-Purpose": quote(stated, safe="")}
    try:
        page = await _read(console, person, terms, params, headers, after)
    except Refused as exc:
        # the page can say since when the department knows, of its own grant (another's notice is not its inbox's)
        if exc.status == 403 and terms["status"] == "REVOKED" and terms.get("consumer_code") == person.department_code:
            exc.on = await revocation_notice_day(console, person, terms)
        raise
    kept = [("grant", grant), ("purpose", stated), ("contains", contains.strip()), *(("items", i) for i in chosen)]
    first = "/browse?" + urlencode(kept)
    following = "/browse?" + urlencode([*kept, ("after", page["next"])]) if page["next"] else None
    return render(request, "browse.html", page=page, first=first, following=following, **shown)


async def _read(
    console: ConsoleDep,
    person: PersonDep,
    terms: dict,
    params: list[tuple[str, str | int]],
    headers: dict[str, str],
    after: str | None,
) -> dict:
    """A page of rows: the exchange's pages from `after` on until the rows fill a page or the data ends."""
    page: dict = {"items": [], "records": [], "next": after}
    for _ in range(FOLLOWED):  # each a recorded access; it stops on the rows shown, never on the rows hidden
        asked = [("limit", console.settings.page_size - len(page["records"])), *params]
        asked += [("after", page["next"])] if page["next"] else []
        part = await console.services.call(
            "exchange",
            "GET",
            f"/browse/{segment(terms['resource_code'])}/records",
            person.token,
            params=asked,
            headers=headers,
        )
        page = {"items": part["items"], "records": page["records"] + part["records"], "next": part["next"]}
        if page["next"] is None or len(page["records"]) >= console.settings.page_size:
            break
    return page


async def revocation_notice_day(console: ConsoleDep, person: PersonDep, terms: dict) -> str | None:
    """The day the department's inbox got the notice that the grant was revoked (the exchange keeps the
    reason on the grant, not the day); None when the notifier does not say (yet)."""
    params = {"kind": "GRANT_REVOKED", "resource": terms["resource_code"], "limit": 50}
    try:
        found = await console.services.call(
            "notifier",
            "GET",
            f"/inbox/{segment(person.department_code)}",
            person.token,
            params=params,
            timeout=UNREAD_TIMEOUT_SECONDS,
        )
    except (Refused, Unavailable, SignInNeeded):  # the refusal is shown without the day
        return None
    notices = [n for n in found["items"] if n.get("reference") == terms["grant_id"]]
    return local_time(notices[0]["created_at"], with_time=False) if notices else None
