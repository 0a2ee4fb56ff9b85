from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.identifiers import (
    CREDIT_CODE_ALPHABET,
    EITHER,
    InvalidIdentifier,
    citizen_id_check_character,
    credit_code_check_character,
    key_kind,
    validate_citizen_id,
    validate_credit_code,
    validate_subject_key,
)

DIGITS = "0123456789"


@st.composite
def citizen_ids(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(["360802", "360821", "360881", "110101", "440305"]))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31)))
    sequence = draw(st.text(DIGITS, min_size=3, max_size=3))
    first17 = f"{region}{born:%Y%m%d}{sequence}"
    return first17 + citizen_id_check_character(first17)


@st.composite
def credit_codes(draw: st.DrawFn) -> str:
    head = draw(st.text(CREDIT_CODE_ALPHABET, min_size=2, max_size=2))
    region = draw(st.text(DIGITS, min_size=6, max_size=6))
    org = draw(st.text(CREDIT_CODE_ALPHABET, min_size=9, max_size=9))
    first17 = head + region + org
    return first17 + credit_code_check_character(first17)


@given(citizen_ids())
def test_generated_citizen_ids_pass(code: str) -> None:
    assert validate_citizen_id(code) == code


@given(citizen_ids(), st.integers(0, 17), st.sampled_from(DIGITS + "X"))
def test_any_single_change_of_a_citizen_id_fails(code: str, position: int, replacement: str) -> None:
    changed = code[:position] + replacement + code[position + 1 :]
    if changed == code:
        return
    with pytest.raises(InvalidIdentifier):
        validate_citizen_id(changed)


@given(credit_codes())
def test_generated_credit_codes_pass(code: str) -> None:
    assert validate_credit_code(code) == code


@given(credit_codes(), st.integers(0, 17), st.sampled_from(CREDIT_CODE_ALPHABET + "IOSVZ"))
def test_any_single_change_of_a_credit_code_fails(code: str, position: int, replacement: str) -> None:
    changed = code[:position] + replacement + code[position + 1 :]
    if changed == code:
        return
    with pytest.raises(InvalidIdentifier):
        validate_credit_code(changed)


def test_known_good_codes() -> None:
    assert validate_citizen_id("11010519491231002x") == "11010519491231002X"  # GB 11643 example
    assert validate_credit_code("91350100M000100Y43") == "91350100M000100Y43"


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("11010519491231002", "length"),
        ("1101051949123100AX", "charset"),
        ("01010519491231002X", "region"),
        ("110105194902300028", "birth_date"),  # 30 February
        ("110105194912310021", "check_character"),
    ],
)
def test_citizen_id_errors_name_the_rule(value: str, rule: str) -> None:
    with pytest.raises(InvalidIdentifier) as error:
        validate_citizen_id(value)
    assert error.value.rule == rule
    assert rule in str(error.value)


def test_citizen_id_born_in_the_future_is_refused() -> None:
    first17 = "36080220990101001"
    with pytest.raises(InvalidIdentifier, match="birth_date"):
        validate_citizen_id(first17 + citizen_id_check_character(first17), today=date(2026, 11, 25))


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("91350100M000100Y4", "length"),
        ("91350100M000100O43", "charset"),
        ("9135A100M000100Y43", "region"),
        ("91350100M000100Y44", "check_character"),
    ],
)
def test_credit_code_errors_name_the_rule(value: str, rule: str) -> None:
    with pytest.raises(InvalidIdentifier) as error:
        validate_credit_code(value)
    assert error.value.rule == rule


def test_subject_key_tells_persons_from_organisations() -> None:
    assert validate_subject_key("11010519491231002x") == ("citizen_id", "11010519491231002X")
    assert validate_subject_key("91350100M000100Y43") == ("credit_code", "91350100M000100Y43")


ALL_DIGIT_CREDIT_CODE = "914403001922038216"  # a real, valid credit code with the shape of a citizen ID


def test_a_key_is_checked_as_the_identifier_its_resource_declares() -> None:
    assert validate_subject_key(ALL_DIGIT_CREDIT_CODE, "credit_code") == ("credit_code", ALL_DIGIT_CREDIT_CODE)
    with pytest.raises(InvalidIdentifier, match="birth_date"):
        validate_subject_key(ALL_DIGIT_CREDIT_CODE, "citizen_id")
    with pytest.raises(InvalidIdentifier) as error:
        validate_subject_key("11010519491231002x", "credit_code")
    assert error.value.kind == "credit_code"


def test_a_key_without_a_declared_kind_is_accepted_when_valid_as_either() -> None:
    assert validate_subject_key(ALL_DIGIT_CREDIT_CODE) == ("credit_code", ALL_DIGIT_CREDIT_CODE)
    both = "360802199001010497"  # both check characters agree: the key stays undecided
    assert validate_citizen_id(both) == validate_credit_code(both) == both
    assert validate_subject_key(both) == (EITHER, both)
    with pytest.raises(InvalidIdentifier) as error:
        validate_subject_key("91350100M000100Y44")
    assert error.value.rule == "kind" and "neither a citizen ID" in str(error.value)


def test_key_items_name_their_identifier() -> None:
    assert key_kind("统一社会信用代码") == "credit_code" and key_kind(" 公民身份 号码") == "citizen_id"
    assert key_kind("企业名称") is None


async def test_an_invalid_identifier_passes_through_context_managers_as_itself() -> None:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def session():  # as an adapter's `async with`: the exception is thrown into the generator
        yield

    with pytest.raises(InvalidIdentifier, match="check_character"):
        async with session():
            validate_credit_code("91350100M000100Y44")
