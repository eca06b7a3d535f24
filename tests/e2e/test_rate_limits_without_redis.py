"""A real `usermgmt serve --workers 2` whose Redis is down: the per-process memory fallback would give an attacker
the limit once per worker; the account limits are counted from the failed sign-ins in PostgreSQL instead."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.proxy import free_port
from tests.support.server import migrate, serve, service_env

pytestmark = pytest.mark.e2e

PASSWORD = "degraded mode password 42"


@pytest.fixture(scope="module")
def base(server_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = service_env(
        tmp_path_factory.mktemp("no-redis") / "var",
        database_url=server_database_url,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there: every Redis call fails
    )
    migrate(env)
    with serve(env, workers=2) as url:
        yield url


def test_twelve_wrong_passwords_on_fresh_connections_meet_the_account_limit(base: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        registered = client.post("/api/v1/auth/register", json={"email": "target@example.com", "password": PASSWORD})
        assert registered.status_code == 201
    statuses = []
    for _ in range(12):  # a new connection each: both workers answer some, each with its own memory
        with httpx.Client(base_url=base, timeout=30) as fresh:
            wrong = {"login": "target@example.com", "password": "a wrong guess"}
            statuses.append(fresh.post("/api/v1/auth/login", json=wrong).status_code)
    assert statuses == [401] * 10 + [429] * 2  # USERMGMT_RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP: 10/15m
    with httpx.Client(base_url=base, timeout=30) as fresh:
        right = fresh.post("/api/v1/auth/login", json={"login": "target@example.com", "password": PASSWORD})
    assert right.status_code == 429  # the right password too, until the window moves on
    assert right.json()["code"] == "rate_limited"
    assert int(right.headers["Retry-After"]) > 800
