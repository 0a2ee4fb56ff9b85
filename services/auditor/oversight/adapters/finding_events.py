"""The findings' events on auditor.findings, as the schemas AuditFindingRaised, AuditFindingCorrected,
AuditFindingEscalated, AuditFindingReported and AuditFindingReportRejected lay them out; keyed by the
department, so that one department's findings stay in order."""

from __future__ import annotations

from common.events import Event
from common.mongo import Transaction
from services.auditor.domain.findings import Answer, ClosedBy, Finding
from services.auditor.oversight.ports import FINDINGS_TOPIC

PRODUCER = "auditor"


class BusFindingEvents:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    def _emit(self, event_type: str, finding: Finding, payload: dict) -> None:
        self.tx.emit(FINDINGS_TOPIC, Event(event_type, finding.department_code, payload, PRODUCER))

    def raised(self, finding: Finding, continues: str | None = None) -> None:
        evidence = "; ".join(finding.evidence[:3])
        self._emit(
            "AuditFindingRaised",
            finding,
            {
                "finding_id": finding.finding_id,
                "department_code": finding.department_code,
                "category": finding.category.value,
                "description": f"{finding.description} ({evidence})"[:4000],
                "reference": finding.matter,
                "correct_by": finding.correct_by,
                "continues": continues,
            },
        )

    def corrected(self, finding: Finding, by: str | None = None) -> None:
        assert finding.corrected_on is not None
        last = finding.reports[-1] if finding.reports else None
        superseded = last is not None and last.answer is Answer.SUPERSEDED and finding.closed_by is ClosedBy.EVENT
        self._emit(
            "AuditFindingCorrected",
            finding,
            {
                "finding_id": finding.finding_id,
                "department_code": finding.department_code,
                "corrected_on": finding.corrected_on,
                "note": (finding.proof or "")[:4000],
                "corrected_by": by,
                "closed_by": finding.closed_by.value if finding.closed_by else None,
                "superseded_report_on": last.submitted_on if superseded and last is not None else None,
            },
        )

    def escalated(self, finding: Finding, notice: str) -> None:
        assert finding.escalated_on is not None
        self._emit(
            "AuditFindingEscalated",
            finding,
            {
                "finding_id": finding.finding_id,
                "department_code": finding.department_code,
                "escalated_on": finding.escalated_on,
                "notice": notice,
            },
        )

    def reported(self, finding: Finding, by_department: str) -> None:
        report = finding.reports[-1]
        self._emit(
            "AuditFindingReported",
            finding,
            {
                "finding_id": finding.finding_id,
                "department_code": finding.department_code,
                "report": report.text,
                "reference": report.reference,
                "reported_by": report.submitted_by,
                "reported_by_department": by_department,
                "reported_on": report.submitted_on,
                "correct_by": finding.correct_by,
            },
        )

    def report_rejected(self, finding: Finding, by_department: str) -> None:
        report = finding.reports[-1]
        assert report.answered_on is not None and report.answered_by is not None
        self._emit(
            "AuditFindingReportRejected",
            finding,
            {
                "finding_id": finding.finding_id,
                "department_code": finding.department_code,
                "reason": report.reason or "",
                "rejected_by": report.answered_by,
                "rejected_by_department": by_department,
                "rejected_on": report.answered_on,
                "reported_on": report.submitted_on,
                "correct_by": finding.correct_by,
            },
        )
