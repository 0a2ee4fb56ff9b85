"""Where a service gets the public keys it verifies tokens with: a JWKS given inline in its settings,
or fetched from a URL (the directory's, or an external OIDC provider's) and refreshed periodically."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx

from common.auth import TokenVerifier, public_keys
from common.settings import ServiceSettings

log = logging.getLogger(__name__)
REFRESH_SECONDS = 600


class KeySource:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.verifier: TokenVerifier | None = None

    def use(self, jwks_document: dict) -> None:
        keys = public_keys(jwks_document)
        if not keys.current:
            raise ValueError("the JWKS holds no current Ed25519 signing key")
        self.verifier = TokenVerifier(keys, self.settings.auth_issuer, self.settings.auth_audience)

    async def load(self) -> None:
        if self.settings.auth_jwks:
            self.use(json.loads(self.settings.auth_jwks))
            return
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(str(self.settings.auth_jwks_url))
            response.raise_for_status()
            self.use(response.json())

    async def run(self) -> None:
        """Load the keys, then reload them now and then so that rotated keys are picked up."""
        while True:
            await self.load()
            await asyncio.sleep(REFRESH_SECONDS)
