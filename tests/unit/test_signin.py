"""Sign-in throttling and the revocations every service keeps, without a broker or database."""

import base64
import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization

from common.auth import EventSigner, generate_signing_key, key_id, load_signing_key
from common.codec import EventCodec
from common.keys import KeySource
from common.policy import Principal, Unauthenticated
from common.revocations import Revocations
from common.settings import ServiceSettings
from services.directory.adapters.http import basic_client_credentials
from services.directory.domain.model import Throttle
from tests.tokens import JWKS_JSON, KEY

CODEC = EventCodec.from_folder()


def test_failures_slow_the_next_attempts_more_and_more_up_to_a_limit() -> None:
    throttle = Throttle(free_failures=5, first_delay=timedelta(seconds=1), max_delay=timedelta(minutes=15))
    assert [throttle.delay_after(n).total_seconds() for n in range(1, 9)] == [0, 0, 0, 0, 1, 2, 4, 8]
    assert throttle.delay_after(10_000) == timedelta(minutes=15)


def record(payload: dict, signer: EventSigner | None, *, tamper: bool = False) -> SimpleNamespace:
    event_type, event_id, occurred_at = "PersonRolesChanged", "e1", "2026-11-27T08:00:00+00:00"
    value = CODEC.encode(event_type, payload)
    headers = [
        ("event_id", event_id.encode()),
        ("event_type", event_type.encode()),
        ("occurred_at", occurred_at.encode()),
        ("producer", b"directory"),
    ]
    if signer is not None:
        headers.append(("signature", signer.signature(event_id, event_type, occurred_at, b"p", value)))
    if tamper:  # the value changed after it was signed
        value = CODEC.encode(event_type, payload | {"generation": payload["generation"] + 100})
    return SimpleNamespace(
        topic="directory.events", partition=0, offset=0, key=b"p", value=value, headers=headers, timestamp_type=0
    )


@pytest.fixture
def keys() -> KeySource:
    source = KeySource(ServiceSettings())
    source.use(json.loads(JWKS_JSON))
    return source


def roles_changed(generation: int) -> dict:
    return {"person_id": "p", "department_code": "D", "roles": [], "changed_by": "op", "generation": generation}


def test_only_events_the_directory_signed_change_generations(keys: KeySource) -> None:
    revocations = Revocations()
    stranger = EventSigner(load_signing_key(generate_signing_key()))
    revocations.receive(record(roles_changed(5), None), CODEC, keys)
    revocations.receive(record(roles_changed(6), stranger), CODEC, keys)
    revocations.receive(record(roles_changed(7), EventSigner(KEY), tamper=True), CODEC, keys)
    assert revocations.generations == {}
    revocations.receive(record(roles_changed(2), EventSigner(KEY)), CODEC, keys)
    revocations.receive(record(roles_changed(1), EventSigner(KEY)), CODEC, keys)  # replayed: never lowers it
    assert revocations.generations == {"p": 2}
    revocations.check(Principal("p", "D", generation=2))
    with pytest.raises(Unauthenticated, match="sign in again"):
        revocations.check(Principal("p", "D", generation=1))
    assert key_id(KEY.public_key()) in keys.verifier.keys  # type: ignore[union-attr]


def test_basic_client_credentials_are_read_as_rfc_6749_sends_them() -> None:
    def basic(raw: str) -> str:
        return "Basic " + base64.b64encode(raw.encode()).decode()

    assert basic_client_credentials(None) is None
    assert basic_client_credentials("Bearer abc") is None  # not client authentication
    assert basic_client_credentials(basic("adapter-1:s3cret")) == ("adapter-1", "s3cret")
    assert basic_client_credentials(basic("adapter%3A1:a+b%2Bc")) == ("adapter:1", "a b+c")  # form-encoded parts
    assert basic_client_credentials("basic " + base64.b64encode(b"id:x:y").decode()) == ("id", "x:y")
    for refused, reason in [
        ("Basic not-base64!", "malformed Basic credentials"),
        (basic("no-colon"), "Basic credentials need client_id:client_secret"),
        (basic(":"), "Basic credentials need client_id:client_secret"),  # Swagger UI without a client
        (basic("id:" + "s" * 257), "invalid client credentials"),
    ]:
        with pytest.raises(Unauthenticated) as caught:
            basic_client_credentials(refused)
        assert caught.value.reason == reason and "s3cret" not in str(caught.value)


def test_passwords_are_hashed_at_the_standard_cost_unless_a_test_suite_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.directory.adapters.secrets import Argon2Hasher
    from services.directory.settings import DirectorySettings

    monkeypatch.delenv("DIRECTORY_PASSWORD_HASH_COST", raising=False)
    assert DirectorySettings().password_hash_cost == "standard"
    standard, cheapest = Argon2Hasher("standard").hash("geheim"), Argon2Hasher("cheapest").hash("geheim")
    assert "$m=65536,t=3,p=4$" in standard and "$m=65536," not in cheapest
    # either verifies with either: a hash carries its own parameters
    assert Argon2Hasher("cheapest").verify(standard, "geheim") and Argon2Hasher().verify(cheapest, "geheim")
    assert not Argon2Hasher().verify(cheapest, "falsch")
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    production = {"environment": "production", "signing_key": pem, "mongo_uri": "mongodb://a,b,c/?replicaSet=rs"}
    assert DirectorySettings(**production).password_hash_cost == "standard"
    with pytest.raises(ValueError, match="password_hash_cost"):
        DirectorySettings(**production, password_hash_cost="cheapest")
