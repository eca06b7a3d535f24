"""Database down: 503 problem+json quickly; back up: the same process serves again, no restart."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, client_for, make_container, make_settings
from tests.e2e.test_auth_flow import LOGIN, ME, REGISTER, assert_problem
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
