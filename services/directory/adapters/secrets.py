"""Passwords and client secrets are stored only as argon2id hashes."""

from __future__ import annotations

from typing import Literal

from argon2 import PasswordHasher, profiles
from argon2.exceptions import Argon2Error, InvalidHashError

# `standard`: RFC 9106's recommendation for memory-constrained machines (64 MiB, 3 passes, 4 lanes).
# `cheapest`: argon2's own profile for test suites, refused in production (DirectorySettings). A hash says
# its parameters, so hashes of either kind verify whichever is set.
HashCost = Literal["standard", "cheapest"]
PROFILES = {"standard": profiles.RFC_9106_LOW_MEMORY, "cheapest": profiles.CHEAPEST}


class Argon2Hasher:
    def __init__(self, cost: HashCost = "standard") -> None:
        self._hasher = PasswordHasher.from_parameters(PROFILES[cost])

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def verify(self, secret_hash: str, secret: str) -> bool:
        try:
            return self._hasher.verify(secret_hash, secret)
        except (Argon2Error, InvalidHashError):
            return False
