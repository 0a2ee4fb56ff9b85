"""External publication (Art. 18): data obtained through the center is for use inside government; a consumer
that wants to publish some of it outside asks the provider's consent — which items, where, why — and the
provider's data administrator decides within working days, always with reasons. An approved consent changes
what the consumer's downloads of those items say ("internal use only" becomes the consent). Standard library
only: the adapters store consents and announce them on exchange.share-events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Protocol

from common.errors import Conflict, Invalid, NotFound
from common.policy import Principal, Target, authorize
from services.exchange.sharing.grants import Grant, GrantStatus

MAX_CONSENTS_LISTED = 200
INTERNAL_ONLY = "仅限政务内部使用"


class ConsentStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DENIED = "DENIED"


@dataclass(frozen=True)
class PublicationConsent:
    consent_id: str
    grant_id: str
    resource_code: str
    provider_code: str
    consumer_code: str
    items: tuple[str, ...]  # the data items to publish: the grant's, or some of them
    audience: str  # where: the website, the report, the public it goes to
    purpose: str  # why
    requested_by: str
    requested_on: date
    decide_by: date  # working days after the request (the platform's calendar, as share requests)
    status: ConsentStatus = ConsentStatus.PENDING
    reasons: str | None = None
    decided_by: str | None = None
    decided_on: date | None = None
    late: bool = False

    def covers(self, grant_id: str, resource_code: str, consumer_code: str, items: tuple[str, ...]) -> bool:
        """Whether this consent lets `consumer_code` publish every one of `items` of the resource obtained
        under the grant it was asked for (a consent is bound to its grant: another grant is other data)."""
        return (
            self.status is ConsentStatus.APPROVED
            and self.grant_id == grant_id
            and self.resource_code == resource_code
            and self.consumer_code == consumer_code
            and set(items) <= set(self.items)
        )


def covering(
    approved: list[PublicationConsent], grant_id: str, resource_code: str, consumer_code: str, items: tuple[str, ...]
) -> PublicationConsent | None:
    """The approved consent covering every item a file holds, if there is one. `items` must name every item
    whose values the file carries — the resource's key item too when the subject column holds it in clear."""
    return next((c for c in approved if c.covers(grant_id, resource_code, consumer_code, items)), None)


def notice_of(consent: PublicationConsent | None) -> str:
    """What a file (a download, an offline package) says of its use: internal only, or the consent."""
    if consent is None:
        return f"{INTERNAL_ONLY}（internal use only; publishing outside government needs the provider's consent)"
    return f"经提供部门同意可对外发布（公开发布同意书 {consent.consent_id}：{consent.audience}）"


@dataclass(frozen=True)
class AskConsent:
    grant_id: str
    items: tuple[str, ...]
    audience: str
    purpose: str


@dataclass(frozen=True)
class DecideConsent:
    consent_id: str
    approve: bool
    reasons: str


class ConsentNotFound(NotFound):
    pass


class ConsentDecided(Conflict):
    pass


class ConsentEvents(Protocol):
    """What consents announce on exchange.share-events; committed with the consent or not at all."""

    def consent_requested(self, consent: PublicationConsent) -> None: ...

    def consent_decided(self, consent: PublicationConsent) -> None: ...


class ConsentTransaction(Protocol):
    @property
    def events(self) -> ConsentEvents: ...

    async def grant(self, grant_id: str) -> Grant | None: ...

    async def consent(self, consent_id: str) -> PublicationConsent | None: ...

    async def put(self, consent: PublicationConsent, new: bool) -> None: ...


class ConsentStore(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[ConsentTransaction]:
        """A transaction: the consent and its event commit together."""
        ...

    async def consent(self, consent_id: str) -> PublicationConsent | None: ...

    async def consents(
        self, *, consumer_code: str | None, provider_code: str | None, offset: int, limit: int
    ) -> list[PublicationConsent]: ...

    async def approved(self, resource_code: str, consumer_code: str) -> list[PublicationConsent]: ...


class Approved(Protocol):
    async def approved(self, resource_code: str, consumer_code: str) -> list[PublicationConsent]:
        """The approved consents of a consumer for a resource (those to try for covering a file)."""
        ...


class Today(Protocol):
    def today(self) -> date: ...


class WorkingDays(Protocol):
    def add_working_days(self, start: date, days: int) -> date: ...


@dataclass(frozen=True)
class Consents:
    """What the consent handlers need, built once by the exchange's bootstrap."""

    store: ConsentStore
    clock: Today
    calendar: WorkingDays
    decision_days: int = 10
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)


def _text(field_name: str, value: str) -> str:
    if not value.strip():
        raise Invalid(field_name, f"{field_name} is required")
    return value.strip()


async def ask(command: AskConsent, principal: Principal, consents: Consents) -> PublicationConsent:
    """The consumer's data administrator asks to publish items it holds under a grant of its department."""
    authorize(principal, "exchange.request.file", Target(department_code=principal.department_code))
    today = consents.clock.today()
    async with consents.store() as tx:
        grant = await tx.grant(command.grant_id)
        if grant is None or grant.consumer_code != principal.department_code:
            raise NotFound("grant_id", "no grant of your department has this id")
        if grant.status is not GrantStatus.ACTIVE:
            raise Conflict("grant_id", f"the grant is {grant.status.value}: no consent is asked under it")
        if today > grant.valid_to:
            raise Conflict("grant_id", f"the grant expired on {grant.valid_to.isoformat()}: no consent is asked")
        items = command.items or grant.items
        outside = [i for i in items if i not in grant.items]
        if outside:
            raise Invalid("items", f"items outside the grant: {', '.join(outside)}")
        consent = PublicationConsent(
            consent_id=f"{today:%Y%m%d}-{consents.new_id()[:10]}",
            grant_id=grant.grant_id,
            resource_code=grant.resource_code,
            provider_code=grant.provider_code,
            consumer_code=grant.consumer_code,
            items=tuple(i for i in grant.items if i in items),
            audience=_text("audience", command.audience),
            purpose=_text("purpose", command.purpose),
            requested_by=principal.subject,
            requested_on=today,
            decide_by=consents.calendar.add_working_days(today, consents.decision_days),
        )
        await tx.put(consent, new=True)
        tx.events.consent_requested(consent)
    return consent


async def decide(command: DecideConsent, principal: Principal, consents: Consents) -> PublicationConsent:
    """The provider's data administrator consents or refuses, always with reasons; a decision is final. A late
    one is still taken, and marked late."""
    today = consents.clock.today()
    async with consents.store() as tx:
        consent = await tx.consent(command.consent_id)
        if consent is None:
            raise ConsentNotFound("consent_id", "no such publication consent")
        authorize(principal, "exchange.request.decide", Target(department_code=consent.provider_code))
        if consent.status is not ConsentStatus.PENDING:
            raise ConsentDecided("consent_id", f"the consent is {consent.status.value} already; a decision is final")
        decided = replace(
            consent,
            status=ConsentStatus.APPROVED if command.approve else ConsentStatus.DENIED,
            reasons=_text("reasons", command.reasons),
            decided_by=principal.subject,
            decided_on=today,
            late=today > consent.decide_by,
        )
        await tx.put(decided, new=False)
        tx.events.consent_decided(decided)
    return decided


async def get(consent_id: str, principal: Principal, consents: Consents) -> PublicationConsent:
    consent = await consents.store.consent(consent_id)
    if consent is None:
        raise ConsentNotFound("consent_id", "no such publication consent")
    side = consent.consumer_code if principal.department_code == consent.consumer_code else consent.provider_code
    authorize(principal, "exchange.request.read", Target(department_code=side))
    return consent


async def listed(
    side: str | None, principal: Principal, consents: Consents, offset: int, limit: int
) -> list[PublicationConsent]:
    """A department's consents as the consumer or the provider; oversight (side None) every one."""
    if side is None:
        authorize(principal, "exchange.request.read", Target(department_code="oversight only"))
        return await consents.store.consents(consumer_code=None, provider_code=None, offset=offset, limit=limit)
    own = principal.department_code
    return await consents.store.consents(
        consumer_code=own if side == "consumer" else None,
        provider_code=own if side == "provider" else None,
        offset=offset,
        limit=min(limit, MAX_CONSENTS_LISTED),
    )
