"""Shared fixtures. Tests are marked by folder: tests/integration -> integration, tests/e2e -> e2e."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.database import create_database, drop_database
from usermgmt.adapters.sqlalchemy import migrations

TABLES = (
    "known_devices",
    "email_outbox",
    "email_tokens",
    "security_events",
    "retired_refresh_tokens",
    "sessions",
    "users",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this run, migrated to head by Alembic (the real migrations)."""
    url = await create_database()
    try:
        await asyncio.to_thread(migrations.upgrade, url, configure_logging=False)
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=10, max_overflow=20)
    yield engine
    await engine.dispose()


@pytest.fixture
async def clean_database(engine: AsyncEngine) -> AsyncEngine:
    """Empty tables before each test that asks: tests commit for real, so they must not see each other's rows."""
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
        await connection.execute(text("DELETE FROM roles WHERE name <> 'admin'"))  # the built-in role stays
    return engine
