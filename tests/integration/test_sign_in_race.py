"""On PostgreSQL and SQLite: a sign-in and a password change of the same account serialise on the user's row.

Defect 2 of issue 12: a login whose password check began before a password change could commit its session after
the change had ended every session, and that session stayed live. ``SessionIssuer`` now re-reads the user for
update in the transaction that writes the session and refuses when the password changed since the check, and
``ChangePasswordHandler`` reads the user for update before it ends the sessions.

The interleavings are forced: the real ``SessionIssuer`` is held inside its transaction by a second-factor policy
that waits for the test, and a waiting writer is observed in ``pg_locks`` (PostgreSQL) or, on SQLite, which has
no lock view, as a task that cannot finish while the other transaction is open.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW
from usermgmt.adapters.memory import (
    FakeAccessTokenService,
    FakePasswordHasher,
    FrozenClock,
    InMemoryRateLimiter,
    SequentialIdGenerator,
)
from usermgmt.adapters.refresh_tokens import SecretsRefreshTokenFactory
from usermgmt.adapters.sqlalchemy.tables import sessions
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.abuse import Guard, RateLimitPolicy, Throttle
from usermgmt.application.commands import ChangePassword, ClientInfo
from usermgmt.application.email import EmailPolicy, Postman
from usermgmt.application.errors import InvalidCredentials
from usermgmt.application.handlers.change_password import ChangePasswordHandler
from usermgmt.application.handlers.session_issuer import PasswordCheck, ProvenFactor, SessionIssuer
from usermgmt.application.ports import FurtherStep, UnitOfWork
from usermgmt.application.results import SignedIn
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.model import User
from usermgmt.domain.password_policy import PasswordPolicy
from usermgmt.domain.value_objects import AuthMethod, Email, PasswordHash, SessionId, UserId

CLIENT = ClientInfo(user_agent="racer", ip="192.0.2.9")
PASSWORD = "the owner's current password"
NEW_PASSWORD = "an entirely different passphrase"
BLOCKED_FOR = 0.5  # SQLite: how long a writer that should be waiting is watched not finishing


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest) -> AsyncEngine:
    engine: AsyncEngine = request.getfixturevalue("clean_database" if request.param == "postgresql" else "clean_sqlite")
    return engine


class HeldInside:
    """A second-factor policy that holds the sign-in inside its transaction (after its locked read of the user)
    until the test lets it go."""

    def __init__(self) -> None:
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def further_step(
        self, uow: UnitOfWork, user: User, factor: ProvenFactor, now: datetime
    ) -> FurtherStep | None:
        self.entered.set()
        await self.release.wait()
        return None


def issuer(engine: AsyncEngine, clock: FrozenClock, policy: HeldInside | None = None) -> SessionIssuer:
    return SessionIssuer(
        uow=SqlAlchemyUnitOfWork(engine),
        access_tokens=FakeAccessTokenService(clock),
        refresh_tokens=SecretsRefreshTokenFactory(),
        clock=clock,
        ids=SequentialIdGenerator(),
        session_lifetime=timedelta(days=1),
        second_factors=policy,
    )


def change_password(engine: AsyncEngine, clock: FrozenClock) -> ChangePasswordHandler:
    guard = Guard(Throttle(InMemoryRateLimiter(clock), RateLimitPolicy()), SqlAlchemyUnitOfWork(engine), clock)
    return ChangePasswordHandler(
        uow=SqlAlchemyUnitOfWork(engine),
        hasher=FakePasswordHasher(),
        screen=PasswordScreen(PasswordPolicy()),
        clock=clock,
        guard=guard,
        postman=Postman(EmailPolicy(frontend_url="https://app.example.com")),
    )


async def registered(engine: AsyncEngine) -> User:
    user = User.register(
        id=UserId(uuid4()),
        email=Email(f"{uuid4().hex[:12]}@example.com"),
        password_hash=FakePasswordHasher().hash_sync(PASSWORD),
        now=NOW,
    )
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.users.add(user)
        await uow.commit()
    return user


def checked(user: User) -> ProvenFactor:
    """The password factor as a login proves it: the hash it verified and the password's version then."""
    return ProvenFactor(
        user_id=user.id,
        method=AuthMethod.PASSWORD,
        password=PasswordCheck(changed_at=user.password_changed_at, verified_hash=user.password_hash),
    )


async def until_blocked(engine: AsyncEngine, task: asyncio.Task[object]) -> None:
    """Return once ``task`` is waiting for the other transaction's lock; fail if it finishes instead."""
    if engine.dialect.name == "sqlite":
        done, _ = await asyncio.wait({task}, timeout=BLOCKED_FOR)
        assert not done, "the writer finished while the other transaction held the database"
        return
    for _ in range(500):
        async with engine.connect() as connection:
            waiting = await connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid) "
                    "WHERE NOT granted AND datname = current_database()"
                )
            )
            if waiting.scalar_one():
                return
        assert not task.done(), "the writer finished while the other transaction held the row"
        await asyncio.sleep(0.01)
    pytest.fail("the writer never waited for the other transaction's lock")


async def live_sessions(engine: AsyncEngine, user: User) -> int:
    async with engine.connect() as connection:
        result = await connection.execute(select(func.count()).where(sessions.c.user_id == user.id))
        return int(result.scalar_one())


async def test_a_password_change_waits_for_a_sign_in_in_flight_and_then_ends_its_session(engine: AsyncEngine) -> None:
    clock = FrozenClock(NOW)
    user = await registered(engine)
    held = HeldInside()
    sign_in = asyncio.create_task(issuer(engine, clock, held).sign_in(checked(user), CLIENT))
    await held.entered.wait()  # the issuer holds the user's row, its session not yet written

    clock.advance(timedelta(seconds=1))
    command = ChangePassword(
        user_id=user.id, session_id=SessionId(uuid4()), current_password=PASSWORD, new_password=NEW_PASSWORD
    )
    change = asyncio.create_task(change_password(engine, clock)(command))
    await until_blocked(engine, change)
    held.release.set()

    assert isinstance(await sign_in, SignedIn)
    assert await change == 1  # the session committed before the change read on, and the change ended it
    assert await live_sessions(engine, user) == 0


async def test_a_sign_in_waits_for_an_uncommitted_password_change_and_is_then_refused(engine: AsyncEngine) -> None:
    clock = FrozenClock(NOW)
    user = await registered(engine)
    factor = checked(user)  # the old password has just been verified by a login in flight

    async with SqlAlchemyUnitOfWork(engine) as change:  # what ChangePasswordHandler's transaction does
        current = await change.users.get(user.id, for_update=True)
        assert current is not None
        current.change_password(PasswordHash("new-hash"), now=NOW + timedelta(seconds=1))
        await change.users.update(current)
        sign_in = asyncio.create_task(issuer(engine, clock).sign_in(factor, CLIENT))
        await until_blocked(engine, sign_in)  # it waits for the row, it does not race past it
        await change.sessions.delete_for_user(user.id)
        await change.commit()

    with pytest.raises(InvalidCredentials):
        await sign_in
    assert await live_sessions(engine, user) == 0


async def test_an_undisturbed_sign_in_starts_a_session(engine: AsyncEngine) -> None:
    user = await registered(engine)

    result = await issuer(engine, FrozenClock(NOW)).sign_in(checked(user), CLIENT)

    assert isinstance(result, SignedIn)
    assert await live_sessions(engine, user) == 1
