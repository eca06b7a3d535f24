"""Named rate limits (``Throttle``) over the in-memory moving-window limiter, on a frozen clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.application._support import NOW
from usermgmt.adapters.memory import FrozenClock, InMemoryRateLimiter
from usermgmt.application.abuse import RateLimitPolicy, Throttle
from usermgmt.application.errors import RateLimited
from usermgmt.application.ports import Rate

POLICY = RateLimitPolicy(login_per_ip=Rate(3, timedelta(minutes=1)))


@pytest.fixture
def throttle(clock: FrozenClock) -> Throttle:
    return Throttle(InMemoryRateLimiter(clock), POLICY)


async def hit_times(throttle: Throttle, times: int, key: str = "192.0.2.1") -> None:
    for _ in range(times):
        await throttle.hit("login_per_ip", key)


@pytest.mark.parametrize(
    ("limit", "period"), [(0, timedelta(minutes=1)), (-1, timedelta(minutes=1)), (1, timedelta(0))]
)
def test_rate_refuses_nonsense(limit: int, period: timedelta) -> None:
    with pytest.raises(ValueError, match="rate"):
        Rate(limit, period)


def test_default_policy() -> None:
    policy = RateLimitPolicy()
    assert policy.enabled
    assert policy.login_failures_per_account_ip == Rate(10, timedelta(minutes=15))
    assert policy.login_failures_per_account.limit > policy.login_failures_per_account_ip.limit


async def test_hit_allows_up_to_the_limit_then_raises_naming_the_rule(throttle: Throttle) -> None:
    await hit_times(throttle, 3)

    with pytest.raises(RateLimited) as excinfo:
        await throttle.hit("login_per_ip", "192.0.2.1")

    error = excinfo.value
    assert (error.code, error.rule, error.limit) == ("rate_limited", "login_per_ip", 3)
    assert error.retry_after == 60
    assert "60 seconds" in error.detail


async def test_keys_are_counted_apart(throttle: Throttle) -> None:
    await hit_times(throttle, 3, key="192.0.2.1")
    await hit_times(throttle, 3, key="192.0.2.2")


async def test_the_window_moves(throttle: Throttle, clock: FrozenClock) -> None:
    await hit_times(throttle, 2)
    clock.advance(timedelta(seconds=30))
    await hit_times(throttle, 1)
    with pytest.raises(RateLimited) as excinfo:
        await throttle.hit("login_per_ip", "192.0.2.1")
    assert excinfo.value.retry_after == 30  # the first two hits leave the window in 30 s

    clock.advance(timedelta(seconds=30))  # the first two are out; the third is still in
    await hit_times(throttle, 2)
    with pytest.raises(RateLimited):
        await throttle.hit("login_per_ip", "192.0.2.1")


async def test_check_and_is_full_do_not_count(throttle: Throttle) -> None:
    for _ in range(10):
        await throttle.check("login_per_ip", "k")
        assert await throttle.is_full("login_per_ip", "k") is None

    await hit_times(throttle, 3, key="k")

    with pytest.raises(RateLimited):
        await throttle.check("login_per_ip", "k")
    full = await throttle.is_full("login_per_ip", "k")
    assert full is not None
    assert full.rule == "login_per_ip"


async def test_count_counts_without_raising(throttle: Throttle) -> None:
    for _ in range(5):
        await throttle.count("login_per_ip", "k")

    assert await throttle.is_full("login_per_ip", "k") is not None


async def test_clear_empties_the_window(throttle: Throttle) -> None:
    await hit_times(throttle, 3, key="k")

    await throttle.clear("login_per_ip", "k")

    await hit_times(throttle, 3, key="k")


async def test_first_in_window_is_true_once_per_window(throttle: Throttle, clock: FrozenClock) -> None:
    assert await throttle.first_in_window("login_per_ip", "k") is True
    assert await throttle.first_in_window("login_per_ip", "k") is False
    assert await throttle.first_in_window("login_per_ip", "other") is True

    clock.advance(timedelta(minutes=1, seconds=1))
    assert await throttle.first_in_window("login_per_ip", "k") is True


async def test_unknown_rule_is_a_programming_error(throttle: Throttle) -> None:
    with pytest.raises((KeyError, AttributeError)):
        await throttle.hit("no_such_rule", "k")
    with pytest.raises(KeyError):
        await throttle.hit("enabled", "k")  # a policy attribute that is not a Rate


async def test_disabled_policy_never_refuses(clock: FrozenClock) -> None:
    throttle = Throttle(InMemoryRateLimiter(clock), RateLimitPolicy(enabled=False))

    for _ in range(100):
        await throttle.hit("login_per_ip", "k")
    assert await throttle.is_full("login_per_ip", "k") is None
    assert await throttle.first_in_window("login_per_ip", "k") is True
    assert throttle.enabled is False


@pytest.mark.parametrize(("retry_after", "expected"), [(0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (59.5, 60)])
def test_retry_after_is_whole_seconds_and_at_least_one(retry_after: float, expected: int) -> None:
    assert RateLimited(retry_after=retry_after, limit=1, rule="r").retry_after == expected


def test_frozen_clock_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        FrozenClock(NOW.replace(tzinfo=None))
