"""Readiness: can the database answer a trivial query right now?"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from usermgmt.adapters.sqlalchemy.engine import is_unavailable

logger = logging.getLogger(__name__)


class SqlAlchemyHealthCheck:
    def __init__(self, engine: AsyncEngine, timeout: float = 2.0) -> None:
        self._engine, self._timeout = engine, timeout

    async def database_ready(self) -> bool:
        """False when ``SELECT 1`` fails or takes longer than ``timeout``; the reason goes to the log, not the client.

        An outage (``engine.is_unavailable``) is a warning; any other failure (a wrong password, a missing
        database: something an operator must fix, not wait out) is an error. Either line names the failure by its
        types and SQLSTATEs, never by its message, which may name hosts and users.
        """
        connecting = True
        try:
            async with asyncio.timeout(self._timeout):
                connection = await self._engine.connect()
                connecting = False
                try:
                    await connection.execute(text("SELECT 1"))
                finally:
                    await connection.close()
        except Exception as exc:
            if is_unavailable(exc, connecting=connecting):
                logger.warning("readiness check failed: database unavailable (%s)", describe(exc))
            else:
                logger.error("readiness check failed: %s", describe(exc))
            return False
        return True


def describe(error: BaseException) -> str:
    """``error``'s type and SQLSTATE, then its causes': ``DBAPIError <- Error 55000 <- ObjectNotInPrerequisite...``."""
    parts: list[str] = []
    link: BaseException | None = error
    while link is not None and len(parts) < 4:
        sqlstate = getattr(link, "sqlstate", None)
        parts.append(type(link).__name__ + (f" {sqlstate}" if isinstance(sqlstate, str) else ""))
        link = link.__cause__
    return " <- ".join(parts)
