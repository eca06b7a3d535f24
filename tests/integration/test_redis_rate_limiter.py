"""The rate limiter on real Redis: shared counters between instances, and what happens when Redis goes away."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import make_url

from tests.support.proxy import TcpProxy
from usermgmt.adapters.rate_limit import FallbackRateLimiter, build_rate_limiter
from usermgmt.application.ports import Rate

REDIS_URL = make_url(os.environ.get("USERMGMT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
REDIS_HOST, REDIS_PORT = REDIS_URL.host or "127.0.0.1", REDIS_URL.port or 6379
RATE = Rate(3, timedelta(minutes=1))


@pytest.fixture(scope="module", autouse=True)
def redis_reachable() -> None:
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2).close()
    except OSError as exc:
        pytest.exit(
            f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} ({exc}). The rate-limiter tests need one: start "
            "Redis (e.g. `redis-server --port 6379`) or set USERMGMT_TEST_REDIS_URL=redis://HOST:PORT/DB.",
            returncode=3,
        )


@pytest.fixture
def key() -> str:
    return f"test:{uuid.uuid4()}"


@pytest.fixture
async def redis_proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def test_instances_share_counters_through_redis(key: str) -> None:
    first, second = (build_rate_limiter(REDIS_URL.render_as_string(hide_password=False)) for _ in range(2))

    statuses = [await first.hit(RATE, key), await second.hit(RATE, key), await first.hit(RATE, key)]
    over = await second.hit(RATE, key)

    assert [s.allowed for s in statuses] == [True, True, True]
    assert [s.remaining for s in statuses] == [2, 1, 0]
    assert not over.allowed
    assert 0 < over.reset_after <= 60
    assert not (await first.hit(RATE, key)).allowed
    await second.clear(RATE, key)
    assert (await first.hit(RATE, key)).allowed


async def test_memory_storage_counts_per_process(key: str) -> None:
    first, second = build_rate_limiter(None), build_rate_limiter(None)
    for _ in range(3):
        await first.hit(RATE, key)
    assert not (await first.hit(RATE, key)).allowed
    assert (await second.hit(RATE, key)).allowed


async def test_redis_down_falls_back_to_memory_logs_it_and_comes_back(
    key: str, redis_proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = build_rate_limiter(f"redis://{REDIS_HOST}:{redis_proxy.port}/0")
    assert isinstance(limiter, FallbackRateLimiter)
    limiter._cooldown = 0.5
    assert (await limiter.hit(RATE, key)).remaining == 2  # through Redis
    assert not limiter.degraded()

    await redis_proxy.stop()
    with caplog.at_level(logging.WARNING, logger="usermgmt.adapters.rate_limit"):
        during = [await limiter.hit(RATE, key) for _ in range(4)]
    # Still limiting (in this process's memory), never raising.
    assert [s.allowed for s in during] == [True, True, True, False]
    assert any("rate-limit storage unavailable" in r.getMessage() for r in caplog.records)
    assert limiter.degraded()  # the account limits now also count the recorded failures (Guard)

    await redis_proxy.start()
    await asyncio.sleep(0.6)
    recovered = await limiter.hit(RATE, key)
    assert not limiter.degraded()
    assert recovered.allowed
    assert recovered.remaining == 1  # Redis again: its own count (1 before the outage + this one)
