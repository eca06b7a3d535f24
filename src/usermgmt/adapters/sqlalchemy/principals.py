"""The hot path of every authenticated request: session liveness and the caller's profile in one indexed read.

The statement is built once, here, from the table definitions; ``fast_principals`` compiles the same statement for
asyncpg. The password hash is not among its columns (only whether there is one): it never leaves the adapter on
this path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, String, bindparam, case, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from usermgmt.adapters.sqlalchemy.engine import is_unavailable
from usermgmt.adapters.sqlalchemy.repositories import trusted
from usermgmt.adapters.sqlalchemy.tables import roles, sessions, user_roles, users
from usermgmt.application.errors import ServiceUnavailable
from usermgmt.application.results import Principal
from usermgmt.domain.roles import ADMIN, ALL_PERMISSIONS, Permission, parse_granted
from usermgmt.domain.value_objects import Email, FullName, SessionId, UserId, Username


class _joined(FunctionElement[str]):
    """The space-joined values of a column: ``string_agg`` on PostgreSQL, ``group_concat`` on SQLite, with the
    separator written into the statement (a bound one would shift the hot path's positional parameters)."""

    type = String()
    inherit_cache = True
    name = "joined"


@compiles(_joined, "postgresql")
def _joined_postgresql(element: _joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, ' ')"


@compiles(_joined, "sqlite")
def _joined_sqlite(element: _joined, compiler: SQLCompiler, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, ' ')"


# The permissions of the user's roles (``admin`` by its name: it holds every permission), in the principal's row.
# NULL for a user without roles: one probe of the user_roles primary key.
ADMIN_MARK = "*"
_GRANTED = (
    select(
        _joined(
            case(
                (roles.c.name == literal_column(f"'{ADMIN}'"), literal_column(f"'{ADMIN_MARK}'")),
                else_=roles.c.permissions,
            )
        )
    )
    .select_from(user_roles.join(roles, roles.c.name == user_roles.c.role_name))
    .where(user_roles.c.user_id == users.c.id)
    .correlate(users)
    .scalar_subquery()
    .label("granted")
)

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
    _GRANTED,
    users.c.password_hash.is_not(None).label("has_password"),  # whether there is one; the hash itself stays
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
        permissions=_permissions(row.granted),
        has_password=bool(row.has_password),
    )


def _permissions(granted: str | None) -> frozenset[Permission]:
    if not granted:
        return frozenset()
    return ALL_PERMISSIONS if ADMIN_MARK in granted.split() else parse_granted(granted)


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
