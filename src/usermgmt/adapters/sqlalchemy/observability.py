"""What the metrics read from the database layer: the connection pool's use and the outbox's backlog."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from usermgmt.adapters.metrics import PoolStatus
from usermgmt.adapters.sqlalchemy.tables import email_outbox


def orm_pool_status(engine: AsyncEngine) -> PoolStatus:
    """The SQLAlchemy pool's connections: open (checked out or in) and idle (checked in). A pool that keeps no
    count (SQLite's) reports none."""
    pool = engine.pool
    checked_out, checked_in = getattr(pool, "checkedout", None), getattr(pool, "checkedin", None)
    if not callable(checked_out) or not callable(checked_in):
        return PoolStatus(open=0, idle=0)
    idle = int(checked_in())
    return PoolStatus(open=int(checked_out()) + idle, idle=idle)


class OutboxBacklog:
    """How many emails wait in the outbox, and since when the oldest: one aggregate over a table that stays near
    empty while delivery keeps up (a sent or given-up row is deleted)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __call__(self) -> tuple[int, datetime | None]:
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(func.count(), func.min(email_outbox.c.created_at)).select_from(email_outbox)
                )
            ).one()
        count, oldest = int(row[0]), row[1]
        if isinstance(oldest, str):  # in case a driver hands the aggregate back untyped
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return count, oldest
