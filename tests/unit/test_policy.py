"""The examples the access policy must hold (Art. 4, 11, 19, 22)."""

import pytest

from common.policy import RULES, AccessDenied, MachineKind, Principal, Role, Target, authorize

MARKET = "11360800MB0000001"  # department codes only need to differ here
HEALTH = "11360800MB0000002"


def person(*roles: Role, department: str = MARKET, subject: str = "li.na") -> Principal:
    return Principal(subject, department, frozenset(roles))


def machine(kind: MachineKind, department: str = MARKET) -> Principal:
    return Principal(f"{kind}-1", department, machine=kind)


def denied(principal: Principal, rule: str, target: Target | None = None) -> str:
    with pytest.raises(AccessDenied) as error:
        authorize(principal, rule, target)
    return error.value.reason


def test_a_compiler_edits_only_her_own_departments_entries() -> None:
    authorize(person(Role.CATALOG_COMPILER), "catalog.entry.draft", Target(MARKET))
    assert "own department" in denied(person(Role.CATALOG_COMPILER), "catalog.entry.draft", Target(HEALTH))
    assert "catalog_compiler" in denied(person(Role.CATALOG_REVIEWER), "catalog.entry.draft", Target(MARKET))


def test_a_reviewer_never_approves_an_entry_she_compiled() -> None:
    reviewer = person(Role.CATALOG_REVIEWER, Role.CATALOG_COMPILER, subject="wang.fang")
    authorize(reviewer, "catalog.entry.review", Target(MARKET, compiled_by="li.na"))
    assert "compiled" in denied(reviewer, "catalog.entry.review", Target(MARKET, compiled_by="wang.fang"))


def test_only_the_providers_data_administrator_decides_a_request() -> None:
    authorize(person(Role.DATA_ADMINISTRATOR), "exchange.request.decide", Target(MARKET))
    assert denied(person(Role.DATA_ADMINISTRATOR, department=HEALTH), "exchange.request.decide", Target(MARKET))
    assert denied(person(Role.CATALOG_COMPILER, Role.CATALOG_REVIEWER), "exchange.request.decide", Target(MARKET))


def test_the_it_office_coordinates_and_only_the_leadership_group_rules_finally() -> None:
    authorize(person(Role.IT_OFFICE_OPERATOR), "exchange.dispute.coordinate")
    authorize(person(Role.LEADERSHIP_MEMBER), "exchange.dispute.final_ruling")
    assert denied(person(Role.IT_OFFICE_OPERATOR), "exchange.dispute.final_ruling")
    assert denied(person(Role.DATA_ADMINISTRATOR), "exchange.dispute.coordinate")


def test_a_department_subscribes_applies_and_disputes_only_for_itself() -> None:
    for name in (
        "exchange.subscribe",
        "exchange.request.file",
        "exchange.request.dispute",
        "exchange.dispute.escalate",
    ):
        authorize(person(Role.DATA_ADMINISTRATOR), name, Target(MARKET))
        assert "own department" in denied(person(Role.DATA_ADMINISTRATOR, department=HEALTH), name, Target(MARKET))
        assert denied(person(Role.CATALOG_COMPILER), name, Target(MARKET))
        assert denied(machine(MachineKind.CONSUMER_SYSTEM), name, Target(MARKET))


def test_requests_and_grants_are_seen_by_their_parties_and_oversight_and_revoked_by_the_provider() -> None:
    for name in ("exchange.request.read", "exchange.grant.read"):
        authorize(machine(MachineKind.CONSUMER_SYSTEM), name, Target(MARKET))
        authorize(person(Role.AUDITOR, department=HEALTH), name, Target(MARKET))
        assert "applicant" in denied(person(Role.DATA_ADMINISTRATOR, department=HEALTH), name, Target(MARKET))
    authorize(person(Role.DATA_ADMINISTRATOR), "exchange.grant.revoke", Target(MARKET))
    assert denied(person(Role.DATA_ADMINISTRATOR, department=HEALTH), "exchange.grant.revoke", Target(MARKET))
    assert denied(person(Role.IT_OFFICE_OPERATOR), "exchange.grant.revoke", Target(MARKET))


def test_auditors_read_the_trail_but_change_nothing() -> None:
    auditor = person(Role.AUDITOR)
    authorize(auditor, "auditor.trail.read")
    writes = [n for n, r in RULES.items() if not r.public and n != "authenticated" and not n.endswith(".read")]
    for name in writes:
        assert denied(auditor, name, Target(MARKET)), name


def test_an_adapter_writes_only_its_own_departments_data() -> None:
    authorize(machine(MachineKind.ADAPTER), "exchange.data.write", Target(MARKET))
    assert "own department" in denied(machine(MachineKind.ADAPTER), "exchange.data.write", Target(HEALTH))
    assert denied(machine(MachineKind.CONSUMER_SYSTEM), "exchange.data.write", Target(MARKET))
    assert denied(person(Role.DATA_ADMINISTRATOR), "exchange.data.write", Target(MARKET))


def test_machine_identities_are_managed_by_the_it_office_or_the_departments_own_administrator() -> None:
    authorize(person(Role.IT_OFFICE_OPERATOR, department=HEALTH), "directory.machine.manage", Target(MARKET))
    authorize(person(Role.DATA_ADMINISTRATOR), "directory.machine.manage", Target(MARKET))
    assert "own department" in denied(
        person(Role.DATA_ADMINISTRATOR, department=HEALTH), "directory.machine.manage", Target(MARKET)
    )


def test_the_api_channel_lets_any_person_or_consumer_system_name_a_grant_but_no_adapter() -> None:
    authorize(machine(MachineKind.CONSUMER_SYSTEM), "exchange.share.read")
    for role in Role:
        authorize(person(role, department=HEALTH), "exchange.share.read", Target(MARKET))  # the grant decides
    assert "consumer_system" in denied(machine(MachineKind.ADAPTER), "exchange.share.read")


def test_unknown_rules_are_a_programming_error() -> None:
    with pytest.raises(KeyError, match="no access rule"):
        authorize(person(Role.AUDITOR), "catalog.entry.delete")
