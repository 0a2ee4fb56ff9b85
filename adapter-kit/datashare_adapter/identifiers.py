"""Subject identifiers: citizen ID numbers (GB 11643) and unified social credit codes (GB 32100).

Both end in a check character; a record keyed by a code that fails its check is refused, never stored.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date

CITIZEN_ID = "citizen_id"
CREDIT_CODE = "credit_code"

_CITIZEN_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_CITIZEN_CHECK = "10X98765432"  # indexed by (weighted sum mod 11)

CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100: no I, O, S, V, Z
_CREDIT_VALUE = {ch: i for i, ch in enumerate(CREDIT_CODE_ALPHABET)}
_CREDIT_WEIGHTS = [pow(3, i, 31) for i in range(17)]


@dataclass(eq=False)  # not frozen: raising sets __traceback__, which a frozen dataclass refuses
class InvalidIdentifier(ValueError):
    kind: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"invalid {self.kind}: {self.rule}: {self.detail}"


def citizen_id_check_character(first17: str) -> str:
    total = sum(int(ch) * w for ch, w in zip(first17, _CITIZEN_WEIGHTS, strict=True))
    return _CITIZEN_CHECK[total % 11]


def validate_citizen_id(value: str, *, today: date | None = None) -> str:
    """Return the normalised (upper-case) citizen ID number or raise InvalidIdentifier naming the rule."""
    code = value.strip().upper()
    if len(code) != 18:
        raise InvalidIdentifier(CITIZEN_ID, "length", f"must be 18 characters, got {len(code)}")
    if not re.fullmatch(r"\d{17}[\dX]", code):
        raise InvalidIdentifier(CITIZEN_ID, "charset", "must be 17 digits followed by a digit or X")
    if code[0] == "0":
        raise InvalidIdentifier(CITIZEN_ID, "region", "administrative division code cannot start with 0")
    try:
        born = date(int(code[6:10]), int(code[10:12]), int(code[12:14]))
    except ValueError:
        raise InvalidIdentifier(CITIZEN_ID, "birth_date", f"{code[6:14]} is not a calendar date") from None
    if born.year < 1900 or born > (today or date.today()):
        raise InvalidIdentifier(CITIZEN_ID, "birth_date", f"{born.isoformat()} is out of range")
    expected = citizen_id_check_character(code[:17])
    if code[17] != expected:
        raise InvalidIdentifier(CITIZEN_ID, "check_character", "ISO 7064 MOD 11-2 check character does not match")
    return code


def credit_code_check_character(first17: str) -> str:
    total = sum(_CREDIT_VALUE[ch] * w for ch, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def validate_credit_code(value: str) -> str:
    """Return the normalised unified social credit code or raise InvalidIdentifier naming the rule."""
    code = value.strip().upper()
    if len(code) != 18:
        raise InvalidIdentifier(CREDIT_CODE, "length", f"must be 18 characters, got {len(code)}")
    bad = sorted({ch for ch in code if ch not in _CREDIT_VALUE})
    if bad:
        raise InvalidIdentifier(
            CREDIT_CODE, "charset", f"characters {''.join(bad)!r} are not allowed (0-9, A-H, J-N, P-R, T, U, W-Y)"
        )
    if not code[2:8].isdigit():
        raise InvalidIdentifier(CREDIT_CODE, "region", "characters 3-8 must be the administrative division code")
    if code[17] != credit_code_check_character(code[:17]):
        raise InvalidIdentifier(CREDIT_CODE, "check_character", "weighted mod-31 check character does not match")
    return code


# The data items that carry a subject's own identifier, and which identifier each holds. A record's key is
# checked as its resource's key item declares: an all-digit credit code has the shape of a citizen ID too.
KEY_ITEMS = {
    "统一社会信用代码": CREDIT_CODE,
    "公民身份号码": CITIZEN_ID,
    "身份证号码": CITIZEN_ID,
    "居民身份证号码": CITIZEN_ID,
}
EITHER = "citizen_id_or_credit_code"  # the kind of a key valid as both, where none is declared


def key_kind(item_name: str) -> str | None:
    """The identifier a data item holds when it is a key item (names compare without white space)."""
    return KEY_ITEMS.get("".join(item_name.split()))


def validate_subject_key(value: str, kind: str | None = None) -> tuple[str, str]:
    """Return (kind, normalised key). With `kind` (the resource's declared key item), the key must be that
    identifier; without it, the key is accepted when it is valid as either, and its kind is the one it is
    valid as (EITHER when both)."""
    if kind == CITIZEN_ID:
        return CITIZEN_ID, validate_citizen_id(value)
    if kind == CREDIT_CODE:
        return CREDIT_CODE, validate_credit_code(value)
    if kind is not None:
        raise ValueError(f"not a kind of subject key: {kind!r}")
    valid: dict[str, str] = {}
    errors: list[InvalidIdentifier] = []
    for candidate, validate in ((CITIZEN_ID, validate_citizen_id), (CREDIT_CODE, validate_credit_code)):
        try:
            valid[candidate] = validate(value)
        except InvalidIdentifier as exc:
            errors.append(exc)
    if len(valid) == 2:
        return EITHER, valid[CITIZEN_ID]
    if valid:
        return next(iter(valid.items()))
    person, organisation = errors
    rule = person.rule if person.rule == organisation.rule else "kind"
    detail = f"neither a citizen ID ({person.detail}) nor a credit code ({organisation.detail})"
    raise InvalidIdentifier(EITHER, rule, detail)


CHANGE_NAMESPACE = uuid.UUID("6f1c2b0e-5d0c-4e4a-9a39-3a8f3f0b6c11")


def change_id(resource_code: str, subject_key: str, source_version: int, operation: str) -> str:
    """A data change's id, derived from what it is: the same change sent twice is stored once."""
    return uuid.uuid5(CHANGE_NAMESPACE, f"{resource_code}|{subject_key}|{source_version}|{operation}").hex
