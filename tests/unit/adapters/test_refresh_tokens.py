"""Opaque refresh tokens: 256 random bits, stored as a SHA-256 digest."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from usermgmt.adapters.refresh_tokens import TOKEN_BYTES, SecretsRefreshTokenFactory
from usermgmt.domain.value_objects import RefreshTokenHash

URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


@pytest.fixture
def factory() -> SecretsRefreshTokenFactory:
    return SecretsRefreshTokenFactory()


def test_token_has_at_least_256_bits(factory: SecretsRefreshTokenFactory) -> None:
    token = factory.generate()

    assert TOKEN_BYTES >= 32
    assert len(token) >= 43
    assert URLSAFE.fullmatch(token)
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 32


def test_tokens_are_unique(factory: SecretsRefreshTokenFactory) -> None:
    tokens = {factory.generate() for _ in range(2000)}
    assert len(tokens) == 2000


def test_digest_is_sha256_hex(factory: SecretsRefreshTokenFactory) -> None:
    token = factory.generate()

    digest = factory.digest(token)

    assert isinstance(digest, RefreshTokenHash)
    assert digest.value == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest.value)
    assert token not in digest.value


def test_digest_is_deterministic_and_distinguishes_tokens(factory: SecretsRefreshTokenFactory) -> None:
    token = factory.generate()

    assert factory.digest(token) == factory.digest(token)
    assert SecretsRefreshTokenFactory().digest(token) == factory.digest(token)
    assert factory.digest(token) != factory.digest(token + "x")
    assert factory.digest("abc").value == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_digest_accepts_any_client_string(factory: SecretsRefreshTokenFactory) -> None:
    # Whatever a client sends must digest (to something that matches nothing) instead of raising.
    for weird in ["", "é", "\x00", "\ud800", "x" * 10_000]:
        assert re.fullmatch(r"[0-9a-f]{64}", factory.digest(weird).value)
