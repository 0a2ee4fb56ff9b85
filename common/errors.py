"""Errors shared by domain code and adapters (no I/O imports here). The REST facade maps each kind of
domain error to its status code in one place (common.http)."""


class DomainError(Exception):
    """A request the domain refuses; `field` names what to fix and `rule` says why. A service that words its
    refusals for people sets `code` (the rule's machine-readable name) and `message` (in Chinese)."""

    code: str | None = None
    message: str | None = None

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class Invalid(DomainError):
    """Bad input: 422."""


class NotFound(DomainError):
    """No such thing (or none the caller may know of): 404."""


class Conflict(DomainError):
    """Not possible in the current state: 409."""


class RejectedEvent(Exception):
    """The event can never be handled (bad content, not a transient failure): dead-letter it at once."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail
