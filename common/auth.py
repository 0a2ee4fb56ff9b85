"""Tokens: Ed25519-signed JWTs (EdDSA) issued by the directory and verified locally by every service
against a JWKS — the directory's own, or an external OIDC provider's (configuration only)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from common.events import Event
from common.policy import MachineKind, Principal, Role, Unauthenticated

__all__ = [
    "EventSigner",
    "KeySet",
    "RetiredKey",
    "TokenIssuer",
    "TokenVerifier",
    "Unauthenticated",
    "development_key",
    "generate_signing_key",
    "jwks",
    "load_signing_key",
    "verify_event_signature",
    "verify_signed_event",
]

log = logging.getLogger(__name__)
ALGORITHM = "EdDSA"
LEEWAY_SECONDS = 60  # clock skew between the directory and the broker
GENUINE_CACHE = 4096  # verified tokens remembered per process


def generate_signing_key() -> str:
    """A new Ed25519 private key as PKCS#8 PEM."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def development_key(path: Path) -> str:
    """A signing key kept in a file (made on first use, readable by its owner only): development only, where
    restarts keep what the key signed valid."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generate_signing_key())
        path.chmod(0o600)
        log.warning("no signing key configured: generated a development key in %s", path)
    return path.read_text()


def load_signing_key(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key must be an Ed25519 private key (PKCS#8 PEM)")
    return key


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return uuid.uuid5(uuid.NAMESPACE_OID, raw.hex()).hex[:16]


RETIRED_AT = "retired_at"  # a JWK member of this platform's own (RFC 7517 §4: others ignore unknown members)
MAX_RETIRED_AT = 253402300799  # 9999-12-31T23:59:59Z


@dataclass(frozen=True)
class RetiredKey:
    """The public half of a key the directory signed with before a rotation, and when it was retired: it
    verifies only events the broker appended before then, never a token."""

    public: Ed25519PublicKey
    retired_at: datetime


def jwks(*keys: Ed25519PrivateKey | Ed25519PublicKey | RetiredKey) -> dict[str, list[dict[str, Any]]]:
    """The public half of the signing keys (or the public keys given), as a JSON Web Key Set; a retired key
    carries its retirement time (unix seconds) as `retired_at`."""
    entries = []
    for key in keys:
        retired = key if isinstance(key, RetiredKey) else None
        public = key.public if isinstance(key, RetiredKey) else key
        public = public.public_key() if isinstance(public, Ed25519PrivateKey) else public
        jwk = json.loads(OKPAlgorithm.to_jwk(public)) | {"kid": key_id(public), "use": "sig", "alg": ALGORITHM}
        if retired is not None:
            jwk[RETIRED_AT] = int(retired.retired_at.timestamp())
        entries.append(jwk)
    return {"keys": entries}


@dataclass(frozen=True)
class KeySet:
    """The keys a JWKS publishes, by key id: current ones verify tokens and events, retired ones only events
    appended before their retirement."""

    current: dict[str, Ed25519PublicKey]
    retired: dict[str, RetiredKey] = field(default_factory=dict)

    def __contains__(self, kid: object) -> bool:
        return kid in self.current or kid in self.retired

    def for_token(self, kid: str) -> Ed25519PublicKey:
        if kid in self.retired:
            raise Unauthenticated("token signed by a retired key")
        if (key := self.current.get(kid)) is None:
            raise Unauthenticated("token signed by an unknown key")
        return key

    def for_event(self, kid: str, appended_at: datetime | None) -> Ed25519PublicKey:
        """The key that verifies an event the broker appended at `appended_at` (None: the time is unknown,
        as on a topic with producers' timestamps, which a forger would choose)."""
        if (key := self.current.get(kid)) is not None:
            return key
        if (retired := self.retired.get(kid)) is None:
            raise Unauthenticated("event signed by an unknown key")
        if appended_at is None or appended_at >= retired.retired_at:
            raise Unauthenticated("event signed by a retired key after its retirement (or at an unknown time)")
        return retired.public


def public_keys(jwks_document: dict[str, Any]) -> KeySet:
    """The Ed25519 public keys of a JWKS; one with a malformed `retired_at` is left out (never taken as current)."""
    current: dict[str, Ed25519PublicKey] = {}
    retired: dict[str, RetiredKey] = {}
    for jwk in jwks_document.get("keys", []):
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "d" not in jwk:
            key = OKPAlgorithm.from_jwk(json.dumps(jwk))
            if not isinstance(key, Ed25519PublicKey):
                continue
            if RETIRED_AT not in jwk:
                current[jwk["kid"]] = key
            elif (at := retirement_time(jwk[RETIRED_AT])) is not None:
                retired[jwk["kid"]] = RetiredKey(key, at)
    return KeySet(current, retired)


def retirement_time(value: object) -> datetime | None:
    """A `retired_at` member's time, None unless it is whole unix seconds within range."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_RETIRED_AT:
        return None
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class TokenIssuer:
    key: Ed25519PrivateKey
    issuer: str
    audience: str
    ttl_seconds: int = 900

    def issue(self, principal: Principal) -> tuple[str, int]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": principal.subject,
            "dept": principal.department_code,
            "roles": sorted(principal.roles),
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        if principal.generation is not None:
            claims["gen"] = principal.generation  # compared with the generation the directory's events announce
        if principal.machine:
            claims["machine"] = principal.machine.value
        headers = {"kid": key_id(self.key.public_key())}
        return jwt.encode(claims, self.key, algorithm=ALGORITHM, headers=headers), self.ttl_seconds


class TokenVerifier:
    """Verifies access tokens against a set of public keys, by their key id."""

    def __init__(self, keys: KeySet, issuer: str, audience: str) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        # Tokens already checked, with what they say: an adapter sends one token with thousands of messages,
        # a consumer system one with thousands of requests.
        self._genuine: OrderedDict[str, tuple[dict[str, Any], Principal]] = OrderedDict()

    def verify(self, token: str, at: datetime | None = None) -> Principal:
        """The token's principal if it is genuine and valid now, or at the moment `at` when given
        (a message checked after it arrived: the broker's append time, not the sender's word)."""
        claims, principal = self._genuine_claims(token)
        if at is None:
            if time.time() > claims["exp"]:
                raise Unauthenticated("token expired")
        elif not claims["iat"] - LEEWAY_SECONDS <= at.timestamp() <= claims["exp"] + LEEWAY_SECONDS:
            raise Unauthenticated("token was not valid when the message arrived")
        return principal

    def _genuine_claims(self, token: str) -> tuple[dict[str, Any], Principal]:
        """The claims of a genuine token and its principal, its expiry not yet checked."""
        if (known := self._genuine.get(token)) is not None:
            self._genuine.move_to_end(token)
            return known
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise Unauthenticated("malformed token") from None
        key = self.keys.for_token(kid or "")  # never a retired key: its holder could mint new tokens
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"], "verify_exp": False},
            )
        except jwt.InvalidSignatureError:
            raise Unauthenticated("token signature does not verify") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token from an untrusted issuer") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None
        known = self._genuine[token] = claims, principal_from_claims(claims)
        if len(self._genuine) > GENUINE_CACHE:
            self._genuine.popitem(last=False)
        return known


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    try:
        roles = frozenset(Role(r) for r in claims.get("roles", []) if r in Role._value2member_map_)
        machine = MachineKind(claims["machine"]) if claims.get("machine") else None
        generation = int(claims.get("gen", 0))
        return Principal(str(claims["sub"]), str(claims["dept"]), roles, machine, float(claims["iat"]), generation)
    except (KeyError, ValueError, TypeError):
        raise Unauthenticated("token lacks the department or has an unknown machine kind") from None


# -- signed events ----------------------------------------------------------------------------------
# Events that change who may do what are signed by the directory with its token signing key, so that
# whoever can write the topic cannot forge them. The signature travels in a header; the Avro value is
# untouched. It covers the event id, type, time, message key and the value's bytes.

SIGNATURE_HEADER = "signature"


def _event_signing_input(event_id: str, event_type: str, occurred_at: str, key: bytes, value: bytes) -> bytes:
    return _signing_input(event_id, event_type, occurred_at, key, hashlib.sha256(value).digest())


def _signing_input(event_id: str, event_type: str, occurred_at: str, key: bytes, value_digest: bytes) -> bytes:
    parts = [b"datashare-event-v1", event_id.encode(), event_type.encode(), occurred_at.encode(), key, value_digest]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)  # length-prefixed: no two inputs alike


@dataclass(frozen=True)
class EventSigner:
    key: Ed25519PrivateKey

    def signature(self, event_id: str, event_type: str, occurred_at: str, key: bytes, value: bytes) -> bytes:
        """The header value: the signing key's id and the Ed25519 signature, `kid:base64url`."""
        signed = self.key.sign(_event_signing_input(event_id, event_type, occurred_at, key, value))
        return f"{key_id(self.key.public_key())}:{base64.urlsafe_b64encode(signed).decode()}".encode()


def verify_event_signature(
    keys: KeySet,
    headers: list[tuple[str, bytes]],
    key: bytes,
    value: bytes,
    appended_at: datetime | None,
) -> None:
    """Raise Unauthenticated unless the message carries a valid signature by one of `keys` (a retired one only
    if the broker appended it, at `appended_at`, before the key's retirement)."""
    found = {name: raw for name, raw in headers}
    if SIGNATURE_HEADER not in found:
        raise Unauthenticated("unsigned event")
    try:
        kid, _, encoded = found[SIGNATURE_HEADER].decode().partition(":")
        signed = base64.urlsafe_b64decode(encoded)
        event_id, event_type, occurred_at = (found[h].decode() for h in ("event_id", "event_type", "occurred_at"))
    except (KeyError, ValueError):
        raise Unauthenticated("malformed event signature or envelope") from None
    _verify(
        keys.for_event(kid, appended_at), signed, _event_signing_input(event_id, event_type, occurred_at, key, value)
    )


def verify_signed_event(keys: KeySet, event: Event) -> None:
    """The same check on an event as a consumer received it (common.kafka.event_from_record keeps the
    signature header, the `occurred_at` header as sent and the value's digest): Unauthenticated unless one of
    `keys` signed it — a retired one only before its retirement, by the broker's append time (the signed
    `occurred_at` is the signer's word)."""
    if event.signature is None:
        raise Unauthenticated("unsigned event")
    kid, _, encoded = event.signature.header.partition(":")
    try:
        signed = base64.urlsafe_b64decode(encoded)
    except ValueError:
        raise Unauthenticated("malformed event signature") from None
    covered = _signing_input(
        event.event_id, event.event_type, event.signature.sent_at, event.key.encode(), event.signature.value_digest
    )
    _verify(keys.for_event(kid, event.appended_at), signed, covered)


def _verify(public: Ed25519PublicKey, signed: bytes, covered: bytes) -> None:
    try:
        public.verify(signed, covered)
    except InvalidSignature:
        raise Unauthenticated("event signature does not verify") from None
