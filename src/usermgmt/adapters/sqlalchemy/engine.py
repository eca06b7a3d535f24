"""Engine construction, and the one classification of database failures: unavailable (503) or not (a bug)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from usermgmt.config import Settings

# What "the database cannot serve us right now" looks like, as opposed to "this statement is wrong" (a bug, which
# must stay a 500 rather than become a 503 that invites retries). Failures are classified by what they say, never by
# a list of driver exception classes: a SQLSTATE (PostgreSQL), a result code (SQLite), or a broken connection.
#
# SQLSTATE classes, wherever they are raised:
#   08  connection exception: refused, failed or broken connections (08003 connection_does_not_exist, 08006 ...).
#   53  insufficient resources: 53300 too_many_connections, 53200 out_of_memory, 53100 disk_full, ...
#   57  operator intervention: 57P01 admin_shutdown (pg_terminate_backend), 57P02 crash_shutdown, 57P03
#       cannot_connect_now (starting up, or shutting down), 57P04 database_dropped, 57P05 idle_session_timeout, and
#       the rest of the class, deliberately: 57014 query_canceled is raised only when the server cancels a statement
#       for time (statement_timeout) or an operator cancels it (pg_cancel_backend). Our own timeout
#       (USERMGMT_DATABASE_COMMAND_TIMEOUT) already answers 503: the server's timeout is the same event seen from
#       the other side and answers the same. Neither says the request was wrong, and a retry later can pass. (A
#       request that we cancel ourselves surfaces as CancelledError or TimeoutError, never as 57014.)
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})
# Single SQLSTATEs, wherever they are raised:
#   55P03 lock_not_available: lock_timeout expired while waiting for a row or table lock; the same as 57014 for a
#         statement that waited on a lock (we never use NOWAIT, the other source of 55P03).
#   25006 read_only_sql_transaction: a write reached a server that is (now) a read-only standby, as right after a
#         failover while the old primary's address still answers; writes work again once it points at the primary.
UNAVAILABLE_SQLSTATES = frozenset({"55P03", "25006"})
# Single SQLSTATEs only while a connection is being opened: 55000 object_not_in_prerequisite_state is how a
# database that refuses new sessions (ALTER DATABASE ... WITH ALLOW_CONNECTIONS false) answers a connect. Raised by
# a statement, 55000 is a bug of ours (currval before nextval, say), so elsewhere it stays an error.
#   3D000 invalid_catalog_name and class 28 (invalid authorization: 28000, 28P01 invalid_password) say the same of
#   a connect: the database cannot be reached with what we were given (it was dropped or renamed, a password was
#   rotated), and the service recovers without a restart once it can. Only /readyz and the log can tell an operator
#   more; a client gets 503.
UNAVAILABLE_ON_CONNECT_SQLSTATES = frozenset({"55000", "3D000"})
UNAVAILABLE_ON_CONNECT_SQLSTATE_CLASSES = _ON_CONNECT_CLASSES = frozenset({"28"})
# SQLite primary result codes (sqlite3 errors carry ``sqlite_errorcode``; the low byte is the primary code): the
# file is locked by another writer past the busy timeout, cannot be opened or read, or the disk or memory is full.
UNAVAILABLE_SQLITE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)


def is_unavailable(error: BaseException, *, connecting: bool = False) -> bool:
    """True when ``error`` means "the database cannot be reached or used right now", not "the statement is wrong".

    The one classification of database failures, for every path: the unit of work (connect, begin, statements,
    commit), both principal readers and the readiness check. ``connecting``: ``error`` was raised while a connection
    was being opened (some SQLSTATEs mean unavailability only there). The error and its causes are examined
    (SQLAlchemy's wrapper, the DB-API adapter's error, the driver's): it is unavailability when any of them is

    - a connection that broke (SQLAlchemy's ``connection_invalidated``; ``DisconnectionError``);
    - an operating-system failure of the connection (refused, reset, unreachable host: ``OSError``) or a timeout
      (connecting, a command, ``TimeoutError``; waiting for a pooled connection, SQLAlchemy's pool timeout);
    - a SQLSTATE or SQLite result code listed above.
    """
    return any(_says_unavailable(link, connecting=connecting) for link in _causes(error))


def _says_unavailable(error: BaseException, *, connecting: bool) -> bool:
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, OSError | exc.TimeoutError | exc.DisconnectionError):  # TimeoutError is an OSError
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and (
        sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES
        or sqlstate in UNAVAILABLE_SQLSTATES
        or (
            connecting
            and (
                sqlstate in UNAVAILABLE_ON_CONNECT_SQLSTATES or sqlstate[:2] in UNAVAILABLE_ON_CONNECT_SQLSTATE_CLASSES
            )
        )
    ):
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in UNAVAILABLE_SQLITE_CODES


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what it wraps: a DB-API error's ``orig`` and every explicit ``__cause__``, each once."""
    pending, seen = [error], set[int]()
    while pending:
        link = pending.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        if link.__cause__ is not None:
            pending.append(link.__cause__)
        if isinstance(link, exc.DBAPIError) and isinstance(link.orig, BaseException):
            pending.append(link.orig)


def build_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.database.url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url.render_as_string(hide_password=False))
    cache_size = settings.database.statement_cache_size
    connect_args: dict[str, Any] = {
        "timeout": settings.database.connect_timeout,
        "command_timeout": settings.database.command_timeout,
        "statement_cache_size": cache_size,  # asyncpg's own cache
        "prepared_statement_cache_size": cache_size,  # SQLAlchemy's, in its asyncpg adapter
        "server_settings": {"application_name": "usermgmt"},
    }
    if cache_size == 0:  # behind PgBouncer (transaction mode): statement names must not collide across clients
        connect_args["prepared_statement_name_func"] = _unique_statement_name
    return create_async_engine(
        url,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        pool_timeout=settings.database.pool_timeout,
        pool_recycle=1800,
        connect_args=connect_args,
    )


def _unique_statement_name() -> str:
    return f"__usermgmt_{uuid.uuid4().hex}__"


def create_private_sqlite_file(database: str) -> None:
    """Create the SQLite database file ``database`` empty with mode 0600, and its folder with mode 0700, when
    they do not exist yet; an existing file or folder is left as it is.

    SQLite creates the ``-wal`` and ``-shm`` files with the database file's mode, so they are private too. An
    empty file is a valid, empty SQLite database."""
    path = Path(database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the folders above it, if missing, get the umask's
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_engine(url: str) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        create_private_sqlite_file(database)
    engine = create_async_engine(url, connect_args={"timeout": 15})

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    return engine
