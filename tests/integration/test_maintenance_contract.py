"""What the maintenance run and the grace period need from the stores, on the fake, PostgreSQL and SQLite alike:
a scheduled erasure round-trips and is found when due, expired links and old anonymous events go, and the
deployment-wide lock is held by one transaction at a time (PostgreSQL's advisory lock)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.integration.builders import NOW, email_token, new_user, user_fields
from usermgmt.application.ports import UnitOfWork
from usermgmt.domain.events import EventType, SecurityEvent


async def test_a_scheduled_erasure_round_trips_and_is_found_once_due(uow: UnitOfWork) -> None:
    alice, bob, carol = new_user("alice@example.com"), new_user("bob@example.com"), new_user("carol@example.com")
    alice.schedule_erasure(now=NOW, at=NOW + timedelta(days=2))
    bob.schedule_erasure(now=NOW, at=NOW + timedelta(days=1))
    async with uow:
        for user in (alice, bob, carol):
            await uow.users.add(user)
        await uow.commit()

    async with uow:
        found = await uow.users.get(alice.id)
        assert found is not None and user_fields(found) == user_fields(alice)
        assert await uow.users.due_for_erasure(NOW, limit=10) == []
        one_day = await uow.users.due_for_erasure(NOW + timedelta(days=1), limit=10)
        both = await uow.users.due_for_erasure(NOW + timedelta(days=3), limit=10)
        first = await uow.users.due_for_erasure(NOW + timedelta(days=3), limit=1)

    assert [u.id for u in one_day] == [bob.id]
    assert [u.id for u in both] == [bob.id, alice.id]  # the longest due first
    assert [u.id for u in first] == [bob.id]


async def test_expired_links_go_and_live_ones_stay(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com")
    old, fresh = email_token(alice, ttl=timedelta(hours=1)), email_token(alice, ttl=timedelta(days=2))
    async with uow:
        await uow.users.add(alice)
        await uow.email_tokens.add(old)
        await uow.email_tokens.add(fresh)
        await uow.commit()

    async with uow:
        deleted = await uow.email_tokens.delete_expired(NOW + timedelta(hours=1))
        await uow.commit()
    async with uow:
        remaining = await uow.email_tokens.delete_for_user(alice.id)

    assert (deleted, remaining) == (1, 1)


async def test_old_anonymous_events_go_and_an_accounts_history_stays(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com")
    async with uow:
        await uow.users.add(alice)
        await uow.record(SecurityEvent(type=EventType.LOGIN_FAILED, at=NOW - timedelta(days=100)))
        await uow.record(SecurityEvent(type=EventType.ACCOUNT_DELETED, at=NOW - timedelta(days=91)))
        await uow.record(SecurityEvent(type=EventType.LOGIN_FAILED, at=NOW - timedelta(days=10)))
        await uow.record(SecurityEvent(type=EventType.LOGIN_FAILED, at=NOW - timedelta(days=100), user_id=alice.id))
        await uow.commit()

    async with uow:
        deleted = await uow.events.delete_anonymous_before(NOW - timedelta(days=90))
        await uow.commit()
    async with uow:
        left = await uow.events.list_all(limit=10)

    assert deleted == 2
    assert sorted((s.event.user_id is None, (NOW - s.event.at).days) for s in left) == [(False, 100), (True, 10)]


async def test_one_transaction_at_a_time_holds_the_maintenance_lock(
    uow: UnitOfWork, make_uow: Callable[[], UnitOfWork], backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite and the fake have one writer at a time: the lock is always theirs")
    other = make_uow()
    async with uow:
        assert await uow.try_lock("usermgmt.maintenance")
        async with other:
            assert not await other.try_lock("usermgmt.maintenance")  # held: answered at once, not waited for
            assert await other.try_lock("something else")
    async with other:
        assert await other.try_lock("usermgmt.maintenance")  # released with the first transaction
