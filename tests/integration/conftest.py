"""Fixtures for the integration tier: one set of contract tests, run against every backend the service has.

- ``memory``: the in-memory fakes the unit tests use;
- ``postgresql``: SQLAlchemy (and the asyncpg hot path) on the run's PostgreSQL database;
- ``sqlite``: SQLAlchemy on an embedded SQLite file, the default of ``make run``, built by ``build_engine`` as the
  service builds it (foreign keys on, WAL) and migrated with the real Alembic migrations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from usermgmt.adapters.memory import InMemoryPrincipalReader, InMemoryUnitOfWork, MemoryStore
from usermgmt.adapters.sqlalchemy import migrations
from usermgmt.adapters.sqlalchemy.engine import build_engine
from usermgmt.adapters.sqlalchemy.fast_principals import AsyncpgPrincipalReader
from usermgmt.adapters.sqlalchemy.principals import SqlAlchemyPrincipalReader
from usermgmt.adapters.sqlalchemy.tables import metadata, roles
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.ports import PrincipalReader, UnitOfWork
from usermgmt.application.results import Principal
from usermgmt.config import Settings
from usermgmt.domain.roles import ADMIN
from usermgmt.domain.value_objects import SessionId, UserId

BACKENDS = ["memory", "postgresql", "sqlite"]


@pytest.fixture(scope="session")
async def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    """A SQLite file for this run, migrated to head by Alembic, on the service's own engine for it."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'usermgmt.db'}"
    await asyncio.to_thread(migrations.upgrade, url, configure_logging=False)
    engine = build_engine(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    yield engine
    await engine.dispose()


@pytest.fixture
async def clean_sqlite(sqlite_engine: AsyncEngine) -> AsyncEngine:
    """Empty tables, dependents first (every table of the metadata: later tables are cleaned without a change here)."""
    async with sqlite_engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            if table is roles:
                await connection.execute(table.delete().where(roles.c.name != ADMIN))  # the built-in role stays
            else:
                await connection.execute(table.delete())
    return sqlite_engine


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sql_engine(backend: str, request: pytest.FixtureRequest) -> AsyncEngine | None:
    """The clean database under ``uow``: PostgreSQL's or SQLite's engine; None for the in-memory fakes."""
    if backend == "memory":
        return None
    engine: AsyncEngine = request.getfixturevalue("clean_database" if backend == "postgresql" else "clean_sqlite")
    return engine


@pytest.fixture
def uow(sql_engine: AsyncEngine | None) -> UnitOfWork:
    """A unit of work on an empty store: the in-memory fake, or SQLAlchemy on PostgreSQL or SQLite."""
    if sql_engine is None:
        return InMemoryUnitOfWork(MemoryStore())
    return SqlAlchemyUnitOfWork(sql_engine)


@pytest.fixture
def make_uow(uow: UnitOfWork, sql_engine: AsyncEngine | None) -> Callable[[], UnitOfWork]:
    """Another, independent unit of work on the same committed state as ``uow`` (a second, concurrent request)."""
    if isinstance(uow, InMemoryUnitOfWork):
        store = uow.store
        return lambda: InMemoryUnitOfWork(store)
    assert sql_engine is not None
    return lambda: SqlAlchemyUnitOfWork(sql_engine)


class BothPrincipalReaders:
    """The two PostgreSQL readers (SQLAlchemy Core, and the asyncpg hot path) asked the same question: they must
    give the same answer, which is returned."""

    def __init__(self, core: SqlAlchemyPrincipalReader, fast: AsyncpgPrincipalReader) -> None:
        self.core, self.fast = core, fast

    async def get(self, user_id: UserId, session_id: SessionId, now: datetime) -> Principal | None:
        from_core = await self.core.get(user_id, session_id, now)
        from_fast = await self.fast.get(user_id, session_id, now)
        assert from_core == from_fast
        return from_core


@pytest.fixture
async def principals(
    uow: UnitOfWork, backend: str, sql_engine: AsyncEngine | None, request: pytest.FixtureRequest
) -> AsyncIterator[PrincipalReader]:
    """The principal reader(s) of the same backend, reading the state ``uow`` commits."""
    if isinstance(uow, InMemoryUnitOfWork):
        yield InMemoryPrincipalReader(uow.store)
        return
    assert sql_engine is not None
    if backend == "sqlite":
        yield SqlAlchemyPrincipalReader(sql_engine)
        return
    fast = AsyncpgPrincipalReader(
        request.getfixturevalue("database_url"),
        max_size=2,
        connect_timeout=5,
        command_timeout=5,
        statement_cache_size=100,
    )
    yield BothPrincipalReaders(SqlAlchemyPrincipalReader(sql_engine), fast)
    await fast.close()
