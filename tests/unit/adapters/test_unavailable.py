"""Which database errors mean "not now" (503) rather than "wrong" (a bug, 500): ``engine.is_unavailable``.

The driver errors are asyncpg's own classes (each carries its ``sqlstate``) and real sqlite3 errors; they are
examined raw, as the hot path sees them, and wrapped the way SQLAlchemy wraps them.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from asyncpg.exceptions import _base as asyncpg_base
from sqlalchemy import exc

from usermgmt.adapters.sqlalchemy.engine import is_unavailable
from usermgmt.adapters.sqlalchemy.fast_principals import ConnectionLost


def wrapped(driver_error: BaseException, *, invalidated: bool = False) -> exc.DBAPIError:
    """As SQLAlchemy raises it: its DBAPIError, over the DB-API adapter's error, over the driver's."""

    class AdaptedError(Exception):
        pass

    adapted = AdaptedError(str(driver_error))
    adapted.__cause__ = driver_error
    error = exc.DBAPIError("SELECT 1", None, adapted, connection_invalidated=invalidated)
    error.__cause__ = adapted
    return error


def ways_to_see(driver_error: BaseException) -> list[BaseException]:
    return [driver_error, wrapped(driver_error)]


UNAVAILABLE_ANYWHERE = [
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),  # 08003
    asyncpg.ConnectionFailureError("connection failure"),  # 08006
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),  # 53300
    asyncpg.OutOfMemoryError("out of memory"),  # 53200
    asyncpg.DiskFullError("could not extend file"),  # 53100
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),  # 57P01
    asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),  # 57P02
    asyncpg.CannotConnectNowError("the database system is starting up"),  # 57P03
    asyncpg.DatabaseDroppedError("database dropped"),  # 57P04
    asyncpg.IdleSessionTimeoutError("terminating connection due to idle-session timeout"),  # 57P05
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),  # 57014: see engine.py
    asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),  # 55P03
    asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),  # 25006: a standby
]

NOT_UNAVAILABLE = [
    asyncpg.UndefinedColumnError("column x does not exist"),  # 42703
    asyncpg.UndefinedTableError("relation x does not exist"),  # 42P01
    asyncpg.UniqueViolationError("duplicate key"),  # 23505
    asyncpg.ForeignKeyViolationError("violates foreign key constraint"),  # 23503
    asyncpg.StringDataRightTruncationError("value too long"),  # 22001
    asyncpg.ObjectInUseError("object in use"),  # 55006
    # asyncpg's client-side errors are not outages by their type: a wrong argument or a connection used twice is ours.
    asyncpg_base.DataError("invalid input for query argument $1"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg_base.InternalClientError("cannot switch to state 11; another operation (2) is in progress"),
    ValueError("not a database error at all"),
]


@pytest.mark.parametrize("driver_error", UNAVAILABLE_ANYWHERE, ids=lambda e: f"{type(e).__name__}")
@pytest.mark.parametrize("connecting", [False, True], ids=["in-a-statement", "on-connect"])
def test_connection_resource_and_operator_sqlstates_are_unavailability(
    driver_error: BaseException, connecting: bool
) -> None:
    for error in ways_to_see(driver_error):
        assert is_unavailable(error, connecting=connecting), repr(error)


@pytest.mark.parametrize("driver_error", NOT_UNAVAILABLE, ids=lambda e: f"{type(e).__name__}")
@pytest.mark.parametrize("connecting", [False, True], ids=["in-a-statement", "on-connect"])
def test_query_and_configuration_errors_are_not(driver_error: BaseException, connecting: bool) -> None:
    for error in ways_to_see(driver_error):
        assert not is_unavailable(error, connecting=connecting), repr(error)


@pytest.mark.parametrize(
    "refused",
    [
        asyncpg.InvalidPasswordError("password authentication failed"),  # 28P01: a rotated password, say
        asyncpg.InvalidAuthorizationSpecificationError("no pg_hba.conf entry"),  # 28000
        asyncpg.InvalidCatalogNameError('database "x" does not exist'),  # 3D000: dropped or renamed
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_database_that_cannot_be_reached_with_our_credentials_is_unavailable_on_connect(
    refused: BaseException,
) -> None:
    """The database cannot be reached with what the service was given: 503 to clients (nothing they sent is wrong),
    and the service recovers without a restart once it can connect again."""
    for error in ways_to_see(refused):
        assert is_unavailable(error, connecting=True)
        assert not is_unavailable(error, connecting=False)


def test_a_database_refusing_sessions_is_unavailable_only_when_connecting() -> None:
    """ALTER DATABASE … WITH ALLOW_CONNECTIONS false: a connect gets 55000. A statement that gets 55000 is ours."""
    refused = asyncpg.ObjectNotInPrerequisiteStateError('database "usermgmt" is not currently accepting connections')
    assert refused.sqlstate == "55000"

    for error in ways_to_see(refused):
        assert is_unavailable(error, connecting=True)
        assert not is_unavailable(error)
        assert not is_unavailable(error, connecting=False)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        socket.gaierror(-2, "Name or service not known"),
        OSError(113, "No route to host"),
        TimeoutError(),  # asyncio's too: connect timeout, command timeout
        exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached, connection timed out"),
        ConnectionLost("the connection closed under the query"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connection_failures_and_timeouts_are_unavailability(error: BaseException) -> None:
    assert is_unavailable(error)
    assert is_unavailable(error, connecting=True)


def test_a_connection_lost_under_a_query_is_unavailable_whatever_the_driver_said() -> None:
    """The hot path's ConnectionSet reports any failure that left the connection closed as ConnectionLost."""
    said = asyncpg_base.InternalClientError("cannot switch to state 11; another operation (2) is in progress")
    lost = ConnectionLost("the connection closed under the query")
    lost.__cause__ = said

    assert not is_unavailable(said)
    assert is_unavailable(lost)


def test_sqlalchemy_invalidating_the_connection_is_unavailability_whatever_the_driver_said() -> None:
    said = asyncpg_base.InternalClientError("cannot switch to state 11; another operation (2) is in progress")

    assert is_unavailable(wrapped(said, invalidated=True))
    assert not is_unavailable(wrapped(said, invalidated=False))


def test_a_cause_further_down_the_chain_counts() -> None:
    outer = RuntimeError("while reading the user")
    outer.__cause__ = wrapped(asyncpg.AdminShutdownError("terminating connection due to administrator command"))

    assert is_unavailable(outer)


def test_a_cycle_of_causes_ends() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a

    assert not is_unavailable(a)


# --- SQLite: real errors from the sqlite3 module -------------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "usermgmt.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as setup:
        setup.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE)")
    return path


def sqlite_error(path: Path, statement: str, *, locked: bool = False) -> sqlite3.Error:
    holder = sqlite3.connect(path, isolation_level=None)
    victim = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        if locked:
            holder.execute("BEGIN EXCLUSIVE")  # another writer holds the file
        with pytest.raises(sqlite3.Error) as raised:
            victim.execute(statement)
        return raised.value
    finally:
        victim.close()
        holder.close()


def test_a_locked_sqlite_database_is_unavailable(database: Path) -> None:
    error = sqlite_error(database, "INSERT INTO users (email) VALUES ('a@example.com')", locked=True)

    assert error.sqlite_errorcode == sqlite3.SQLITE_BUSY
    for seen in ways_to_see(error):
        assert is_unavailable(seen)


def test_an_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError) as raised:
        sqlite3.connect(tmp_path / "no" / "such" / "folder.db")

    assert raised.value.sqlite_errorcode == sqlite3.SQLITE_CANTOPEN
    assert is_unavailable(raised.value, connecting=True)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT nope FROM users",  # a bug, not an outage: SQLite says OperationalError all the same
        "SELECT * FROM no_such_table",  # a missing migration
        "INSERT INTO users (id, email) VALUES (1, NULL)",  # a constraint
    ],
)
def test_sqlite_errors_of_the_statement_are_not(database: Path, statement: str) -> None:
    error = sqlite_error(database, statement)

    for seen in ways_to_see(error):
        assert not is_unavailable(seen)
