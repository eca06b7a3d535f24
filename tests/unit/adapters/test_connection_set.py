"""The hot path's minimal connection pool: bounded, fair to waiters, and never reuses a connection in doubt.

Everything is observed through what the pool is given and what it returns: the connections its ``connect``
callable opened (and whether it closed them), the queries each one ran, and what ``fetchrow`` answered. There is
no clock: a test that needs queries in flight waits for them to arrive at their connection (``started``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from usermgmt.adapters.sqlalchemy.fast_principals import ConnectionLost, ConnectionSet


class FakeConnection:
    """What ConnectionSet uses of an asyncpg connection. ``hold`` makes queries wait until set; ``fail_with`` makes
    them raise, and ``close_on_failure`` closes the connection as it does (the server ended the session)."""

    def __init__(self, number: int, hold: asyncio.Event | None) -> None:
        self.number = number
        self.closed = False
        self.hold = hold
        self.fail_with: BaseException | None = None
        self.close_on_failure = False
        self.queries: list[tuple[str, tuple[Any, ...]]] = []
        self.started = asyncio.Event()  # a query has reached this connection

    async def fetchrow(self, query: str, *args: Any) -> Any:
        self.queries.append((query, args))
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail_with is not None:
            self.closed = self.closed or self.close_on_failure
            raise self.fail_with
        return {"query": query, "args": args, "connection": self.number}

    def is_closed(self) -> bool:
        return self.closed

    def terminate(self) -> None:
        self.closed = True

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - asyncpg's signature
        self.closed = True


class Opener:
    """The ``connect`` callable: opens numbered fake connections, or fails the next ``fail_next`` times."""

    def __init__(self) -> None:
        self.made: list[FakeConnection] = []
        self.fail_next = 0
        self.hold: asyncio.Event | None = None  # given to every connection opened from now on
        self._opened = asyncio.Condition()

    async def __call__(self) -> FakeConnection:
        await asyncio.sleep(0)  # opening takes a turn of the loop, as a real connect does
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("connection refused")
        async with self._opened:
            connection = FakeConnection(len(self.made) + 1, self.hold)
            self.made.append(connection)
            self._opened.notify_all()
        return connection

    async def until_opened(self, count: int) -> list[FakeConnection]:
        async with self._opened:
            await self._opened.wait_for(lambda: len(self.made) >= count)
        return self.made[:count]


async def let_others_run() -> None:
    """Let every ready task run until it waits for something: scheduling turns, no clock."""
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.fixture
def opener() -> Opener:
    return Opener()


async def test_one_connection_serves_queries_in_turn(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=3)
    for i in range(5):
        row = await pool.fetchrow("SELECT $1", i)
        assert row is not None
        assert row["args"] == (i,)
    assert len(opener.made) == 1
    assert [args for _, args in opener.made[0].queries] == [(0,), (1,), (2,), (3,), (4,)]


async def test_never_more_than_size_connections_and_waiters_are_served(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=2)
    opener.hold = hold = asyncio.Event()
    queries = [asyncio.create_task(pool.fetchrow("SELECT $1", n)) for n in range(6)]
    await asyncio.gather(*(c.started.wait() for c in await opener.until_opened(2)))
    await let_others_run()

    assert len(opener.made) == 2  # the four others wait for one of these two
    assert not any(q.done() for q in queries)

    hold.set()
    rows = await asyncio.gather(*queries)
    assert [row["args"] for row in rows] == [(n,) for n in range(6)]
    assert len(opener.made) == 2
    assert sum(len(c.queries) for c in opener.made) == 6


async def test_a_query_error_is_raised_as_it_is_and_its_connection_is_dropped(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=1)
    await pool.fetchrow("SELECT 1")
    first = opener.made[0]
    first.fail_with = ValueError("invalid input for query argument $1")

    with pytest.raises(ValueError, match="invalid input"):
        await pool.fetchrow("SELECT 1")

    assert first.closed  # dropped all the same: its state after an error is not trusted
    row = await pool.fetchrow("SELECT 1")
    assert row["connection"] == opener.made[1].number  # a new one, in the freed slot


async def test_a_connection_that_closes_under_its_query_is_reported_as_lost(opener: Opener) -> None:
    """The server ended the session mid-query: whatever the driver raised, it is ConnectionLost (an OSError, so
    ServiceUnavailable), with the driver's error as its cause; the next query gets a new connection."""
    pool = ConnectionSet(opener, size=1)
    await pool.fetchrow("SELECT 1")
    first = opener.made[0]
    said = RuntimeError("cannot switch to state 11; another operation (2) is in progress")
    first.fail_with, first.close_on_failure = said, True

    with pytest.raises(ConnectionLost) as raised:
        await pool.fetchrow("SELECT 1")

    assert isinstance(raised.value, OSError)
    assert raised.value.__cause__ is said
    assert (await pool.fetchrow("SELECT 1"))["connection"] == opener.made[1].number
    assert len(opener.made) == 2


async def test_a_cancelled_query_does_not_return_its_connection(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=1)
    await pool.fetchrow("SELECT 1")
    first = opener.made[0]
    first.hold, first.started = asyncio.Event(), asyncio.Event()  # the next query hangs
    hanging = asyncio.create_task(pool.fetchrow("SELECT 1"))
    await first.started.wait()

    hanging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hanging

    assert first.closed  # its protocol state is unknown: never lent again
    assert (await pool.fetchrow("SELECT 1"))["connection"] == opener.made[1].number


async def test_a_waiter_gets_the_slot_of_a_dropped_connection(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=1)
    await pool.fetchrow("SELECT 1")
    busy = opener.made[0]
    busy.hold, busy.started = asyncio.Event(), asyncio.Event()
    busy.fail_with = OSError("reset")
    first = asyncio.create_task(pool.fetchrow("SELECT 1"))
    await busy.started.wait()
    waiting = asyncio.create_task(pool.fetchrow("SELECT 2"))
    await let_others_run()
    assert not waiting.done()
    assert len(opener.made) == 1  # the slot is taken: the second query waits, it opens nothing

    busy.hold.set()
    with pytest.raises(OSError, match="reset"):
        await first
    row = await waiting

    assert row["query"] == "SELECT 2"
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
    only = opener.made[0]
    only.hold, only.started = asyncio.Event(), asyncio.Event()
    busy = asyncio.create_task(pool.fetchrow("SELECT 1"))
    await only.started.wait()
    cancelled = asyncio.create_task(pool.fetchrow("SELECT 2"))
    patient = asyncio.create_task(pool.fetchrow("SELECT 3"))
    await let_others_run()

    cancelled.cancel()
    only.hold.set()
    await busy
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    row = await patient

    assert (row["query"], row["connection"]) == ("SELECT 3", only.number)
    assert len(opener.made) == 1
    assert [query for query, _ in only.queries] == ["SELECT 1", "SELECT 1", "SELECT 3"]


async def test_closed_idle_connections_are_replaced_and_close_closes(opener: Opener) -> None:
    pool = ConnectionSet(opener, size=2)
    await pool.fetchrow("SELECT 1")
    opener.made[0].closed = True  # the server went away while it sat idle

    assert (await pool.fetchrow("SELECT 1"))["connection"] == opener.made[1].number
    await pool.close()
    assert all(c.closed for c in opener.made)


async def test_after_close_the_slots_are_free_again(opener: Opener) -> None:
    """close() closes the idle connections and gives their slots back: a later query may open up to ``size``."""
    pool = ConnectionSet(opener, size=1)
    await pool.fetchrow("SELECT 1")
    await pool.close()

    row = await pool.fetchrow("SELECT 2")

    assert row["connection"] == opener.made[1].number
    assert not opener.made[1].closed
