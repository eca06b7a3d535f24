"""The PrincipalReader contract: the in-memory reader, both PostgreSQL readers (SQLAlchemy and the asyncpg hot path)
and SqlAlchemyPrincipalReader on SQLite answer alike."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from tests.integration.builders import NOW, new_session, new_user, user_fields
from usermgmt.application.ports import PrincipalReader, UnitOfWork
from usermgmt.domain.errors import UserInactive
from usermgmt.domain.model import Session, User
from usermgmt.domain.value_objects import Email, FullName, SessionId, UserId

LIFETIME = timedelta(hours=1)


async def given(uow: UnitOfWork, *users: User, sessions: tuple[Session, ...] = ()) -> None:
    async with uow:
        for user in users:
            await uow.users.add(user)
        for session in sessions:
            await uow.sessions.add(session)
        await uow.commit()


async def test_active_user_with_a_live_session_is_returned(uow: UnitOfWork, principals: PrincipalReader) -> None:
    user = new_user("alice@example.com", username="alice", full_name="Alice")
    session = new_session(user, lifetime=LIFETIME)
    await given(uow, user, sessions=(session,))

    found = await principals.get(user.id, session.id, NOW + timedelta(minutes=1))

    assert found is not None
    hidden = {"id", "password_hash", "password_changed_at", "erasure_at"}  # the principal of a live session
    shown = {k: v for k, v in user_fields(user).items() if k not in hidden}
    assert {k: getattr(found, k) for k in shown} == shown
    assert (found.user_id, found.session_id) == (user.id, session.id)
    assert not hasattr(found, "password_hash")  # the hash never leaves the adapter on the hot path


async def test_just_before_expiry_the_session_still_counts(uow: UnitOfWork, principals: PrincipalReader) -> None:
    user = new_user()
    session = new_session(user, lifetime=LIFETIME)
    await given(uow, user, sessions=(session,))

    assert await principals.get(user.id, session.id, session.expires_at - timedelta(microseconds=1))


async def test_at_and_after_expiry_there_is_no_principal(uow: UnitOfWork, principals: PrincipalReader) -> None:
    user = new_user()
    session = new_session(user, lifetime=LIFETIME)
    await given(uow, user, sessions=(session,))

    assert await principals.get(user.id, session.id, session.expires_at) is None
    assert await principals.get(user.id, session.id, session.expires_at + timedelta(days=1)) is None


async def test_unknown_session_gives_no_principal(uow: UnitOfWork, principals: PrincipalReader) -> None:
    user = new_user()
    await given(uow, user, sessions=(new_session(user),))

    assert await principals.get(user.id, SessionId(uuid4()), NOW) is None


async def test_unknown_user_gives_no_principal(uow: UnitOfWork, principals: PrincipalReader) -> None:
    user = new_user()
    session = new_session(user)
    await given(uow, user, sessions=(session,))

    assert await principals.get(UserId(uuid4()), session.id, NOW) is None


async def test_another_users_session_gives_no_principal(uow: UnitOfWork, principals: PrincipalReader) -> None:
    alice, mallory = new_user("alice@example.com"), new_user("mallory@example.com")
    alices, mallorys = new_session(alice, label="alice"), new_session(mallory, label="mallory")
    await given(uow, alice, mallory, sessions=(alices, mallorys))

    assert await principals.get(mallory.id, alices.id, NOW) is None
    assert await principals.get(alice.id, mallorys.id, NOW) is None
    assert await principals.get(alice.id, alices.id, NOW) is not None


async def test_an_inactive_user_is_read_as_such_for_the_sign_in_rule_to_refuse(
    uow: UnitOfWork, principals: PrincipalReader
) -> None:
    user = new_user()
    user.deactivate(now=NOW)
    session = new_session(user)
    await given(uow, user, sessions=(session,))

    found = await principals.get(user.id, session.id, NOW)

    assert found is not None
    assert found.is_active is False
    with pytest.raises(UserInactive):
        found.ensure_may_authenticate()


async def test_the_principal_says_whether_the_account_has_a_password(
    uow: UnitOfWork, principals: PrincipalReader
) -> None:
    with_password = new_user("alice@example.com")
    federated = User.register_federated(
        id=UserId(uuid4()), email=Email("ada@example.com"), email_verified=True, now=NOW
    )
    sessions = (new_session(with_password, label="alice"), new_session(federated, label="ada"))
    await given(uow, with_password, federated, sessions=sessions)

    alice = await principals.get(with_password.id, sessions[0].id, NOW)
    ada = await principals.get(federated.id, sessions[1].id, NOW)

    assert alice is not None and alice.has_password is True
    assert ada is not None and ada.has_password is False
    assert ada.email == Email("ada@example.com") and ada.email_verified is True


async def test_deleted_session_gives_no_principal(uow: UnitOfWork, principals: PrincipalReader) -> None:
    user = new_user()
    session = new_session(user)
    await given(uow, user, sessions=(session,))
    async with uow:
        await uow.sessions.delete(session.id)
        await uow.commit()

    assert await principals.get(user.id, session.id, NOW) is None


async def test_only_committed_state_is_seen(uow: UnitOfWork, principals: PrincipalReader) -> None:
    user = new_user()
    session = new_session(user)

    async with uow:
        await uow.users.add(user)
        await uow.sessions.add(session)
        assert await principals.get(user.id, session.id, NOW) is None
        await uow.commit()

    assert await principals.get(user.id, session.id, NOW) is not None


async def test_principal_reflects_the_latest_committed_profile(uow: UnitOfWork, principals: PrincipalReader) -> None:
    user = new_user()
    session = new_session(user)
    await given(uow, user, sessions=(session,))
    async with uow:
        loaded = await uow.users.get(user.id)
        assert loaded is not None
        loaded.update_profile(now=NOW, full_name=FullName("Renamed"))
        await uow.users.update(loaded)
        await uow.commit()

    found = await principals.get(user.id, session.id, NOW)

    assert found is not None
    assert found.full_name == FullName("Renamed")
