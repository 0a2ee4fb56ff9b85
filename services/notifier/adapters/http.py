"""Notifier REST routes: a department's inbox (the IT office sees every department's), its preferences, and the
reminders scheduled for it. The guard applies the rule's role part, `authorize` the department part."""

from __future__ import annotations

from dataclasses import fields
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from common.fields import Code
from common.guard import Guard
from common.paging import Page, PageOf
from common.policy import Principal, Role, Target, authorize
from services.notifier import handlers
from services.notifier.domain.notifications import (
    FOLLOWED_BY_IT_OFFICE,
    Channel,
    Delivery,
    Notification,
    NotificationKind,
)
from services.notifier.domain.preferences import Preferences, defaults
from services.notifier.domain.reminders import Deadline
from services.notifier.ports import InboxQuery, UnitOfWork


async def provided_uow(request: Request) -> UnitOfWork:
    """The notifier's unit of work, built once by its bootstrap (main.py puts it on the app)."""
    uow: UnitOfWork | None = getattr(request.app.state, "notifier_uow", None)
    if uow is None:
        raise RuntimeError("the notifier's routes are used without its bootstrap")
    return uow


async def provided_notifier(request: Request) -> handlers.Notifier:
    notifier: handlers.Notifier | None = getattr(request.app.state, "notifier", None)
    if notifier is None:
        raise RuntimeError("the notifier's routes are used without its bootstrap")
    return notifier


UowDep = Annotated[UnitOfWork, Depends(provided_uow)]
NotifierDep = Annotated[handlers.Notifier, Depends(provided_notifier)]
InboxReader = Annotated[Principal, Depends(Guard("notifier.inbox.read"))]
PreferenceSetter = Annotated[Principal, Depends(Guard("notifier.preferences.manage"))]


class NotificationView(BaseModel):
    notification_id: str = Field(description="the notice's idempotency key: the same notice always has the same")
    recipient_code: str
    kind: NotificationKind
    title: str
    body: str
    reference: str | None
    resource_code: str | None
    due_on: date | None
    created_at: datetime
    read: bool
    channels: list[Channel]
    audience: list[Role] = Field(
        description="the roles of the recipient department it is for; empty: everyone in the department"
    )
    fallback: str | None = Field(
        default=None,
        description="set when the notice went to the inbox because the channels its recipient chose could not "
        "carry it (webhooks only, and no active endpoint): says why",
    )


class PreferencesView(BaseModel):
    department_code: str
    kinds: list[NotificationKind] | None = Field(description="the kinds the department hears of; null: every kind")
    channels: list[Channel]
    delivery: Delivery


class PreferencesBody(BaseModel):
    kinds: list[NotificationKind] | None = Field(
        default=None, max_length=len(NotificationKind), description="null: every kind, those added later included"
    )
    channels: list[Channel] = Field(default_factory=lambda: list(Channel), max_length=len(Channel))
    delivery: Delivery = Delivery.IMMEDIATE


class ReminderView(BaseModel):
    reminder_id: str
    deadline: Deadline
    recipient_code: str  # the department that owes the step
    resource_code: str
    reference: str
    due_on: date
    remind_at: datetime
    about_code: str | None = None  # a reminder of what waited: the department it is about
    since: date | None = None  # ... and the day the wait began (a rectification report handed in)


def _view(n: Notification, principal: Principal) -> NotificationView:
    """The notice as `principal` sees it: read if she read it (her colleagues' reading is theirs)."""
    shown = {f.name: getattr(n, f.name) for f in fields(n) if f.name != "read_by"}  # who read it is not shown
    read = n.read_for(handlers.reader_of(principal))
    return NotificationView.model_validate(
        shown | {"read": read, "channels": sorted(n.channels), "audience": sorted(n.audience)}
    )


def _preferences_view(p: Preferences) -> PreferencesView:
    kinds = None if p.kinds is None else sorted(p.kinds)
    return PreferencesView(
        department_code=p.department_code, kinds=kinds, channels=sorted(p.channels), delivery=p.delivery
    )


def _own(principal: Principal, rule: str, department_code: str) -> str:
    code = department_code.upper()
    authorize(principal, rule, Target(department_code=code))
    return code


router = APIRouter(tags=["inbox"])


@router.get("/inbox", response_model=Page[NotificationView], summary="Every department's notices (IT office)")
async def all_inboxes(
    principal: InboxReader,
    uow: UowDep,
    paging: PageOf,
    unread: bool = False,
    kind: NotificationKind | None = None,
    resource: Annotated[Code | None, Query(description="a resource code")] = None,
    recipient: Annotated[Code | None, Query(description="one department's")] = None,
) -> Page[NotificationView]:
    """The IT office reads every department's notices (all of them, whatever channels a department chose);
    anyone else only its own department's: a person those for her roles and for the whole department, a
    machine all of them."""
    if recipient is not None:
        department: str | None = _own(principal, "notifier.inbox.read", recipient)
    elif Role.IT_OFFICE_OPERATOR in principal.roles:
        department = None
    else:
        department = principal.department_code
    roles = handlers.roles_reading(principal, department)
    own = None
    if department is None:  # her own department's notices as `?recipient=` shows them, every other's whole
        own = principal.department_code
        roles = handlers.roles_reading(principal, own)
    reader = handlers.reader_of(principal)
    query = InboxQuery(
        department, unread, kind, resource, paging.offset, paging.limit, roles=roles, own_code=own, reader=reader
    )
    found, total = await uow.inbox(query)
    return Page.of([_view(n, principal) for n in found], total, paging)


@router.get(
    "/inbox/{department_code}", response_model=Page[NotificationView], summary="A department's notices, newest first"
)
async def inbox(
    department_code: Code,
    principal: InboxReader,
    uow: UowDep,
    paging: PageOf,
    unread: bool = False,
    kind: NotificationKind | None = None,
    resource: Annotated[Code | None, Query(description="a resource code")] = None,
) -> Page[NotificationView]:
    """A person reads her own department's notices for her roles and those for the whole department; a machine,
    and the IT office another department's, all of them."""
    code = _own(principal, "notifier.inbox.read", department_code)
    roles = handlers.roles_reading(principal, code)
    reader = handlers.reader_of(principal)
    query = InboxQuery(code, unread, kind, resource, paging.offset, paging.limit, roles=roles, reader=reader)
    found, total = await uow.inbox(query)
    return Page.of([_view(n, principal) for n in found], total, paging)


@router.post("/inbox/{department_code}/{notification_id}/read", status_code=204, summary="Mark a notice read")
async def read(department_code: Code, notification_id: Code, principal: InboxReader, uow: UowDep) -> None:
    code = _own(principal, "notifier.inbox.read", department_code)
    reader = handlers.reader_of(principal)
    await handlers.mark_read(code, notification_id, uow, reader, handlers.roles_reading(principal, code))


@router.get(
    "/preferences/{department_code}", response_model=PreferencesView, summary="What a department hears, and how"
)
async def preferences(department_code: Code, principal: InboxReader, uow: UowDep) -> PreferencesView:
    code = _own(principal, "notifier.inbox.read", department_code)
    return _preferences_view(await uow.preferences_of(code) or defaults(code))


@router.put("/preferences/{department_code}", response_model=PreferencesView, summary="Choose kinds and channels")
async def set_preferences(
    department_code: Code, body: PreferencesBody, principal: PreferenceSetter, notifier: NotifierDep
) -> PreferencesView:
    code = _own(principal, "notifier.preferences.manage", department_code)
    kinds = None if body.kinds is None else frozenset(body.kinds)
    chosen = Preferences(code, kinds, frozenset(body.channels), body.delivery)
    await handlers.choose_preferences(chosen, notifier)
    return _preferences_view(chosen)


@router.get(
    "/reminders/{department_code}", response_model=list[ReminderView], summary="Reminders scheduled, soonest due first"
)
async def reminders(
    department_code: Code, principal: InboxReader, uow: UowDep, notifier: NotifierDep
) -> list[ReminderView]:
    """The IT office's also lists the steps of other departments it follows (a finding's rectification), which
    its operators are reminded of with the department (`recipient_code`)."""
    code = _own(principal, "notifier.inbox.read", department_code)
    followed = list(FOLLOWED_BY_IT_OFFICE) if code == notifier.it_office_code else []
    kept = await uow.reminders_of(code, followed)
    shown = handlers.reminders_shown(kept, handlers.roles_reading(principal, code), code)
    return [ReminderView.model_validate(r, from_attributes=True) for r in shown]
