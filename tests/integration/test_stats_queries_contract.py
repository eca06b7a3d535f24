"""The StatsQueries contract (the KPIs' aggregates), run against the in-memory fake, PostgreSQL and SQLite alike:
the scripted history of tests/support/kpi_history.py gives the same figures on each; and on PostgreSQL, the queries
of a period read the (type, at) index."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import Executable, Result, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.support import kpi_history
from tests.support.kpi_history import FROM, NOW, TO, write_history
from usermgmt.adapters.memory import FrozenClock, InMemoryRateLimiter
from usermgmt.adapters.sqlalchemy.stats import SqlAlchemyStatsQueries
from usermgmt.application.abuse import Guard, RateLimitPolicy, Throttle
from usermgmt.application.handlers.admin import AdminGate
from usermgmt.application.handlers.stats import StatsHandler
from usermgmt.application.ports import UnitOfWork


def stats_handler(uow: UnitOfWork) -> StatsHandler:
    clock = FrozenClock(NOW)
    guard = Guard(Throttle(InMemoryRateLimiter(clock), RateLimitPolicy()), uow, clock)
    return StatsHandler(uow, clock, AdminGate(guard))


async def test_the_scripted_history_gives_every_figure(uow: UnitOfWork) -> None:
    await write_history(uow)

    computed = await stats_handler(uow).compute(FROM, TO)

    figures = {f.name: getattr(computed, f.name) for f in dataclasses.fields(computed)}
    expected = {k: pytest.approx(v) if isinstance(v, float) else v for k, v in kpi_history.EXPECTED.items()}
    assert figures == expected


async def test_an_empty_store_answers_zeros(uow: UnitOfWork) -> None:
    async with uow:
        assert await uow.stats.registrations_by_day(FROM, TO) == []
        counts = await uow.stats.sign_ins(FROM, TO)
        assert (counts.succeeded, counts.failed, counts.mean_duration_ms) == (0, 0, None)
        assert await uow.stats.accounts() == (0, 0)
        assert await uow.stats.registered_and_last_active(FROM, TO, until=TO) == []
        assert await uow.stats.password_resets(FROM, TO) == []
        assert await uow.stats.deletions(FROM, TO, within=kpi_history.DAY) == (0, 0)
        assert await uow.stats.overdue_erasures(FROM, TO) == 0


class ExplainingConnection:
    """A connection that EXPLAINs each statement before running it, keeping the plans."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection, self.dialect, self.plans = connection, connection.dialect, []

    async def execute(self, statement: Executable) -> Result[Any]:
        compiled = statement.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True})
        plan = await self.connection.execute(text(f"EXPLAIN {compiled}"))
        self.plans.append("\n".join(row[0] for row in plan))
        return await self.connection.execute(statement)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_the_queries_of_a_period_read_the_type_and_time_index(sql_engine: AsyncEngine | None) -> None:
    """EXPLAIN of each query, with sequential scans off (the tiny table would be scanned otherwise): the queries of a
    period name the (type, at) index, the overdue count the erasure_at index; no call scans the audit trail."""
    assert sql_engine is not None
    async with sql_engine.connect() as connection:
        await connection.execute(text("SET enable_seqscan = off"))
        explaining = ExplainingConnection(connection)
        queries = SqlAlchemyStatsQueries(explaining)  # type: ignore[arg-type]
        await queries.registrations_by_day(FROM, TO)
        await queries.sign_ins(FROM, TO)
        await queries.registered_and_last_active(FROM, TO, until=TO)
        await queries.password_resets(FROM, TO)
        await queries.deletions(FROM, TO, within=kpi_history.DAY)
        await queries.overdue_erasures(FROM, TO)

    *by_type_and_time, overdue = explaining.plans
    for plan in by_type_and_time:
        assert "ix_security_events_type_at" in plan, plan
    assert "ix_users_erasure_at" in overdue, overdue
