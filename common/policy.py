"""The platform's one access policy (Art. 4, 11, 19, 22): role × department scope × resource.

Every REST route declares the rule it obeys (common.guard enforces it); handlers and consumers call
`authorize` with the target once they know which department owns it. Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    CATALOG_COMPILER = "catalog_compiler"  # 编制
    CATALOG_REVIEWER = "catalog_reviewer"  # 审核
    DATA_ADMINISTRATOR = "data_administrator"  # 数据管理员 (Art. 22)
    IT_OFFICE_OPERATOR = "it_office_operator"  # 市信息化工作办公室
    LEADERSHIP_MEMBER = "leadership_member"  # 领导小组
    AUDITOR = "auditor"


class MachineKind(StrEnum):
    ADAPTER = "adapter"  # publishes its department's data changes, receives its notifications
    CONSUMER_SYSTEM = "consumer_system"  # calls the exchange's APIs


@dataclass(frozen=True)
class Principal:
    """Who is acting: a person with roles, or a department's machine identity."""

    subject: str
    department_code: str
    roles: frozenset[Role] = frozenset()
    machine: MachineKind | None = None
    issued_at: float | None = None  # when the credentials were issued (token iat), if they came in a token
    generation: int | None = None  # the credential generation the token was issued under (see common.revocations)

    @property
    def kind(self) -> str:
        return "machine" if self.machine else "person"


@dataclass(frozen=True)
class Target:
    """What an action touches, as far as the policy cares."""

    department_code: str | None = None  # the department that owns the resource
    compiled_by: str | None = None  # for reviews: who compiled the entry
    edited_by: frozenset[str] = frozenset()  # for reviews: everyone who edited the version (each its compiler)


class Unauthenticated(Exception):
    """No valid credentials; `reason` says which check failed (never anything about other departments)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccessDenied(Exception):
    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason


Check = Callable[[Principal, Target], str | None]  # returns the reason to deny, or None


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    roles: frozenset[Role] = frozenset()
    machines: frozenset[MachineKind] = frozenset()
    own_department: bool = False
    check: Check | None = None
    public: bool = False

    def who(self) -> str:
        return ", ".join(sorted([*self.roles, *self.machines])) or "nobody"


ALL_ROLES = frozenset(Role)
ALL_MACHINES = frozenset(MachineKind)
OVERSIGHT = frozenset({Role.AUDITOR, Role.IT_OFFICE_OPERATOR, Role.LEADERSHIP_MEMBER})


def _not_own_compilation(principal: Principal, target: Target) -> str | None:
    if principal.subject in target.edited_by or (
        target.compiled_by is not None and target.compiled_by == principal.subject
    ):
        return "a reviewer never reviews an entry she compiled or edited (four eyes)"
    return None


def _it_office_or_own_department(principal: Principal, target: Target) -> str | None:
    if Role.IT_OFFICE_OPERATOR in principal.roles or target.department_code in (None, principal.department_code):
        return None
    return "a data administrator manages only her own department's machine identities"


def _it_office_or_own_notices(principal: Principal, target: Target) -> str | None:
    if Role.IT_OFFICE_OPERATOR in principal.roles or target.department_code in (None, principal.department_code):
        return None
    return "a department reads and sets only its own notifications; the IT office every department's"


def _it_office_or_own_webhooks(principal: Principal, target: Target) -> str | None:
    if Role.IT_OFFICE_OPERATOR in principal.roles or target.department_code in (None, principal.department_code):
        return None
    return "a data administrator manages only her own department's webhooks"


def _oversight_or_own_department(principal: Principal, target: Target) -> str | None:
    if principal.roles & OVERSIGHT or target.department_code in (None, principal.department_code):
        return None
    return "only oversight sees another department's refused changes"


def _oversight_or_own(principal: Principal, target: Target) -> str | None:
    if principal.roles & OVERSIGHT or target.department_code in (None, principal.department_code):
        return None
    return "a department sees only its own figures and findings"


def _it_office_or_own_finding(principal: Principal, target: Target) -> str | None:
    if Role.IT_OFFICE_OPERATOR in principal.roles or target.department_code in (None, principal.department_code):
        return None
    return "a department reports only on its own findings; the IT office on any department's behalf"


def _party_or_oversight(principal: Principal, target: Target) -> str | None:
    """`target` is the side of a request or grant the principal is on: the applicant's or, for anyone else,
    the provider's department."""
    if principal.roles & OVERSIGHT or target.department_code in (None, principal.department_code):
        return None
    return "only the applicant, the provider and oversight see a request or grant"


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in [
        Rule("public", "anyone, without credentials", public=True),
        Rule("authenticated", "any person or machine of a department", ALL_ROLES, ALL_MACHINES),
        Rule("catalog.entry.read", "read the catalog", ALL_ROLES, ALL_MACHINES),
        Rule(
            "catalog.entry.draft",
            "compile an entry of one's own department",
            frozenset({Role.CATALOG_COMPILER}),
            own_department=True,
        ),
        Rule(
            "catalog.entry.review",
            "review an entry of one's own department compiled by someone else",
            frozenset({Role.CATALOG_REVIEWER}),
            own_department=True,
            check=_not_own_compilation,
        ),
        Rule(
            "catalog.entry.report_change",
            "report that a resource of one's own department changed",
            frozenset({Role.CATALOG_COMPILER, Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule(
            "catalog.demand.file",
            "record what one's department needs",
            frozenset({Role.CATALOG_COMPILER, Role.CATALOG_REVIEWER, Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule(
            "catalog.source.exception",
            "record the legal basis for a second source of a data element",
            frozenset({Role.IT_OFFICE_OPERATOR}),
        ),
        Rule("catalog.demand.match", "confirm that an entry meets a demand", frozenset({Role.IT_OFFICE_OPERATOR})),
        Rule(
            "catalog.demand.settle",
            "undo a match, or find a demand unmeetable on legal grounds",
            frozenset({Role.IT_OFFICE_OPERATOR}),
        ),
        Rule(
            "catalog.dictionary.edit",
            "keep the data-element dictionary and assign elements' sources",
            frozenset({Role.IT_OFFICE_OPERATOR}),
        ),
        Rule(
            "catalog.entry.withdraw",
            "withdraw an entry of one's own department",
            frozenset({Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule(
            "exchange.data.write",
            "an adapter writes its own department's data",
            machines=frozenset({MachineKind.ADAPTER}),
            own_department=True,
        ),
        Rule(
            "exchange.record.read", "read records the department provides", ALL_ROLES, ALL_MACHINES, own_department=True
        ),
        Rule(
            "exchange.resource.read", "see what the exchange holds of a resource (no records)", ALL_ROLES, ALL_MACHINES
        ),
        Rule(
            "exchange.share.read",
            "read another department's data through the API channel: a person of the consumer department or its "
            "consumer system; the grant named in the call decides what (Art. 15, 16)",
            ALL_ROLES,
            frozenset({MachineKind.CONSUMER_SYSTEM}),
        ),
        Rule(
            "exchange.data.upload",
            "upload a file of the department's data in place of an adapter",
            frozenset({Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule(
            "exchange.offline.recipient",
            "register the age public key the department's offline exchange packages are encrypted to",
            frozenset({Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule(
            "exchange.rejections.read",
            "see data changes the center refused: the provider's own, or all for oversight",
            ALL_ROLES,
            ALL_MACHINES,
            check=_oversight_or_own_department,
        ),
        Rule(
            "exchange.request.decide",
            "decide a request for the provider's resource",
            frozenset({Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule(
            "exchange.subscribe",
            "subscribe one's own department to unconditional data, stating the purpose",
            frozenset({Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule(
            "exchange.request.file",
            "apply for conditional data for one's own department",
            frozenset({Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule(
            "exchange.request.read",
            "see a request: its applicant, its provider, or oversight",
            ALL_ROLES,
            ALL_MACHINES,
            check=_party_or_oversight,
        ),
        Rule(
            "exchange.request_tally.read",
            "count every department's requests by state and their decisions past the deadline (the city's dashboard)",
            OVERSIGHT,
        ),
        Rule(
            "exchange.request.dispute",
            "dispute the decision on one's own department's request",
            frozenset({Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule(
            "exchange.dispute.escalate",
            "take the IT office's ruling on one's own department's dispute to the leadership group",
            frozenset({Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule(
            "exchange.grant.read",
            "see a grant: its consumer, its provider, or oversight",
            ALL_ROLES,
            ALL_MACHINES,
            check=_party_or_oversight,
        ),
        Rule(
            "exchange.grant.revoke",
            "revoke a grant of one's own department's data, with a reason",
            frozenset({Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule(
            "exchange.hosted.manage",
            "register, change or withdraw an interface service one's own department hosts (Art. 16)",
            frozenset({Role.DATA_ADMINISTRATOR}),
            own_department=True,
        ),
        Rule("exchange.dispute.coordinate", "coordinate a dispute", frozenset({Role.IT_OFFICE_OPERATOR})),
        Rule(
            "exchange.download.trace",
            "trace a leaked file back to the download it came from",
            frozenset({Role.IT_OFFICE_OPERATOR}),
        ),
        Rule(
            "exchange.dispute.final_ruling", "give the final ruling on a dispute", frozenset({Role.LEADERSHIP_MEMBER})
        ),
        Rule(
            "notifier.inbox.read",
            "read one's own department's notifications and preferences (the IT office: every department's)",
            ALL_ROLES,
            ALL_MACHINES,
            check=_it_office_or_own_notices,
        ),
        Rule(
            "notifier.preferences.manage",
            "choose which notifications one's own department gets, on which channels, how often",
            frozenset({Role.DATA_ADMINISTRATOR, Role.IT_OFFICE_OPERATOR}),
            check=_it_office_or_own_notices,
        ),
        Rule(
            "notifier.webhook.manage",
            "register a department system's webhooks, rotate their secrets, see and replay their deliveries",
            frozenset({Role.IT_OFFICE_OPERATOR, Role.DATA_ADMINISTRATOR}),
            check=_it_office_or_own_webhooks,
        ),
        Rule(
            "notifier.webhook.oversee",
            "see and replay every department's dead webhook deliveries",
            frozenset({Role.IT_OFFICE_OPERATOR}),
        ),
        Rule("auditor.trail.read", "read the access trail and evaluation figures", OVERSIGHT),
        Rule(
            "auditor.evaluation.read",
            "read a department's evaluation figures and how they were computed: one's own, or any for oversight",
            ALL_ROLES,
            check=_oversight_or_own,
        ),
        Rule("auditor.report.read", "read the ranking and the evaluation reports", OVERSIGHT),
        Rule(
            "auditor.finding.read",
            "read findings (Art. 24): one's own department's, or any for oversight",
            ALL_ROLES,
            check=_oversight_or_own,
        ),
        Rule("auditor.finding.raise", "raise a finding against a department", frozenset({Role.IT_OFFICE_OPERATOR})),
        Rule(
            "auditor.finding.correct",
            "close a finding with its proof, accept or reject a department's rectification report",
            frozenset({Role.IT_OFFICE_OPERATOR}),
        ),
        Rule(
            "auditor.finding.report",
            "hand in the rectification report of one's own department's finding (its data administrator, Art. 22), "
            "or any department's for it (the IT office)",
            frozenset({Role.DATA_ADMINISTRATOR, Role.IT_OFFICE_OPERATOR}),
            check=_it_office_or_own_finding,
        ),
        Rule(
            "auditor.trail.entries.read",
            "search the access trail: oversight all of it, others their department's accesses and actions and "
            "those on its data",
            ALL_ROLES,
        ),
        Rule("directory.read", "read the directory", ALL_ROLES, ALL_MACHINES),
        Rule("directory.department.manage", "register and change departments", frozenset({Role.IT_OFFICE_OPERATOR})),
        Rule("directory.person.manage", "register people and set their roles", frozenset({Role.IT_OFFICE_OPERATOR})),
        Rule(
            "directory.data_administrator.appoint",
            "register a department's data administrator",
            frozenset({Role.IT_OFFICE_OPERATOR}),
        ),
        Rule(
            "directory.machine.manage",
            "issue, rotate and revoke machine identities",
            frozenset({Role.IT_OFFICE_OPERATOR, Role.DATA_ADMINISTRATOR}),
            check=_it_office_or_own_department,
        ),
    ]
}


def rule(name: str) -> Rule:
    try:
        return RULES[name]
    except KeyError:
        raise KeyError(f"no access rule {name!r}; the rules are {sorted(RULES)}") from None


def authorize(principal: Principal, rule_name: str, target: Target | None = None) -> None:
    """Raise AccessDenied with the reason unless `principal` may act under the rule on `target`.
    Without a target only the role part is checked (a route's first gate)."""
    r = rule(rule_name)
    if r.public:
        return
    allowed = principal.machine in r.machines if principal.machine else bool(principal.roles & r.roles)
    if not allowed:
        raise AccessDenied(r.name, f"requires one of: {r.who()}")
    if target is None:
        return
    if r.own_department and target.department_code not in (None, principal.department_code):
        raise AccessDenied(r.name, "allowed only for the principal's own department")
    reason = r.check(principal, target) if r.check else None
    if reason:
        raise AccessDenied(r.name, reason)
