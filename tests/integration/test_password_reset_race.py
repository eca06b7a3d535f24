"""On PostgreSQL and SQLite: the real ``ResetPasswordHandler`` against concurrent use of one account.

A hasher holds each reset between its look at the token and its writing transaction, so both racers have seen a
valid link before either writes: only the writing transaction (the user's row locked first, then the token taken
once) can decide.
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW
from usermgmt.adapters.memory import FakePasswordHasher, FrozenClock, InMemoryRateLimiter
from usermgmt.adapters.sqlalchemy.tables import email_outbox, email_tokens, security_events, users
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.abuse import Guard, RateLimitPolicy, Throttle
from usermgmt.application.commands import ChangePassword, ClientInfo, ForgotPassword, ResetPassword
from usermgmt.application.email import EmailPolicy, Postman
from usermgmt.application.errors import InvalidEmailToken
from usermgmt.application.handlers.change_password import ChangePasswordHandler
from usermgmt.application.handlers.password_reset import ForgotPasswordHandler, ResetPasswordHandler
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.model import User
from usermgmt.domain.password_policy import PasswordPolicy
from usermgmt.domain.value_objects import Email, PasswordHash, PlainPassword, SessionId, UserId

PASSWORD = "the owner's current password"
CLIENT = ClientInfo(user_agent="racer", ip="192.0.2.9")
POSTMAN = Postman(EmailPolicy(frontend_url="https://app.example.com"))


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest) -> AsyncEngine:
    engine: AsyncEngine = request.getfixturevalue("clean_database" if request.param == "postgresql" else "clean_sqlite")
    return engine


class HeldHasher(FakePasswordHasher):
    """Hashes only once ``release`` is set; ``hashing`` tells that a caller got there (past its look)."""

    def __init__(self, release: asyncio.Event | asyncio.Barrier) -> None:
        super().__init__()
        self.release, self.hashing = release, asyncio.Event()

    async def hash(self, password: PlainPassword) -> PasswordHash:
        self.hashing.set()
        await self.release.wait()
        return await super().hash(password)


def guard(engine: AsyncEngine, clock: FrozenClock) -> Guard:
    return Guard(Throttle(InMemoryRateLimiter(clock), RateLimitPolicy()), SqlAlchemyUnitOfWork(engine), clock)


def resetter(engine: AsyncEngine, clock: FrozenClock, hasher: FakePasswordHasher) -> ResetPasswordHandler:
    return ResetPasswordHandler(
        uow=SqlAlchemyUnitOfWork(engine),
        hasher=hasher,
        screen=PasswordScreen(PasswordPolicy()),
        clock=clock,
        postman=POSTMAN,
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


async def reset_link(engine: AsyncEngine, clock: FrozenClock, user: User) -> str:
    forgot = ForgotPasswordHandler(
        uow=SqlAlchemyUnitOfWork(engine), clock=clock, guard=guard(engine, clock), postman=POSTMAN
    )
    await forgot(ForgotPassword(email=user.email.value, client=CLIENT))
    async with engine.connect() as connection:
        context = (
            await connection.execute(select(email_outbox.c.context).where(email_outbox.c.user_id == user.id))
        ).scalar_one()
    return str(context["link"]).rpartition("token=")[2]


async def count(engine: AsyncEngine, statement: object) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(statement)).scalar_one())  # type: ignore[call-overload]


async def stored_hash(engine: AsyncEngine, user: User) -> str:
    async with engine.connect() as connection:
        return str((await connection.execute(select(users.c.password_hash).where(users.c.id == user.id))).scalar_one())


async def test_two_resets_with_one_link_let_exactly_one_win(engine: AsyncEngine) -> None:
    clock = FrozenClock(NOW)
    user = await registered(engine)
    token = await reset_link(engine, clock, user)
    both_looked = asyncio.Barrier(2)
    hasher = HeldHasher(both_looked)
    passwords = ["the first racer's passphrase", "the second racer's passphrase"]

    results = await asyncio.wait_for(
        asyncio.gather(
            *(
                resetter(engine, clock, hasher)(ResetPassword(token=token, new_password=p, client=CLIENT))
                for p in passwords
            ),
            return_exceptions=True,
        ),
        timeout=15,
    )

    winners = [p for p, r in zip(passwords, results, strict=True) if r is None]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1, results
    assert [type(r) for r in losers] == [InvalidEmailToken], results
    assert await stored_hash(engine, user) == hasher.hash_sync(winners[0]).value
    assert await count(engine, select(func.count()).select_from(email_tokens)) == 0
    resets = select(func.count()).where(security_events.c.type == "password_reset")
    assert await count(engine, resets) == 1
    notices = select(func.count()).where(email_outbox.c.template == "password_changed")
    assert await count(engine, notices) == 1


async def test_a_password_change_while_a_reset_hashes_wins_and_the_link_dies(engine: AsyncEngine) -> None:
    clock = FrozenClock(NOW)
    user = await registered(engine)
    token = await reset_link(engine, clock, user)
    release = asyncio.Event()
    hasher = HeldHasher(release)
    in_flight = asyncio.create_task(
        resetter(engine, clock, hasher)(ResetPassword(token=token, new_password="the attacker's passphrase"))
    )
    await asyncio.wait_for(hasher.hashing.wait(), timeout=5)  # the link has been seen valid...

    change = ChangePasswordHandler(
        uow=SqlAlchemyUnitOfWork(engine),
        hasher=FakePasswordHasher(),
        screen=PasswordScreen(PasswordPolicy()),
        clock=clock,
        guard=guard(engine, clock),
        postman=POSTMAN,
    )
    await change(  # ...and the owner changes the password
        ChangePassword(
            user_id=user.id,
            session_id=SessionId(uuid4()),
            current_password=PASSWORD,
            new_password="the owner's new passphrase",
        )
    )
    release.set()

    with pytest.raises(InvalidEmailToken):
        await asyncio.wait_for(in_flight, timeout=5)
    assert await stored_hash(engine, user) == FakePasswordHasher().hash_sync("the owner's new passphrase").value
    assert await count(engine, select(func.count()).select_from(email_tokens)) == 0
