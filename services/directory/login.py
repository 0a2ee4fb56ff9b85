"""Sign-in: people by password (OAuth2 password flow), machines by client credentials, and refresh.
Failed attempts slow further ones down (`LoginPolicy`); every refusal is recorded with its reason."""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from common.policy import Unauthenticated
from services.directory import handlers
from services.directory.domain.model import LoginPolicy, Throttle
from services.directory.ports import LoginAttempts, RefreshTokens, SecretHasher, Tokens, UnitOfWork


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_in: int
    refresh_token: str | None = None


class TooManyAttempts(Exception):
    """Sign-in attempts come too fast for this login; the caller may try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


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


Gates = list[tuple[str, Throttle]]  # (what attempts are counted against, how it slows them)


async def _refuse(
    signin: SignIn, login: str, reason: str, client: str | None, gates: Gates | None = None
) -> Unauthenticated:
    now = datetime.now(UTC)
    for key, throttle in gates or []:
        await signin.attempts.failed(key, throttle, now)
    await signin.attempts.record_failure(login, reason, client)
    return Unauthenticated(reason)


async def _admit(signin: SignIn, login: str, client: str | None, gates: Gates) -> None:
    """Count the attempt at each gate in turn, the narrowest first (a refused attempt then weighs on nothing
    wider); TooManyAttempts at the first that says wait."""
    now = datetime.now(UTC)
    for key, throttle in gates:
        until = await signin.attempts.admit(key, throttle, now)
        if until is not None:
            retry_after = max(1, math.ceil((until - now).total_seconds()))
            await signin.attempts.record_failure(login, f"throttled for {retry_after} s", client)
            raise TooManyAttempts(retry_after)


async def _verify(signin: SignIn, secret_hash: str | None, secret: str) -> bool:
    # Off the event loop: one argon2 verification takes tens of milliseconds.
    return await asyncio.to_thread(signin.hasher.verify, secret_hash or signin.dummy_hash, secret)


async def _grant_for_person(signin: SignIn, person_id: str, family: str, now: datetime) -> TokenGrant:
    person = await signin.uow.person(person_id)
    if person is None or not person.active:
        raise Unauthenticated("account deactivated")
    access, ttl = signin.tokens.issue(person.principal())
    refresh = secrets.token_urlsafe(32)
    await signin.refresh.store(_digest(refresh), person.person_id, family, now + signin.refresh_ttl)
    return TokenGrant(access, ttl, refresh)


async def with_password(signin: SignIn, username: str, password: str, client: str | None) -> TokenGrant:
    gates = [
        (f"person:{username}@{client}", signin.policy.per_client),
        (f"person:{username}", signin.policy.per_login),
    ]
    await _admit(signin, username, client, gates)
    person = await signin.uow.person(username)
    # Verify against a dummy hash for unknown users so timing does not tell who exists.
    if not await _verify(signin, person.password_hash if person else None, password) or person is None:
        raise await _refuse(signin, username, "invalid username or password", client, gates)
    if not person.active:
        raise await _refuse(signin, username, "account deactivated", client, gates)
    await signin.attempts.succeeded([key for key, _ in gates])
    return await _grant_for_person(signin, person.person_id, secrets.token_hex(16), datetime.now(UTC))


async def with_client_credentials(signin: SignIn, client_id: str, secret: str, client: str | None) -> TokenGrant:
    gates = [(f"machine:{client_id}@{client}", signin.policy.per_client)]
    await _admit(signin, client_id, client, gates)
    machine = await signin.uow.machine(client_id)
    if not await _verify(signin, machine.secret_hash if machine else None, secret) or machine is None:
        raise await _refuse(signin, client_id, "invalid client credentials", client, gates)
    if not machine.active:
        raise await _refuse(signin, client_id, "client credentials revoked", client, gates)
    await signin.attempts.succeeded([key for key, _ in gates])
    access, ttl = signin.tokens.issue(machine.principal())
    return TokenGrant(access, ttl)


async def with_refresh_token(signin: SignIn, refresh_token: str, client: str | None) -> TokenGrant:
    """Each refresh token works once and yields a new one of the same family (rotation). A second use means
    that someone else holds a token of the family: the family ends (OAuth 2.0 Security BCP 4.14)."""
    now = datetime.now(UTC)
    taken = await signin.refresh.take(_digest(refresh_token))
    if taken is None or taken.expires <= now:
        raise await _refuse(signin, "refresh-token", "refresh token expired, revoked or already used", client)
    if taken.reused:
        await handlers.end_refresh_family(taken.person_id, taken.family, signin.uow, signin.refresh)
        raise await _refuse(
            signin, taken.person_id, "refresh token already used: every token of its sign-in is revoked", client
        )
    return await _grant_for_person(signin, taken.person_id, taken.family, now)
