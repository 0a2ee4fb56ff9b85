"""One handler per exchange command or event."""

from __future__ import annotations

from common.errors import NotFound, RejectedEvent
from common.events import Event
from common.policy import AccessDenied, Principal, Target, Unauthenticated, authorize
from services.exchange.domain.records import DataChange, SubjectRecord, apply_change
from services.exchange.ports import RESOURCE_CHANGES, Credentials, UnitOfWork

PRODUCER = "exchange"


class RecordNotFound(NotFound):
    pass


def check_sender(event: Event, change: DataChange, credentials: Credentials) -> None:
    """Only the provider's own adapter reports its data (Art. 8), proven by the token it sent along,
    valid when the broker received the message."""
    if event.appended_at is None:
        raise RejectedEvent("sender", "data changes need broker-assigned timestamps (a LogAppendTime topic)")
    try:
        principal = credentials.principal(event.credentials, event.appended_at)
        authorize(principal, "exchange.data.write", Target(department_code=change.provider_code))
    except (Unauthenticated, AccessDenied) as exc:
        raise RejectedEvent("sender", str(exc)) from None


async def ingest_change(event: Event, uow: UnitOfWork, credentials: Credentials) -> None:
    """Store a department's reported change: history always, current state if it is newer."""
    change = DataChange.from_payload(event.payload)
    check_sender(event, change, credentials)
    async with uow() as tx:
        if await tx.change_seen(change.change_id):
            return
        updated = apply_change(await tx.record(change.resource_code, change.subject_key), change)
        await tx.add_history(change, applied=updated is not None)
        if updated is None:
            return
        await tx.put_record(updated)
        sequence = await tx.next_sequence(change.resource_code)
        payload = {
            "resource_code": change.resource_code,
            "provider_code": change.provider_code,
            "sequence": sequence,
            "change_id": change.change_id,
            "operation": change.operation.value,
            "changed_at": change.changed_at,
        }
        tx.emit(RESOURCE_CHANGES, Event("ResourceChanged", change.resource_code, payload, PRODUCER))


async def current_record(resource_code: str, subject_key: str, principal: Principal, uow: UnitOfWork) -> SubjectRecord:
    record = await uow.record(resource_code, subject_key.upper())
    if record is None or record.deleted:
        raise RecordNotFound("subject_key", f"resource {resource_code} holds no record for this subject")
    authorize(principal, "exchange.record.read", Target(department_code=record.provider_code))
    return record


async def record_history(resource_code: str, subject_key: str, principal: Principal, uow: UnitOfWork) -> list[dict]:
    history = await uow.history(resource_code, subject_key.upper())
    for change in history:
        authorize(principal, "exchange.record.read", Target(department_code=change["provider_code"]))
    return history
