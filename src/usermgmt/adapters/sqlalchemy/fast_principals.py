"""The hot path on PostgreSQL: one prepared statement on plain asyncpg connections, no SQLAlchemy per request.

Every authenticated request asks "is this session alive and its user active?". Through SQLAlchemy that costs a
pool checkout, a BEGIN, the statement and a ROLLBACK, most of a request's CPU time (measured: docs/performance.md).
Here it is one round trip on a prepared statement, in autocommit (ADR 0005). SQLite (the embedded default) keeps
``SqlAlchemyPrincipalReader``; the two are held to one contract by tests/integration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url

from usermgmt.adapters.sqlalchemy.engine import is_unavailable
from usermgmt.adapters.sqlalchemy.principals import PRINCIPAL_QUERY, principal_from_row
from usermgmt.adapters.tracing import span
from usermgmt.application.errors import ServiceUnavailable
from usermgmt.application.results import Principal
from usermgmt.domain.value_objects import SessionId, UserId


def _compile_for_asyncpg() -> str:
    """``PRINCIPAL_QUERY`` as asyncpg's SQL, with ``$1, $2, $3`` = session id, user id, now (checked here)."""
    compiled = PRINCIPAL_QUERY.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    if compiled.positiontup != ["session_id", "user_id", "now"]:
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
    return str(compiled)


PRINCIPAL_SQL = _compile_for_asyncpg()


class ConnectionLost(ConnectionError):
    """A query failed and left its connection closed (the server ended the session, the socket broke): the
    failure is the connection's, whatever the driver called it. asyncpg reports a session ended under it in
    several ways (``ConnectionDoesNotExistError``, ``InterfaceError: connection is closed``, even an
    ``InternalClientError`` when the server's goodbye races the query); a closed connection is the one sure sign,
    as it is for SQLAlchemy's asyncpg dialect (``connection_invalidated``)."""


class _Record:
    """Attribute access over an asyncpg Record, so the one row mapper serves both readers."""

    __slots__ = ("_record",)

    def __init__(self, record: asyncpg.Record) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        return self._record[name]


class ConnectionSet:
    """A minimal pool: at most ``size`` connections, each lent to one query at a time, dropped when anything
    goes wrong with it (an error, a timeout, a cancelled request), replaced on demand.

    asyncpg's own Pool costs about as much CPU per use as the query itself here (acquire and release
    bookkeeping, a timeout and a shielded task per release, a RESET query unless told otherwise), measured at
    60-70 us per request on our 2-core machine. The hot path runs one read-only statement in autocommit and
    changes no session state, so it needs none of that.
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], size: int) -> None:
        self._connect, self._size = connect, size
        self._idle: list[asyncpg.Connection] = []
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._open = 0  # connections in use, idle or being opened

    def counts(self) -> tuple[int, int]:
        """Connections open (in use, idle or being opened) and idle."""
        return self._open, len(self._idle)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """Raises what opening a connection raised, ``ConnectionLost`` (from the driver's error) when the query
        failed and left its connection closed, or the query's own error."""
        connection = await self._acquire()
        try:
            record = await connection.fetchrow(query, *args)
        except Exception as exc:
            lost = connection.is_closed()
            self._drop(connection)
            if lost:
                raise ConnectionLost("the connection closed under the query") from exc
            raise
        except BaseException:  # cancelled: the connection's protocol state is unknown
            self._drop(connection)
            raise
        self._release(connection)
        return record

    async def _acquire(self) -> asyncpg.Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            self._open -= 1
        if self._open < self._size:
            self._open += 1  # a free slot: counted now, opened below
        else:
            waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed over just as we were cancelled
                    self._pass_on(waiter.result())
                raise
            if handed is not None:
                return handed
            # None: the slot of a dropped connection, still counted, is ours to open
        try:
            return await self._connect()
        except BaseException:
            self._pass_on(None)
            raise

    def _release(self, connection: asyncpg.Connection) -> None:
        self._pass_on(connection)

    def _drop(self, connection: asyncpg.Connection) -> None:
        connection.terminate()
        self._pass_on(None)

    def _pass_on(self, connection: asyncpg.Connection | None) -> None:
        """Give a connection, or (None) a counted slot to open one in, to the first live waiter; else keep the
        connection idle, or free the slot."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is None:
            self._open -= 1
        else:
            self._idle.append(connection)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)
        self._open -= len(idle)


class AsyncpgPrincipalReader:
    def __init__(
        self,
        database_url: str,
        *,
        max_size: int,
        connect_timeout: float,
        command_timeout: float,
        statement_cache_size: int,
    ) -> None:
        dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._open = partial(
            asyncpg.connect,
            dsn,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            statement_cache_size=statement_cache_size,
            server_settings={"application_name": "usermgmt"},
        )
        self._connections = ConnectionSet(self._connect, size=max_size)

    async def _connect(self) -> asyncpg.Connection:
        try:
            return await self._open()
        except Exception as exc:
            if is_unavailable(exc, connecting=True):  # refused, timed out, not accepting sessions, starting up, ...
                raise ServiceUnavailable() from exc
            raise

    async def get(self, user_id: UserId, session_id: SessionId, now: datetime) -> Principal | None:
        """Raises: ServiceUnavailable (``engine.is_unavailable``, in connecting or in the query)."""
        try:
            with span("db.principal"):  # asyncpg directly: the SQLAlchemy instrumentation does not see it
                record = await self._connections.fetchrow(PRINCIPAL_SQL, session_id, user_id, now)
        except ServiceUnavailable:
            raise
        except Exception as exc:
            if is_unavailable(exc):  # the connection lost, a command timeout, too many connections, shutting down, ...
                raise ServiceUnavailable() from exc
            raise
        return principal_from_row(_Record(record), session_id) if record is not None else None

    def pool_counts(self) -> tuple[int, int]:
        """Connections open and idle, for the metrics."""
        return self._connections.counts()

    async def close(self) -> None:
        await self._connections.close()
