"""The metrics adapter and the HTTP observer on an in-memory registry: labels from closed sets, outcomes from
the problem codes, the hashing queue, the sampler."""

from __future__ import annotations

import asyncio
import math
import threading
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest

from usermgmt.adapters.hashing import PasslibPasswordHasher
from usermgmt.adapters.metrics import Metrics, MetricsSampler, PoolStatus
from usermgmt.domain.events import EventType, SecurityEvent
from usermgmt.domain.value_objects import PlainPassword
from usermgmt.entrypoints.http.errors import PROBLEM_CODE_KEY, RATE_LIMIT_RULE_KEY
from usermgmt.entrypoints.http.observability import RequestMetrics
from usermgmt.entrypoints.metrics_server import MetricsApp


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return found if found is not None else 0.0


def scope(path: str | None, method: str = "POST", **extra: Any) -> dict[str, Any]:
    route = SimpleNamespace(path=path) if path is not None else None
    return {"type": "http", "method": method, "path": "/raw/ignored", **({"route": route} if route else {}), **extra}


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def test_a_request_is_counted_by_its_route_template_never_its_path(metrics: Metrics) -> None:
    observe = RequestMetrics(metrics)
    observe(scope("/api/v1/admin/users/{user_id}", "GET"), 200, 0.01)
    observe(scope("/api/v1/admin/users/{user_id}", "GET"), 200, 0.02)
    observe(scope(None, "GET"), 404, 0.001)
    observe(scope(None, "BREW"), 405, 0.001)
    count = "usermgmt_http_request_duration_seconds_count"
    assert value(metrics, count, route="/api/v1/admin/users/{user_id}", method="GET", status="200") == 2
    assert value(metrics, count, route="unmatched", method="GET", status="404") == 1
    assert value(metrics, count, route="unmatched", method="other", status="405") == 1
    assert b"/raw/ignored" not in generate_latest(metrics.registry)


def test_sign_in_outcomes_come_from_the_problem_code(metrics: Metrics) -> None:
    observe = RequestMetrics(metrics)
    observe(scope("/api/v1/auth/login"), 200, 0.1)
    observe(scope("/api/v1/auth/login", **{PROBLEM_CODE_KEY: "invalid_credentials"}), 401, 0.1)
    observe(scope("/api/v1/auth/login", **{PROBLEM_CODE_KEY: "mfa_required"}), 403, 0.1)
    limited = {PROBLEM_CODE_KEY: "rate_limited", RATE_LIMIT_RULE_KEY: "login_per_ip"}
    observe(scope("/api/v1/auth/login", **limited), 429, 0.001)
    observe(scope("/api/v1/auth/login/mfa", **{PROBLEM_CODE_KEY: "invalid_mfa_code"}), 400, 0.01)
    observe(scope("/api/v1/auth/login/mfa"), 200, 0.01)
    observe(scope("/api/v1/auth/login"), None, 5.0)  # the client went away
    attempts = "usermgmt_sign_in_attempts_total"
    assert value(metrics, attempts, method="password", outcome="success") == 1
    assert value(metrics, attempts, method="password", outcome="invalid_credentials") == 1
    assert value(metrics, attempts, method="password", outcome="mfa_required") == 1
    assert value(metrics, attempts, method="password", outcome="rate_limited") == 1
    assert value(metrics, attempts, method="password", outcome="no_answer") == 1
    assert value(metrics, attempts, method="mfa", outcome="invalid_mfa_code") == 1
    assert value(metrics, attempts, method="mfa", outcome="success") == 1
    assert value(metrics, "usermgmt_rate_limit_rejections_total", rule="login_per_ip") == 1
    assert value(metrics, "usermgmt_problems_total", status="401", code="invalid_credentials") == 1
    assert value(metrics, "usermgmt_problems_total", status="none", code="no_answer") == 0


def test_refresh_outcomes_and_reuse_detections(metrics: Metrics) -> None:
    observe = RequestMetrics(metrics)
    observe(scope("/api/v1/auth/refresh"), 200, 0.01)
    observe(scope("/api/v1/auth/refresh", **{PROBLEM_CODE_KEY: "invalid_refresh_token"}), 401, 0.01)
    event = SecurityEvent(type=EventType.REFRESH_REUSE_DETECTED, at=datetime.now(UTC))
    asyncio.run(metrics.count_committed([event]))
    assert value(metrics, "usermgmt_token_refreshes_total", outcome="success") == 1
    assert value(metrics, "usermgmt_token_refreshes_total", outcome="invalid_refresh_token") == 1
    assert value(metrics, "usermgmt_refresh_token_reuse_detections_total") == 1
    assert value(metrics, "usermgmt_security_events_total", type="refresh_reuse_detected") == 1


def test_a_hash_is_queued_waits_and_is_timed(metrics: Metrics) -> None:
    hasher = PasslibPasswordHasher(rounds=4, workers=1, metrics=metrics)
    release = threading.Event()
    try:

        async def scenario() -> None:
            blocker = asyncio.get_running_loop().run_in_executor(hasher._executor, release.wait)
            waiting = asyncio.ensure_future(hasher.hash(PlainPassword("a password to hash")))
            await asyncio.sleep(0.05)
            assert value(metrics, "usermgmt_password_hash_queue_depth") == 1  # behind the blocker
            release.set()
            await blocker
            await waiting

        asyncio.run(scenario())
    finally:
        hasher.close()
    assert value(metrics, "usermgmt_password_hash_queue_depth") == 0
    assert value(metrics, "usermgmt_password_hash_wait_seconds_count") == 1
    assert value(metrics, "usermgmt_password_hash_wait_seconds_sum") >= 0.04
    assert value(metrics, "usermgmt_password_hash_duration_seconds_count", operation="hash") == 1


def test_a_hash_cancelled_in_the_queue_leaves_it(metrics: Metrics) -> None:
    hasher = PasslibPasswordHasher(rounds=4, workers=1, metrics=metrics)
    release = threading.Event()
    try:

        async def scenario() -> None:
            blocker = asyncio.get_running_loop().run_in_executor(hasher._executor, release.wait)
            waiting = asyncio.ensure_future(hasher.hash(PlainPassword("a password to hash")))
            await asyncio.sleep(0.05)
            waiting.cancel()
            await asyncio.sleep(0)
            assert value(metrics, "usermgmt_password_hash_queue_depth") == 0
            release.set()
            await blocker

        asyncio.run(scenario())
    finally:
        hasher.close()
    assert value(metrics, "usermgmt_password_hash_queue_depth") == 0


def test_the_sampler_reads_pools_and_counts_cache_deltas(metrics: Metrics) -> None:
    totals = [(10, 2)]
    sampler = MetricsSampler(
        metrics,
        pools={"orm": lambda: PoolStatus(open=5, idle=3)},
        token_cache=lambda: totals[-1],
        refresh=None,
    )
    sampler.sample()
    totals.append((15, 3))
    sampler.sample()
    assert value(metrics, "usermgmt_db_connections", pool="orm", state="in_use") == 2
    assert value(metrics, "usermgmt_db_connections", pool="orm", state="idle") == 3
    assert value(metrics, "usermgmt_token_verification_cache_total", result="hit") == 15
    assert value(metrics, "usermgmt_token_verification_cache_total", result="miss") == 3


def test_a_failing_refresh_keeps_the_sampler_going(metrics: Metrics, caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise ConnectionError("database down")

    sampler = MetricsSampler(metrics, pools={}, token_cache=None, refresh=broken)
    asyncio.run(sampler.refresh())
    assert "cannot refresh the KPI and outbox gauges" in caplog.text


def test_a_kpi_without_data_is_not_a_number(metrics: Metrics) -> None:
    assert math.isnan(value(metrics, "usermgmt_kpi_login_success_ratio"))  # before the first refresh
    metrics.set_kpis({"login_success_ratio": 0.99})
    assert value(metrics, "usermgmt_kpi_login_success_ratio") == 0.99
    metrics.set_kpis({"login_success_ratio": None})
    assert math.isnan(value(metrics, "usermgmt_kpi_login_success_ratio"))


def test_the_metrics_port_answers_metrics_only(tmp_path: Any) -> None:
    app = MetricsApp(tmp_path)
    statuses: list[str] = []

    def start(status: str, headers: list[tuple[str, str]]) -> None:
        statuses.append(status)

    body = b"".join(app({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET"}, start))  # type: ignore[arg-type]
    app({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, start)  # type: ignore[arg-type]
    app({"PATH_INFO": "/metrics", "REQUEST_METHOD": "POST"}, start)  # type: ignore[arg-type]
    assert statuses == ["200 OK", "404 Not Found", "405 Method Not Allowed"]
    assert body == b""  # no worker has written anything yet
