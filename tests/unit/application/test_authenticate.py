from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tests.unit.application._support import (
    ACCESS_TTL,
    ALICE_PASSWORD,
    SESSION_LIFETIME,
    RecordingUnitOfWork,
    SignIn,
    login_cmd,
)
from usermgmt.adapters.memory import FakeAccessTokenService, FrozenClock, InMemoryPrincipalReader
from usermgmt.application.commands import Authenticate, DeleteAccount, Logout
from usermgmt.application.errors import InvalidAccessToken
from usermgmt.application.handlers.authenticate import AuthenticateHandler
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.logout import LogoutHandler
from usermgmt.application.results import TokenPair
from usermgmt.domain.model import User


@pytest.fixture
async def pair(login: SignIn, alice: User) -> TokenPair:
    return await login(login_cmd())


async def test_valid_token_yields_the_principal(
    authenticate: AuthenticateHandler, alice: User, pair: TokenPair
) -> None:
    principal = await authenticate(Authenticate(access_token=pair.access_token))

    assert (principal.user_id, principal.email, principal.username) == (alice.id, alice.email, alice.username)
    assert principal.session_id == pair.session_id
    assert not hasattr(principal, "password_hash")


async def test_token_of_a_revoked_session_is_rejected(
    authenticate: AuthenticateHandler, logout: LogoutHandler, alice: User, pair: TokenPair
) -> None:
    await logout(Logout(user_id=alice.id, session_id=pair.session_id))

    with pytest.raises(InvalidAccessToken) as excinfo:
        await authenticate(Authenticate(access_token=pair.access_token))
    assert excinfo.value.code == "invalid_token"


async def test_token_of_a_deleted_user_is_rejected(
    authenticate: AuthenticateHandler, delete_account: DeleteAccountHandler, alice: User, pair: TokenPair
) -> None:
    await delete_account(DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD))

    with pytest.raises(InvalidAccessToken):
        await authenticate(Authenticate(access_token=pair.access_token))


async def test_token_of_a_deactivated_user_is_rejected(
    authenticate: AuthenticateHandler, uow: RecordingUnitOfWork, alice: User, pair: TokenPair
) -> None:
    uow.store.users[alice.id].is_active = False

    with pytest.raises(InvalidAccessToken):
        await authenticate(Authenticate(access_token=pair.access_token))


async def test_expired_token_is_rejected(
    authenticate: AuthenticateHandler, clock: FrozenClock, pair: TokenPair
) -> None:
    clock.advance(ACCESS_TTL - timedelta(seconds=1))
    await authenticate(Authenticate(access_token=pair.access_token))

    clock.advance(timedelta(seconds=1))
    with pytest.raises(InvalidAccessToken):
        await authenticate(Authenticate(access_token=pair.access_token))


async def test_token_of_an_expired_session_is_rejected(
    uow: RecordingUnitOfWork, clock: FrozenClock, pair: TokenPair
) -> None:
    # An access token that outlives its session (long token TTL) still dies with the session.
    long_lived = FakeAccessTokenService(clock, ttl=SESSION_LIFETIME * 2)
    handler = AuthenticateHandler(access_tokens=long_lived, principals=InMemoryPrincipalReader(uow.store), clock=clock)
    token = long_lived.issue(uow.store.sessions[pair.session_id]).token
    await handler(Authenticate(access_token=token))

    clock.advance(SESSION_LIFETIME)
    with pytest.raises(InvalidAccessToken):
        await handler(Authenticate(access_token=token))


async def test_token_naming_another_users_session_is_rejected(
    authenticate: AuthenticateHandler,
    access_tokens: FakeAccessTokenService,
    uow: RecordingUnitOfWork,
    bob: User,
    pair: TokenPair,
) -> None:
    alices = uow.store.sessions[pair.session_id]
    forged = access_tokens.issue(dataclasses.replace(alices, user_id=bob.id)).token  # bob's id, alice's session

    with pytest.raises(InvalidAccessToken):
        await authenticate(Authenticate(access_token=forged))


@pytest.mark.parametrize("token", ["", "garbage", "fake.1.2.3.4", "Bearer x"])
async def test_malformed_token_is_rejected(authenticate: AuthenticateHandler, token: str) -> None:
    with pytest.raises(InvalidAccessToken):
        await authenticate(Authenticate(access_token=token))
