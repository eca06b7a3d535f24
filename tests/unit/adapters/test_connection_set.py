"""The hot path's minimal connection pool: bounded, fair to waiters, and never reuses a connection in doubt."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from usermgmt.adapters.sqlalchemy.fast_principals import ConnectionSet


class FakeConnection:
    opened = 0

    def __init__(self) -> None:
        FakeConnection.opened += 1
        self.number = FakeConnection.opened
        self.closed = False
        self.gate: asyncio.Event | None = None
        self.fail_with: BaseException | None = None

    async def fetchrow(self, query: str, *args: Any) -> Any:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return {"query": query, "args": args, "connection": self.number}

    def is_closed(self) -> bool:
        return self.closed

    def terminate(self) -> None:
        self.closed = True

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - asyncpg's signature
        self.closed = True


class Opener:
    def __init__(self) -> None:
        self.made: list[FakeConnection] = []
        self.fail_next = 0

    async def __call__(self) -> FakeConnection:
        await asyncio.sleep(0)
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("connection refused")
        connection = FakeConnection()
        self.made.append(connection)
        return connection


@pytest.fixture
def opener() -> Opener:
    return Opener()


async def test_one_connection_serves_queries_in_turn(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=3)
    for i in range(5):
        row = await pool.fetchrow("SELECT $1", i)
        assert row["args"] == (i,)
    assert len(opener.made) == 1


async def test_never_more_than_size_connections_and_waiters_are_served(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=2)
    gate = asyncio.Event()
    original = opener.__call__

    async def gated() -> FakeConnection:
        connection = await original()
        connection.gate = gate
        return connection

    pool._connect = gated
    queries = [asyncio.create_task(pool.fetchrow("SELECT 1")) for _ in range(6)]
    await asyncio.sleep(0.01)
    assert len(opener.made) == 2
    assert not any(q.done() for q in queries)

    gate.set()
    rows = await asyncio.gather(*queries)
    assert len(rows) == 6
    assert len(opener.made) == 2


async def test_a_connection_that_failed_is_dropped_and_its_slot_reused(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=1)
    await pool.fetchrow("SELECT 1")
    first = opener.made[0]
    first.fail_with = ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        await pool.fetchrow("SELECT 1")

    assert first.closed
    row = await pool.fetchrow("SELECT 1")
    assert row["connection"] == opener.made[1].number  # a new one, in the freed slot


async def test_a_cancelled_query_does_not_return_its_connection(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=1)
    await pool.fetchrow("SELECT 1")
    opener.made[0].gate = asyncio.Event()  # the next query hangs
    hanging = asyncio.create_task(pool.fetchrow("SELECT 1"))
    await asyncio.sleep(0.01)

    hanging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hanging

    assert opener.made[0].closed  # its protocol state is unknown: never lent again
    assert (await pool.fetchrow("SELECT 1"))["connection"] == opener.made[1].number


async def test_a_waiter_gets_the_slot_of_a_dropped_connection(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=1)
    await pool.fetchrow("SELECT 1")
    busy = opener.made[0]
    busy.gate = asyncio.Event()
    busy.fail_with = OSError("reset")
    first = asyncio.create_task(pool.fetchrow("SELECT 1"))
    waiting = asyncio.create_task(pool.fetchrow("SELECT 2"))
    await asyncio.sleep(0.01)

    busy.gate.set()
    with pytest.raises(OSError, match="reset"):
        await first
    row = await waiting

    assert row["args"] == ()
    assert row["connection"] == opener.made[1].number
    assert len(opener.made) == 2


async def test_failing_to_connect_frees_the_slot(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=1)
    opener.fail_next = 2
    for _ in range(2):
        with pytest.raises(OSError, match="refused"):
            await pool.fetchrow("SELECT 1")
    assert (await pool.fetchrow("SELECT 1"))["connection"] == opener.made[0].number


async def test_a_cancelled_waiter_passes_on_what_it_was_handed(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=1)
    await pool.fetchrow("SELECT 1")
    opener.made[0].gate = gate = asyncio.Event()
    busy = asyncio.create_task(pool.fetchrow("SELECT 1"))
    cancelled = asyncio.create_task(pool.fetchrow("SELECT 2"))
    patient = asyncio.create_task(pool.fetchrow("SELECT 3"))
    await asyncio.sleep(0.01)

    cancelled.cancel()
    gate.set()
    await busy
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert (await patient)["connection"] == opener.made[0].number
    assert len(opener.made) == 1


async def test_closed_idle_connections_are_replaced_and_close_closes(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=2)
    await pool.fetchrow("SELECT 1")
    opener.made[0].closed = True  # the server went away while it sat idle

    assert (await pool.fetchrow("SELECT 1"))["connection"] == opener.made[1].number
    await pool.close()
    assert all(c.closed for c in opener.made)
