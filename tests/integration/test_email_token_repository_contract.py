"""The EmailTokenRepository contract (one-time email tokens), run against the in-memory fake, PostgreSQL and SQLite
alike: single use, bound to a purpose, deleted per user and purpose; and two transactions taking one token at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW, email_token, new_user
from usermgmt.adapters.memory import InMemoryUnitOfWork
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.errors import ConcurrentUpdate
from usermgmt.application.ports import EmailToken, UnitOfWork
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import EmailTokenPurpose

VERIFY, RESET, CHANGE = EmailTokenPurpose.VERIFY, EmailTokenPurpose.RESET, EmailTokenPurpose.CHANGE_EMAIL


async def given_user(uow: UnitOfWork, email: str = "alice@example.com") -> User:
    user = new_user(email)
    async with uow:
        await uow.users.add(user)
        await uow.commit()
    return user


async def given_tokens(uow: UnitOfWork, *tokens: EmailToken) -> None:
    async with uow:
        for token in tokens:
            await uow.email_tokens.add(token)
        await uow.commit()


async def take(uow: UnitOfWork, token: EmailToken, purpose: EmailTokenPurpose | None = None) -> EmailToken | None:
    async with uow:
        taken = await uow.email_tokens.take(token.digest, purpose or token.purpose)
        await uow.commit()
    return taken


async def outstanding(uow: UnitOfWork, user: User, purpose: EmailTokenPurpose) -> EmailToken | None:
    async with uow:
        return await uow.email_tokens.latest_for_user(user.id, purpose)


async def test_a_token_is_taken_once_with_every_field(uow: UnitOfWork) -> None:
    alice = await given_user(uow)
    token = email_token(alice, CHANGE)
    await given_tokens(uow, token)

    assert await take(uow, token) == token  # microseconds and the time zone survive the round trip
    assert await take(uow, token) is None
    assert await outstanding(uow, alice, CHANGE) is None


async def test_a_token_of_another_purpose_is_not_taken_and_stays(uow: UnitOfWork) -> None:
    alice = await given_user(uow)
    token = email_token(alice, RESET)
    await given_tokens(uow, token)

    assert await take(uow, token, VERIFY) is None
    assert await take(uow, token, CHANGE) is None
    assert await take(uow, token, RESET) == token


async def test_an_unknown_digest_is_none(uow: UnitOfWork) -> None:
    alice = await given_user(uow)
    await given_tokens(uow, email_token(alice))

    assert await take(uow, email_token(alice, secret="never issued")) is None


async def test_an_expired_token_is_still_returned_for_the_caller_to_refuse(uow: UnitOfWork) -> None:
    alice = await given_user(uow)
    token = email_token(alice, now=NOW - timedelta(days=2), ttl=timedelta(hours=1))
    await given_tokens(uow, token)

    assert await take(uow, token) == token


async def test_a_take_that_rolls_back_leaves_the_token(uow: UnitOfWork) -> None:
    alice = await given_user(uow)
    token = email_token(alice)
    await given_tokens(uow, token)

    async with uow:
        assert await uow.email_tokens.take(token.digest, VERIFY) == token
        # no commit

    assert await take(uow, token) == token


async def test_delete_for_user_deletes_the_given_purposes_of_that_user_only(uow: UnitOfWork) -> None:
    alice, bob = await given_user(uow), await given_user(uow, "bob@example.com")
    alice_verify, alice_reset, alice_change = email_token(alice), email_token(alice, RESET), email_token(alice, CHANGE)
    bob_verify = email_token(bob)
    await given_tokens(uow, alice_verify, alice_reset, alice_change, bob_verify)

    async with uow:
        assert await uow.email_tokens.delete_for_user(alice.id, VERIFY, RESET) == 2
        await uow.commit()

    assert await take(uow, alice_verify) is None
    assert await take(uow, alice_reset) is None
    assert await take(uow, alice_change) == alice_change
    assert await take(uow, bob_verify) == bob_verify


async def test_delete_for_user_with_no_purpose_deletes_every_token_of_the_user(uow: UnitOfWork) -> None:
    alice, bob = await given_user(uow), await given_user(uow, "bob@example.com")
    bob_reset = email_token(bob, RESET)
    await given_tokens(uow, email_token(alice), email_token(alice, RESET), email_token(alice, CHANGE), bob_reset)

    async with uow:
        assert await uow.email_tokens.delete_for_user(alice.id) == 3
        assert await uow.email_tokens.delete_for_user(alice.id) == 0
        await uow.commit()

    for purpose in (VERIFY, RESET, CHANGE):
        assert await outstanding(uow, alice, purpose) is None
    assert await take(uow, bob_reset) == bob_reset


async def test_a_delete_that_rolls_back_leaves_the_tokens(uow: UnitOfWork) -> None:
    alice = await given_user(uow)
    token = email_token(alice)
    await given_tokens(uow, token)

    async with uow:
        assert await uow.email_tokens.delete_for_user(alice.id, VERIFY) == 1
        # no commit

    assert await take(uow, token) == token


async def test_latest_for_user_is_the_newest_outstanding_token_of_the_purpose(uow: UnitOfWork) -> None:
    alice, bob = await given_user(uow), await given_user(uow, "bob@example.com")
    older = email_token(alice, now=NOW)
    newer = email_token(alice, now=NOW + timedelta(minutes=5))
    await given_tokens(
        uow,
        newer,
        older,
        email_token(alice, RESET, now=NOW + timedelta(minutes=9)),
        email_token(bob, now=NOW + timedelta(minutes=10)),
    )

    assert await outstanding(uow, alice, VERIFY) == newer
    assert await take(uow, newer) == newer
    assert await outstanding(uow, alice, VERIFY) == older
    assert await outstanding(uow, alice, CHANGE) is None


async def test_an_erased_account_takes_its_tokens(uow: UnitOfWork) -> None:
    alice = await given_user(uow)
    token = email_token(alice)
    await given_tokens(uow, token, email_token(alice, RESET))

    async with uow:
        assert (await uow.users.erase(alice.id))["email_tokens"] == 2
        await uow.commit()

    assert await take(uow, token) is None


async def test_of_two_interleaved_takers_only_the_first_to_commit_gets_the_token(
    uow: UnitOfWork, make_uow: Callable[[], UnitOfWork]
) -> None:
    """The in-memory fake: both units of work see the token in their own copy; the second commit is refused, as
    the database's second DELETE would have found no row."""
    if not isinstance(uow, InMemoryUnitOfWork):
        pytest.skip("a database makes the second taker wait instead: see the test below")
    alice = await given_user(uow)
    token = email_token(alice)
    await given_tokens(uow, token)
    first, second = make_uow(), make_uow()

    async with first, second:
        assert await first.email_tokens.take(token.digest, VERIFY) == token
        assert await second.email_tokens.take(token.digest, VERIFY) == token
        await first.commit()
        with pytest.raises(ConcurrentUpdate):
            await second.commit()

    assert await take(uow, token) is None


async def lock_waits(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        statement = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int((await connection.execute(statement)).scalar_one())


@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-rolls-back"])
async def test_concurrent_takes_on_postgresql_give_the_token_to_one(
    clean_database: AsyncEngine, first_commits: bool
) -> None:
    """Two transactions take one token at once: the second's DELETE waits for the first's row lock, then finds no
    row if the first committed, or the token if it rolled back. Never both."""
    alice = await given_user(SqlAlchemyUnitOfWork(clean_database))
    token = email_token(alice)
    await given_tokens(SqlAlchemyUnitOfWork(clean_database), token)
    first, second = SqlAlchemyUnitOfWork(clean_database), SqlAlchemyUnitOfWork(clean_database)

    async def take_second() -> EmailToken | None:
        async with second:
            taken = await second.email_tokens.take(token.digest, VERIFY)
            await second.commit()
        return taken

    async with first:
        assert await first.email_tokens.take(token.digest, VERIFY) == token
        waiting = asyncio.create_task(take_second())
        async with asyncio.timeout(5):
            while await lock_waits(clean_database) == 0:
                assert not waiting.done(), f"finished instead of waiting: {waiting}"
                await asyncio.sleep(0.005)
        if first_commits:
            await first.commit()

    second_got = await asyncio.wait_for(waiting, timeout=5)
    assert second_got == (None if first_commits else token)
    assert await take(SqlAlchemyUnitOfWork(clean_database), token) is None


async def test_concurrent_takes_on_sqlite_give_the_token_to_one(clean_sqlite: AsyncEngine) -> None:
    """SQLite has one writer at a time: the second DELETE waits for the first transaction's write lock (or runs
    after it), and finds no row."""
    alice = await given_user(SqlAlchemyUnitOfWork(clean_sqlite))
    token = email_token(alice)
    await given_tokens(SqlAlchemyUnitOfWork(clean_sqlite), token)
    first, second = SqlAlchemyUnitOfWork(clean_sqlite), SqlAlchemyUnitOfWork(clean_sqlite)

    async def take_second() -> EmailToken | None:
        async with second:
            taken = await second.email_tokens.take(token.digest, VERIFY)
            await second.commit()
        return taken

    async with first:
        assert await first.email_tokens.take(token.digest, VERIFY) == token
        waiting = asyncio.create_task(take_second())
        await asyncio.sleep(0.05)  # lets the second reach its DELETE; the outcome is the same either way
        assert not waiting.done()
        await first.commit()

    assert await asyncio.wait_for(waiting, timeout=5) is None
