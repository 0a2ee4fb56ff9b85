"""Token verification (common.auth): what a service remembers of tokens it has checked never outlives them."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from common.auth import TokenIssuer, Unauthenticated
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
    tokens.keys = {}  # a signature checked again would now fail: the remembered check answers
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
