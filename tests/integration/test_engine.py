"""build_engine: SQLite gets its folder and its pragmas; PostgreSQL gets the pool and connection settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW, new_session, new_user
from usermgmt.adapters.sqlalchemy import migrations
from usermgmt.adapters.sqlalchemy.engine import build_engine
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.errors import ConcurrentUpdate, EmailTaken, UsernameTaken
from usermgmt.config import Settings
from usermgmt.domain.value_objects import Email


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def scalar(engine: AsyncEngine, sql: str) -> Any:
    async with engine.connect() as connection:
        return (await connection.execute(text(sql))).scalar_one()


@pytest.fixture
async def migrated_sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'usermgmt.db'}"
    await asyncio.to_thread(migrations.upgrade, url, configure_logging=False)
    engine = build_engine(settings(database_url=url))
    yield engine
    await engine.dispose()


async def test_sqlite_engine_creates_the_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "does" / "not" / "exist"
    engine = build_engine(settings(database_url=f"sqlite+aiosqlite:///{folder / 'usermgmt.db'}"))
    try:
        assert folder.is_dir()  # at construction, before any connection
        assert await scalar(engine, "SELECT 1") == 1
        assert (folder / "usermgmt.db").is_file()
    finally:
        await engine.dispose()


async def test_default_settings_put_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    configured = settings(data_dir=data_dir)
    assert configured.database.url == f"sqlite+aiosqlite:///{data_dir / 'usermgmt.db'}"

    engine = build_engine(configured)
    try:
        assert data_dir.is_dir()
    finally:
        await engine.dispose()


async def test_in_memory_sqlite_needs_no_folder() -> None:
    engine = build_engine(settings(database_url="sqlite+aiosqlite:///:memory:"))
    try:
        assert await scalar(engine, "PRAGMA foreign_keys") == 1
    finally:
        await engine.dispose()


async def test_every_sqlite_connection_enforces_foreign_keys(tmp_path: Path) -> None:
    engine = build_engine(settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'fk.db'}"))
    try:
        barrier = asyncio.Barrier(3)

        async def pragmas() -> tuple[int, str]:
            async with engine.connect() as connection:  # three connections at once: each got the pragmas
                await barrier.wait()
                foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
                journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
                return foreign_keys, journal

        assert await asyncio.gather(pragmas(), pragmas(), pragmas()) == [(1, "wal")] * 3
    finally:
        await engine.dispose()


async def test_sqlite_refuses_a_session_of_an_unknown_user(migrated_sqlite: AsyncEngine) -> None:
    async with SqlAlchemyUnitOfWork(migrated_sqlite) as uow:
        with pytest.raises(ConcurrentUpdate) as caught:  # the foreign key refuses it; the core hears "changed"
            await uow.sessions.add(new_session(new_user()))
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert "FOREIGN KEY" in str(caught.value.__cause__)


async def test_sqlite_deleting_a_user_cascades_to_sessions(migrated_sqlite: AsyncEngine) -> None:
    user = new_user()
    async with SqlAlchemyUnitOfWork(migrated_sqlite) as uow:
        await uow.users.add(user)
        await uow.sessions.add(new_session(user))
        await uow.commit()

    async with migrated_sqlite.begin() as connection:
        await connection.execute(text("DELETE FROM users"))

    assert await scalar(migrated_sqlite, "SELECT count(*) FROM sessions") == 0


async def test_sqlite_adapter_smoke(migrated_sqlite: AsyncEngine) -> None:
    """The embedded default: aware UTC datetimes back, and SQLite's wording of unique violations translated."""
    user = new_user("Alice@example.com", username="alice", full_name="Alice")
    async with SqlAlchemyUnitOfWork(migrated_sqlite) as uow:
        await uow.users.add(user)
        await uow.commit()

    async with SqlAlchemyUnitOfWork(migrated_sqlite) as uow:
        loaded = await uow.users.get_by_email(Email("ALICE@example.com"))
        with pytest.raises(EmailTaken):
            await uow.users.add(new_user("alice@EXAMPLE.com"))
    async with SqlAlchemyUnitOfWork(migrated_sqlite) as uow:
        with pytest.raises(UsernameTaken):
            await uow.users.add(new_user("other@example.com", username="ALICE"))

    assert loaded is not None
    assert vars(loaded) == vars(user)
    assert loaded.created_at == NOW
    assert loaded.created_at.tzinfo is not None


async def test_postgresql_engine_applies_pool_and_connection_settings(database_url: str) -> None:
    engine = build_engine(settings(database_url=database_url, database_pool_size=3, database_statement_cache_size=0))
    try:
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
        assert await scalar(engine, "SELECT current_setting('application_name')") == "usermgmt"
        # statement_cache_size=0 (PgBouncer in transaction mode) still runs parameterised statements
        async with SqlAlchemyUnitOfWork(engine) as uow:
            assert await uow.users.get_by_email(Email("nobody@example.com")) is None
    finally:
        await engine.dispose()
