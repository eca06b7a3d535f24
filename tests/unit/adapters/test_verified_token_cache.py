"""The cache of verified access tokens: it saves the signature check, never a check that matters."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.adapters.test_tokens import craft, good_claims, good_header, make_service
from usermgmt.adapters import tokens
from usermgmt.adapters.keys import KeyRing, SigningKey
from usermgmt.adapters.memory import FrozenClock
from usermgmt.application.errors import InvalidAccessToken


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every full verification (python-jose's decode) the service runs."""
    calls: list[str] = []
    decode = tokens.jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(tokens.jwt, "decode", counting)
    return calls


def test_a_cached_token_stops_working_when_it_expires_by_the_injected_clock(key: SigningKey) -> None:
    clock = FrozenClock(datetime.now(UTC))
    service = make_service(KeyRing(keys=(key,)), clock=clock)
    expires = int(clock.now().timestamp()) + 60
    token = craft(good_header(key), good_claims(exp=expires), key.private_key)
    service.verify(token)  # now cached

    clock.advance(timedelta(seconds=59))
    service.verify(token)
    clock.advance(timedelta(seconds=1))  # exp is the first instant at which it is invalid (RFC 7519)

    with pytest.raises(InvalidAccessToken):
        service.verify(token)


def test_the_cache_holds_only_tokens_that_verified(key: SigningKey, decodes: list[str]) -> None:
    service = make_service(KeyRing(keys=(key,)))
    forged = craft(good_header(key), good_claims(), SigningKey.generate().private_key)
    for _ in range(2):  # a rejected token is checked in full every time
        with pytest.raises(InvalidAccessToken):
            service.verify(forged)
    assert decodes == [forged, forged]


def test_a_cached_answer_is_the_verified_one_without_a_second_check(key: SigningKey, decodes: list[str]) -> None:
    service = make_service(KeyRing(keys=(key,)))
    token = craft(good_header(key), good_claims(), key.private_key)
    first = service.verify(token)

    assert service.verify(token) == first
    assert decodes == [token]


def test_the_cache_is_bounded_and_forgets_the_oldest(
    key: SigningKey, decodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 3)
    service = make_service(KeyRing(keys=(key,)))
    issued = [craft(good_header(key), good_claims(jti=f"token-{i}"), key.private_key) for i in range(5)]
    for token in issued:
        service.verify(token)
    decodes.clear()

    for token in issued[2:]:
        service.verify(token)  # the three newest are still cached
    assert decodes == []
    service.verify(issued[0])  # the oldest was forgotten: checked in full again
    assert decodes == [issued[0]]


def test_the_wall_clock_is_not_consulted(key: SigningKey) -> None:
    """Expiry follows the injected clock alone: a token valid by it verifies whatever the system time says."""
    clock = FrozenClock(datetime.now(UTC) + timedelta(days=365))
    service = make_service(KeyRing(keys=(key,)), clock=clock)
    later = int(clock.now().timestamp())
    token = craft(good_header(key), good_claims(iat=later, exp=later + 60), key.private_key)
    assert service.verify(token).expires_at > datetime.now(UTC) + timedelta(days=364)
    assert time.time() < later
