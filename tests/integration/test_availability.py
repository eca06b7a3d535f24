"""When PostgreSQL is unreachable the adapters say so quickly (ServiceUnavailable / not ready) and recover by
themselves once it is back, without a new engine.

The outage is real: a TCP proxy in front of the test database is stopped (every connection reset, port closed)
and started again on the same port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.integration.builders import NOW, new_session, new_user
from tests.support.proxy import SilentServer, TcpProxy
from usermgmt.adapters.sqlalchemy.engine import build_engine
from usermgmt.adapters.sqlalchemy.fast_principals import AsyncpgPrincipalReader
from usermgmt.adapters.sqlalchemy.health import SqlAlchemyHealthCheck
from usermgmt.adapters.sqlalchemy.principals import SqlAlchemyPrincipalReader
from usermgmt.adapters.sqlalchemy.repositories import trusted
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.errors import ServiceUnavailable
from usermgmt.application.results import Principal
from usermgmt.config import Settings
from usermgmt.domain.model import Session, User
from usermgmt.domain.value_objects import Email

FAST = 5.0  # seconds: "quickly", far below any HTTP client's patience
CLOSED_PORT_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/x"


def settings_for(database_url: str, **overrides: Any) -> Settings:
    return Settings(_env_file=None, database_url=database_url, **overrides)  # type: ignore[call-arg]


async def timed(action: Callable[[], Awaitable[object]]) -> tuple[object, float]:
    """Run ``action``; return what it returned or raised, and how long that took."""
    started = time.monotonic()
    try:
        outcome: object = await action()
    except Exception as exc:
        outcome = exc
    return outcome, time.monotonic() - started


def sqlstates(error: BaseException | None) -> list[str]:
    """The SQLSTATEs along ``error``'s chain of causes (the driver's error is at the bottom)."""
    found = []
    while error is not None:
        if isinstance(getattr(error, "sqlstate", None), str):
            found.append(error.sqlstate)  # type: ignore[attr-defined]
        error = error.__cause__
    return sorted(set(found))


async def read_something(engine: AsyncEngine) -> None:
    async with SqlAlchemyUnitOfWork(engine) as uow:
        await uow.users.get_by_email(Email("nobody@example.com"))


@pytest.fixture
async def unreachable_engine() -> AsyncIterator[AsyncEngine]:
    engine = build_engine(settings_for(CLOSED_PORT_URL, database_connect_timeout=1.0))
    yield engine
    await engine.dispose()


async def test_unit_of_work_on_a_closed_port_is_unavailable_fast(unreachable_engine: AsyncEngine) -> None:
    for _ in range(3):  # and stays so: nothing is cached in a broken state
        outcome, elapsed = await timed(lambda: read_something(unreachable_engine))
        assert isinstance(outcome, ServiceUnavailable), repr(outcome)
        assert elapsed < FAST


async def test_principal_reader_on_a_closed_port_is_unavailable_fast(unreachable_engine: AsyncEngine) -> None:
    reader = SqlAlchemyPrincipalReader(unreachable_engine)
    user = new_user()
    session = new_session(user)

    outcome, elapsed = await timed(lambda: reader.get(user.id, session.id, NOW))

    assert isinstance(outcome, ServiceUnavailable), repr(outcome)
    assert elapsed < FAST


async def test_health_on_a_closed_port_is_not_ready_fast(unreachable_engine: AsyncEngine) -> None:
    outcome, elapsed = await timed(SqlAlchemyHealthCheck(unreachable_engine).database_ready)

    assert outcome is False
    assert elapsed < FAST


async def test_a_server_that_never_answers_is_unavailable_after_the_connect_timeout() -> None:
    """A black hole, not a refusal: the connect timeout, not the operating system, has to end the wait."""
    async with SilentServer() as silent:
        engine = build_engine(
            settings_for(f"postgresql+asyncpg://postgres@127.0.0.1:{silent.port}/x", database_connect_timeout=0.5)
        )
        try:
            outcome, elapsed = await timed(lambda: read_something(engine))
            assert isinstance(outcome, ServiceUnavailable), repr(outcome)
            assert 0.4 < elapsed < FAST

            reader = SqlAlchemyPrincipalReader(engine)
            user = new_user()
            outcome, elapsed = await timed(lambda: reader.get(user.id, new_session(user).id, NOW))
            assert isinstance(outcome, ServiceUnavailable), repr(outcome)
            assert elapsed < FAST

            outcome, elapsed = await timed(SqlAlchemyHealthCheck(engine, timeout=2.0).database_ready)
            assert outcome is False
            assert elapsed < FAST
        finally:
            await engine.dispose()


async def test_an_exhausted_pool_is_unavailable_after_the_pool_timeout(
    clean_database: AsyncEngine, database_url: str
) -> None:
    engine = build_engine(
        settings_for(database_url, database_pool_size=1, database_max_overflow=0, database_pool_timeout=0.3)
    )
    try:
        async with SqlAlchemyUnitOfWork(engine) as holder:
            await holder.users.get_by_email(Email("nobody@example.com"))  # the only connection is now busy

            outcome, elapsed = await timed(lambda: read_something(engine))
            assert isinstance(outcome, ServiceUnavailable), repr(outcome)
            assert elapsed < FAST

        await read_something(engine)  # released: usable again
    finally:
        await engine.dispose()


# --- outage and recovery through the proxy ------------------------------------------------------------------------


class Outage:
    """The test database behind a stoppable proxy, an engine built on it, and a principal to look up."""

    def __init__(self, proxy: TcpProxy, engine: AsyncEngine, user: User, session: Session) -> None:
        self.proxy, self.engine, self.user, self.session = proxy, engine, user, session
        self.reader = SqlAlchemyPrincipalReader(engine)
        self.health = SqlAlchemyHealthCheck(engine, timeout=2.0)

    async def use_unit_of_work(self) -> None:
        async with SqlAlchemyUnitOfWork(self.engine) as uow:
            found = await uow.users.get(self.user.id)
            assert found is not None

    async def read_principal(self) -> None:
        found = await self.reader.get(self.user.id, self.session.id, NOW)
        assert found is not None

    async def fill_pool(self, connections: int) -> None:
        """Make the pool hold ``connections`` idle connections: all of them go stale in the outage."""
        barrier = asyncio.Barrier(connections)

        async def hold() -> None:
            async with SqlAlchemyUnitOfWork(self.engine) as uow:
                await uow.users.get(self.user.id)
                await barrier.wait()

        await asyncio.gather(*(hold() for _ in range(connections)))
        assert self.engine.pool.checkedin() == connections  # type: ignore[attr-defined]

    async def pull_the_plug(self) -> None:
        await self.proxy.stop()
        await asyncio.sleep(0.1)  # let the client side notice the resets


async def attempts_until_it_works(action: Callable[[], Awaitable[None]], limit: int = 5) -> int:
    """Call ``action`` until it succeeds; return how many calls failed first (each must be ServiceUnavailable)."""
    for failures in range(limit):
        outcome, elapsed = await timed(action)
        if not isinstance(outcome, BaseException):
            return failures
        assert isinstance(outcome, ServiceUnavailable), repr(outcome)
        assert elapsed < FAST
    pytest.fail(f"still failing after {limit} attempts")


@pytest.fixture
async def outage(clean_database: AsyncEngine, database_url: str) -> AsyncIterator[Outage]:
    user = new_user()
    session = new_session(user)
    async with SqlAlchemyUnitOfWork(clean_database) as uow:
        await uow.users.add(user)
        await uow.sessions.add(session)
        await uow.commit()

    target = make_url(database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    through_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    engine = build_engine(settings_for(through_proxy, database_connect_timeout=1.0, database_command_timeout=2.0))
    try:
        yield Outage(proxy, engine, user, session)
    finally:
        await engine.dispose()
        await proxy.stop()


async def test_outage_is_reported_fast_and_recovery_needs_no_new_engine(outage: Outage) -> None:
    await outage.fill_pool(3)
    await outage.use_unit_of_work()
    await outage.read_principal()
    assert await outage.health.database_ready() is True

    await outage.pull_the_plug()

    for action in (outage.use_unit_of_work, outage.read_principal, outage.use_unit_of_work):
        outcome, elapsed = await timed(action)
        assert isinstance(outcome, ServiceUnavailable), repr(outcome)
        assert elapsed < FAST
    outcome, elapsed = await timed(outage.health.database_ready)
    assert outcome is False
    assert elapsed < FAST

    await outage.proxy.start()  # same port: the engine's URL is unchanged

    failed = await attempts_until_it_works(outage.use_unit_of_work)
    # The failures during the outage already invalidated the stale pooled connections: no further failure.
    assert failed == 0
    assert await attempts_until_it_works(outage.read_principal) == 0
    assert await outage.health.database_ready() is True


async def test_recovery_from_an_outage_nobody_noticed(outage: Outage) -> None:
    """The database went away and came back between two requests: the pool is full of dead connections.

    The engine has no pre-ping, so the first request to draw a dead connection fails (ServiceUnavailable);
    SQLAlchemy then invalidates the whole pool, so it is the only one, however many connections were pooled.
    """
    await outage.fill_pool(3)
    await outage.pull_the_plug()
    await outage.proxy.start()

    failed = await attempts_until_it_works(outage.use_unit_of_work)
    assert failed <= 1  # observed: exactly 1 (the engine has no pool_pre_ping)
    # Everything pooled before the outage was discarded: no later request trips over a dead connection.
    for _ in range(3):
        await outage.use_unit_of_work()
        await outage.read_principal()
    assert await outage.health.database_ready() is True


async def test_principal_reader_recovers_from_an_unnoticed_outage(outage: Outage) -> None:
    await outage.fill_pool(2)
    await outage.pull_the_plug()
    await outage.proxy.start()

    assert await attempts_until_it_works(outage.read_principal) <= 1
    await outage.use_unit_of_work()


async def test_health_recovers_from_an_unnoticed_outage(outage: Outage) -> None:
    await outage.fill_pool(2)
    await outage.pull_the_plug()
    await outage.proxy.start()

    answers = [await outage.health.database_ready() for _ in range(3)]

    assert answers[-1] is True
    assert answers.count(False) <= 1


async def test_connection_lost_in_the_middle_of_a_unit_of_work_is_unavailable(outage: Outage) -> None:
    async def read_then_lose_the_connection_then_read() -> None:
        async with SqlAlchemyUnitOfWork(outage.engine) as uow:
            await uow.users.get(outage.user.id)
            await outage.pull_the_plug()
            await uow.users.get(outage.user.id)

    with pytest.raises(ServiceUnavailable):
        await read_then_lose_the_connection_then_read()


async def test_connection_lost_before_commit_is_unavailable(outage: Outage) -> None:
    async def write_then_lose_the_connection_then_commit() -> None:
        async with SqlAlchemyUnitOfWork(outage.engine) as uow:
            loaded = await uow.users.get(outage.user.id)
            assert loaded is not None
            await uow.users.update(loaded)
            await outage.pull_the_plug()
            await uow.commit()

    with pytest.raises(ServiceUnavailable):
        await write_then_lose_the_connection_then_commit()


async def test_connection_lost_at_the_end_of_a_read_only_unit_of_work_keeps_what_was_read(outage: Outage) -> None:
    """The login handler's first block only reads; leaving it rolls back, which needs the connection. What the
    block read is still true, and nothing it did could have survived without commit(): the read stands, quietly."""

    async def read_then_lose_the_connection() -> User | None:
        async with SqlAlchemyUnitOfWork(outage.engine) as uow:
            found = await uow.users.get(outage.user.id)
            await outage.pull_the_plug()
        return found

    found = await read_then_lose_the_connection()

    assert found is not None
    assert found.id == outage.user.id


async def test_database_errors_that_are_not_outages_are_not_masked(outage: Outage) -> None:
    """A statement the database refuses is a bug, not unavailability: it must not turn into a 503 that invites
    retries. Here a value that skipped validation (``trusted``) is too long for its column (SQLSTATE 22001)."""
    too_long = new_user()
    too_long.email = trusted(Email, f"{'x' * 300}@example.com")

    async def insert_it() -> None:
        async with SqlAlchemyUnitOfWork(outage.engine) as uow:
            await uow.users.add(too_long)
            await uow.commit()

    outcome, _ = await timed(insert_it)

    assert not isinstance(outcome, ServiceUnavailable), repr(outcome)
    assert isinstance(outcome, DBAPIError), repr(outcome)
    assert sqlstates(outcome) == ["22001"]
    await outage.use_unit_of_work()  # and the connection it happened on is still good


async def test_a_database_that_stops_answering_mid_connection_is_unavailable_fast(outage: Outage) -> None:
    await outage.fill_pool(1)
    outage.proxy.freeze()
    request = asyncio.create_task(outage.use_unit_of_work())
    try:
        done, _ = await asyncio.wait({request}, timeout=FAST)
    finally:
        await outage.proxy.stop()  # the resets end the hang either way, so the task can be collected
    outcome, _ = await timed(lambda: request)

    assert request in done, f"no answer within {FAST} s"
    assert isinstance(outcome, ServiceUnavailable), repr(outcome)


async def test_the_asyncpg_hot_path_reports_an_outage_and_recovers(outage: Outage, database_url: str) -> None:
    """The authenticated hot path has its own pool: it too answers ServiceUnavailable quickly, then recovers."""
    through_proxy = make_url(database_url).set(host="127.0.0.1", port=outage.proxy.port)
    reader = AsyncpgPrincipalReader(
        through_proxy.render_as_string(hide_password=False),
        max_size=2,
        connect_timeout=1,
        command_timeout=2,
        statement_cache_size=100,
    )
    try:
        assert await reader.get(outage.user.id, outage.session.id, NOW) is not None
        await outage.proxy.stop()
        outcome, elapsed = await timed(lambda: reader.get(outage.user.id, outage.session.id, NOW))
        assert isinstance(outcome, ServiceUnavailable), repr(outcome)
        assert elapsed < FAST
        await outage.proxy.start()
        results = []
        for _ in range(3):
            outcome, _ = await timed(lambda: reader.get(outage.user.id, outage.session.id, NOW))
            results.append(outcome)
        assert isinstance(results[-1], Principal), results
    finally:
        await reader.close()


# --- the server ends or cancels the work -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "sqlstate"),
    [("statement_timeout", "57014"), ("lock_timeout", "55P03")],
    ids=["statement_timeout-57014", "lock_timeout-55P03"],
)
async def test_a_statement_the_server_gives_up_on_is_unavailable(
    clean_database: AsyncEngine, database_url: str, setting: str, sqlstate: str
) -> None:
    """The server's own timeouts answer as our command timeout does (503), by the decision recorded in engine.py:
    the statement was not wrong, the database was too busy (here: a row lock held elsewhere) to run it in time."""
    user = new_user()
    async with SqlAlchemyUnitOfWork(clean_database) as uow:
        await uow.users.add(user)
        await uow.commit()
    impatient = create_async_engine(database_url, connect_args={"server_settings": {setting: "200"}})
    try:
        async with SqlAlchemyUnitOfWork(clean_database) as holder:
            assert await holder.users.get(user.id, for_update=True) is not None  # holds the row lock

            with pytest.raises(ServiceUnavailable) as raised:
                async with SqlAlchemyUnitOfWork(impatient) as uow:
                    await uow.users.get(user.id, for_update=True)

        assert sqlstates(raised.value) == [sqlstate]
        async with SqlAlchemyUnitOfWork(impatient) as uow:  # the lock is gone: the same statement passes
            assert await uow.users.get(user.id, for_update=True) is not None
    finally:
        await impatient.dispose()


async def test_the_hot_path_reports_a_session_the_server_terminated_and_reconnects(
    clean_database: AsyncEngine, database_url: str
) -> None:
    """pg_terminate_backend under an idle hot-path connection, and the next request at once. Depending on when the
    server's goodbye reaches asyncpg, the connection is seen closed and replaced before the query (the answer is
    right), or the query fails in one of three ways (ConnectionDoesNotExistError, InterfaceError, or even
    InternalClientError when the goodbye races the query). Never anything but the answer or ServiceUnavailable,
    and the request after it is served."""
    user = new_user()
    session = new_session(user)
    async with SqlAlchemyUnitOfWork(clean_database) as uow:
        await uow.users.add(user)
        await uow.sessions.add(session)
        await uow.commit()
    reader = AsyncpgPrincipalReader(
        database_url, max_size=1, connect_timeout=5, command_timeout=5, statement_cache_size=100
    )
    database = make_url(database_url).database
    admin = await asyncpg.connect(make_url(database_url).set(drivername="postgresql").render_as_string(False))
    outcomes: list[str] = []

    async def service_backends() -> set[int]:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'usermgmt'", database
        )
        return {row["pid"] for row in rows}

    others = await service_backends()  # a server another tier started on this database, idle
    try:
        for _ in range(20):
            assert await reader.get(user.id, session.id, NOW) is not None
            hot_path = await service_backends() - others
            assert len(hot_path) == 1
            await admin.execute("SELECT pg_terminate_backend($1)", hot_path.pop())  # no wait: race the goodbye

            outcome, _ = await timed(lambda: reader.get(user.id, session.id, NOW))
            assert isinstance(outcome, Principal | ServiceUnavailable), repr(outcome)
            outcomes.append(type(outcome).__name__)
    finally:
        await admin.close()
        await reader.close()
    assert "ServiceUnavailable" in outcomes, outcomes  # the race was run, not only the easy case
