"""What the metrics read from the database, on PostgreSQL and SQLite: the outbox backlog and the pool's use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW
from usermgmt.adapters.sqlalchemy.observability import OutboxBacklog, orm_pool_status
from usermgmt.application.ports import OutgoingEmail, UnitOfWork

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_the_backlog_counts_the_waiting_emails_and_dates_the_oldest(
    sql_engine: AsyncEngine, make_uow: Callable[[], UnitOfWork]
) -> None:
    backlog = OutboxBacklog(sql_engine)
    assert await backlog() == (0, None)
    for n, at in enumerate((NOW, NOW - timedelta(minutes=5), NOW + timedelta(minutes=1))):
        async with make_uow() as uow:
            await uow.outbox.add(OutgoingEmail(to=f"user{n}@example.com", template="test_email"), now=at)
            await uow.commit()
    count, oldest = await backlog()
    assert count == 3
    assert oldest == NOW - timedelta(minutes=5)
    assert oldest.tzinfo is not None


async def test_the_pool_status_counts_checked_out_connections(sql_engine: AsyncEngine) -> None:
    before = orm_pool_status(sql_engine)
    async with sql_engine.connect():
        during = orm_pool_status(sql_engine)
        assert during.open - during.idle == before.open - before.idle + 1
    after = orm_pool_status(sql_engine)
    assert after.open - after.idle == before.open - before.idle
