"""Tokens for tests, signed with a key made for the test session; services under test trust its JWKS."""

from __future__ import annotations

import json

from common.auth import TokenIssuer, generate_signing_key, jwks, load_signing_key
from common.policy import MachineKind, Principal, Role

KEY = load_signing_key(generate_signing_key())
JWKS_JSON = json.dumps(jwks(KEY))
ISSUER = TokenIssuer(KEY, "jian-datashare", "jian-datashare", ttl_seconds=3600)


def token(department: str, *roles: Role, subject: str = "tester", machine: MachineKind | None = None) -> str:
    return ISSUER.issue(Principal(subject, department, frozenset(roles), machine))[0]


def bearer(department: str, *roles: Role, subject: str = "tester", machine: MachineKind | None = None) -> dict:
    return {"Authorization": f"Bearer {token(department, *roles, subject=subject, machine=machine)}"}
