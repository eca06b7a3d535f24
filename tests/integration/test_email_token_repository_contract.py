"""The EmailTokenRepository contract, run against the in-memory fake, PostgreSQL and SQLite alike: tokens are bound
to one purpose and taken once, even by two transactions at the same moment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW, email_token, new_user
from usermgmt.adapters.sqlalchemy.tables import email_tokens
from usermgmt.application.email import token_digest
from usermgmt.application.errors import ConcurrentUpdate
from usermgmt.application.ports import EmailToken, UnitOfWork
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import EmailTokenPurpose

VERIFY, RESET, CHANGE = EmailTokenPurpose.VERIFY, EmailTokenPurpose.RESET, EmailTokenPurpose.CHANGE_EMAIL


async def given(uow: UnitOfWork, *tokens: EmailToken, users: tuple[User, ...] = ()) -> None:
    async with uow:
        for user in users:
            await uow.users.add(user)
        for token in tokens:
            await uow.email_tokens.add(token)
        await uow.commit()


async def take(uow: UnitOfWork, digest: str, purpose: EmailTokenPurpose) -> EmailToken | None:
    async with uow:
        found = await uow.email_tokens.take(digest, purpose)
        await uow.commit()
    return found


async def test_a_token_is_taken_once_with_everything_it_was_stored_with(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com")
    token = email_token(alice, VERIFY, secret="s3cret")
    await given(uow, token, users=(alice,))

    found = await take(uow, token_digest("s3cret"), VERIFY)

    assert found == token
    assert await take(uow, token.digest, VERIFY) is None


async def test_a_token_of_another_purpose_is_not_taken_and_stays(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com")
    token = email_token(alice, RESET)
    await given(uow, token, users=(alice,))

    assert await take(uow, token.digest, VERIFY) is None
    assert await take(uow, token.digest, CHANGE) is None
    assert await take(uow, token.digest, RESET) == token


async def test_an_expired_token_is_still_handed_over_for_the_caller_to_judge(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com")
    token = email_token(alice, VERIFY, now=NOW - timedelta(days=2), ttl=timedelta(hours=1))
    await given(uow, token, users=(alice,))

    assert await take(uow, token.digest, VERIFY) == token


async def test_a_take_that_rolls_back_leaves_the_token(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com")
    token = email_token(alice, VERIFY)
    await given(uow, token, users=(alice,))
    async with uow:
        assert await uow.email_tokens.take(token.digest, VERIFY) == token
        # no commit

    assert await take(uow, token.digest, VERIFY) == token


async def test_delete_for_user_by_purpose_and_all(uow: UnitOfWork) -> None:
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    alices = [email_token(alice, purpose) for purpose in (VERIFY, VERIFY, RESET, CHANGE)]
    bobs = email_token(bob, RESET)
    await given(uow, *alices, bobs, users=(alice, bob))

    async with uow:
        assert await uow.email_tokens.delete_for_user(alice.id, VERIFY) == 2
        assert await uow.email_tokens.delete_for_user(alice.id, VERIFY) == 0
        assert await uow.email_tokens.delete_for_user(alice.id) == 2
        await uow.commit()

    for token in alices:
        assert await take(uow, token.digest, token.purpose) is None
    assert await take(uow, bobs.digest, RESET) == bobs


async def test_latest_for_user_is_the_newest_of_that_purpose(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com")
    old = email_token(alice, VERIFY, now=NOW)
    new = email_token(alice, VERIFY, now=NOW + timedelta(minutes=5))
    other = email_token(alice, RESET, now=NOW + timedelta(minutes=10))
    await given(uow, old, new, other, users=(alice,))

    async with uow:
        assert await uow.email_tokens.latest_for_user(alice.id, VERIFY) == new
        assert await uow.email_tokens.latest_for_user(alice.id, CHANGE) is None


async def test_an_erased_account_takes_its_tokens_along(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com")
    token = email_token(alice, RESET)
    await given(uow, token, users=(alice,))
    async with uow:
        await uow.users.erase(alice.id)
        await uow.commit()

    assert await take(uow, token.digest, RESET) is None


async def test_two_transactions_taking_one_token_at_once_one_wins(
    uow: UnitOfWork, make_uow: Callable[[], UnitOfWork], backend: str, sql_engine: AsyncEngine | None
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has one writer at a time: the second take waits for a commit this one task cannot make")
    alice = new_user("alice@example.com")
    token = email_token(alice, RESET)
    await given(uow, token, users=(alice,))
    first, second = make_uow(), make_uow()

    async def attempt(unit: UnitOfWork) -> EmailToken | None:
        async with unit:
            found = await unit.email_tokens.take(token.digest, RESET)
            await asyncio.sleep(0)  # the other one takes now (PostgreSQL: it waits on the row until we commit)
            await unit.commit()
        return found

    results = await asyncio.gather(attempt(first), attempt(second), return_exceptions=True)

    winners = [r for r in results if isinstance(r, EmailToken)]
    losers = [r for r in results if r is None or isinstance(r, ConcurrentUpdate)]
    assert len(winners) == 1 and len(losers) == 1, results
    if sql_engine is not None:
        async with sql_engine.connect() as connection:
            assert (await connection.execute(select(email_tokens))).first() is None
