from datetime import date

from common.identifiers import CITIZEN_ID, CREDIT_CODE
from common.policy import MachineKind, Principal, Role
from services.exchange.sharing.adapters.grant_docs import grant_doc, grant_of
from services.exchange.sharing.grants import MASK, Channel, Grant, GrantStatus, RowScope, region_of, subject_hash

CREDIT = "91360821MA35XXXX0X"  # characters 3-8: 360821, a county of the city
CITIZEN = "360802199001011234"


def grant(**changes) -> Grant:
    base = dict(
        grant_id="g1",
        request_id="r1",
        resource_code="101001/000001",
        provider_code="market",
        consumer_code="approval",
        consumer_system="approval-system",
        items=("企业名称", "法人", "电话"),
        scope=RowScope(("360821",)),
        purpose="审批核验",
        channels=frozenset({Channel.API}),
        valid_from=date(2026, 1, 1),
        valid_to=date(2026, 12, 31),
        entry_version=2,
        unmasked=frozenset({"法人"}),
    )
    return Grant(**(base | changes))


def test_a_subject_is_placed_by_the_division_its_identifier_carries() -> None:
    assert region_of(CREDIT, CREDIT_CODE) == "360821"
    assert region_of(CITIZEN, CITIZEN_ID) == "360802"
    assert RowScope(("3608",)).covers(CITIZEN, CITIZEN_ID)
    assert not RowScope(("360821",)).covers(CITIZEN, CITIZEN_ID)
    assert RowScope(subjects=frozenset({CITIZEN})).covers(CITIZEN, CITIZEN_ID)
    assert not RowScope(("360802",), frozenset({"OTHER"})).covers(CITIZEN, CITIZEN_ID)


def test_a_narrower_scope_lies_within_a_wider_one_and_not_the_other_way() -> None:
    assert RowScope(("360821",)).within(RowScope(("3608",)))
    assert not RowScope(("3608",)).within(RowScope(("360821",)))
    assert not RowScope().within(RowScope(("3608",)))
    assert RowScope(subjects=frozenset({"A"})).within(RowScope(subjects=frozenset({"A", "B"})))
    assert not RowScope(subjects=frozenset({"C"})).within(RowScope(subjects=frozenset({"A", "B"})))


def test_a_grant_opens_only_for_its_department_system_channel_purpose_and_period() -> None:
    system = Principal("approval-system", "approval", machine=MachineKind.CONSUMER_SYSTEM)
    g = grant()
    today = date(2026, 6, 1)
    assert g.refusal(system, Channel.API, "审批核验", today) is None
    assert "department" in g.refusal(
        Principal("x", "other", machine=MachineKind.CONSUMER_SYSTEM), Channel.API, "审批核验", today
    )
    assert "system" in g.refusal(
        Principal("other-system", "approval", machine=MachineKind.CONSUMER_SYSTEM), Channel.API, "审批核验", today
    )
    assert "channel" in g.refusal(system, Channel.FILE_DOWNLOAD, "审批核验", today)
    assert "purpose" in g.refusal(system, Channel.API, "别的用途", today)
    assert "expired" in g.refusal(system, Channel.API, "审批核验", date(2027, 1, 1))
    assert "revoked" in grant(status=GrantStatus.REVOKED, ended_reason="no longer needed").refusal(
        system, Channel.API, "审批核验", today
    )
    person = Principal("li", "approval", roles=frozenset({Role.DATA_ADMINISTRATOR}))
    assert g.refusal(person, Channel.API, "审批核验", today) == "the grant is for consumer system approval-system"
    named_like_it = Principal("approval-system", "approval", roles=frozenset({Role.DATA_ADMINISTRATOR}))
    assert "consumer system" in (g.refusal(named_like_it, Channel.API, "审批核验", today) or "")
    departments = grant(consumer_system=None)  # no system named: any of the department's persons and systems
    assert departments.refusal(person, Channel.API, "审批核验", today) is None
    assert departments.refusal(system, Channel.API, "审批核验", today) is None


def test_a_grant_shows_its_items_only_and_masks_sensitive_ones_it_does_not_name() -> None:
    fields = {"企业名称": "吉安某公司", "法人": "张三", "电话": "13800000000", "注册资本": 100}
    assert grant().view(fields, frozenset({"法人", "电话"})) == {"企业名称": "吉安某公司", "法人": "张三", "电话": MASK}
    empty = fields | {"电话": None, "法人": None}  # a masked item tells not even whether there is a value
    assert grant().view(empty, frozenset({"法人", "电话"})) == {"企业名称": "吉安某公司", "法人": None, "电话": MASK}


def test_a_grant_survives_its_stored_form_and_subjects_are_hashed_with_a_key() -> None:
    g = grant(scope=RowScope(("360821",), frozenset({CREDIT})))
    assert grant_of(grant_doc(g)) == g
    assert subject_hash(CREDIT, b"k1") != subject_hash(CREDIT, b"k2")
    assert CREDIT not in subject_hash(CREDIT, b"k1")


def test_named_subjects_lie_within_a_regions_scope_only_with_those_regions_kept() -> None:
    city = RowScope(("3608",))
    assert not RowScope(subjects=frozenset({CREDIT})).within(city)
    assert not RowScope(subjects=frozenset({"91110000MA00000000"})).within(city)
    assert RowScope(("360821",), frozenset({CREDIT})).within(city)
    assert RowScope(("3608",), frozenset({CREDIT})).within(city)
    assert not RowScope(("36",), frozenset({CREDIT})).within(city)
    assert RowScope(subjects=frozenset({CREDIT})).within(RowScope(subjects=frozenset({CREDIT, "OTHER"})))
