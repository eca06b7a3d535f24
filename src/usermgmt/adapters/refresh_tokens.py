"""Opaque refresh tokens: 256 random bits, stored only as their SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets

from usermgmt.domain.value_objects import RefreshTokenHash

TOKEN_BYTES = 32


class SecretsRefreshTokenFactory:
    """``secrets.token_urlsafe`` (the OS CSPRNG). A fast digest suffices: the token is random, not a password."""

    def generate(self) -> str:
        return secrets.token_urlsafe(TOKEN_BYTES)

    def digest(self, token: str) -> RefreshTokenHash:
        return RefreshTokenHash(hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest())
