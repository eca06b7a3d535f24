"""Database down: 503 problem+json quickly; back up: the same process serves again, no restart.

Two outages: the network path to the database cut (a proxy stopped), and the database itself refusing sessions
(``ALTER DATABASE … WITH ALLOW_CONNECTIONS false`` with its backends terminated).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, Signup, client_for, make_container, make_settings
from tests.e2e.test_auth_flow import LOGIN, ME, REFRESH, REGISTER, assert_problem
from tests.support.database import admin_url
from tests.support.proxy import TcpProxy
from usermgmt.entrypoints.http.app import create_app


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def proxied_client(
    proxy: TcpProxy, database_url: str, tmp_path: Path, keys_dir: Path, clean_database: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = make_settings(
        url, tmp_path, signing_keys_dir=keys_dir, database_connect_timeout=1, database_pool_timeout=1
    )
    app = create_app(make_container(settings))
    async with LifespanManager(app), client_for(app) as client:
        yield client


async def test_database_outage_gives_quick_503s_and_recovers_without_restart(
    proxy: TcpProxy, proxied_client: httpx.AsyncClient
) -> None:
    client = proxied_client
    assert (await client.post(REGISTER, json={"email": "up@example.com", "password": PASSWORD})).status_code == 201
    tokens = (await client.post(LOGIN, json={"login": "up@example.com", "password": PASSWORD})).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get(ME, headers=auth)).status_code == 200

    await proxy.stop()
    started = time.monotonic()
    down = [
        await client.get(ME, headers=auth),
        await client.get(ME, headers=auth),
        await client.post(LOGIN, json={"login": "up@example.com", "password": PASSWORD}),
        await client.post(REGISTER, json={"email": "down@example.com", "password": PASSWORD}),
    ]
    elapsed = time.monotonic() - started
    for response in down:
        assert_problem(response, 503, "service_unavailable")
        assert response.headers["retry-after"].isdigit()
        assert "Traceback" not in response.text
    assert elapsed < 8, f"503s took {elapsed:.1f}s"
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert (await client.get("/healthz")).status_code == 200  # the process itself is alive

    await proxy.start()
    statuses = [(await client.get(ME, headers=auth)).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]  # dead pooled connections were discarded while it was down
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.post(LOGIN, json={"login": "up@example.com", "password": PASSWORD})).status_code == 200


# --- a database that refuses sessions: ALTER DATABASE … WITH ALLOW_CONNECTIONS false ------------------------------


class SessionRefusal:
    """Makes the run's database refuse new sessions and ends the open ones, as an operator taking it down would."""

    def __init__(self, database_url: str) -> None:
        self.name = make_url(database_url).database
        self._admin_dsn = admin_url().set(drivername="postgresql").render_as_string(hide_password=False)

    async def _as_admin(self, *statements: str) -> None:
        admin = await asyncpg.connect(self._admin_dsn, timeout=5)  # to the server's admin database, not this one
        try:
            for statement in statements:
                await admin.execute(statement, timeout=10)
        finally:
            await admin.close()

    async def refuse(self) -> None:
        await self._as_admin(
            f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false',
            # Wait (up to 5 s each) until every backend is gone, so no request can still find one alive.
            f"SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = '{self.name}'",
        )

    async def allow(self) -> None:
        await self._as_admin(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true')


@pytest.fixture
async def refusal(database_url: str, engine: AsyncEngine) -> AsyncIterator[SessionRefusal]:
    refusal = SessionRefusal(database_url)
    try:
        yield refusal
    finally:
        # The rest of the suite needs the database back, and the run's shared engine holds connections that were
        # terminated: throw them away (the engine opens new ones on demand).
        await refusal.allow()
        await engine.dispose()


async def test_a_database_refusing_sessions_gives_503s_on_every_path_and_recovers_without_restart(
    client: httpx.AsyncClient, signup: Signup, refusal: SessionRefusal
) -> None:
    account = await signup("refused@example.com")
    refresh_token = account.tokens["refresh_token"]
    assert (await client.get(ME, headers=account.auth)).status_code == 200  # the hot path holds a connection now

    await refusal.refuse()

    async def every_path() -> dict[str, httpx.Response]:
        return {
            "GET /users/me": await client.get(ME, headers=account.auth),
            "POST /auth/login": await client.post(LOGIN, json={"login": account.email, "password": PASSWORD}),
            "POST /auth/register": await client.post(
                REGISTER, json={"email": "newcomer@example.com", "password": PASSWORD}
            ),
            "POST /auth/refresh": await client.post(REFRESH, json={"refresh_token": refresh_token}),
        }

    # Twice round: first each path meets the connections that were terminated, then only refused new ones.
    for attempt in (1, 2):
        for path, response in (await every_path()).items():
            assert response.status_code == 503, f"{path} (round {attempt}): {response.status_code} {response.text}"
            assert_problem(response, 503, "service_unavailable")
            assert response.headers["retry-after"].isdigit()
            assert "Traceback" not in response.text
        assert (await client.get("/readyz")).status_code == 503
    assert (await client.get("/healthz")).status_code == 200  # the process itself is alive

    await refusal.allow()

    # The same process serves again at once: nothing was cached in a broken state.
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get(ME, headers=account.auth)).json()["email"] == account.email
    refreshed = await client.post(REFRESH, json={"refresh_token": refresh_token})  # not consumed by the outage
    assert refreshed.status_code == 200, refreshed.text
    assert (await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})).status_code == 200
    newcomer = await client.post(REGISTER, json={"email": "newcomer@example.com", "password": PASSWORD})
    assert newcomer.status_code == 201, newcomer.text
