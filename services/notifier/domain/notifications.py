"""Notifications the measures call for (Art. 11, 15, 17): providers hear of requests, applicants of
decisions, the IT office of disputes, both parties of rulings, consumers of their grants, compilers of
returned entries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from common.policy import Role
from services.notifier.domain.changes import ChangeBatch
from services.notifier.domain.changes import described as changes_described
from services.notifier.domain.events import (
    AuditFindingEscalated,
    AuditFindingRaised,
    AuditFindingReported,
    AuditFindingReportRejected,
    CatalogEntryOverdue,
    CatalogEntryPublished,
    CatalogEntryReturned,
    CatalogEntrySubmitted,
    CatalogEntryWithdrawn,
    Decision,
    Dispute,
    DisputeEscalated,
    DisputeRuled,
    DuplicateSourceFlagged,
    FindingCategory,
    GrantEnded,
    GrantIssued,
    GrantRevoked,
    OverdueKind,
    OverdueStep,
    PublicationConsentDecided,
    PublicationConsentRequested,
    RulingLevel,
    RulingOutcome,
    ShareDecided,
    ShareDecisionOverdue,
    ShareDemandFiled,
    ShareDemandMatched,
    ShareDemandUnmatched,
    ShareDemandUnmeetable,
    ShareDisputed,
    ShareRefused,
    ShareRequested,
)
from services.notifier.domain.reminders import DEADLINE_NAMES, Deadline, Reminder


class NotificationKind(StrEnum):
    # Each kind is also a symbol of NotificationIssued's `kind` enum (schemas/avro): add new ones at the end.
    RESOURCE_CHANGED = "RESOURCE_CHANGED"
    REQUEST_ARRIVED = "REQUEST_ARRIVED"
    REQUEST_DECIDED = "REQUEST_DECIDED"
    DEADLINE_APPROACHING = "DEADLINE_APPROACHING"
    DEADLINE_PASSED = "DEADLINE_PASSED"
    CATALOG_EVENT = "CATALOG_EVENT"
    OTHER = "OTHER"
    DISPUTE_RAISED = "DISPUTE_RAISED"
    DISPUTE_RULED = "DISPUTE_RULED"
    GRANT_ISSUED = "GRANT_ISSUED"
    GRANT_REVOKED = "GRANT_REVOKED"
    GRANT_ENDED = "GRANT_ENDED"
    DISPUTE_ESCALATED = "DISPUTE_ESCALATED"
    ENTRY_CHANGED = "ENTRY_CHANGED"  # the entry of a resource one holds changed, got stricter or was withdrawn
    DUPLICATE_SOURCE = "DUPLICATE_SOURCE"
    DEMAND_EVENT = "DEMAND_EVENT"
    DIGEST = "DIGEST"


class Channel(StrEnum):
    INBOX = "INBOX"
    KAFKA = "KAFKA"  # the department's own topic, notifier.notices.<department code>
    WEBHOOK = "WEBHOOK"


class Delivery(StrEnum):
    IMMEDIATE = "IMMEDIATE"
    DAILY_DIGEST = "DAILY_DIGEST"


ALL_CHANNELS = frozenset(Channel)

# Whom in the recipient department a notice is for: the directory's roles of the people who act on it (the
# measures' division of work), or nobody in particular (the department as a whole). The REST inbox shows a
# person the notices for her roles and the department-wide ones; systems (adapters, webhooks, the
# department's topic) get every notice of their department.
Audience = frozenset[Role]
DEPARTMENT: Audience = frozenset()  # everyone in the department: an Art. 24 finding, a digest
COMPILERS: Audience = frozenset({Role.CATALOG_COMPILER})  # 编制: returned and approved entries
REVIEWERS: Audience = frozenset({Role.CATALOG_REVIEWER})  # 审核: entries submitted for review
CATALOG_STAFF: Audience = COMPILERS | REVIEWERS  # the department's catalog (Art. 9-12): its upkeep and sources
# 数据管理员 (Art. 22): decides requests and consents, applies, disputes, subscribes, holds the grants
DATA_ADMINISTRATORS: Audience = frozenset({Role.DATA_ADMINISTRATOR})
DEMAND_FILERS: Audience = CATALOG_STAFF | DATA_ADMINISTRATORS  # whoever may file a share demand (Art. 10, 14)
# a grant opens data to anyone in the consumer department (Art. 15, 16: any of its people reads through the
# API channel under it), so that it was issued, revoked or ended is the whole department's concern
GRANT_USERS: Audience = DEPARTMENT
IT_OFFICE: Audience = frozenset({Role.IT_OFFICE_OPERATOR})  # coordinates disputes, sources, demands, grading
# the IT office's auditors keep the access trail and the departments' figures (Art. 19, 23, 24): they hear what
# goes on record against a department (a finding raised, escalated to 通报批评) and what ends a dispute
AUDITORS: Audience = frozenset({Role.AUDITOR})
OVERSEERS: Audience = IT_OFFICE | AUDITORS
LEADERSHIP: Audience = frozenset({Role.LEADERSHIP_MEMBER})  # the final word on escalated disputes


def concerns(audience: Audience, roles: frozenset[Role]) -> bool:
    """Whether a notice for `audience` is for a person with `roles` in its recipient department: one for the
    whole department is everyone's, another hers when it names one of her roles. The one definition: the
    inbox's database query is derived from it (audiences_concerning)."""
    return not audience or bool(audience & roles)


def every_audience() -> list[Audience]:
    """Each audience a notice can have: every set of the directory's roles (64 with its 6 roles)."""
    roles = sorted(Role)
    return [frozenset(r for bit, r in enumerate(roles) if mask >> bit & 1) for mask in range(1 << len(roles))]


def audiences_concerning(roles: frozenset[Role]) -> list[Audience]:
    """The audiences of the notices a person with `roles` sees, by `concerns`: what a store that cannot test
    set intersection by index (the local database) looks up by value."""
    return [audience for audience in every_audience() if concerns(audience, roles)]


READERS_KEPT = 1_000  # readers a notice remembers: more than any department's people and machines


@dataclass
class Notification:
    """One notice to one department. `notification_id` is its idempotency key: built from what caused it (the
    event's id, the batch of changes, the deadline), so an event handled again gives the same key."""

    notification_id: str
    recipient_code: str
    kind: NotificationKind
    title: str
    body: str
    reference: str | None = None
    due_on: date | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    read: bool = False  # read before read state was kept per reader: read for everyone
    resource_code: str | None = None
    channels: frozenset[Channel] = ALL_CHANNELS  # where it goes, by the recipient's preferences
    in_digest: bool = False  # pushed channels get it in the next daily digest, not at once
    fallback: str | None = None  # why it went to the inbox, which its recipient did not choose
    # whose roles in the recipient department it is for (DEPARTMENT, empty: everyone's); required, so that no
    # rule leaves it out and tells the whole department by default
    audience: Audience = field(kw_only=True)
    # who has read it (reader_of: a person or a machine), each for herself: a department-wide notice one of
    # its people read is still unread for the others; the first READERS_KEPT are kept
    read_by: frozenset[str] = frozenset()

    def concerns(self, roles: frozenset[Role]) -> bool:
        """A person with `roles` in the recipient department sees it in the inbox."""
        return concerns(self.audience, roles)

    def read_for(self, reader: str | None) -> bool:
        return self.read or (reader is not None and reader in self.read_by)

    def to_inbox(self, reason: str) -> Notification:
        """The notice kept in the inbox after all: the channels its recipient chose cannot carry it."""
        return replace(self, channels=self.channels | {Channel.INBOX}, fallback=reason)

    def issued_payload(self) -> dict[str, Any]:
        return {
            "notification_id": self.notification_id,
            "recipient_code": self.recipient_code,
            "kind": self.kind.value,
            "title": self.title,
            "body": self.body,
            "reference": self.reference,
            "due_on": self.due_on,
            "resource_code": self.resource_code,
            "audience": sorted(r.value for r in self.audience),  # empty: the whole department
        }


Rule = Callable[[str, Any], list[Notification]]  # (event id, typed event) -> whom to tell what


def share_requested(event_id: str, e: ShareRequested) -> list[Notification]:
    body = (
        f"申请部门 {e.consumer_code} 申请使用资源 {e.resource_code}（申请编号 {e.request_id}）："
        f"数据项 {_items(e.data_items)}；范围：{e.scope}；期限：{_day(e.period_from)} 至 {_day(e.period_to)}；"
        f"用途：{e.purpose}。请于 {e.decide_by.isoformat()} 前答复。"
    )
    return [
        _to(
            e.provider_code,
            event_id,
            NotificationKind.REQUEST_ARRIVED,
            f"数据共享申请待答复：{e.resource_code}",
            body,
            about=e.request_id,
            audience=DATA_ADMINISTRATORS,  # who decides a request (Art. 15, 22)
            resource=e.resource_code,
            due_on=e.decide_by,
        )
    ]


def share_refused(event_id: str, e: ShareRefused) -> list[Notification]:
    title = f"共享申请不予受理：{e.resource_code}"
    body = f"资源 {e.resource_code} 不予共享，申请（编号 {e.request_id}）已被拒绝。依据：{e.legal_basis}"
    return [
        _to(
            e.consumer_code,
            event_id,
            NotificationKind.REQUEST_DECIDED,
            title,
            body,
            about=e.request_id,
            audience=DATA_ADMINISTRATORS,  # who applied
            resource=e.resource_code,
        )
    ]


def share_decided(event_id: str, e: ShareDecided) -> list[Notification]:
    verdict = "同意" if e.decision is Decision.APPROVED else "不同意"
    title = f"共享申请已答复（{verdict}）：{e.resource_code}"
    body = f"提供部门 {e.provider_code} 于 {e.decided_on.isoformat()} 答复：{verdict}。理由：{e.reasons}"
    return [
        _to(
            e.consumer_code,
            event_id,
            NotificationKind.REQUEST_DECIDED,
            title,
            body,
            about=e.request_id,
            audience=DATA_ADMINISTRATORS,  # who applied
            resource=e.resource_code,
        )
    ]


def consent_requested(event_id: str, e: PublicationConsentRequested) -> list[Notification]:
    """The provider's data administrator owes a decision (Art. 18), by `decide_by` in working days."""
    due = f"请于 {_day(e.decide_by)} 前答复。" if e.decide_by else "请及时答复。"
    body = (
        f"使用部门 {e.consumer_code} 申请将经共享获得的资源 {e.resource_code} 数据（数据项 {_items(e.items)}）"
        f"对外发布（同意申请编号 {e.consent_id}，依据授权 {e.grant_id}）："
        f"发布范围：{e.audience}；用途：{e.purpose}。{due}"
    )
    title = f"对外发布同意申请待答复：{e.resource_code}"
    kind = NotificationKind.REQUEST_ARRIVED
    resource, due_on = e.resource_code, e.decide_by
    return [
        _to(
            e.provider_code,
            event_id,
            kind,
            title,
            body,
            about=e.consent_id,
            audience=DATA_ADMINISTRATORS,
            resource=resource,
            due_on=due_on,
        )
    ]


def consent_decided(event_id: str, e: PublicationConsentDecided) -> list[Notification]:
    verdict = "同意" if e.granted else "不同意"
    title = f"对外发布同意申请已答复（{verdict}）：{e.resource_code}"
    when = f"于 {_day(e.decided_on)} " if e.decided_on else ""
    body = (
        f"提供部门 {e.provider_code} {when}答复对外发布（{e.audience}）申请 {e.consent_id}：{verdict}。"
        f"理由：{e.reasons}"
    )
    kind = NotificationKind.REQUEST_DECIDED
    return [
        _to(
            e.consumer_code,
            event_id,
            kind,
            title,
            body,
            about=e.consent_id,
            audience=DATA_ADMINISTRATORS,  # who asked
            resource=e.resource_code,
        )
    ]


def dispute_raised(event_id: str, e: ShareDisputed, it_office_code: str) -> list[Notification]:
    """The IT office coordinates; the provider whose decision is disputed will be asked for its side."""
    body = (
        f"申请部门 {e.consumer_code} 对提供部门 {e.provider_code} 就申请 {e.request_id} 的答复提出异议"
        f"（争议编号 {e.dispute_id}）。理由：{e.grounds}"
    )
    kind = NotificationKind.DISPUTE_RAISED
    return [
        _to(
            it_office_code,
            event_id,
            kind,
            f"共享争议待协调：申请 {e.request_id}",
            body,
            about=e.request_id,
            audience=IT_OFFICE,
        ),
        _to(
            e.provider_code,
            event_id,
            kind,
            f"贵单位的共享答复被提出异议：申请 {e.request_id}",
            body,
            about=e.request_id,
            audience=DATA_ADMINISTRATORS,  # who decided
        ),
    ]


RULING_LEVELS = {
    RulingLevel.IT_OFFICE: "市信息化工作办公室",
    RulingLevel.LEADERSHIP_GROUP: "市政务数据共享工作领导小组",
}
OUTCOMES = {RulingOutcome.DECISION_UPHELD: "维持原答复", RulingOutcome.DECISION_OVERTURNED: "撤销原答复"}


def dispute_ruled(event_id: str, e: DisputeRuled, dispute: Dispute, it_office_code: str) -> list[Notification]:
    """Both parties hear the ruling; until it is final, either may escalate it. The IT office's operators hear
    the final (the leadership group's) one: the IT office keeps the group's office and ruled first; and its
    auditors, for whom the dispute is settled on record."""
    final = "最终" if e.final else ""
    title = f"共享争议{final}裁定（{OUTCOMES[e.outcome]}）：申请 {e.request_id}"
    body = (
        f"{RULING_LEVELS[e.level]}就申请 {e.request_id} 的争议作出{final}裁定：{OUTCOMES[e.outcome]}。理由：{e.reasons}"
    )
    if not e.final:
        body += "。对裁定不服的，可提请市政务数据共享工作领导小组裁定。"
    kind = NotificationKind.DISPUTE_RULED
    told = [(dispute.consumer_code, DATA_ADMINISTRATORS), (dispute.provider_code, DATA_ADMINISTRATORS)]
    if e.final:
        told.append((it_office_code, OVERSEERS))
    return [
        _to(party, event_id, kind, title, body, about=e.request_id, audience=audience)
        for party, audience in _each(told).items()
    ]


def grant_issued(event_id: str, e: GrantIssued) -> list[Notification]:
    title = f"共享授权已生效：{e.resource_code}"
    body = (
        f"提供部门 {e.provider_code} 的资源 {e.resource_code} 已授权贵单位使用（授权编号 {e.grant_id}）："
        f"数据项 {_items(e.data_items)}；用途：{e.purpose}；有效期：{_day(e.valid_from)} 至 {_day(e.valid_to)}。"
    )
    return [
        _to(
            e.consumer_code,
            event_id,
            NotificationKind.GRANT_ISSUED,
            title,
            body,
            about=e.grant_id,
            audience=GRANT_USERS,
            resource=e.resource_code,
        )
    ]


def grant_revoked(event_id: str, e: GrantRevoked) -> list[Notification]:
    title = f"共享授权已撤销：{e.resource_code}"
    body = f"授权 {e.grant_id}（资源 {e.resource_code}）已被提供部门撤销，即日起不能再使用。理由：{e.reason}"
    return [
        _to(
            e.consumer_code,
            event_id,
            NotificationKind.GRANT_REVOKED,
            title,
            body,
            about=e.grant_id,
            audience=GRANT_USERS,
            resource=e.resource_code,
        )
    ]


GRANT_END_CAUSES = {
    "PERIOD_ENDED": "授权期限届满",
    "ENTRY_WITHDRAWN": "目录条目已撤销",
    "ENTRY_TIGHTENED": "目录新版本收紧了共享条件",
    "SUPERSEDED": "已由新的授权取代",
}


def grant_ended(event_id: str, e: GrantEnded) -> list[Notification]:
    """A grant never outlives the rule it came from: the consumer hears that it ended, and why."""
    title = f"共享授权已终止：{e.resource_code}"
    body = (
        f"授权 {e.grant_id}（资源 {e.resource_code}）于 {_day(e.ended_on)} 终止："
        f"{GRANT_END_CAUSES[e.cause.value]}。{e.reason}".rstrip("。")
        + "。"
    )
    return [
        _to(
            e.consumer_code,
            event_id,
            NotificationKind.GRANT_ENDED,
            title,
            body,
            about=e.grant_id,
            audience=GRANT_USERS,
            resource=e.resource_code,
        )
    ]


STEPS = {
    OverdueStep.PROVIDER_DECISION: "提供部门答复",
    OverdueStep.IT_OFFICE_RULING: "市信息化工作办公室协调裁定",
    OverdueStep.LEADERSHIP_RULING: "市政务数据共享工作领导小组裁定",
}


def share_overdue(
    event_id: str, e: ShareDecisionOverdue, it_office_code: str, leadership_group_code: str | None = None
) -> list[Notification]:
    """A step of a request passed its working-day deadline: whoever owes it hears, and so does the applicant.
    The rulings are owed by the IT office (and, for the leadership group, prepared by it: the group hears too
    when the notifier knows its department)."""
    title = f"共享申请已逾期：{e.request_id}（{STEPS[e.step]}）"
    body = f"申请 {e.request_id}（资源 {e.resource_code}）的{STEPS[e.step]}应于 {_day(e.due_on)} 前完成，现已逾期。"
    if e.step is OverdueStep.PROVIDER_DECISION:
        owes = [(e.provider_code, DATA_ADMINISTRATORS)]
    else:
        owes = [(it_office_code, IT_OFFICE)]
    if e.step is OverdueStep.LEADERSHIP_RULING and leadership_group_code is not None:
        owes.append((leadership_group_code, LEADERSHIP))
    kind = NotificationKind.DEADLINE_PASSED
    return [
        _to(party, event_id, kind, title, body, about=e.request_id, audience=audience, resource=e.resource_code)
        for party, audience in _each([*owes, (e.consumer_code, DATA_ADMINISTRATORS)]).items()
    ]


def dispute_escalated(
    event_id: str, e: DisputeEscalated, it_office_code: str, leadership_group_code: str | None = None
) -> list[Notification]:
    """Escalated to the leadership group (its members, when the notifier knows its department), whose office
    the IT office keeps; the other party hears too."""
    title = f"共享争议已提请领导小组裁定：申请 {e.request_id}"
    body = (
        f"{e.escalated_by_department} 对申请 {e.request_id} 争议（{e.dispute_id}）的协调裁定不服，"
        f"提请市政务数据共享工作领导小组裁定，应于 {_day(e.rule_by)} 前裁定。理由：{e.grounds}"
    )
    parties = [(it_office_code, IT_OFFICE), (e.consumer_code, DATA_ADMINISTRATORS)]
    parties += [(e.provider_code, DATA_ADMINISTRATORS)]
    if leadership_group_code is not None:
        parties.append((leadership_group_code, LEADERSHIP))
    kind = NotificationKind.DISPUTE_ESCALATED
    told = _each(parties)
    # who escalated knows: its data administrators, not the rest of its department (the IT office's operators
    # still hear of an escalation by the IT office as applicant: they keep the leadership group's office)
    if (escalating := told.get(e.escalated_by_department)) is not None:
        if escalating and escalating - DATA_ADMINISTRATORS:
            told[e.escalated_by_department] = escalating - DATA_ADMINISTRATORS
        else:
            del told[e.escalated_by_department]
    return [
        _to(party, event_id, kind, title, body, about=e.request_id, audience=audience, resource=e.resource_code)
        for party, audience in told.items()
    ]


def entry_returned(event_id: str, e: CatalogEntryReturned) -> list[Notification]:
    findings = "；".join(f"{f.field}：{f.finding}" for f in e.findings)
    title = f"目录条目被退回：{e.resource_code}（第 {e.version} 版）"
    return [
        _to(
            e.provider_code,
            event_id,
            NotificationKind.CATALOG_EVENT,
            title,
            f"审核意见：{findings}",
            about=e.resource_code,
            audience=COMPILERS,  # to be corrected and submitted again
            resource=e.resource_code,
        )
    ]


def entry_submitted(event_id: str, e: CatalogEntrySubmitted) -> list[Notification]:
    """The department's reviewers have an entry to review (never one they compiled)."""
    title = f"目录条目待审核：{e.resource_code}（第 {e.version} 版）"
    body = (
        f"{e.submitted_by} 提交了目录条目 {e.resource_code} 第 {e.version} 版，请本单位审核人员审核（编制人不得审核）。"
    )
    kind, about = NotificationKind.CATALOG_EVENT, e.resource_code
    return [_to(e.provider_code, event_id, kind, title, body, about=about, audience=REVIEWERS, resource=about)]


def entry_approved(event_id: str, e: CatalogEntryPublished) -> list[Notification]:
    """The compilers hear their entry passed review and is in force."""
    title = f"目录条目已审核通过并发布：{e.resource_code}（第 {e.version} 版）"
    body = (
        f"目录条目 {e.resource_code}「{e.name}」第 {e.version} 版经 {e.reviewed_by} 审核通过，"
        f"于 {_day(e.published_on)} 发布。"
    )
    kind, about = NotificationKind.CATALOG_EVENT, e.resource_code
    return [_to(e.provider_code, event_id, kind, title, body, about=about, audience=COMPILERS, resource=about)]


def entry_changed(
    event_id: str, e: CatalogEntryPublished, stricter: list[str], holders: list[str]
) -> list[Notification]:
    """Those who use a resource hear that its entry has a new version, and how it is stricter if it is."""
    if stricter:
        title = f"目录条目收紧共享条件：{e.resource_code}（第 {e.version} 版）"
        body = (
            f"贵单位使用的资源 {e.resource_code}「{e.name}」发布第 {e.version} 版：{'；'.join(stricter)}。"
            "已有授权可能随之终止。"
        )
    else:
        title = f"目录条目已更新：{e.resource_code}（第 {e.version} 版）"
        body = f"贵单位使用的资源 {e.resource_code}「{e.name}」发布第 {e.version} 版，请核对数据项与共享条件。"
    kind = NotificationKind.ENTRY_CHANGED
    about = e.resource_code
    return [
        _to(h, event_id, kind, title, body, about=about, audience=DATA_ADMINISTRATORS, resource=about) for h in holders
    ]


def entry_withdrawn(event_id: str, e: CatalogEntryWithdrawn, holders: list[str]) -> list[Notification]:
    title = f"目录条目已撤销：{e.resource_code}"
    body = f"贵单位使用的资源 {e.resource_code} 的目录条目（第 {e.version} 版）已撤销，不再共享。理由：{e.reason}"
    kind = NotificationKind.ENTRY_CHANGED
    about = e.resource_code
    return [
        _to(h, event_id, kind, title, body, about=about, audience=DATA_ADMINISTRATORS, resource=about) for h in holders
    ]


def duplicate_source(event_id: str, e: DuplicateSourceFlagged, it_office_code: str) -> list[Notification]:
    """One data, one source (Art. 12): the department whose entry collects the element again, the authoritative
    source's department (its element is collected again: its compilers and reviewers keep it), and the IT
    office, which settles it."""
    provider = e.existing_provider_name or e.existing_provider_code
    element = f"{e.element_name}（{e.element_id}）" if e.element_id else e.data_element
    title = f"重复采集：{e.resource_code} 的数据项 {e.data_element}"
    body = (
        f"目录条目 {e.resource_code} 的数据项「{e.data_element}」与数据元 {element} 重复，"
        f"该数据元的权威来源为 {provider}（资源 {e.existing_resource_code}），应共享使用，不得重复采集。"
    )
    kind = NotificationKind.DUPLICATE_SOURCE
    return [
        _to(party, event_id, kind, title, body, about=e.resource_code, audience=audience, resource=e.resource_code)
        for party, audience in _each(
            [
                (e.new_provider_code, CATALOG_STAFF),
                (e.existing_provider_code, CATALOG_STAFF),
                (it_office_code, IT_OFFICE),
            ]
        ).items()
    ]


def demand_filed(event_id: str, e: ShareDemandFiled, it_office_code: str) -> list[Notification]:
    """An unmet demand: the IT office matches demands to entries."""
    title = f"共享需求待匹配：{e.title}"
    body = f"{e.requester_code} 登记共享需求「{e.title}」（编号 {e.demand_id}），所需数据项：{_items(e.wanted_items)}。"
    kind = NotificationKind.DEMAND_EVENT
    return [_to(it_office_code, event_id, kind, title, body, about=e.demand_id, audience=IT_OFFICE)]


def demand_matched(event_id: str, e: ShareDemandMatched) -> list[Notification]:
    title = f"共享需求已匹配：{e.resource_code}"
    covered = f"可满足的数据项：{_items(e.covered_items)}。" if e.covered_items else ""
    body = f"贵单位的共享需求（编号 {e.demand_id}）已匹配到资源 {e.resource_code}。{covered}{e.reason}".rstrip()
    kind = NotificationKind.DEMAND_EVENT
    about, audience = e.demand_id, DEMAND_FILERS
    return [
        _to(e.requester_code, event_id, kind, title, body, about=about, audience=audience, resource=e.resource_code)
    ]


def demand_unmatched(event_id: str, e: ShareDemandUnmatched, it_office_code: str) -> list[Notification]:
    """The demand is unmet again: its department hears why, the IT office has it to match anew."""
    title = f"共享需求匹配已撤销：{e.demand_id}"
    body = f"共享需求（编号 {e.demand_id}）与资源 {e.resource_code} 的匹配已撤销，需求重新待匹配。理由：{e.reason}"
    kind = NotificationKind.DEMAND_EVENT
    return [
        _to(party, event_id, kind, title, body, about=e.demand_id, audience=audience, resource=e.resource_code)
        for party, audience in _each([(e.requester_code, DEMAND_FILERS), (it_office_code, IT_OFFICE)]).items()
    ]


def demand_unmeetable(event_id: str, e: ShareDemandUnmeetable) -> list[Notification]:
    title = f"共享需求无法满足：{e.demand_id}"
    body = f"贵单位的共享需求（编号 {e.demand_id}）无法满足。理由：{e.reason}；依据：{e.legal_basis}"
    kind = NotificationKind.DEMAND_EVENT
    return [_to(e.requester_code, event_id, kind, title, body, about=e.demand_id, audience=DEMAND_FILERS)]


OVERDUE_KINDS = {
    OverdueKind.UPDATE_AFTER_CHANGE: "数据或要素变化后的目录更新",
    OverdueKind.YEARLY_MAINTENANCE: "目录年度全面维护",
}


def entry_overdue(event_id: str, e: CatalogEntryOverdue, it_office_code: str) -> list[Notification]:
    """A catalog deadline passed (an Art. 24 matter): the provider and the IT office, which grades it."""
    title = f"目录维护已逾期：{e.resource_code}（{OVERDUE_KINDS[e.kind]}）"
    body = f"目录条目 {e.resource_code} 的{OVERDUE_KINDS[e.kind]}应于 {_day(e.due_on)} 前完成，现已逾期。"
    kind, about = NotificationKind.DEADLINE_PASSED, e.resource_code
    return [
        _to(party, event_id, kind, title, body, about=about, audience=audience, due_on=e.due_on, resource=about)
        for party, audience in _each([(e.provider_code, CATALOG_STAFF), (it_office_code, IT_OFFICE)]).items()
    ]


FINDING_CATEGORIES = {
    FindingCategory.CATALOG_NOT_MAINTAINED: "未按要求编制或更新目录",
    FindingCategory.DATA_NOT_PROVIDED_IN_TIME: "未按要求及时提供共享数据",
    FindingCategory.DATA_INCONSISTENT_OR_UNUSABLE: "提供的数据不一致或无法使用",
    FindingCategory.USE_OUTSIDE_PURPOSE: "超出授权范围使用共享数据",
}


def finding_raised(event_id: str, e: AuditFindingRaised, it_office_code: str) -> list[Notification]:
    """The department hears of the finding and its deadline (reminded before it, in working days); the IT
    office's operators, who follow it to its rectification (the auditor raises findings of its own), and its
    auditors, who keep the record against the department (Art. 24)."""
    title = f"审计发现问题，请于 {_day(e.correct_by)} 前整改"
    what = f"{FINDING_CATEGORIES[e.category]}（问题编号 {e.finding_id}）：{e.description}"
    body = f"{what}。请于 {_day(e.correct_by)} 前整改。"
    kind = NotificationKind.OTHER
    # a finding is against the department as a whole (Art. 24): everyone in it sees it
    about, due_on = e.finding_id, e.correct_by
    return [
        _to(party, event_id, kind, title, body, about=about, audience=audience, due_on=due_on)
        for party, audience in _each([(e.department_code, DEPARTMENT), (it_office_code, OVERSEERS)]).items()
    ]


def finding_escalated(event_id: str, e: AuditFindingEscalated, it_office_code: str) -> list[Notification]:
    """Its deadline passed uncorrected: a notice of criticism follows, which the IT office's operators ask for
    (Art. 24: it orders the correction and proposes the criticism); its auditors keep it on record."""
    title = f"整改期限已过：问题 {e.finding_id} 予以通报批评"
    body = f"问题 {e.finding_id} 未在整改期限内整改，{_day(e.escalated_on)} 起予以通报批评。{e.notice}"
    kind = NotificationKind.DEADLINE_PASSED
    return [
        _to(party, event_id, kind, title, body, about=e.finding_id, audience=audience)
        for party, audience in _each([(e.department_code, DEPARTMENT), (it_office_code, OVERSEERS)]).items()
    ]


# who owes the step a reminder is for
REMINDED: dict[Deadline, Audience] = {
    Deadline.REQUEST_DECISION: DATA_ADMINISTRATORS,
    Deadline.CONSENT_DECISION: DATA_ADMINISTRATORS,
    Deadline.CATALOG_UPDATE: CATALOG_STAFF,
    Deadline.YEARLY_MAINTENANCE: CATALOG_STAFF,
    Deadline.FINDING_RECTIFICATION: DEPARTMENT,
    Deadline.REPORT_ANSWER: IT_OFFICE,
}
# who else follows the step, in the IT office: its operators follow a finding to its rectification (Art. 24)
FOLLOWED_BY_IT_OFFICE: dict[Deadline, Audience] = {Deadline.FINDING_RECTIFICATION: IT_OFFICE}


def finding_reported(event_id: str, e: AuditFindingReported, it_office_code: str) -> list[Notification]:
    """The IT office hears of a rectification report to accept or reject."""
    title = f"收到整改报告：问题 {e.finding_id}，请核实"
    ref = f"（{e.reference}）" if e.reference else ""
    body = (
        f"部门 {e.department_code} 于 {_day(e.reported_on)} 报送问题 {e.finding_id} 的整改报告{ref}：{e.report}。"
        f"整改期限 {_day(e.correct_by)}；请核实后确认整改或退回。"
    )
    kind = NotificationKind.OTHER
    return [_to(it_office_code, event_id, kind, title, body, about=e.finding_id, audience=IT_OFFICE)]


def finding_report_rejected(event_id: str, e: AuditFindingReportRejected) -> list[Notification]:
    """The department hears why its report was rejected, and what follows."""
    title = f"整改报告未通过：问题 {e.finding_id}"
    if e.rejected_on <= e.correct_by:
        then = f"请于 {_day(e.correct_by)} 前完成整改并重新报送，逾期未整改的予以通报批评。"
    else:
        then = f"整改期限 {_day(e.correct_by)} 已过，该问题将予以通报批评。"
    body = f"市信息化工作办公室于 {_day(e.rejected_on)} 退回问题 {e.finding_id} 的整改报告，理由：{e.reason}。{then}"
    kind = NotificationKind.OTHER
    # like the finding itself, for the department as a whole (its data administrator reports again)
    about, due_on = e.finding_id, e.correct_by
    return [_to(e.department_code, event_id, kind, title, body, about=about, audience=DEPARTMENT, due_on=due_on)]


def reminder_due(reminder: Reminder, it_office_code: str) -> list[Notification]:
    """A deadline comes near: whoever owes the step hears, and the IT office when it follows the step (a
    finding's rectification); each key is the deadline's, so a reminder is sent once however it is fired."""
    what = DEADLINE_NAMES[reminder.deadline]
    title = f"临近期限：{what}（{_day(reminder.due_on)} 前）"
    told = [(reminder.recipient_code, REMINDED[reminder.deadline])]
    if (following := FOLLOWED_BY_IT_OFFICE.get(reminder.deadline)) is not None:
        told.append((it_office_code, following))

    def body(party: str) -> str:
        about = reminder.reference
        if party != reminder.recipient_code:  # the IT office follows many departments' steps: it is told whose
            about += f"，责任部门 {reminder.recipient_code}"
        return f"{what}（{about}）应于 {_day(reminder.due_on)} 前完成（按工作日计算）。"

    return [
        Notification(
            f"reminder:{reminder.reminder_id}:{party}",
            party,
            NotificationKind.DEADLINE_APPROACHING,
            title,
            body(party),
            reference=reminder.reference,
            due_on=reminder.due_on,
            resource_code=reminder.resource_code,
            audience=audience,
        )
        for party, audience in _each(told).items()
    ]


def report_unanswered(reminder: Reminder, waited: int) -> Notification:
    """A rectification report has waited `waited` working days for the IT office's answer (a REPORT_ANSWER
    reminder). No deadline of the IT office's comes near (a waiting report holds the finding's escalation for as
    long as it waits): the notice says how long it has waited, whose report it is and since when. Its key is the
    reminder's, as a deadline's reminder."""
    who = f"部门 {reminder.about_code} " if reminder.about_code else ""
    since = f"于 {_day(reminder.since)} " if reminder.since else ""
    title = f"整改报告已待核实满 {waited} 个工作日：问题 {reminder.reference}"
    body = (
        f"{who}{since}报送的问题 {reminder.reference} 的整改报告，已待市信息化工作办公室核实满 {waited} 个工作日"
        "（按工作日计算）。核实期间该问题不予通报批评；请认可整改报告并结案，或说明理由退回。"
    )
    return Notification(
        f"reminder:{reminder.reminder_id}:{reminder.recipient_code}",
        reminder.recipient_code,
        NotificationKind.DEADLINE_APPROACHING,
        title,
        body,
        reference=reminder.reference,
        resource_code=reminder.resource_code,
        audience=REMINDED[reminder.deadline],
    )


def changes_told(batch: ChangeBatch, holders: list[str]) -> list[Notification]:
    """One notice per holder for a batch of changes of one resource."""
    title, body = changes_described(batch)
    return [
        Notification(
            f"{batch.batch_id}:{holder}",
            holder,
            NotificationKind.RESOURCE_CHANGED,
            title,
            body,
            reference=f"{batch.first}-{batch.last}",
            resource_code=batch.resource_code,
            audience=DATA_ADMINISTRATORS,  # who holds the grant or subscription
        )
        for holder in holders
    ]


# Events whose notices follow from the event alone. The others need the IT office's code, what the notifier
# keeps (disputes, holdings, entries, reminders) or both, and have handlers of their own (adapters/events.py).
RULES: dict[type, Rule] = {
    CatalogEntryReturned: entry_returned,
    CatalogEntrySubmitted: entry_submitted,
    ShareDemandMatched: demand_matched,
    ShareDemandUnmeetable: demand_unmeetable,
}

SHOWN_ITEMS = 10


def _items(items: tuple[str, ...]) -> str:
    shown = "、".join(items[:SHOWN_ITEMS])
    return f"{shown} 等 {len(items)} 项" if len(items) > SHOWN_ITEMS else shown or "（无）"


def _day(value: date) -> str:
    return value.isoformat()


def _each(parties: list[tuple[str, Audience]]) -> dict[str, Audience]:
    """Each department once, for all it is told as (the IT office may also be the applicant); a notice for the
    department as a whole stays so."""
    audiences: dict[str, Audience] = {}
    for party, audience in parties:
        known = audiences.get(party, audience)
        audiences[party] = known | audience if known and audience else DEPARTMENT
    return audiences


def _to(
    recipient: str,
    event_id: str,
    kind: NotificationKind,
    title: str,
    body: str,
    *,
    about: str,
    audience: Audience,
    due_on: date | None = None,
    resource: str | None = None,
) -> Notification:
    """One recipient's notice of one event, for `audience` there: its id makes a redelivered event notify
    nobody twice."""
    return Notification(
        f"{event_id}:{recipient}",
        recipient,
        kind,
        title,
        body,
        reference=about,
        due_on=due_on,
        resource_code=resource,
        audience=audience,
    )
