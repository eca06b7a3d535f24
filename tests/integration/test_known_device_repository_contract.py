"""The KnownDeviceRepository contract (behind new-device notices), run against the in-memory fake, PostgreSQL and
SQLite alike; and two sign-ins from one new device at once, on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW, new_user
from usermgmt.adapters.sqlalchemy.tables import known_devices
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.ports import UnitOfWork
from usermgmt.domain.model import User

FIREFOX = hashlib.sha256(b"Firefox\n192.0.2.0/24").hexdigest()
CHROME = hashlib.sha256(b"Chrome\n192.0.2.0/24").hexdigest()


async def given_user(uow: UnitOfWork, email: str = "alice@example.com") -> User:
    user = new_user(email)
    async with uow:
        await uow.users.add(user)
        await uow.commit()
    return user


async def touch(uow: UnitOfWork, user: User, key: str, now: datetime) -> datetime | None:
    async with uow:
        before = await uow.known_devices.touch(user.id, key, now)
        await uow.commit()
    return before


async def test_the_first_touch_answers_none_and_each_later_one_the_time_before(uow: UnitOfWork) -> None:
    alice = await given_user(uow)

    assert await touch(uow, alice, FIREFOX, NOW) is None
    assert await touch(uow, alice, FIREFOX, NOW + timedelta(days=1)) == NOW
    assert await touch(uow, alice, FIREFOX, NOW + timedelta(days=2)) == NOW + timedelta(days=1)


async def test_devices_are_per_key_and_per_account(uow: UnitOfWork) -> None:
    alice, bob = await given_user(uow), await given_user(uow, "bob@example.com")
    await touch(uow, alice, FIREFOX, NOW)

    assert await touch(uow, alice, CHROME, NOW + timedelta(hours=1)) is None
    assert await touch(uow, bob, FIREFOX, NOW + timedelta(hours=1)) is None
    assert await touch(uow, alice, FIREFOX, NOW + timedelta(hours=2)) == NOW


async def test_a_touch_that_rolls_back_leaves_nothing(uow: UnitOfWork) -> None:
    alice = await given_user(uow)
    async with uow:
        assert await uow.known_devices.touch(alice.id, FIREFOX, NOW) is None
        # no commit

    assert await touch(uow, alice, FIREFOX, NOW + timedelta(minutes=1)) is None


async def test_an_erased_account_takes_its_devices(uow: UnitOfWork) -> None:
    alice = await given_user(uow)
    await touch(uow, alice, FIREFOX, NOW)
    async with uow:
        counts = await uow.users.erase(alice.id)
        await uow.commit()
    assert counts["known_devices"] == 1

    again = await given_user(uow)  # a new account with the old address: none of the old devices
    assert await touch(uow, again, FIREFOX, NOW + timedelta(minutes=1)) is None


async def test_the_table_holds_only_the_digest(uow: UnitOfWork, sql_engine: AsyncEngine | None) -> None:
    if sql_engine is None:
        pytest.skip("the in-memory store has no table")
    alice = await given_user(uow)
    await touch(uow, alice, FIREFOX, NOW)

    async with sql_engine.connect() as connection:
        rows = (await connection.execute(select(known_devices))).mappings().all()
    assert [dict(row) for row in rows] == [
        {"user_id": alice.id, "device_key": FIREFOX, "first_seen_at": NOW, "last_seen_at": NOW}
    ]


async def lock_waits(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        statement = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int((await connection.execute(statement)).scalar_one())


async def test_concurrent_touches_of_a_new_device_both_succeed_on_postgresql(clean_database: AsyncEngine) -> None:
    """Two sign-ins from one new device at once: both see it as new (neither sees the other's uncommitted row),
    the second's insert waits on the unique key for the first, and then updates instead of failing."""
    alice = await given_user(SqlAlchemyUnitOfWork(clean_database))
    first, second = SqlAlchemyUnitOfWork(clean_database), SqlAlchemyUnitOfWork(clean_database)
    later = NOW + timedelta(seconds=1)

    async def touch_second() -> datetime | None:
        async with second:
            before = await second.known_devices.touch(alice.id, FIREFOX, later)
            await second.commit()
        return before

    async with first:
        assert await first.known_devices.touch(alice.id, FIREFOX, NOW) is None
        waiting = asyncio.create_task(touch_second())
        async with asyncio.timeout(5):
            while await lock_waits(clean_database) == 0:
                assert not waiting.done(), f"finished instead of waiting: {waiting}"
                await asyncio.sleep(0.005)
        await first.commit()

    assert await asyncio.wait_for(waiting, timeout=5) is None
    async with clean_database.connect() as connection:
        row = (await connection.execute(select(known_devices))).one()
    assert (row.first_seen_at, row.last_seen_at) == (NOW, later)
