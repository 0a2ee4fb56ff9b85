"""Subject identifiers (GB 11643 citizen ID numbers, GB 32100 unified social credit codes). The rules live in
the adapter kit, so that departments validate keys exactly as the center does before sending them."""

from datashare_adapter.identifiers import (
    CITIZEN_ID,
    CREDIT_CODE,
    CREDIT_CODE_ALPHABET,
    EITHER,
    KEY_ITEMS,
    InvalidIdentifier,
    change_id,
    citizen_id_check_character,
    credit_code_check_character,
    key_kind,
    validate_citizen_id,
    validate_credit_code,
    validate_subject_key,
)

__all__ = [
    "CITIZEN_ID",
    "CREDIT_CODE",
    "CREDIT_CODE_ALPHABET",
    "EITHER",
    "KEY_ITEMS",
    "InvalidIdentifier",
    "change_id",
    "citizen_id_check_character",
    "credit_code_check_character",
    "key_kind",
    "validate_citizen_id",
    "validate_credit_code",
    "validate_subject_key",
]
