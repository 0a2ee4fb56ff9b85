"""Notifications the measures call for (Art. 11, 15, 17): providers hear of requests, applicants of
decisions, compilers of returned entries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any


class NotificationKind(StrEnum):
    RESOURCE_CHANGED = "RESOURCE_CHANGED"
    REQUEST_ARRIVED = "REQUEST_ARRIVED"
    REQUEST_DECIDED = "REQUEST_DECIDED"
    DEADLINE_APPROACHING = "DEADLINE_APPROACHING"
    DEADLINE_PASSED = "DEADLINE_PASSED"
    CATALOG_EVENT = "CATALOG_EVENT"
    OTHER = "OTHER"


@dataclass
class Notification:
    notification_id: str
    recipient_code: str
    kind: NotificationKind
    title: str
    body: str
    reference: str | None = None
    due_on: date | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    read: bool = False

    def issued_payload(self) -> dict[str, Any]:
        return {
            "notification_id": self.notification_id,
            "recipient_code": self.recipient_code,
            "kind": self.kind.value,
            "title": self.title,
            "body": self.body,
            "reference": self.reference,
            "due_on": self.due_on,
        }


def share_requested(event_id: str, p: dict[str, Any]) -> Notification:
    return Notification(
        notification_id=f"{event_id}:{p['provider_code']}",
        recipient_code=p["provider_code"],
        kind=NotificationKind.REQUEST_ARRIVED,
        title=f"数据共享申请待答复：{p['resource_code']}",
        body=f"申请部门 {p['consumer_code']} 申请使用资源 {p['resource_code']}，用途：{p['purpose']}。"
        f"请于 {p['decide_by'].isoformat()} 前答复。",
        reference=p["request_id"],
        due_on=p["decide_by"],
    )


def share_decided(event_id: str, p: dict[str, Any]) -> Notification:
    verdict = "同意" if p["decision"] == "APPROVED" else "不同意"
    return Notification(
        notification_id=f"{event_id}:{p['consumer_code']}",
        recipient_code=p["consumer_code"],
        kind=NotificationKind.REQUEST_DECIDED,
        title=f"共享申请已答复（{verdict}）：{p['resource_code']}",
        body=f"提供部门 {p['provider_code']} 答复：{verdict}。理由：{p['reasons']}",
        reference=p["request_id"],
    )


def entry_returned(event_id: str, p: dict[str, Any]) -> Notification:
    findings = "；".join(f"{f['field']}：{f['finding']}" for f in p["findings"])
    return Notification(
        notification_id=f"{event_id}:{p['provider_code']}",
        recipient_code=p["provider_code"],
        kind=NotificationKind.CATALOG_EVENT,
        title=f"目录条目被退回：{p['resource_code']}（第 {p['version']} 版）",
        body=f"审核意见：{findings}",
        reference=p["resource_code"],
    )


RULES: dict[str, Callable[[str, dict[str, Any]], Notification]] = {
    "ShareRequested": share_requested,
    "ShareDecided": share_decided,
    "CatalogEntryReturned": entry_returned,
}
