"""On PostgreSQL and SQLite: the real email-change handlers, two accounts confirming one address at the same time;
and, on PostgreSQL, a link followed while another writer holds the account (the lock order).

The first confirmation is held inside its transaction, its address already written, while the second one runs: the
second must wait for it (PostgreSQL: the unique index entry; SQLite: the write lock) and then fail on the unique
constraint, so that two accounts never end up with one address, whatever the checks before the write saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import uuid4

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW
from usermgmt.adapters.memory import FakePasswordHasher, FrozenClock, InMemoryRateLimiter
from usermgmt.adapters.sqlalchemy.tables import email_outbox, email_tokens, users
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.abuse import Guard, RateLimitPolicy, Throttle
from usermgmt.application.commands import ClientInfo, ConfirmEmailChange, RequestEmailChange, VerifyEmail
from usermgmt.application.email import EmailPolicy, Postman
from usermgmt.application.errors import EmailTaken, InvalidEmailToken
from usermgmt.application.handlers.email_address import (
    ConfirmEmailChangeHandler,
    RequestEmailChangeHandler,
    VerifyEmailHandler,
    send_verification,
)
from usermgmt.application.ports import EventDispatcher, UnitOfWork
from usermgmt.domain.events import SecurityEvent
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import Email, UserId

PASSWORD = "the owner's current password"
CLIENT = ClientInfo(user_agent="racer", ip="192.0.2.9")
POSTMAN = Postman(EmailPolicy(frontend_url="https://app.example.com"))
SHARED = "shared@example.org"


@pytest.fixture(params=["postgresql", "sqlite"])
def either_engine(request: pytest.FixtureRequest) -> AsyncEngine:
    engine: AsyncEngine = request.getfixturevalue("clean_database" if request.param == "postgresql" else "clean_sqlite")
    return engine


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


async def change_link(engine: AsyncEngine, clock: FrozenClock, user: User) -> str:
    """Ask for ``user``'s move to SHARED; the token of the link that went there."""
    guard = Guard(Throttle(InMemoryRateLimiter(clock), RateLimitPolicy()), SqlAlchemyUnitOfWork(engine), clock)
    request = RequestEmailChangeHandler(
        uow=SqlAlchemyUnitOfWork(engine), hasher=FakePasswordHasher(), clock=clock, guard=guard, postman=POSTMAN
    )
    await request(RequestEmailChange(user_id=user.id, new_email=SHARED, password=PASSWORD, client=CLIENT))
    async with engine.connect() as connection:
        context = (
            await connection.execute(
                select(email_outbox.c.context).where(
                    email_outbox.c.user_id == user.id, email_outbox.c.template == "confirm_email_change"
                )
            )
        ).scalar_one()
    return str(context["link"]).rpartition("token=")[2]


class Held:
    """A before-commit step that waits for ``release``: the transaction has written everything but not committed."""

    def __init__(self) -> None:
        self.reached, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self, uow: UnitOfWork, events: Sequence[SecurityEvent]) -> None:
        self.reached.set()
        await self.release.wait()


async def lock_waits(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        statement = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int((await connection.execute(statement)).scalar_one())


async def owners_of(engine: AsyncEngine, address: str) -> list[UserId]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(users.c.id).where(users.c.email_canonical == address))).all()
    return [UserId(row.id) for row in rows]


async def test_two_accounts_confirming_one_address_at_once_end_with_one_owner(either_engine: AsyncEngine) -> None:
    engine = either_engine
    clock = FrozenClock(NOW)
    alice, bob = await registered(engine), await registered(engine)
    alices, bobs = await change_link(engine, clock, alice), await change_link(engine, clock, bob)
    held = Held()
    first = ConfirmEmailChangeHandler(
        uow=SqlAlchemyUnitOfWork(engine, dispatcher=EventDispatcher(before_commit=[held])),
        clock=clock,
        postman=POSTMAN,
    )
    second = ConfirmEmailChangeHandler(uow=SqlAlchemyUnitOfWork(engine), clock=clock, postman=POSTMAN)

    in_flight = asyncio.create_task(first(ConfirmEmailChange(token=alices, client=CLIENT)))
    await asyncio.wait_for(held.reached.wait(), timeout=5)  # alice's new address is written, not committed
    racing = asyncio.create_task(second(ConfirmEmailChange(token=bobs, client=CLIENT)))
    if engine.dialect.name == "postgresql":
        async with asyncio.timeout(5):
            while await lock_waits(engine) == 0:  # bob's update waits for alice's index entry
                assert not racing.done(), f"finished instead of waiting: {racing}"
                await asyncio.sleep(0.005)
    else:
        await asyncio.sleep(0.05)  # bob waits for SQLite's write lock (or has not got there yet: the same outcome)
        assert not racing.done()
    held.release.set()

    await asyncio.wait_for(in_flight, timeout=5)
    with pytest.raises(EmailTaken):
        await asyncio.wait_for(racing, timeout=5)
    assert await owners_of(engine, SHARED) == [alice.id]
    async with engine.connect() as connection:
        bob_row = (await connection.execute(select(users).where(users.c.id == bob.id))).one()
        changed = select(func.count()).where(email_outbox.c.template == "email_changed")
        notices = (await connection.execute(changed)).scalar_one()
    assert (bob_row.email, bob_row.pending_email) == (bob.email.value, SHARED)
    assert notices == 1


# --- lock order: the user's row first, then the token ---------------------------------------------------------


async def verification_link(engine: AsyncEngine, clock: FrozenClock, user: User) -> str:
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await send_verification(uow, POSTMAN, user, CLIENT, clock.now(), reason="requested")
        await uow.commit()
    async with engine.connect() as connection:
        context = (
            await connection.execute(
                select(email_outbox.c.context).where(
                    email_outbox.c.user_id == user.id, email_outbox.c.template == "verify_email"
                )
            )
        ).scalar_one()
    return str(context["link"]).rpartition("token=")[2]


@pytest.mark.parametrize("flow", ["verify", "confirm"])
async def test_following_a_link_while_a_writer_holds_the_account_does_not_deadlock_on_postgresql(
    clean_database: AsyncEngine, flow: str
) -> None:
    """A writer of the account (a fresh verification link, a newer change request) locks the user's row, then
    deletes the account's links of that kind. A link followed meanwhile must wait for the row *before* it takes its
    token: had it taken the token first, each would wait for the other (PostgreSQL: deadlock_detected, a 500)."""
    clock = FrozenClock(NOW)
    alice = await registered(clean_database)
    if flow == "verify":
        token, purpose = await verification_link(clean_database, clock, alice), "verify"
        follow = VerifyEmailHandler(uow=SqlAlchemyUnitOfWork(clean_database), clock=clock, postman=POSTMAN)
        command: VerifyEmail | ConfirmEmailChange = VerifyEmail(token=token, client=CLIENT)
    else:
        token, purpose = await change_link(clean_database, clock, alice), "change_email"
        follow = ConfirmEmailChangeHandler(uow=SqlAlchemyUnitOfWork(clean_database), clock=clock, postman=POSTMAN)
        command = ConfirmEmailChange(token=token, client=CLIENT)

    async with clean_database.connect() as writer:
        await writer.execute(select(users.c.id).where(users.c.id == alice.id).with_for_update(key_share=True))
        following = asyncio.create_task(follow(command))  # type: ignore[arg-type]
        async with asyncio.timeout(5):
            while await lock_waits(clean_database) == 0:  # the link waits for the user's row...
                assert not following.done(), f"finished instead of waiting: {following}"
                await asyncio.sleep(0.005)
        async with asyncio.timeout(5):  # ...holding no token: the writer's delete does not wait for it
            await writer.execute(
                email_tokens.delete().where(email_tokens.c.user_id == alice.id, email_tokens.c.purpose == purpose)
            )
        await writer.commit()

    with pytest.raises(InvalidEmailToken):  # the writer killed the link first
        await asyncio.wait_for(following, timeout=5)
