"""The directory's announcements of departments as the sharing lifecycle reads them: checked against the
directory's signature (as the revocation follower checks them, common.revocations), translated from Avro
into typed events here, at the edge, and handed to their handler.

Anyone able to write directory.events could otherwise rename a department on every printed application: an
unsigned event, or one the directory's keys do not verify, is dead-lettered with the reason."""

from __future__ import annotations

from functools import partial

from common.auth import verify_signed_event
from common.errors import RejectedEvent
from common.events import Event
from common.kafka import Handler
from common.keys import KeySource
from common.policy import Unauthenticated
from services.exchange.sharing import handlers
from services.exchange.sharing.commands import DepartmentNamed
from services.exchange.sharing.ports import DepartmentNames

DEPARTMENT_EVENTS = ("DepartmentRegistered", "DepartmentChanged")


def department_named(event: Event) -> DepartmentNamed:
    """DepartmentRegistered and DepartmentChanged both carry the code and the (new) name."""
    return DepartmentNamed(event.payload["department_code"], event.payload["name"], event.occurred_at)


def signed_by_directory(event: Event, keys: KeySource) -> None:
    """RejectedEvent unless the directory's token signing key (its JWKS) signed `event`."""
    if keys.verifier is None:  # the directory's JWKS not read yet: an outage, retried for as long as it lasts
        raise ConnectionError("the directory's token signing keys are not loaded yet")
    try:
        verify_signed_event(keys.verifier.keys, event)
    except Unauthenticated as exc:
        raise RejectedEvent("signature", f"not signed by the directory: {exc}") from None


async def _on_department(event: Event, keys: KeySource, departments: DepartmentNames) -> None:
    signed_by_directory(event, keys)
    await handlers.department_named(department_named(event), departments)


def directory_handlers(keys: KeySource, departments: DepartmentNames) -> dict[str, Handler]:
    """The consumer's handlers by event type."""
    on_department = partial(_on_department, keys=keys, departments=departments)
    return dict.fromkeys(DEPARTMENT_EVENTS, on_department)
