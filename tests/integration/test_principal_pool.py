"""The hot path's connections follow USERMGMT_DATABASE_PRINCIPAL_POOL_SIZE, not the SQLAlchemy pool's size."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW
from usermgmt.adapters.sqlalchemy.engine import build_engine
from usermgmt.adapters.sqlalchemy.fast_principals import AsyncpgPrincipalReader
from usermgmt.config import Settings
from usermgmt.container import principal_reader_from
from usermgmt.domain.value_objects import SessionId, UserId

OURS = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'usermgmt'"


async def ours(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(OURS))).scalar_one())


async def test_the_hot_path_opens_at_most_principal_pool_size_connections(
    database_url: str, clean_database: AsyncEngine
) -> None:
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        database_pool_size=6,  # type: ignore[call-arg]
        database_principal_pool_size=2,
    )
    engine = build_engine(settings)  # never connected here: the reader has its own connections
    reader = principal_reader_from(settings, engine)
    assert isinstance(reader, AsyncpgPrincipalReader)
    before = await ours(clean_database)  # a service another tier started on this database may hold some
    try:
        lookups = [reader.get(UserId(uuid4()), SessionId(uuid4()), NOW) for _ in range(24)]
        assert await asyncio.gather(*lookups) == [None] * 24
        assert await ours(clean_database) - before == 2
    finally:
        await reader.close()
        await engine.dispose()
