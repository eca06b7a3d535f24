"""The hot path of every authenticated request: session liveness and the caller's profile in one indexed read.

The statement is built once, here, from the table definitions; ``fast_principals`` compiles the same statement for
asyncpg. The password hash is not among its columns: it never leaves the adapter on this path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from usermgmt.adapters.sqlalchemy.engine import is_unavailable
from usermgmt.adapters.sqlalchemy.repositories import trusted
from usermgmt.adapters.sqlalchemy.tables import sessions, users
from usermgmt.application.errors import ServiceUnavailable
from usermgmt.application.results import Principal
from usermgmt.domain.value_objects import Email, FullName, SessionId, UserId, Username

PRINCIPAL_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.username,
    users.c.full_name,
    users.c.email_verified,
    users.c.is_active,
    users.c.created_at,
    users.c.updated_at,
    users.c.pending_email,
)

# Parameters in this order: session id, user id, now (the positional order of the compiled asyncpg statement).
PRINCIPAL_QUERY = (
    select(*PRINCIPAL_COLUMNS)
    .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
    .where(
        sessions.c.id == bindparam("session_id"),
        users.c.id == bindparam("user_id"),
        sessions.c.expires_at > bindparam("now"),
    )
)


def principal_from_row(row: Row[Any] | Any, session_id: SessionId) -> Principal:
    return Principal(
        user_id=UserId(row.id),
        session_id=session_id,
        email=trusted(Email, row.email),
        username=trusted(Username, row.username) if row.username is not None else None,
        full_name=trusted(FullName, row.full_name) if row.full_name is not None else None,
        email_verified=row.email_verified,
        is_active=row.is_active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        pending_email=trusted(Email, row.pending_email) if row.pending_email is not None else None,
    )


class SqlAlchemyPrincipalReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, user_id: UserId, session_id: SessionId, now: datetime) -> Principal | None:
        """Raises: ServiceUnavailable (``engine.is_unavailable``, in connecting or in the query)."""
        try:
            connection = await self._engine.connect()
        except Exception as exc:
            if is_unavailable(exc, connecting=True):
                raise ServiceUnavailable() from exc
            raise
        try:
            try:
                result = await connection.execute(
                    PRINCIPAL_QUERY, {"session_id": session_id, "user_id": user_id, "now": now}
                )
                row = result.first()
            finally:
                await connection.close()
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise
        return principal_from_row(row, session_id) if row is not None else None
