"""Fixtures for the integration tier: one set of contract tests, run against the in-memory fakes and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from usermgmt.adapters.memory import InMemoryPrincipalReader, InMemoryUnitOfWork, MemoryStore
from usermgmt.adapters.sqlalchemy.fast_principals import AsyncpgPrincipalReader
from usermgmt.adapters.sqlalchemy.principals import SqlAlchemyPrincipalReader
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.ports import PrincipalReader, UnitOfWork
from usermgmt.application.results import Principal
from usermgmt.domain.value_objects import SessionId, UserId

BACKENDS = ["memory", "sqlalchemy"]


@pytest.fixture(params=BACKENDS)
def uow(request: pytest.FixtureRequest) -> UnitOfWork:
    """A unit of work on an empty store: the in-memory fake, or SQLAlchemy on the run's PostgreSQL database."""
    if request.param == "memory":
        return InMemoryUnitOfWork(MemoryStore())
    engine: AsyncEngine = request.getfixturevalue("clean_database")
    return SqlAlchemyUnitOfWork(engine)


@pytest.fixture
def make_uow(uow: UnitOfWork, request: pytest.FixtureRequest) -> Callable[[], UnitOfWork]:
    """Another, independent unit of work on the same committed state as ``uow`` (a second, concurrent request)."""
    if isinstance(uow, InMemoryUnitOfWork):
        store = uow.store
        return lambda: InMemoryUnitOfWork(store)
    engine: AsyncEngine = request.getfixturevalue("clean_database")
    return lambda: SqlAlchemyUnitOfWork(engine)


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
async def principals(uow: UnitOfWork, request: pytest.FixtureRequest) -> AsyncIterator[PrincipalReader]:
    """The principal reader(s) of the same backend, reading the state ``uow`` commits."""
    if isinstance(uow, InMemoryUnitOfWork):
        yield InMemoryPrincipalReader(uow.store)
        return
    engine: AsyncEngine = request.getfixturevalue("clean_database")
    fast = AsyncpgPrincipalReader(
        request.getfixturevalue("database_url"),
        max_size=2,
        connect_timeout=5,
        command_timeout=5,
        statement_cache_size=100,
    )
    yield BothPrincipalReaders(SqlAlchemyPrincipalReader(engine), fast)
    await fast.close()
