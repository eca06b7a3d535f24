"""Readiness: can the database answer a trivial query right now?"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)


class SqlAlchemyHealthCheck:
    def __init__(self, engine: AsyncEngine, timeout: float = 2.0) -> None:
        self._engine, self._timeout = engine, timeout

    async def database_ready(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log, not the client
            logger.warning("readiness check failed: %s", type(exc).__name__)
            return False
        return True
