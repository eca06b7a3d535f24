"""Engine construction and the translation of connection failures into ``ServiceUnavailable``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from usermgmt.config import Settings

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,  # pool exhausted for pool_timeout seconds
    OSError,  # connection refused / reset before SQLAlchemy wraps it
    asyncio.TimeoutError,
)


# SQLSTATE classes that mean "not now" rather than "wrong": connection exception (08), insufficient resources
# (53: too many connections, out of memory or disk), operator intervention (57: shutting down, starting up).
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})


def sqlstate_says_unavailable(error: BaseException | None) -> bool:
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` means "the database cannot be reached right now", not "the query is wrong"."""
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        driver_error = error.orig.__cause__ if error.orig is not None else None  # asyncpg's, under the adapter's
        if sqlstate_says_unavailable(error.orig) or sqlstate_says_unavailable(driver_error):
            return True
    return isinstance(error, UNAVAILABLE_ERRORS)


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
