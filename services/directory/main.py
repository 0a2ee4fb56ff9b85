"""Wires the directory service: the single place real adapters are built."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from fastapi import FastAPI

from common.auth import (
    EventSigner,
    TokenIssuer,
    development_key,
    generate_signing_key,
    jwks,
    key_id,
    load_signing_key,
)
from common.http import create_app, run_service
from common.runtime import Runtime
from services.directory.adapters import http, mongo
from services.directory.adapters.keys import retired_keys
from services.directory.adapters.secrets import Argon2Hasher
from services.directory.domain.model import LoginPolicy
from services.directory.login import SignIn, TooManyAttempts
from services.directory.settings import DEV_KEY_FILE, DirectorySettings

log = logging.getLogger(__name__)


def signing_key(settings: DirectorySettings) -> str:
    """The configured key; in development a key kept in .var/ so that restarts keep tokens valid."""
    if settings.signing_key is not None:
        return settings.signing_key.get_secret_value()
    return development_key(DEV_KEY_FILE)


def build(settings: DirectorySettings) -> tuple[FastAPI, Runtime]:
    runtime = Runtime.build("directory", settings)
    key = load_signing_key(signing_key(settings))
    current = key_id(key.public_key())
    # the current key first; retired ones only verify what was signed before the rotation
    key_set = jwks(key, *(k for k in retired_keys(settings.retired_signing_keys) if key_id(k.public) != current))
    runtime.keys.use(key_set)
    runtime.setup.append(partial(mongo.ensure_indexes, runtime.db))
    uow = mongo.MongoUnitOfWork(runtime, EventSigner(key))
    hasher = Argon2Hasher(settings.password_hash_cost)
    signin = SignIn(
        uow=uow,
        hasher=hasher,
        attempts=mongo.MongoLoginAttempts(runtime.db),
        refresh=mongo.MongoRefreshTokens(runtime.db),
        tokens=TokenIssuer(key, settings.auth_issuer, settings.auth_audience, settings.access_token_minutes * 60),
        dummy_hash=hasher.hash(generate_signing_key()),
        policy=LoginPolicy.of(settings.signin_free_failures, timedelta(minutes=settings.signin_max_delay_minutes)),
        refresh_ttl=timedelta(hours=settings.refresh_token_hours),
    )
    app = create_app(
        runtime,
        title="Directory",
        description="Departments, people, data administrators and machine identities (Art. 4, 11, 19, 22); "
        "sign-in and the keys that every service verifies tokens with.",
        routers=[http.router(uow, hasher, signin, key_set, settings.trusted_proxies)],
    )
    app.add_exception_handler(TooManyAttempts, http.too_many_attempts)
    app.add_middleware(http.TokenCors, origins=settings.cors_allowed_origins)
    return app, runtime


def main() -> None:
    run_service("directory", DirectorySettings, build)


if __name__ == "__main__":
    main()
