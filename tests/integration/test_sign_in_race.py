"""On PostgreSQL: a sign-in and a password change of the same account serialise on the user's row.

Defect 2 of issue 12: a login whose password check began before a password change could commit its session after
the change had ended every session, and that session stayed live. ``SessionIssuer`` now re-reads the user with
``FOR UPDATE`` in the transaction that writes the session, and refuses when the password changed since the check.
The interleaving is forced with the database's own locks, observed in ``pg_locks``: no sleeping on timing luck.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW, new_session, new_user
from usermgmt.adapters.memory import FakeAccessTokenService, FrozenClock, SequentialIdGenerator
from usermgmt.adapters.refresh_tokens import SecretsRefreshTokenFactory
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.commands import ClientInfo
from usermgmt.application.errors import InvalidCredentials
from usermgmt.application.handlers.session_issuer import PasswordCheck, ProvenFactor, SessionIssuer
from usermgmt.application.results import SignedIn
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import AuthMethod, PasswordHash

CLIENT = ClientInfo(user_agent="racer", ip="192.0.2.9")


def issuer(engine: AsyncEngine, clock: FrozenClock) -> SessionIssuer:
    return SessionIssuer(
        uow=SqlAlchemyUnitOfWork(engine),
        access_tokens=FakeAccessTokenService(clock),
        refresh_tokens=SecretsRefreshTokenFactory(),
        clock=clock,
        ids=SequentialIdGenerator(),
        session_lifetime=timedelta(days=1),
    )


def checked(user: User) -> ProvenFactor:
    """The password factor as a login proves it: the hash it verified and the password's version then."""
    return ProvenFactor(
        user_id=user.id,
        method=AuthMethod.PASSWORD,
        password=PasswordCheck(changed_at=user.password_changed_at, verified_hash=user.password_hash),
    )


async def waiting_for_a_row_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('transactionid', 'tuple')")
        )
        return bool(result.scalar_one())


async def until_blocked(engine: AsyncEngine) -> None:
    for _ in range(500):
        if await waiting_for_a_row_lock(engine):
            return
        await asyncio.sleep(0.01)
    pytest.fail("the sign-in never waited for the password change's lock")


async def live_sessions(engine: AsyncEngine, user: User) -> int:
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT count(*) FROM sessions WHERE user_id = :u"), {"u": user.id})
        return int(result.scalar_one())


async def test_a_sign_in_waits_for_an_uncommitted_password_change_and_is_then_refused(
    clean_database: AsyncEngine,
) -> None:
    engine, clock = clean_database, FrozenClock(NOW)
    user = new_user()
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.users.add(user)
        device = new_session(user)
        await uow.sessions.add(device)
        await uow.commit()
    factor = checked(user)  # the old password has just been verified by a login in flight

    change = SqlAlchemyUnitOfWork(engine)
    async with change:
        current = await change.users.get(user.id)
        assert current is not None
        current.change_password(PasswordHash("new-hash"), now=NOW + timedelta(seconds=1))
        await change.users.update(current)  # the row is locked until this transaction ends
        sign_in = asyncio.create_task(issuer(engine, clock).sign_in(factor, CLIENT))
        await until_blocked(engine)  # it is blocked on the row, not racing past it
        await change.sessions.delete_for_user(user.id)
        await change.commit()

    with pytest.raises(InvalidCredentials):
        await sign_in
    assert await live_sessions(engine, user) == 0


async def test_a_password_change_waits_for_an_uncommitted_sign_in_and_then_ends_its_session(
    clean_database: AsyncEngine,
) -> None:
    engine = clean_database
    user = new_user()
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.users.add(user)
        await uow.commit()

    locker = SqlAlchemyUnitOfWork(engine)
    async with locker:  # a sign-in holding the row (as SessionIssuer does between its read and its commit)
        assert await locker.users.get(user.id, for_update=True) is not None

        async def change_password() -> int:
            async with SqlAlchemyUnitOfWork(engine) as change:
                current = await change.users.get(user.id)
                assert current is not None
                current.change_password(PasswordHash("new-hash"), now=NOW + timedelta(seconds=1))
                await change.users.update(current)
                revoked = await change.sessions.delete_for_user(user.id)
                await change.commit()
                return revoked

        changing = asyncio.create_task(change_password())
        await until_blocked(engine)
        locker_session = new_session(user)
        await locker.sessions.add(locker_session)
        await locker.commit()

    assert await changing == 1  # the change saw the session committed before it and ended it
    assert await live_sessions(engine, user) == 0


async def test_an_undisturbed_sign_in_starts_a_session(clean_database: AsyncEngine) -> None:
    engine = clean_database
    user = new_user()
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.users.add(user)
        await uow.commit()

    result = await issuer(engine, FrozenClock(NOW)).sign_in(checked(user), CLIENT)

    assert isinstance(result, SignedIn)
    assert await live_sessions(engine, user) == 1
