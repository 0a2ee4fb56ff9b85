from datetime import date

from services.notifier.domain.notifications import RULES, NotificationKind


def test_a_request_notifies_the_provider_with_its_deadline() -> None:
    payload = {
        "request_id": "r1",
        "resource_code": "101001/000001",
        "provider_code": "P",
        "consumer_code": "C",
        "purpose": "企业开办",
        "decide_by": date(2026, 12, 9),
    }
    note = RULES["ShareRequested"]("e1", payload)
    assert note.recipient_code == "P" and note.kind is NotificationKind.REQUEST_ARRIVED
    assert note.due_on == date(2026, 12, 9) and "2026-12-09" in note.body
    assert note.notification_id == "e1:P"  # the same event never notifies twice


def test_a_decision_notifies_the_applicant() -> None:
    payload = {
        "request_id": "r1",
        "resource_code": "R",
        "provider_code": "P",
        "consumer_code": "C",
        "decision": "REJECTED",
        "reasons": "超出职责范围",
    }
    note = RULES["ShareDecided"]("e2", payload)
    assert note.recipient_code == "C" and "不同意" in note.title and "超出职责范围" in note.body


def test_a_returned_entry_tells_the_provider_each_finding() -> None:
    payload = {
        "resource_code": "R",
        "version": 2,
        "provider_code": "P",
        "findings": [{"field": "abstract", "finding": "摘要不完整"}, {"field": "items", "finding": "缺少类型"}],
    }
    note = RULES["CatalogEntryReturned"]("e3", payload)
    assert "abstract：摘要不完整" in note.body and "items：缺少类型" in note.body
