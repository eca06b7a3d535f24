"""The Alembic migrations: they go up, down and up again, and what they build is what tables.py describes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from tests.support.database import create_database, drop_database
from usermgmt.adapters.sqlalchemy import migrations
from usermgmt.adapters.sqlalchemy.tables import metadata, users

APP_TABLES = set(metadata.tables)


def head_revision() -> str:
    heads = ScriptDirectory.from_config(migrations.alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"the migrations must form one line, found heads {heads}"
    return heads[0]


@pytest.fixture
async def fresh_postgres_url() -> AsyncIterator[str]:
    """An empty PostgreSQL database of its own (the run's shared one is already at head)."""
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'usermgmt.db'}"


async def upgrade(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(migrations.upgrade, url, revision, configure_logging=False)


async def downgrade(url: str, revision: str = "base") -> None:
    await asyncio.to_thread(migrations.downgrade, url, revision, configure_logging=False)


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def inspect_database(url: str) -> tuple[set[str], str | None, list[Any]]:
    engine: AsyncEngine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(_table_names)
            revision = await connection.run_sync(_current_revision)
            diff = await connection.run_sync(_schema_diff)
    finally:
        await engine.dispose()
    return tables, revision, diff


async def stairway(url: str) -> None:
    await upgrade(url)
    tables, revision, diff = await inspect_database(url)
    assert tables >= APP_TABLES
    assert revision == head_revision()
    assert diff == []

    await downgrade(url)
    tables, revision, _ = await inspect_database(url)
    assert tables & APP_TABLES == set()
    assert revision is None

    await upgrade(url)
    tables, revision, diff = await inspect_database(url)
    assert tables >= APP_TABLES
    assert revision == head_revision()
    assert diff == [], "the schema the migrations build differs from tables.py"


async def test_postgresql_stairway_and_schema_matches_metadata(fresh_postgres_url: str) -> None:
    await stairway(fresh_postgres_url)


async def test_sqlite_stairway_and_schema_matches_metadata(sqlite_url: str, tmp_path: Path) -> None:
    await stairway(sqlite_url)
    assert (tmp_path / "nested" / "usermgmt.db").is_file()  # env.py creates the folder


async def test_each_revision_downgrades_cleanly_one_step_at_a_time(fresh_postgres_url: str) -> None:
    """The stairway, step by step: every revision's downgrade undoes exactly its upgrade."""
    script = ScriptDirectory.from_config(migrations.alembic_config(fresh_postgres_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]  # oldest first
    for revision in revisions:
        await upgrade(fresh_postgres_url, revision)
        await downgrade(fresh_postgres_url, "-1")
        await upgrade(fresh_postgres_url, revision)
    _, current, diff = await inspect_database(fresh_postgres_url)
    assert current == revisions[-1]
    assert diff == []


async def test_upgrading_twice_is_a_no_op(fresh_postgres_url: str) -> None:
    await upgrade(fresh_postgres_url)
    await upgrade(fresh_postgres_url)

    _, revision, diff = await inspect_database(fresh_postgres_url)
    assert revision == head_revision()
    assert diff == []


async def test_shared_test_database_is_at_head(database_url: str) -> None:
    """The session fixture migrates with the real migrations; tests run against exactly that schema."""
    tables, revision, diff = await inspect_database(database_url)
    assert tables >= APP_TABLES
    assert revision == head_revision()
    assert diff == []


async def test_postgresql_constraints_carry_the_names_the_adapter_relies_on(fresh_postgres_url: str) -> None:
    """translate_integrity_error recognises unique violations by these names: renaming one breaks EmailTaken."""
    await upgrade(fresh_postgres_url)
    engine = create_async_engine(fresh_postgres_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT conname, contype FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                    "WHERE n.nspname = 'public'"
                )
            )
            constraints = dict(rows.all())
            on_delete = await connection.execute(
                text("SELECT conname, confdeltype FROM pg_constraint WHERE contype = 'f'")
            )
            cascades = dict(on_delete.all())
    finally:
        await engine.dispose()

    # pg_constraint's "char" columns arrive as bytes through asyncpg
    assert constraints["uq_users_email_canonical"] == b"u"
    assert constraints["uq_users_username_canonical"] == b"u"
    assert constraints["uq_sessions_refresh_token_hash"] == b"u"
    assert constraints["pk_users"] == b"p"
    assert cascades["fk_sessions_user_id_users"] == b"c"
    assert cascades["fk_retired_refresh_tokens_session_id_sessions"] == b"c"


async def test_postgresql_0009_downgrade_refuses_while_an_account_has_no_password(fresh_postgres_url: str) -> None:
    await downgrade_refuses_while_an_account_has_no_password(fresh_postgres_url)


async def test_sqlite_0009_downgrade_refuses_while_an_account_has_no_password(sqlite_url: str) -> None:
    await downgrade_refuses_while_an_account_has_no_password(sqlite_url)


async def downgrade_refuses_while_an_account_has_no_password(url: str) -> None:
    """Below 0009 every account needs a password hash: the downgrade stops, changing nothing, until none lacks one."""
    await upgrade(url)
    engine = create_async_engine(url, poolclass=NullPool)
    at = datetime(2026, 12, 6, tzinfo=UTC)
    federated = insert(users).values(
        id=uuid.uuid4(),
        email="ada@example.com",
        email_canonical="ada@example.com",
        password_hash=None,
        email_verified=True,
        is_active=True,
        created_at=at,
        updated_at=at,
        password_changed_at=at,
        version=1,
    )
    try:
        async with engine.begin() as connection:
            await connection.execute(federated)

        with pytest.raises(RuntimeError, match="1 account"):
            await downgrade(url, "0008")
        _, revision, diff = await inspect_database(url)
        assert (revision, diff) == ("0009", [])

        async with engine.begin() as connection:
            await connection.execute(users.update().values(password_hash="$2b$12$x"))
        await downgrade(url, "0008")
        async with engine.connect() as connection:
            assert await connection.run_sync(_current_revision) == "0008"
            assert (await connection.execute(text("SELECT count(*) FROM users"))).scalar_one() == 1
    finally:
        await engine.dispose()
