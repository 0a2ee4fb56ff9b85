"""Token verification (common.auth): what a service remembers of tokens it has checked never outlives them."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from datashare_adapter.signing import value_digest

from common.auth import (
    EventSigner,
    KeySet,
    RetiredKey,
    TokenIssuer,
    Unauthenticated,
    generate_signing_key,
    jwks,
    key_id,
    load_signing_key,
    verify_event_signature,
    verify_signed_event,
)
from common.events import Event, Signature
from common.keys import KeySource
from common.policy import Principal, Role
from common.settings import ServiceSettings
from tests.tokens import JWKS_JSON, KEY

MARKET = "11360800MB5000001X"


def verifier():
    keys = KeySource(ServiceSettings())
    keys.use(json.loads(JWKS_JSON))
    assert keys.verifier is not None
    return keys.verifier


def issued(ttl_seconds: int) -> str:
    issuer = TokenIssuer(KEY, "jian-datashare", "jian-datashare", ttl_seconds=ttl_seconds)
    return issuer.issue(Principal("admin", MARKET, frozenset({Role.DATA_ADMINISTRATOR}), generation=3))[0]


def test_a_token_checked_again_is_the_same_principal_without_checking_its_signature_again() -> None:
    tokens, token = verifier(), issued(900)
    first = tokens.verify(token)
    admin = Principal("admin", MARKET, frozenset({Role.DATA_ADMINISTRATOR}), None, first.issued_at, 3)
    assert first == admin and first.issued_at
    tokens.keys = KeySet({})  # a signature checked again would now fail: the remembered check answers
    assert tokens.verify(token) is first


def test_a_remembered_token_is_refused_once_it_expired_and_at_a_moment_outside_its_validity() -> None:
    tokens, token = verifier(), issued(-30)  # expired 30 s ago, within the leeway for messages
    for _ in range(2):  # refused when first checked, and again when remembered
        with pytest.raises(Unauthenticated, match="token expired"):
            tokens.verify(token)
    long_after = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(Unauthenticated, match="not valid when the message arrived"):
        tokens.verify(token, at=long_after)
    assert tokens.verify(token, at=datetime.now(UTC) - timedelta(seconds=45)).subject == "admin"


def test_a_forged_token_is_refused_every_time() -> None:
    tokens, token = verifier(), issued(900)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="signature does not verify"):
            tokens.verify(forged)


ROTATED_AT = datetime(2026, 11, 1, tzinfo=UTC)
NEW_KEY = load_signing_key(generate_signing_key())


def rotated() -> KeySource:
    """The keys a service holds after the directory's rotation: the new key, and the test key as retired."""
    keys = KeySource(ServiceSettings())
    keys.use(jwks(NEW_KEY, RetiredKey(KEY.public_key(), ROTATED_AT)))
    return keys


def test_the_jwks_marks_a_retired_key_with_its_retirement_time() -> None:
    published = jwks(NEW_KEY, RetiredKey(KEY.public_key(), ROTATED_AT))["keys"]
    assert [k["kid"] for k in published] == [key_id(NEW_KEY.public_key()), key_id(KEY.public_key())]
    assert "retired_at" not in published[0] and published[1]["retired_at"] == int(ROTATED_AT.timestamp())
    verifier = rotated().verifier
    assert verifier is not None
    assert list(verifier.keys.current) == [key_id(NEW_KEY.public_key())]
    assert list(verifier.keys.retired) == [key_id(KEY.public_key())]
    assert verifier.keys.retired[key_id(KEY.public_key())].retired_at == ROTATED_AT


def test_a_token_signed_with_a_retired_key_is_refused_however_recent() -> None:
    verifier = rotated().verifier
    assert verifier is not None
    with pytest.raises(Unauthenticated, match="retired key"):
        verifier.verify(issued(900))  # issued now, long after the rotation: a holder of the old key minted it
    with pytest.raises(Unauthenticated, match="retired key"):
        verifier.verify(issued(900), at=ROTATED_AT - timedelta(minutes=1))
    new = TokenIssuer(NEW_KEY, "jian-datashare", "jian-datashare").issue(Principal("a", MARKET, frozenset()))[0]
    assert verifier.verify(new).subject == "a"


def test_a_jwk_with_a_malformed_retirement_time_is_no_key_at_all() -> None:
    for bad in ("2026-11-01", True, -5, 10**12, 1.5):
        document = jwks(NEW_KEY, KEY)
        document["keys"][1]["retired_at"] = bad
        verifier = KeySource(ServiceSettings())
        verifier.use(document)
        assert verifier.verifier is not None and key_id(KEY.public_key()) not in verifier.verifier.keys, bad


def signed_event(appended_at: datetime | None) -> tuple[Event, list[tuple[str, bytes]], bytes]:
    """A DepartmentRegistered signed with the test key (retired in `rotated`), appended by the broker at
    `appended_at`: as a consumer receives it, and as the raw record's headers and value."""
    value = b"avro bytes"
    occurred_at = (ROTATED_AT - timedelta(days=3)).isoformat()  # the signer's word: whatever a forger likes
    header = EventSigner(KEY).signature("e1", "DepartmentRegistered", occurred_at, MARKET.encode(), value).decode()
    event = Event(
        "DepartmentRegistered",
        MARKET,
        {},
        "directory",
        event_id="e1",
        occurred_at=datetime.fromisoformat(occurred_at),
        signature=Signature(header, occurred_at, value_digest(value)),
        appended_at=appended_at,
    )
    return event, event.headers(), value


def test_a_retired_key_verifies_only_events_the_broker_appended_before_its_retirement() -> None:
    keys = rotated().verifier
    assert keys is not None
    before, after = ROTATED_AT - timedelta(seconds=1), ROTATED_AT + timedelta(seconds=1)
    for appended_at in (before,):
        event, headers, value = signed_event(appended_at)
        verify_signed_event(keys.keys, event)
        verify_event_signature(keys.keys, headers, MARKET.encode(), value, appended_at)
    for appended_at in (after, ROTATED_AT, None):  # None: no broker time (CreateTime), the producer's word
        event, headers, value = signed_event(appended_at)
        with pytest.raises(Unauthenticated, match="retired key after its retirement"):
            verify_signed_event(keys.keys, event)
        with pytest.raises(Unauthenticated, match="retired key after its retirement"):
            verify_event_signature(keys.keys, headers, MARKET.encode(), value, appended_at)
    _, headers, value = signed_event(before)
    with pytest.raises(Unauthenticated, match="does not verify"):
        verify_event_signature(keys.keys, headers, MARKET.encode(), value + b"!", before)
    current = KeySource(ServiceSettings())
    current.use(json.loads(JWKS_JSON))  # before the rotation the same key verifies events at any time
    assert current.verifier is not None
    verify_signed_event(current.verifier.keys, signed_event(None)[0])
