"""Scale-out (issue 14): two `usermgmt serve --workers 1` instances behind HAProxy, on one PostgreSQL database, one
signing-key folder and one Redis. What one instance decides, the other knows at once: a revoked session, a rotated
refresh token, and the failed sign-ins the account limits count, with Redis up and with Redis down."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import SERVED_BY, Cluster, cluster, haproxy_binary
from tests.support.proxy import free_port
from tests.support.server import migrate, service_env

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        haproxy_binary() is None, reason="haproxy is missing: `make test` installs it (apt-get install haproxy)"
    ),
]

PASSWORD = "scale out passphrase 42"
UNLIMITED_REGISTRATIONS = "100000/1h"
LIMIT = 10  # USERMGMT_RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT_IP: 10/15m by default


@pytest.fixture(scope="module")
def data_dir(server_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder both pairs share: the signing keys that every instance must verify tokens with."""
    folder = tmp_path_factory.mktemp("scale-out") / "var"
    migrate(service_env(folder, database_url=server_database_url))
    return folder


@pytest.fixture(scope="module")
def pair(server_database_url: str, data_dir: Path) -> Iterator[Cluster]:
    env = service_env(
        data_dir,
        database_url=server_database_url,
        redis_url="redis://127.0.0.1:6379/0",
        # Redis keeps every run's counters for an hour, and all of them register from 127.0.0.1: the default
        # 30/1h is spent by a few runs of the suite, and these tests are about sign-in limits, not registration.
        rate_limit_registrations_per_ip=UNLIMITED_REGISTRATIONS,
    )
    with cluster(env, instances=2) as started:
        yield started


@pytest.fixture(scope="module")
def pair_without_redis(server_database_url: str, data_dir: Path) -> Iterator[Cluster]:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: every Redis call fails
    with cluster(service_env(data_dir, database_url=server_database_url, redis_url=nowhere), instances=2) as started:
        yield started


def new_account(base: str) -> str:
    """A fresh address each run: the Redis counters of earlier runs are still there."""
    email = f"scale-out-{time.time_ns()}@example.com"
    response = httpx.post(f"{base}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=30)
    assert response.status_code == 201, response.text
    return email


def sign_in(base: str, email: str) -> dict[str, str]:
    response = httpx.post(f"{base}/api/v1/auth/login", json={"login": email, "password": PASSWORD}, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def me(base: str, access_token: str) -> int:
    headers = {"Authorization": f"Bearer {access_token}"}
    return httpx.get(f"{base}/api/v1/users/me", headers=headers, timeout=30).status_code


def alternating_attack(instances: tuple[str, ...], email: str, attempts: int) -> list[int]:
    """Wrong passwords for ``email``, on each instance in turn, a new connection each time."""
    wrong = {"login": email, "password": "not the password"}
    return [
        httpx.post(f"{instances[n % len(instances)]}/api/v1/auth/login", json=wrong, timeout=30).status_code
        for n in range(attempts)
    ]


def test_the_balancer_sends_requests_to_both_instances_in_turn(pair: Cluster) -> None:
    with httpx.Client(base_url=pair.base, timeout=30) as client:  # one connection: HAProxy balances each request
        served = Counter(client.get("/readyz").headers[SERVED_BY] for _ in range(10))
    assert set(served) == {"usermgmt1", "usermgmt2"}
    assert max(served.values()) <= 6


def test_a_token_from_one_instance_is_accepted_by_the_other_and_refused_by_it_at_once_after_logout(
    pair: Cluster,
) -> None:
    a, b = pair.instances
    email = new_account(pair.base)
    tokens = sign_in(a, email)
    assert me(b, tokens["access_token"]) == 200  # same signing keys, same sessions

    logout = httpx.post(
        f"{a}/api/v1/auth/logout", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=30
    )
    assert logout.status_code == 204, logout.text

    assert me(b, tokens["access_token"]) == 401  # no grace period: B checks the session in PostgreSQL
    assert me(pair.base, tokens["access_token"]) == 401
    refreshed = httpx.post(f"{b}/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, timeout=30)
    assert refreshed.status_code == 401


def test_a_refresh_token_rotated_on_one_instance_and_replayed_on_the_other_ends_the_session(pair: Cluster) -> None:
    a, b = pair.instances
    email = new_account(pair.base)
    first = sign_in(b, email)
    rotated = httpx.post(f"{a}/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}, timeout=30)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()

    replayed = httpx.post(f"{b}/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}, timeout=30)
    assert replayed.status_code == 401  # reuse of a retired token: theft, the whole session ends

    assert me(a, second["access_token"]) == 401
    again = httpx.post(f"{a}/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}, timeout=30)
    assert again.status_code == 401


@pytest.mark.parametrize("topology", ["pair", "pair_without_redis"])
def test_an_attacker_alternating_instances_gets_the_account_limit_once_not_once_per_instance(
    topology: str, request: pytest.FixtureRequest
) -> None:
    """With Redis up the instances share its counters; with Redis down each counts in its own memory, and the
    account limits are counted from the failed sign-ins in PostgreSQL, which both write."""
    started: Cluster = request.getfixturevalue(topology)
    email = new_account(started.base)

    assert alternating_attack(started.instances, email, LIMIT + 2) == [401] * LIMIT + [429] * 2

    for instance in started.instances:  # the right password too, on either, until the window moves on
        right = httpx.post(f"{instance}/api/v1/auth/login", json={"login": email, "password": PASSWORD}, timeout=30)
        assert right.status_code == 429
        assert right.json()["code"] == "rate_limited"
