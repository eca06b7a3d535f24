"""The SessionRepository contract, run against the in-memory fake, PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from uuid import uuid4

import pytest

from tests.integration.builders import NOW, new_session, new_user, session_fields, token_hash
from usermgmt.application.errors import ConcurrentUpdate
from usermgmt.application.ports import UnitOfWork
from usermgmt.domain.model import Session, User
from usermgmt.domain.value_objects import SessionId, UserId

LATER = NOW + timedelta(minutes=5)


async def given(uow: UnitOfWork, *users: User, sessions: tuple[Session, ...] = ()) -> None:
    async with uow:
        for user in users:
            await uow.users.add(user)
        for session in sessions:
            await uow.sessions.add(session)
        await uow.commit()


async def test_added_session_comes_back_with_every_field(uow: UnitOfWork) -> None:
    user = new_user()
    session = new_session(user, label="s1", user_agent="Mozilla/5.0 (X11; Linux x86_64) ✓", ip="2001:db8::1")
    await given(uow, user, sessions=(session,))

    async with uow:
        loaded = await uow.sessions.get(session.id)

    assert loaded is not None
    assert loaded is not session
    assert session_fields(loaded) == session_fields(session)
    for instant in (loaded.created_at, loaded.last_used_at, loaded.expires_at):
        assert instant.utcoffset() == timedelta(0)


async def test_session_without_client_details(uow: UnitOfWork) -> None:
    user = new_user()
    session = new_session(user, user_agent=None, ip=None)
    await given(uow, user, sessions=(session,))

    async with uow:
        loaded = await uow.sessions.get(session.id)

    assert loaded is not None
    assert loaded.user_agent is None
    assert loaded.ip is None


async def test_a_session_remembers_the_provider_it_signed_in_through(uow: UnitOfWork) -> None:
    user = new_user()
    through_google, with_password = new_session(user, label="google"), new_session(user, label="password")
    through_google.provider = "google"
    await given(uow, user, sessions=(through_google, with_password))

    async with uow:
        loaded = await uow.sessions.get(through_google.id)
        listed = await uow.sessions.list_for_user(user.id)

    assert loaded is not None
    assert session_fields(loaded) == session_fields(through_google)
    assert {s.id: s.provider for s in listed} == {through_google.id: "google", with_password.id: None}


async def test_unknown_session_is_none(uow: UnitOfWork) -> None:
    async with uow:
        assert await uow.sessions.get(SessionId(uuid4())) is None
        assert await uow.sessions.get_by_refresh_token(token_hash("nope")) is None
        assert await uow.sessions.find_by_retired_token(token_hash("nope")) is None
        assert await uow.sessions.list_for_user(UserId(uuid4())) == []


async def test_list_for_user_is_newest_use_first_and_only_theirs(uow: UnitOfWork) -> None:
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    oldest = new_session(alice, now=NOW - timedelta(days=2))
    newest = new_session(alice, now=NOW)
    middle = new_session(alice, now=NOW - timedelta(hours=1, microseconds=1))
    bobs = new_session(bob, now=NOW + timedelta(days=1))
    await given(uow, alice, bob, sessions=(oldest, newest, middle, bobs))

    async with uow:
        listed = await uow.sessions.list_for_user(alice.id)

    assert [s.id for s in listed] == [newest.id, middle.id, oldest.id]
    assert [session_fields(s) for s in listed] == [session_fields(s) for s in (newest, middle, oldest)]


async def test_rotation_moves_a_session_to_the_top_of_the_list(uow: UnitOfWork) -> None:
    user = new_user()
    older, newer = new_session(user, label="older", now=NOW - timedelta(hours=1)), new_session(user, label="newer")
    await given(uow, user, sessions=(older, newer))

    async with uow:
        retired = older.rotate(token_hash("older-2"), now=LATER, lifetime=timedelta(days=1), user_agent=None, ip=None)
        await uow.sessions.save_rotation(older, retired)
        await uow.commit()

    async with uow:
        assert [s.id for s in await uow.sessions.list_for_user(user.id)] == [older.id, newer.id]


async def test_get_by_refresh_token(uow: UnitOfWork) -> None:
    user = new_user()
    first, second = new_session(user, label="first"), new_session(user, label="second")
    await given(uow, user, sessions=(first, second))

    async with uow:
        found = await uow.sessions.get_by_refresh_token(token_hash("second"))

    assert found is not None
    assert session_fields(found) == session_fields(second)


async def test_save_rotation_replaces_the_token_and_remembers_the_retired_one(uow: UnitOfWork) -> None:
    user = new_user()
    session = new_session(user, label="gen-1")
    await given(uow, user, sessions=(session,))

    async with uow:
        loaded = await uow.sessions.get_by_refresh_token(token_hash("gen-1"))
        assert loaded is not None
        retired = loaded.rotate(
            token_hash("gen-2"), now=LATER, lifetime=timedelta(days=7), user_agent="rotated/2.0", ip="198.51.100.1"
        )
        assert retired == token_hash("gen-1")
        await uow.sessions.save_rotation(loaded, retired)
        await uow.commit()

    async with uow:
        assert await uow.sessions.get_by_refresh_token(token_hash("gen-1")) is None
        current = await uow.sessions.get_by_refresh_token(token_hash("gen-2"))
        assert await uow.sessions.find_by_retired_token(token_hash("gen-1")) == session.id
        assert await uow.sessions.find_by_retired_token(token_hash("gen-2")) is None
    assert current is not None
    assert session_fields(current) == session_fields(loaded)
    assert current.last_used_at == LATER
    assert current.expires_at == LATER + timedelta(days=7)
    assert current.created_at == NOW
    assert (current.user_agent, current.ip) == ("rotated/2.0", "198.51.100.1")


async def test_save_rotation_with_a_stale_retired_hash_is_refused(
    uow: UnitOfWork, make_uow: Callable[[], UnitOfWork]
) -> None:
    """Compare-and-set: two requests read the same token; the first rotation wins, the second must fail."""
    user = new_user()
    session = new_session(user, label="gen-1")
    await given(uow, user, sessions=(session,))

    async with uow:
        winner = await uow.sessions.get(session.id)
        assert winner is not None
        retired = winner.rotate(token_hash("winner"), now=LATER, lifetime=timedelta(days=1), user_agent=None, ip=None)
        await uow.sessions.save_rotation(winner, retired)
        await uow.commit()

    loser = session  # still holds gen-1, as a request that read it before the winner committed
    async with make_uow() as other:
        retired = loser.rotate(token_hash("loser"), now=LATER, lifetime=timedelta(days=1), user_agent=None, ip=None)
        with pytest.raises(ConcurrentUpdate):
            await other.sessions.save_rotation(loser, retired)

    async with uow:
        current = await uow.sessions.get(session.id)
        assert await uow.sessions.get_by_refresh_token(token_hash("loser")) is None
    assert current is not None
    assert current.refresh_token_hash == token_hash("winner")


async def test_save_rotation_of_a_deleted_session_is_refused(uow: UnitOfWork) -> None:
    user = new_user()
    session = new_session(user, label="gen-1")
    await given(uow, user, sessions=(session,))
    async with uow:
        assert await uow.sessions.delete(session.id)
        await uow.commit()

    async with uow:
        retired = session.rotate(token_hash("gen-2"), now=LATER, lifetime=timedelta(days=1), user_agent=None, ip=None)
        with pytest.raises(ConcurrentUpdate):
            await uow.sessions.save_rotation(session, retired)


async def test_rotation_without_commit_is_rolled_back(uow: UnitOfWork) -> None:
    user = new_user()
    session = new_session(user, label="gen-1")
    await given(uow, user, sessions=(session,))

    async with uow:
        retired = session.rotate(token_hash("gen-2"), now=LATER, lifetime=timedelta(days=1), user_agent=None, ip=None)
        await uow.sessions.save_rotation(session, retired)

    async with uow:
        assert await uow.sessions.get_by_refresh_token(token_hash("gen-1")) is not None
        assert await uow.sessions.find_by_retired_token(token_hash("gen-1")) is None


async def test_delete_removes_the_session_and_its_retired_tokens(uow: UnitOfWork) -> None:
    user = new_user()
    doomed, kept = new_session(user, label="doomed"), new_session(user, label="kept")
    await given(uow, user, sessions=(doomed, kept))
    async with uow:
        retired = doomed.rotate(token_hash("doomed-2"), now=LATER, lifetime=timedelta(days=1), user_agent=None, ip=None)
        await uow.sessions.save_rotation(doomed, retired)
        await uow.commit()

    async with uow:
        assert await uow.sessions.delete(doomed.id) is True
        await uow.commit()

    async with uow:
        assert await uow.sessions.get(doomed.id) is None
        assert await uow.sessions.find_by_retired_token(token_hash("doomed")) is None
        assert await uow.sessions.get(kept.id) is not None
        assert await uow.sessions.delete(doomed.id) is False


async def test_delete_with_the_owner_removes_it(uow: UnitOfWork) -> None:
    user = new_user()
    session = new_session(user)
    await given(uow, user, sessions=(session,))

    async with uow:
        assert await uow.sessions.delete(session.id, user_id=user.id) is True
        await uow.commit()

    async with uow:
        assert await uow.sessions.get(session.id) is None


async def test_delete_with_another_user_id_leaves_the_session_alone(uow: UnitOfWork) -> None:
    alice, mallory = new_user("alice@example.com"), new_user("mallory@example.com")
    alices = new_session(alice, label="alice")
    await given(uow, alice, mallory, sessions=(alices,))
    async with uow:
        retired = alices.rotate(token_hash("alice-2"), now=LATER, lifetime=timedelta(days=1), user_agent=None, ip=None)
        await uow.sessions.save_rotation(alices, retired)
        await uow.commit()

    async with uow:
        assert await uow.sessions.delete(alices.id, user_id=mallory.id) is False
        await uow.commit()

    async with uow:
        assert await uow.sessions.get(alices.id) is not None
        assert await uow.sessions.find_by_retired_token(token_hash("alice")) == alices.id


async def test_delete_of_an_unknown_session_is_false(uow: UnitOfWork) -> None:
    async with uow:
        assert await uow.sessions.delete(SessionId(uuid4())) is False
        assert await uow.sessions.delete(SessionId(uuid4()), user_id=UserId(uuid4())) is False


async def test_delete_for_user_removes_all_their_sessions(uow: UnitOfWork) -> None:
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    alice_sessions = tuple(new_session(alice, label=f"alice-{n}") for n in range(3))
    bobs = new_session(bob, label="bob")
    await given(uow, alice, bob, sessions=(*alice_sessions, bobs))
    async with uow:
        first = alice_sessions[0]
        retired = first.rotate(token_hash("alice-0b"), now=LATER, lifetime=timedelta(days=1), user_agent=None, ip=None)
        await uow.sessions.save_rotation(first, retired)
        await uow.commit()

    async with uow:
        assert await uow.sessions.delete_for_user(alice.id) == 3
        await uow.commit()

    async with uow:
        assert await uow.sessions.list_for_user(alice.id) == []
        assert await uow.sessions.find_by_retired_token(token_hash("alice-0")) is None
        assert [s.id for s in await uow.sessions.list_for_user(bob.id)] == [bobs.id]
        assert await uow.users.get(alice.id) is not None


async def test_delete_for_user_keeps_the_given_session(uow: UnitOfWork) -> None:
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    current = new_session(alice, label="current")
    others = tuple(new_session(alice, label=f"other-{n}") for n in range(2))
    bobs = new_session(bob, label="bob")
    await given(uow, alice, bob, sessions=(current, *others, bobs))

    async with uow:
        assert await uow.sessions.delete_for_user(alice.id, keep=current.id) == 2
        await uow.commit()

    async with uow:
        assert [s.id for s in await uow.sessions.list_for_user(alice.id)] == [current.id]
        assert await uow.sessions.get(bobs.id) is not None


async def test_delete_for_user_keeping_another_users_session_deletes_all_of_theirs(uow: UnitOfWork) -> None:
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    alices, bobs = new_session(alice, label="alice"), new_session(bob, label="bob")
    await given(uow, alice, bob, sessions=(alices, bobs))

    async with uow:
        assert await uow.sessions.delete_for_user(alice.id, keep=bobs.id) == 1
        await uow.commit()

    async with uow:
        assert await uow.sessions.get(alices.id) is None
        assert await uow.sessions.get(bobs.id) is not None


async def test_delete_for_user_without_sessions_is_zero(uow: UnitOfWork) -> None:
    user = new_user()
    await given(uow, user)

    async with uow:
        assert await uow.sessions.delete_for_user(user.id) == 0


async def test_session_for_a_user_that_no_longer_exists_is_refused_as_a_concurrent_update(
    uow: UnitOfWork, request: pytest.FixtureRequest
) -> None:
    """Login reads the user in one transaction and adds the session in another; deletion may come in between.

    The fake answers ConcurrentUpdate ("the database's foreign key would refuse it"), which callers can handle.
    """
    gone = new_user("gone@example.com")

    async with uow:
        with pytest.raises(ConcurrentUpdate):
            await uow.sessions.add(new_session(gone))


async def test_expired_sessions_are_purged_with_their_retired_tokens(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com")
    old = new_session(alice, label="old", now=NOW - timedelta(days=31))  # lifetime 30 days: expired at NOW
    live = new_session(alice, label="live", now=NOW)
    async with uow:
        await uow.users.add(alice)
        await uow.sessions.add(old)
        await uow.sessions.add(live)
        for session, label in ((old, "old-2"), (live, "live-2")):
            retired = session.rotate(
                token_hash(label), now=session.created_at, lifetime=timedelta(days=30), user_agent=None, ip=None
            )
            await uow.sessions.save_rotation(session, retired)
        await uow.commit()

    async with uow:
        purged = await uow.sessions.delete_expired(NOW)
        await uow.commit()

    assert purged == 1
    async with uow:
        assert [s.id for s in await uow.sessions.list_for_user(alice.id)] == [live.id]
        assert await uow.sessions.find_by_retired_token(token_hash("old")) is None
        assert await uow.sessions.find_by_retired_token(token_hash("live")) == live.id
        assert await uow.users.get(alice.id) is not None
