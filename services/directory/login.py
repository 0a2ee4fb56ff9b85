"""Sign-in: people by password (OAuth2 password flow), machines by client credentials, and refresh.
Repeated failures lock the login for a while; every refusal is recorded with its reason."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from common.policy import Unauthenticated
from services.directory.domain.model import LoginPolicy
from services.directory.ports import LoginAttempts, RefreshTokens, SecretHasher, Tokens, UnitOfWork


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_in: int
    refresh_token: str | None = None


@dataclass(frozen=True)
class SignIn:
    """What sign-in needs, built once at start-up."""

    uow: UnitOfWork
    hasher: SecretHasher
    attempts: LoginAttempts
    refresh: RefreshTokens
    tokens: Tokens
    dummy_hash: str  # a real hash of a random secret: unknown logins take as long as known ones
    policy: LoginPolicy = field(default_factory=LoginPolicy)
    refresh_ttl: timedelta = timedelta(hours=8)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _refuse(signin: SignIn, login: str, reason: str, client: str | None) -> Unauthenticated:
    await signin.attempts.record_failure(login, reason, client)
    return Unauthenticated(reason)


async def _check_lockout(signin: SignIn, login: str, now: datetime) -> None:
    until = signin.policy.locked_until(await signin.attempts.failures(login, now - signin.policy.window), now)
    if until is not None:
        raise Unauthenticated(f"locked after repeated failures; try again after {until:%Y-%m-%d %H:%M:%S} UTC")


async def _grant_for_person(signin: SignIn, person_id: str, now: datetime) -> TokenGrant:
    person = await signin.uow.person(person_id)
    if person is None or not person.active:
        raise Unauthenticated("account deactivated")
    access, ttl = signin.tokens.issue(person.principal())
    refresh = secrets.token_urlsafe(32)
    await signin.refresh.store(_digest(refresh), person.person_id, now + signin.refresh_ttl)
    return TokenGrant(access, ttl, refresh)


async def with_password(signin: SignIn, username: str, password: str, client: str | None) -> TokenGrant:
    now = datetime.now(UTC)
    await _check_lockout(signin, username, now)
    person = await signin.uow.person(username)
    # Verify against a dummy hash for unknown users so timing does not tell who exists.
    if not signin.hasher.verify(person.password_hash if person else signin.dummy_hash, password) or person is None:
        raise await _refuse(signin, username, "invalid username or password", client)
    if not person.active:
        raise await _refuse(signin, username, "account deactivated", client)
    await signin.attempts.clear(username)
    return await _grant_for_person(signin, person.person_id, now)


async def with_client_credentials(signin: SignIn, client_id: str, secret: str, client: str | None) -> TokenGrant:
    now = datetime.now(UTC)
    await _check_lockout(signin, client_id, now)
    machine = await signin.uow.machine(client_id)
    if not signin.hasher.verify(machine.secret_hash if machine else signin.dummy_hash, secret) or machine is None:
        raise await _refuse(signin, client_id, "invalid client credentials", client)
    if not machine.active:
        raise await _refuse(signin, client_id, "client credentials revoked", client)
    await signin.attempts.clear(client_id)
    access, ttl = signin.tokens.issue(machine.principal())
    return TokenGrant(access, ttl)


async def with_refresh_token(signin: SignIn, refresh_token: str, client: str | None) -> TokenGrant:
    """Each refresh token works once and yields a new one (rotation)."""
    now = datetime.now(UTC)
    taken = await signin.refresh.take(_digest(refresh_token))
    if taken is None or taken[1] <= now:
        raise await _refuse(signin, "refresh-token", "refresh token expired, revoked or already used", client)
    return await _grant_for_person(signin, taken[0], now)
