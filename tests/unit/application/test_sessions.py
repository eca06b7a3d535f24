from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from tests.unit.application._support import (
    BOB_PASSWORD,
    NOW,
    SESSION_LIFETIME,
    RecordingUnitOfWork,
    SignIn,
    client,
    login_cmd,
    snapshot,
)
from usermgmt.adapters.memory import FrozenClock
from usermgmt.application.commands import ListEvents, ListSessions, RefreshSession, RevokeSession
from usermgmt.application.errors import InvalidRefreshToken, SessionNotFound
from usermgmt.application.handlers.refresh_session import RefreshSessionHandler
from usermgmt.application.handlers.sessions import ListEventsHandler, ListSessionsHandler, RevokeSessionHandler
from usermgmt.domain.events import EventType, SecurityEvent, StoredEvent
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import SessionId, UserId


async def test_list_sessions_newest_first_with_current_marked(
    list_sessions: ListSessionsHandler,
    login: SignIn,
    refresh: RefreshSessionHandler,
    clock: FrozenClock,
    alice: User,
    bob: User,
) -> None:
    first = await login(login_cmd(user_agent="phone"))
    clock.advance(timedelta(minutes=1))
    second = await login(login_cmd(user_agent="laptop"))
    clock.advance(timedelta(minutes=1))
    await login(login_cmd(login="bob", password=BOB_PASSWORD))
    clock.advance(timedelta(minutes=1))
    await refresh(RefreshSession(refresh_token=first.refresh_token))  # first is now the most recently used

    views = await list_sessions(ListSessions(user_id=alice.id, current_session_id=second.session_id))

    assert [v.session.id for v in views] == [first.session_id, second.session_id]
    assert [v.current for v in views] == [False, True]
    assert [v.session.user_agent for v in views] == ["phone", "laptop"]
    assert all(v.session.user_id == alice.id for v in views)


async def test_list_sessions_hides_expired_ones(
    list_sessions: ListSessionsHandler, login: SignIn, clock: FrozenClock, alice: User
) -> None:
    old = await login(login_cmd())
    clock.advance(SESSION_LIFETIME - timedelta(hours=1))
    fresh = await login(login_cmd())
    cmd = ListSessions(user_id=alice.id, current_session_id=fresh.session_id)
    assert {v.session.id for v in await list_sessions(cmd)} == {old.session_id, fresh.session_id}

    clock.advance(timedelta(hours=1))

    assert [v.session.id for v in await list_sessions(cmd)] == [fresh.session_id]


async def test_list_sessions_of_user_without_sessions_is_empty(
    list_sessions: ListSessionsHandler, login: SignIn, alice: User, bob: User
) -> None:
    pair = await login(login_cmd())
    assert await list_sessions(ListSessions(user_id=bob.id, current_session_id=pair.session_id)) == []


async def test_revoke_own_session(
    revoke_session: RevokeSessionHandler,
    login: SignIn,
    refresh: RefreshSessionHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    keep = await login(login_cmd())
    doomed = await login(login_cmd())

    await revoke_session(RevokeSession(user_id=alice.id, session_id=doomed.session_id))

    assert set(uow.store.sessions) == {keep.session_id}
    with pytest.raises(InvalidRefreshToken):
        await refresh(RefreshSession(refresh_token=doomed.refresh_token))


async def test_revoke_current_session_is_allowed(
    revoke_session: RevokeSessionHandler, login: SignIn, uow: RecordingUnitOfWork, alice: User
) -> None:
    pair = await login(login_cmd())
    await revoke_session(RevokeSession(user_id=alice.id, session_id=pair.session_id))
    assert uow.store.sessions == {}


async def test_revoke_another_users_session_is_not_found(
    revoke_session: RevokeSessionHandler, login: SignIn, uow: RecordingUnitOfWork, alice: User, bob: User
) -> None:
    bobs = await login(login_cmd(login="bob", password=BOB_PASSWORD))
    before = snapshot(uow.store)

    with pytest.raises(SessionNotFound) as excinfo:
        await revoke_session(RevokeSession(user_id=alice.id, session_id=bobs.session_id))

    assert excinfo.value.code == "session_not_found"
    assert snapshot(uow.store) == before


async def test_revoke_unknown_session_is_not_found(
    revoke_session: RevokeSessionHandler, login: SignIn, alice: User
) -> None:
    pair = await login(login_cmd())
    await revoke_session(RevokeSession(user_id=alice.id, session_id=pair.session_id))

    with pytest.raises(SessionNotFound):
        await revoke_session(RevokeSession(user_id=alice.id, session_id=pair.session_id))


async def test_revoking_is_recorded(
    revoke_session: RevokeSessionHandler, login: SignIn, uow: RecordingUnitOfWork, alice: User
) -> None:
    pair = await login(login_cmd())

    await revoke_session(RevokeSession(user_id=alice.id, session_id=pair.session_id, client=client(ip="192.0.2.99")))

    event = uow.recorded[-1]
    assert event.type is EventType.SESSION_REVOKED
    assert (event.user_id, event.session_id, event.ip) == (alice.id, pair.session_id, "192.0.2.99")


async def test_failed_revoke_records_nothing(
    revoke_session: RevokeSessionHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    with pytest.raises(SessionNotFound):
        await revoke_session(RevokeSession(user_id=alice.id, session_id=SessionId(UUID(int=404))))

    assert EventType.SESSION_REVOKED not in uow.kinds()


# --- the security history --------------------------------------------------------------------------------------


def given_events(uow: RecordingUnitOfWork, user_id: UserId, count: int, *, other: UserId | None = None) -> None:
    """Committed history, written straight into the store (positions 1..n, interleaved with someone else's)."""
    for n in range(count):
        at = NOW + timedelta(minutes=n)
        store_event(uow, SecurityEvent(type=EventType.LOGIN_SUCCEEDED, at=at, user_id=user_id))
        if other is not None:
            store_event(uow, SecurityEvent(type=EventType.LOGIN_FAILED, at=at, user_id=other))


def store_event(uow: RecordingUnitOfWork, event: SecurityEvent) -> None:
    uow.store.events.append(StoredEvent(id=len(uow.store.events) + 1, event=event))


async def test_list_events_pages_newest_first(list_events: ListEventsHandler, uow: RecordingUnitOfWork) -> None:
    alice_id, bob_id = UserId(UUID(int=1)), UserId(UUID(int=2))
    given_events(uow, alice_id, 5, other=bob_id)

    first = await list_events(ListEvents(user_id=alice_id, limit=2))
    second = await list_events(ListEvents(user_id=alice_id, limit=2, before=first.next_before))
    third = await list_events(ListEvents(user_id=alice_id, limit=2, before=second.next_before))

    pages = [first.items, second.items, third.items]
    ats = [[e.event.at for e in page] for page in pages]
    assert ats == [
        [NOW + timedelta(minutes=4), NOW + timedelta(minutes=3)],
        [NOW + timedelta(minutes=2), NOW + timedelta(minutes=1)],
        [NOW],
    ]
    assert all(e.event.user_id == alice_id for page in pages for e in page)
    assert first.next_before == first.items[-1].id
    assert third.next_before is None


async def test_list_events_exact_page_has_no_next(list_events: ListEventsHandler, uow: RecordingUnitOfWork) -> None:
    alice_id = UserId(UUID(int=1))
    given_events(uow, alice_id, 3)

    page = await list_events(ListEvents(user_id=alice_id, limit=3))

    assert len(page.items) == 3
    assert page.next_before is None


@pytest.mark.parametrize(("asked", "given"), [(0, 1), (-5, 1), (1, 1), (100, 100), (1000, 100)])
async def test_list_events_limit_is_clamped(
    list_events: ListEventsHandler, uow: RecordingUnitOfWork, asked: int, given: int
) -> None:
    alice_id = UserId(UUID(int=1))
    given_events(uow, alice_id, 150)

    page = await list_events(ListEvents(user_id=alice_id, limit=asked))

    assert len(page.items) == given
    assert page.next_before == page.items[-1].id


async def test_list_events_of_someone_without_history_is_empty(list_events: ListEventsHandler) -> None:
    page = await list_events(ListEvents(user_id=UserId(UUID(int=9))))
    assert (page.items, page.next_before) == ([], None)
