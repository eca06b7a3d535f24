from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.application._support import SESSION_LIFETIME, RecordingUnitOfWork, SignIn, login_cmd, snapshot
from usermgmt.adapters.memory import FakeAccessTokenService, FrozenClock
from usermgmt.adapters.refresh_tokens import SecretsRefreshTokenFactory
from usermgmt.application.commands import ClientInfo, Logout, RefreshSession
from usermgmt.application.errors import InvalidRefreshToken, RateLimited
from usermgmt.application.handlers.logout import LogoutHandler
from usermgmt.application.handlers.refresh_session import RefreshSessionHandler
from usermgmt.application.results import TokenPair
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import AuthMethod


@pytest.fixture
async def pair(login: SignIn, alice: User) -> TokenPair:
    return await login(login_cmd(user_agent="curl/8", ip="192.0.2.1"))


def refresh_cmd(token: str, *, ip: str | None = None, user_agent: str | None = None) -> RefreshSession:
    return RefreshSession(refresh_token=token, client=ClientInfo(ip=ip, user_agent=user_agent))


async def test_refresh_rotates_the_token_and_slides_the_session(
    refresh: RefreshSessionHandler,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    access_tokens: FakeAccessTokenService,
    refresh_tokens: SecretsRefreshTokenFactory,
    alice: User,
    pair: TokenPair,
) -> None:
    clock.advance(timedelta(days=10))

    new = await refresh(refresh_cmd(pair.refresh_token, user_agent="firefox"))

    assert new.session_id == pair.session_id
    assert new.refresh_token != pair.refresh_token
    assert new.access_token != pair.access_token
    assert new.refresh_expires_in == int(SESSION_LIFETIME.total_seconds())
    claims = access_tokens.verify(new.access_token)
    assert (claims.user_id, claims.session_id) == (alice.id, pair.session_id)

    session = uow.store.sessions[pair.session_id]
    assert session.refresh_token_hash == refresh_tokens.digest(new.refresh_token)
    assert session.last_used_at == clock.now()
    assert session.expires_at == clock.now() + SESSION_LIFETIME
    assert (session.user_agent, session.ip) == ("firefox", "192.0.2.1")
    assert uow.store.retired == {refresh_tokens.digest(pair.refresh_token).value: pair.session_id}


async def test_refreshed_token_can_be_refreshed_again(refresh: RefreshSessionHandler, pair: TokenPair) -> None:
    second = await refresh(refresh_cmd(pair.refresh_token))
    third = await refresh(refresh_cmd(second.refresh_token))

    assert len({pair.refresh_token, second.refresh_token, third.refresh_token}) == 3
    assert third.session_id == pair.session_id


async def test_reusing_a_rotated_token_ends_the_whole_session(
    refresh: RefreshSessionHandler, uow: RecordingUnitOfWork, pair: TokenPair
) -> None:
    new = await refresh(refresh_cmd(pair.refresh_token))

    with pytest.raises(InvalidRefreshToken) as excinfo:
        await refresh(refresh_cmd(pair.refresh_token))  # replay of the rotated token

    assert excinfo.value.code == "invalid_refresh_token"
    assert pair.session_id not in uow.store.sessions
    assert uow.store.retired == {}
    with pytest.raises(InvalidRefreshToken):
        await refresh(refresh_cmd(new.refresh_token))  # the thief's (or the owner's) newer token is dead too


async def test_reuse_ends_only_the_affected_session(
    refresh: RefreshSessionHandler, login: SignIn, uow: RecordingUnitOfWork, pair: TokenPair
) -> None:
    other = await login(login_cmd())
    await refresh(refresh_cmd(pair.refresh_token))

    with pytest.raises(InvalidRefreshToken):
        await refresh(refresh_cmd(pair.refresh_token))

    assert set(uow.store.sessions) == {other.session_id}
    assert (await refresh(refresh_cmd(other.refresh_token))).session_id == other.session_id


async def test_unknown_token_is_rejected_without_side_effects(
    refresh: RefreshSessionHandler, uow: RecordingUnitOfWork, pair: TokenPair
) -> None:
    before = snapshot(uow.store)

    for token in ["", "garbage", pair.refresh_token + "x", pair.access_token]:
        with pytest.raises(InvalidRefreshToken):
            await refresh(refresh_cmd(token))

    assert snapshot(uow.store) == before


async def test_expired_session_cannot_be_refreshed_and_is_deleted(
    refresh: RefreshSessionHandler, uow: RecordingUnitOfWork, clock: FrozenClock, pair: TokenPair
) -> None:
    clock.advance(SESSION_LIFETIME)

    with pytest.raises(InvalidRefreshToken):
        await refresh(refresh_cmd(pair.refresh_token))

    assert pair.session_id not in uow.store.sessions


async def test_session_just_before_expiry_can_be_refreshed(
    refresh: RefreshSessionHandler, clock: FrozenClock, pair: TokenPair
) -> None:
    clock.advance(SESSION_LIFETIME - timedelta(seconds=1))

    assert (await refresh(refresh_cmd(pair.refresh_token))).session_id == pair.session_id


async def test_deactivated_user_cannot_refresh(
    refresh: RefreshSessionHandler, uow: RecordingUnitOfWork, alice: User, pair: TokenPair
) -> None:
    uow.store.users[alice.id].is_active = False

    with pytest.raises(InvalidRefreshToken):
        await refresh(refresh_cmd(pair.refresh_token))

    assert pair.session_id not in uow.store.sessions


async def test_logout_ends_the_session_and_its_refresh_token(
    logout: LogoutHandler,
    refresh: RefreshSessionHandler,
    login: SignIn,
    uow: RecordingUnitOfWork,
    alice: User,
    pair: TokenPair,
) -> None:
    other = await login(login_cmd())

    await logout(Logout(user_id=alice.id, session_id=pair.session_id))

    assert set(uow.store.sessions) == {other.session_id}
    with pytest.raises(InvalidRefreshToken):
        await refresh(refresh_cmd(pair.refresh_token))


async def test_logout_drops_the_retired_tokens_of_the_session(
    logout: LogoutHandler, refresh: RefreshSessionHandler, uow: RecordingUnitOfWork, alice: User, pair: TokenPair
) -> None:
    await refresh(refresh_cmd(pair.refresh_token))
    assert uow.store.retired

    await logout(Logout(user_id=alice.id, session_id=pair.session_id))

    assert uow.store.sessions == {}
    assert uow.store.retired == {}


async def test_logout_cannot_end_another_users_session(
    logout: LogoutHandler, uow: RecordingUnitOfWork, bob: User, pair: TokenPair
) -> None:
    await logout(Logout(user_id=bob.id, session_id=pair.session_id))

    assert pair.session_id in uow.store.sessions


async def test_logout_twice_is_harmless(
    logout: LogoutHandler, uow: RecordingUnitOfWork, alice: User, pair: TokenPair
) -> None:
    await logout(Logout(user_id=alice.id, session_id=pair.session_id))
    await logout(Logout(user_id=alice.id, session_id=pair.session_id))

    assert uow.store.sessions == {}


async def test_refresh_command_repr_hides_the_token() -> None:
    assert "s3cr3t-token" not in repr(refresh_cmd("s3cr3t-token"))


async def test_refresh_is_recorded(
    refresh: RefreshSessionHandler, uow: RecordingUnitOfWork, alice: User, pair: TokenPair
) -> None:
    await refresh(refresh_cmd(pair.refresh_token, user_agent="firefox"))

    event = uow.recorded[-1]
    assert event.type is EventType.TOKEN_REFRESHED
    assert (event.user_id, event.session_id, event.user_agent) == (alice.id, pair.session_id, "firefox")


async def test_reuse_is_recorded_for_the_owner(
    refresh: RefreshSessionHandler, uow: RecordingUnitOfWork, alice: User, pair: TokenPair
) -> None:
    await refresh(refresh_cmd(pair.refresh_token))

    with pytest.raises(InvalidRefreshToken):
        await refresh(refresh_cmd(pair.refresh_token, ip="203.0.113.66"))

    event = uow.recorded[-1]
    assert event.type is EventType.REFRESH_REUSE_DETECTED
    assert (event.user_id, event.session_id, event.ip) == (alice.id, pair.session_id, "203.0.113.66")


async def test_unknown_token_records_nothing(
    refresh: RefreshSessionHandler, uow: RecordingUnitOfWork, pair: TokenPair
) -> None:
    recorded = list(uow.recorded)

    with pytest.raises(InvalidRefreshToken):
        await refresh(refresh_cmd("never-issued"))

    assert uow.recorded == recorded


async def test_refreshes_are_rate_limited_per_session(
    refresh: RefreshSessionHandler, login: SignIn, uow: RecordingUnitOfWork, clock: FrozenClock, pair: TokenPair
) -> None:
    token = pair.refresh_token
    for _ in range(30):  # the default: thirty a minute per session
        token = (await refresh(refresh_cmd(token))).refresh_token

    with pytest.raises(RateLimited) as excinfo:
        await refresh(refresh_cmd(token))

    assert excinfo.value.rule == "refreshes_per_session"
    assert uow.store.sessions[pair.session_id].refresh_token_hash == SecretsRefreshTokenFactory().digest(token)
    other = await login(login_cmd())
    assert (await refresh(refresh_cmd(other.refresh_token))).session_id == other.session_id  # other sessions: fine
    clock.advance(timedelta(minutes=1))
    assert (await refresh(refresh_cmd(token))).session_id == pair.session_id  # the token was not spent


async def test_logout_is_recorded_only_when_it_ended_something(
    logout: LogoutHandler, uow: RecordingUnitOfWork, alice: User, bob: User, pair: TokenPair
) -> None:
    await logout(Logout(user_id=bob.id, session_id=pair.session_id))  # not bob's: nothing happens
    assert EventType.LOGGED_OUT not in uow.kinds()

    await logout(Logout(user_id=alice.id, session_id=pair.session_id))
    await logout(Logout(user_id=alice.id, session_id=pair.session_id))

    assert uow.kinds().count(EventType.LOGGED_OUT) == 1
    event = uow.recorded[-1]
    assert (event.user_id, event.session_id) == (alice.id, pair.session_id)


async def test_a_refreshed_token_carries_how_and_when_the_session_began_not_the_refresh(
    refresh: RefreshSessionHandler, clock: FrozenClock, access_tokens: FakeAccessTokenService, pair: TokenPair
) -> None:
    signed_in_at = clock.now()
    first = access_tokens.verify(pair.access_token)
    clock.advance(timedelta(hours=1))

    new = await refresh(refresh_cmd(pair.refresh_token))

    claims = access_tokens.verify(new.access_token)
    assert (first.amr, first.auth_time) == ((AuthMethod.PASSWORD,), signed_in_at)
    assert (claims.amr, claims.auth_time) == ((AuthMethod.PASSWORD,), signed_in_at)
    assert claims.expires_at > first.expires_at  # a new token all the same
