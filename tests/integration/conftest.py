"""Fixtures for the integration tier: one set of contract tests, run against the in-memory fakes and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from usermgmt.adapters.memory import InMemoryPrincipalReader, InMemoryUnitOfWork, MemoryStore
from usermgmt.adapters.sqlalchemy.principals import SqlAlchemyPrincipalReader
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.ports import PrincipalReader, UnitOfWork

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


@pytest.fixture
def principals(uow: UnitOfWork, request: pytest.FixtureRequest) -> PrincipalReader:
    """The principal reader of the same backend, reading the state ``uow`` commits."""
    if isinstance(uow, InMemoryUnitOfWork):
        return InMemoryPrincipalReader(uow.store)
    engine: AsyncEngine = request.getfixturevalue("clean_database")
    return SqlAlchemyPrincipalReader(engine)
