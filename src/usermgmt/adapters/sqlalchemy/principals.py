"""The hot path of every authenticated request: session liveness and the user in one indexed read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from usermgmt.adapters.sqlalchemy.engine import is_unavailable
from usermgmt.adapters.sqlalchemy.repositories import user_from_row
from usermgmt.adapters.sqlalchemy.tables import sessions, users
from usermgmt.application.errors import ServiceUnavailable
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import SessionId, UserId

_PRINCIPAL = select(users).join(sessions, sessions.c.user_id == users.c.id).where(users.c.is_active == true())


class SqlAlchemyPrincipalReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get_active_user(self, user_id: UserId, session_id: SessionId, now: datetime) -> User | None:
        statement = _PRINCIPAL.where(sessions.c.id == session_id, users.c.id == user_id, sessions.c.expires_at > now)
        try:
            async with self._engine.connect() as connection:
                row = (await connection.execute(statement)).first()
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise
        return user_from_row(row) if row is not None else None
