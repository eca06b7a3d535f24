"""The hot path on PostgreSQL: one prepared statement on a plain asyncpg pool, no SQLAlchemy per request.

Every authenticated request asks "is this session alive and its user active?". Through SQLAlchemy that costs a
pool checkout, a BEGIN, the statement and a ROLLBACK, most of a request's CPU time (measured: docs/performance.md).
Here it is one round trip on a prepared statement, in autocommit. SQLite (the embedded default) keeps
``SqlAlchemyPrincipalReader``; the two are held to one contract by tests/integration.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from usermgmt.adapters.sqlalchemy.repositories import user_from_row
from usermgmt.application.errors import ServiceUnavailable
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import SessionId, UserId

PRINCIPAL_SQL = """
SELECT u.id, u.email, u.username, u.full_name, u.password_hash, u.email_verified, u.is_active,
       u.created_at, u.updated_at, u.password_changed_at
FROM sessions AS s JOIN users AS u ON u.id = s.user_id
WHERE s.id = $1 AND u.id = $2 AND s.expires_at > $3 AND u.is_active
"""

UNAVAILABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


class _Record:
    """Attribute access over an asyncpg Record, so the one row mapper serves both readers."""

    __slots__ = ("_record",)

    def __init__(self, record: asyncpg.Record) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        return self._record[name]


async def _keep_session_state(_: asyncpg.Connection) -> None:
    return None


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
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._options: dict[str, Any] = {
            "min_size": 1,
            "max_size": max_size,
            "timeout": connect_timeout,
            "command_timeout": command_timeout,
            "statement_cache_size": statement_cache_size,
            "server_settings": {"application_name": "usermgmt"},
            # The default reset runs "RESET ALL; UNLISTEN *; ..." on every release: a second round trip per
            # request. This pool only runs one SELECT in autocommit and changes no session state.
            "reset": _keep_session_state,
        }
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def get_active_user(self, user_id: UserId, session_id: SessionId, now: datetime) -> User | None:
        try:
            pool = self._pool or await self._open()
            record = await pool.fetchrow(PRINCIPAL_SQL, session_id, user_id, now)
        except UNAVAILABLE as exc:
            raise ServiceUnavailable() from exc
        return user_from_row(_Record(record)) if record is not None else None  # type: ignore[arg-type]

    async def _open(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:  # a failed attempt leaves None behind: the next request tries again
                self._pool = await asyncpg.create_pool(self._dsn, **self._options)
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
