"""Errors shared by domain code and adapters (no I/O imports here)."""


class RejectedEvent(Exception):
    """The event can never be handled (bad content, not a transient failure): dead-letter it at once."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail
