"""The cache of verified access tokens: it saves the signature check, never a check that matters."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.unit.adapters.test_tokens import craft, good_claims, good_header, make_service
from usermgmt.adapters import tokens
from usermgmt.adapters.keys import KeyRing, SigningKey
from usermgmt.application.errors import InvalidAccessToken


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def test_a_cached_token_stops_working_when_it_expires(key: SigningKey) -> None:
    service = make_service(KeyRing(keys=(key,)))
    expires = int(time.time()) + 1
    token = craft(good_header(key), good_claims(exp=expires), key.private_key)
    assert service.verify(token).token_id == "a-unique-token-id"  # now cached

    time.sleep(max(0.0, expires - time.time()) + 0.05)  # the real clock: python-jose reads it too

    with pytest.raises(InvalidAccessToken):
        service.verify(token)
    assert token not in service._verified


def test_the_cache_holds_only_tokens_that_verified(key: SigningKey) -> None:
    service = make_service(KeyRing(keys=(key,)))
    forged = craft(good_header(key), good_claims(), SigningKey.generate().private_key)
    for _ in range(2):  # a rejected token is checked in full every time
        with pytest.raises(InvalidAccessToken):
            service.verify(forged)


def test_a_cached_answer_is_the_verified_one(key: SigningKey, monkeypatch: pytest.MonkeyPatch) -> None:
    service = make_service(KeyRing(keys=(key,)))
    token = craft(good_header(key), good_claims(), key.private_key)
    first = service.verify(token)
    calls: list[Any] = []
    monkeypatch.setattr(service, "_verify", lambda t: calls.append(t))  # the full check is not repeated

    assert service.verify(token) is first
    assert calls == []


def test_the_cache_is_bounded(key: SigningKey, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 3)
    service = make_service(KeyRing(keys=(key,)))
    issued = [craft(good_header(key), good_claims(jti=f"token-{i}"), key.private_key) for i in range(5)]
    for token in issued:
        service.verify(token)

    assert len(service._verified) == 3
    assert list(service._verified) == issued[2:]
