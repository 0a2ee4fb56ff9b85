"""What the printed application (需求申请表) of a share request shows, in words: the request as the consumer
department filed it, with the departments' names as the directory announced them. Standard library only;
form.py lays it out as a PDF."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from services.exchange.sharing.grants import RowScope
from services.exchange.sharing.requests import ShareRequest

NAME_NOT_KNOWN = "（单位名称尚未获知，以统一社会信用代码为准）"
NO_CONTACT = "（未登记）"


@dataclass(frozen=True)
class ApplicationForm:
    """What the paper form shows: the request as the consumer department filed it."""

    request_id: str
    applicant_name: str  # the consumer department
    applicant_code: str  # its unified social credit code
    applicant_person: str
    contact: str
    provider_name: str
    provider_code: str
    resource_code: str
    resource_name: str
    data_items: tuple[str, ...]
    scope: str  # the row scope, in words
    purpose: str
    period_from: date
    period_to: date
    channels: tuple[str, ...]  # Channel values; other words are printed as given
    consumer_system: str | None  # None: any system of the applicant department
    applied_on: date
    decide_by: date
    unmasked: tuple[str, ...] = ()  # sensitive items asked for in clear (明文); the others are masked


def application_form(
    request: ShareRequest, department_names: Mapping[str, str], resource_name: str | None
) -> ApplicationForm:
    """The form of `request` as applied for (not as decided). A department whose name the exchange has not
    learnt from the directory yet is printed by its code, saying so: the form never waits for a name."""
    asked = request.asked
    return ApplicationForm(
        request_id=request.request_id,
        applicant_name=department_name(request.consumer_code, department_names),
        applicant_code=request.consumer_code,
        applicant_person=request.requested_by,
        contact=NO_CONTACT,
        provider_name=department_name(request.provider_code, department_names),
        provider_code=request.provider_code,
        resource_code=request.resource_code,
        resource_name=resource_name or request.resource_code,
        data_items=asked.items,
        scope=scope_in_words(asked.scope),
        purpose=request.purpose,
        period_from=asked.valid_from,
        period_to=asked.valid_to,
        channels=tuple(sorted(request.channels)),
        consumer_system=request.consumer_system,
        applied_on=request.requested_on,
        decide_by=request.decide_by,
        unmasked=tuple(sorted(asked.unmasked)),
    )


def department_name(code: str, names: Mapping[str, str]) -> str:
    return names.get(code) or f"{code}{NAME_NOT_KNOWN}"


def scope_in_words(scope: RowScope) -> str:
    """The row scope as the form states it. Named subjects are counted, never listed: an application may
    name a thousand citizens, whose ID numbers have no place on a form that is printed and passed around."""
    if scope.everything:
        return "全部主体（不限地区，不限具体主体）"
    parts = []
    if scope.regions:
        parts.append(f"登记在行政区划代码 {'、'.join(scope.regions)} 范围内的主体")
    if scope.subjects:
        parts.append(f"申请单位列明的 {len(scope.subjects)} 个主体（名单随申请在平台存档，本表不列出）")
    return "，且限于".join(parts)
