"""Webhook secrets sealed at rest: what one key sealed opens with the key list that keeps it, a new first key
seals from then on, and a wrong or missing key is an error that names the key, never a wrong secret."""

import base64

import pytest
from pydantic import ValidationError

from common.identifiers import credit_code_check_character
from services.notifier.adapters.sealing import SealingKeyError, SecretSealer
from services.notifier.settings import NotifierSettings

OLD = "k1:" + base64.b64encode(b"1" * 32).decode()
NEW = "k2:" + base64.b64encode(b"2" * 32).decode()
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()


def test_a_sealed_secret_opens_with_its_key_and_a_rotation_keeps_the_old_key_for_opening() -> None:
    old = SecretSealer.parse(OLD)
    sealed = old.seal(SECRET)
    assert SECRET not in sealed and sealed.startswith("k1:") and old.open(sealed) == SECRET
    assert old.seal(SECRET) != sealed  # a fresh nonce each time
    rotated = SecretSealer.parse(f"{NEW},{OLD}")
    assert rotated.open(sealed) == SECRET and not rotated.is_current(sealed)
    assert rotated.seal(SECRET).startswith("k2:")
    with pytest.raises(SealingKeyError, match="k2"):
        old.open(rotated.seal(SECRET))  # the new key is not configured there
    forged = "k1:" + base64.b64encode(b"x" * 60).decode()
    with pytest.raises(SealingKeyError, match="does not open"):
        old.open(forged)


def test_bad_keys_stop_the_start_and_production_refuses_the_development_key() -> None:
    for bad in ("k1:short", "k1:" + "!" * 44, "", "no-colon"):
        with pytest.raises(ValidationError, match="sealing keys"):
            NotifierSettings(webhook_secret_keys=bad)
    office = "11360800MB0000003" + credit_code_check_character("11360800MB0000003")
    with pytest.raises(ValidationError, match="webhook_secret_keys"):
        NotifierSettings(
            environment="production", mongo_uri="mongodb://db.example:27017/?replicaSet=rs0",
            it_office_code=office, leadership_group_code="",
        )  # fmt: skip
