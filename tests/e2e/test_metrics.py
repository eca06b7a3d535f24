"""The metrics port of a real `usermgmt serve --workers 2` on PostgreSQL and Redis, scraped after a scripted
account life: every counter moved by what the script did, summed over both workers, and no label holds an email,
an address, an id or a token."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.support.proxy import free_port
from tests.support.server import migrate, serve, service_env

pytestmark = pytest.mark.e2e

PASSWORD = "metrics scripted life 42"
ME_REQUESTS = 24


@dataclass
class Service:
    base: str
    metrics: str
    folder: Path


@pytest.fixture(scope="module")
def service(server_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data = tmp_path_factory.mktemp("metrics") / "var"
    port = free_port()
    env = service_env(
        data,
        database_url=server_database_url,
        redis_url="redis://127.0.0.1:6379/0",
        metrics_port=str(port),
        kpi_refresh_interval="PT1S",
        rate_limit_login_failures_per_account_ip="3/15m",
        rate_limit_registrations_per_ip="100000/1h",  # Redis keeps earlier runs' registrations from 127.0.0.1
    )
    migrate(env)
    with serve(env, workers=2) as base:
        yield Service(base=base, metrics=f"http://127.0.0.1:{port}/metrics", folder=data / "metrics")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@dataclass
class Life:
    email: str
    user_id: str
    tokens: list[str]
    wrong_passwords: int
    rate_limited: int


@pytest.fixture(scope="module")
def life(service: Service) -> Life:
    """Register, fail a password, sign in, read the profile on fresh connections (so both workers answer), refresh,
    replay the old refresh token (theft), and fail passwords until the account's limit answers 429."""
    email = f"metrics-{time.time_ns()}@example.com"
    tokens: list[str] = []
    with httpx.Client(base_url=service.base, timeout=30) as client:
        registered = client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        user_id = registered.json()["id"]
        assert client.post("/api/v1/auth/login", json={"login": email, "password": "wrong"}).status_code == 401
        pair = client.post("/api/v1/auth/login", json={"login": email, "password": PASSWORD}).json()
        tokens += [pair["access_token"], pair["refresh_token"]]

    def read_profile(_: int) -> int:  # a new connection each, several at once: both workers accept some
        with httpx.Client(base_url=service.base, timeout=30) as fresh:
            return fresh.get(
                "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
            ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(read_profile, range(ME_REQUESTS))) == {200}
    with httpx.Client(base_url=service.base, timeout=30) as client:
        rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert rotated.status_code == 200
        tokens += [rotated.json()["access_token"], rotated.json()["refresh_token"]]
        replayed = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert replayed.status_code == 401
        wrong, limited = 1, 0
        while limited == 0:
            answer = client.post("/api/v1/auth/login", json={"login": email, "password": "wrong again"})
            assert answer.status_code in {401, 429}
            wrong, limited = (wrong + 1, limited) if answer.status_code == 401 else (wrong, limited + 1)
            assert wrong < 10
    return Life(email=email, user_id=user_id, tokens=tokens, wrong_passwords=wrong, rate_limited=limited)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape_until(service: Service, ready: Callable[[Samples], bool], timeout: float = 20.0) -> tuple[str, Samples]:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(service.metrics, timeout=5)
        assert response.status_code == 200
        found = samples(response.text)
        if ready(found) or time.monotonic() > deadline:
            return response.text, found
        time.sleep(0.5)


def test_the_counters_follow_the_scripted_life(service: Service, life: Life) -> None:
    _, found = scrape_until(
        service,
        lambda f: (
            value(f, "usermgmt_token_verification_cache_total", result="hit") >= ME_REQUESTS - 1
            and value(f, "usermgmt_email_deliveries_total", outcome="sent") >= 1
        ),
    )
    attempts = "usermgmt_sign_in_attempts_total"
    assert value(found, attempts, method="password", outcome="success") == 1
    assert value(found, attempts, method="password", outcome="invalid_credentials") == life.wrong_passwords
    assert value(found, attempts, method="password", outcome="rate_limited") == life.rate_limited
    assert (
        value(found, "usermgmt_rate_limit_rejections_total", rule="login_failures_per_account_ip") == life.rate_limited
    )
    assert value(found, "usermgmt_token_refreshes_total", outcome="success") == 1
    assert value(found, "usermgmt_token_refreshes_total", outcome="invalid_refresh_token") == 1
    assert value(found, "usermgmt_refresh_token_reuse_detections_total") == 1
    events = "usermgmt_security_events_total"
    assert value(found, events, type="registered") == 1
    assert value(found, events, type="login_succeeded") == 1
    assert value(found, events, type="login_failed") == life.wrong_passwords
    assert value(found, events, type="refresh_reuse_detected") == 1
    me = "usermgmt_http_request_duration_seconds_count"
    assert value(found, me, route="/api/v1/users/me", method="GET", status="200") == ME_REQUESTS
    assert value(found, "usermgmt_problems_total", status="401", code="invalid_credentials") == life.wrong_passwords
    # One verification per password check (a registration hashes), each waited for a thread and timed.
    hashed = value(found, "usermgmt_password_hash_wait_seconds_count")
    assert hashed == 1 + 1 + life.wrong_passwords  # the registration, the sign-in, each wrong password
    assert value(found, "usermgmt_password_hash_duration_seconds_count", operation="hash") == 1
    assert value(found, "usermgmt_password_hash_queue_depth") == 0
    # The first use of the access token in each worker is a miss; every other one a hit.
    cache = "usermgmt_token_verification_cache_total"
    assert value(found, cache, result="hit") + value(found, cache, result="miss") == ME_REQUESTS
    assert 1 <= value(found, cache, result="miss") <= 2
    assert ("usermgmt_db_connections", frozenset({("pool", "principal"), ("state", "idle")})) in found
    assert ("usermgmt_outbox_backlog_messages", frozenset()) in found


def test_the_kpi_gauges_follow_the_audit_trail(service: Service, life: Life) -> None:
    """Recomputed every second here (USERMGMT_KPI_REFRESH_INTERVAL=PT1S) from the last 24 hours' events."""
    attempts = 1 + life.wrong_passwords  # the rate-limited ones were refused before any check: not attempts
    _, found = scrape_until(
        service, lambda f: value(f, "usermgmt_kpi_login_success_ratio") == pytest.approx(1 / attempts)
    )
    assert value(found, "usermgmt_kpi_login_success_ratio") == pytest.approx(1 / attempts)
    assert value(found, "usermgmt_kpi_registrations_per_day") == 1
    assert 0 < value(found, "usermgmt_kpi_authentication_latency_seconds") < 5
    assert value(found, "usermgmt_kpi_mfa_adoption_ratio") == 0


def test_the_scrape_is_the_sum_of_both_workers(service: Service, life: Life, tmp_path: Path) -> None:
    """Each worker's own files, read alone, hold its share of the /me requests; both answered some, and the
    scrape is their sum."""
    pids = {m.group(1) for p in service.folder.iterdir() if (m := re.fullmatch(r"histogram_(\d+)\.db", p.name))}
    assert len(pids) == 2
    shares = []
    for pid in pids:
        alone = tmp_path / pid
        alone.mkdir()
        for file in service.folder.glob(f"*_{pid}.db"):
            shutil.copy(file, alone / file.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        found = samples(generate_latest(registry).decode())
        shares.append(
            value(
                found,
                "usermgmt_http_request_duration_seconds_count",
                route="/api/v1/users/me",
                method="GET",
                status="200",
            )
        )
    total = value(
        samples(httpx.get(service.metrics, timeout=5).text),
        "usermgmt_http_request_duration_seconds_count",
        route="/api/v1/users/me",
        method="GET",
        status="200",
    )
    assert sum(shares) == total == ME_REQUESTS
    assert all(share > 0 for share in shares), shares


def test_no_label_names_a_person_an_address_or_a_token(service: Service, life: Life) -> None:
    text = httpx.get(service.metrics, timeout=5).text
    labels = {v for family in text_string_to_metric_families(text) for s in family.samples for v in s.labels.values()}
    secrets = [life.email, life.email.split("@")[0], life.user_id, "127.0.0.1", *life.tokens, PASSWORD]
    for secret in secrets:
        assert secret not in text
    assert not any("@" in label or re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", label) for label in labels)
    routes = {s.labels["route"] for f in text_string_to_metric_families(text) for s in f.samples if "route" in s.labels}
    assert routes <= {r for r in routes if r == "unmatched" or r.startswith("/")}
    assert not any(re.search(r"/[0-9a-f-]{36}", route) for route in routes)


def test_the_api_port_does_not_serve_the_metrics(service: Service) -> None:
    assert httpx.get(f"{service.base}/metrics", timeout=5).status_code == 404
    assert httpx.get(service.metrics.removesuffix("/metrics") + "/", timeout=5).status_code == 404


def test_a_dead_workers_gauges_are_dropped(service: Service, life: Life) -> None:
    """A live gauge file of a process that is gone (a worker that crashed) does not count at the next scrape."""
    ghost = service.folder / "gauge_livesum_999999999.db"
    source = next(service.folder.glob("gauge_livesum_*.db"))
    ghost.write_bytes(source.read_bytes())
    httpx.get(service.metrics, timeout=5)
    assert not ghost.exists()


async def test_the_scrape_is_quick_while_the_api_is_busy(service: Service, life: Life) -> None:
    """The metrics thread answers while the workers serve traffic (it runs in the supervising process)."""
    async with httpx.AsyncClient(timeout=10) as client:
        answers = await asyncio.gather(*(client.get(service.metrics) for _ in range(5)))
    assert all(answer.status_code == 200 for answer in answers)
