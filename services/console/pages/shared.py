"""What the sharing pages (applications, subscriptions, grants, consents) have in common: the channels, the
day in Beijing, one page of a department's list, the ways an entry offers another department, and a form
posted twice."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fastapi import Request
from starlette.responses import Response

from common import limits
from services.console import forms
from services.console.clients import Refused
from services.console.refusals import explain
from services.console.web import CHINA, ConsoleDep, PersonDep, redirect, render

CHANNELS = ("API", "FILE_DOWNLOAD", "ONLINE_BROWSE", "OFFLINE")


def today() -> date:
    return datetime.now(CHINA).date()


def use_terms(form: forms.Form) -> dict[str, Any]:
    """What a subscription and an application both state: the resource, its items, the purpose, the channels,
    the period's end and, where named, the consumer system."""
    body: dict[str, Any] = {
        "resource_code": forms.text(form, "resource_code", limits.CODE_LENGTH),
        "items": forms.names(forms.text(form, "items")),
        "purpose": forms.text(form, "purpose"),
        "channels": [c for c in form.getlist("channels") if c in CHANNELS],
        "valid_to": forms.text(form, "valid_to", 10),
    }
    if system := forms.text(form, "consumer_system", limits.CODE_LENGTH):
        body["consumer_system"] = system
    return body


async def one_page(
    console: ConsoleDep, person: PersonDep, path: str, params: dict[str, Any], offset: int
) -> tuple[list[dict[str, Any]], bool]:
    """One page of an exchange list (newest first) and whether more follow: one more than shown is asked."""
    limit = console.settings.page_size
    asked = params | {"offset": offset, "limit": limit + 1}
    found = await console.services.call("exchange", "GET", path, person.token, params=asked)
    return found[:limit], len(found) > limit


async def both_sides(
    request: Request, console: ConsoleDep, person: PersonDep, path: str, template: str, *sides: tuple[str, str, int]
) -> Response:
    """A page of a department's grants or consents on both sides, each paged on its own: `sides` are (the
    name the template lists them by, the exchange's side, the offset)."""
    shown: dict[str, Any] = {}
    for name, side, offset in sides:
        rows, more = await one_page(console, person, path, {"as": side}, offset)
        shown |= {name: rows, f"more_{name}": more, f"{name}_from": offset}
    return render(request, template, limit=console.settings.page_size, **shown)


@dataclass(frozen=True)
class Ways:
    """What another department can do about an entry, as the exchange would accept it."""

    subscribe: bool  # POST /subscriptions: some item is shared unconditionally
    apply: bool  # POST /requests: some item is shared on conditions (the exchange refuses all-unconditional)


def ways(content: dict[str, Any]) -> Ways:
    """The exchange's rule (sharing/handlers.py `subscribe`, `file_request`; requests.py `refusal`) over the
    entry in force: a NOT_SHARED entry or one without a confidentiality review opens neither; an item shares
    as its own type, else as the entry's. tests/unit/test_console_subscriptions.py holds it to the handlers."""
    entry_type = content.get("share_type")
    if entry_type == "NOT_SHARED" or not content.get("confidentiality_review"):
        return Ways(False, False)
    types = {i.get("share_type") or entry_type for i in content.get("data_items", [])}
    return Ways("UNCONDITIONAL" in types, "CONDITIONAL" in types)


# -- a form posted twice (a double click): the second waits for the first and finds what it made ------------

FORM_ID = "once"
KEPT = 2000  # form ids remembered per console process


def form_id() -> str:
    """A form's once-only id, put in the form when it is shown."""
    return secrets.token_urlsafe(16)


class Once:
    """The forms this console process is handling or has handled, by their once-only id: a repeat waits for
    the first submit, then answers what it made. Another replica does not know them: the pages look for the
    thing made (a same-terms subscription, a same consent asked) in the exchange besides."""

    def __init__(self) -> None:
        self.locks: OrderedDict[str, asyncio.Lock] = OrderedDict()
        self.made: OrderedDict[str, str] = OrderedDict()

    @asynccontextmanager
    async def first(self, once: str) -> AsyncIterator[dict[str, str]]:
        """Hold the form's id while it is handled; yields {"made": id} if a submit of it made something."""
        lock = self.locks.setdefault(once, asyncio.Lock())
        self.locks.move_to_end(once)
        while len(self.locks) > KEPT:
            self.locks.popitem(last=False)
        async with lock:
            found = {"made": self.made[once]} if once in self.made else {}
            yield found
            if found.get("made") and once not in self.made:
                self.made[once] = found["made"]
                while len(self.made) > KEPT:
                    self.made.popitem(last=False)


ONCE = Once()


async def made_once(
    form: forms.Form, made_already: Callable[[], Awaitable[str | None]], make: Callable[[], Awaitable[str]]
) -> str:
    """The id of what the form made: made now, or by an earlier submit of the same form (this process's, or
    found by `made_already` in the exchange). A refusal of `make` is raised, and the form may be sent again."""
    once = forms.text(form, FORM_ID, 64) or form_id()
    async with ONCE.first(once) as found:
        if not found:
            found["made"] = await made_already() or ""
        if not found["made"]:
            found["made"] = await make()
    return found["made"]


# -- a request's or a consent's page, where its provider decides ----------------------------------------------


def _nothing(_shown: dict[str, Any]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class DecisionPage:
    template: str
    name: str  # what the template calls the request or consent
    decided: Callable[[dict[str, Any]], str | None]  # the decision it carries: APPROVED, DENIED or None
    more: Callable[[dict[str, Any]], dict[str, Any]] = _nothing  # what else the page shows of it


FINAL = re.compile(r"the (?:request|consent) is [A-Z_]+ already; a decision is final")


async def decision_page(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    path: str,
    page: DecisionPage,
    error: Refused | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    """A request or consent, with the decision form while
    it awaits this department's data administrator; a refused decision is worded and what was typed kept."""
    shown = await console.services.call("exchange", "GET", path, person.token)
    deciding = (
        shown["status"] == "PENDING"
        and shown["provider_code"] == person.department_code
        and person.has("data_administrator")
    )
    return render(
        request,
        page.template,
        200 if error is None else error.status,
        deciding=deciding,
        error=explain(error) if error is not None else None,
        typed=typed or {},
        today=today().isoformat(),
        **{page.name: shown},
        **page.more(shown),
    )


async def decide(
    request: Request,
    console: ConsoleDep,
    person: PersonDep,
    path: str,
    body: dict[str, Any],
    page: DecisionPage,
    typed: dict[str, str],
    shown_at: str,
) -> Response:
    """Post a decision and show it; refused, the page again with the refusal and what was typed. A repeat
    (a second click after the first went through: the same decision is final already) shows the decision made;
    another decision than the one made is the refusal."""
    try:
        await console.services.call("exchange", "POST", f"{path}/decision", person.token, json=body)
    except Refused as exc:
        if exc.status not in (409, 422):
            raise
        if not (FINAL.fullmatch(exc.rule or "") and await _made(console, person, path, page) == body["decision"]):
            return await decision_page(request, console, person, path, page, exc, typed)
    return redirect(request, shown_at)


async def _made(console: ConsoleDep, person: PersonDep, path: str, page: DecisionPage) -> str | None:
    return page.decided(await console.services.call("exchange", "GET", path, person.token))
