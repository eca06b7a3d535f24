"""Typed rate-limit rules (``Throttle``, ``Guard``) over the in-memory moving-window limiter, on a frozen clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.unit.application._support import NOW, RecordingUnitOfWork, client
from usermgmt.adapters.memory import FrozenClock, InMemoryRateLimiter
from usermgmt.application.abuse import DEFAULT_RATES, Guard, RateLimitPolicy, RateRule, Throttle
from usermgmt.application.errors import RateLimited
from usermgmt.application.ports import Rate
from usermgmt.domain.events import EventType

LOGIN = RateRule.LOGIN_PER_IP
POLICY = RateLimitPolicy(rates={LOGIN: Rate(3, timedelta(minutes=1))})


@pytest.fixture
def throttle(clock: FrozenClock) -> Throttle:
    return Throttle(InMemoryRateLimiter(clock), POLICY)


async def hit_times(throttle: Throttle, times: int, key: str = "192.0.2.1") -> None:
    for _ in range(times):
        await throttle.hit(LOGIN, key)


@pytest.mark.parametrize(
    ("limit", "period"), [(0, timedelta(minutes=1)), (-1, timedelta(minutes=1)), (1, timedelta(0))]
)
def test_rate_refuses_nonsense(limit: int, period: timedelta) -> None:
    with pytest.raises(ValueError, match="rate"):
        Rate(limit, period)


def test_every_rule_has_a_default_and_a_policy_fills_in_what_it_leaves_out() -> None:
    assert set(DEFAULT_RATES) == set(RateRule)
    assert POLICY.rate(LOGIN) == Rate(3, timedelta(minutes=1))
    assert POLICY.rate(RateRule.LOGIN_FAILURES_PER_ACCOUNT_IP) == DEFAULT_RATES[RateRule.LOGIN_FAILURES_PER_ACCOUNT_IP]
    assert set(POLICY.rates) == set(RateRule)


@pytest.mark.parametrize("prefix", [0, 129])
def test_ipv6_prefix_must_be_a_prefix_length(prefix: int) -> None:
    with pytest.raises(ValueError, match="prefix"):
        RateLimitPolicy(ipv6_prefix=prefix)


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # an IPv4 client seen through a dual-stack socket
        (None, "unknown"),
    ],
)
def test_client_key_groups_ipv6_by_network_and_ipv4_by_address(ip: str | None, key: str) -> None:
    assert RateLimitPolicy().client_key(client(ip)) == key


def test_client_key_prefix_is_a_setting() -> None:
    assert RateLimitPolicy(ipv6_prefix=48).client_key(client("2001:db8:1:2::1")) == "2001:db8:1::/48"


async def test_hit_allows_up_to_the_limit_then_raises_naming_the_rule(throttle: Throttle) -> None:
    await hit_times(throttle, 3)

    with pytest.raises(RateLimited) as excinfo:
        await throttle.hit(LOGIN, "192.0.2.1")

    error = excinfo.value
    assert (error.code, error.rule, error.limit) == ("rate_limited", "login_per_ip", 3)
    assert error.retry_after == 60
    assert "60 seconds" in error.detail


async def test_keys_and_rules_are_counted_apart(throttle: Throttle) -> None:
    await hit_times(throttle, 3, key="192.0.2.1")
    await hit_times(throttle, 3, key="192.0.2.2")
    await throttle.hit(RateRule.REGISTRATIONS_PER_IP, "192.0.2.1")  # another rule, same key: its own window
    with pytest.raises(RateLimited):
        await throttle.hit(LOGIN, "192.0.2.1")


async def test_the_window_moves(throttle: Throttle, clock: FrozenClock) -> None:
    await hit_times(throttle, 2)
    clock.advance(timedelta(seconds=30))
    await hit_times(throttle, 1)
    with pytest.raises(RateLimited) as excinfo:
        await throttle.hit(LOGIN, "192.0.2.1")
    assert excinfo.value.retry_after == 30  # the first two hits leave the window in 30 s

    clock.advance(timedelta(seconds=30))  # the first two are out; the third is still in
    await hit_times(throttle, 2)
    with pytest.raises(RateLimited):
        await throttle.hit(LOGIN, "192.0.2.1")


async def test_a_refused_hit_is_not_counted(throttle: Throttle, clock: FrozenClock) -> None:
    await hit_times(throttle, 3)
    for _ in range(5):
        with pytest.raises(RateLimited):
            await throttle.hit(LOGIN, "192.0.2.1")
    clock.advance(timedelta(minutes=1, seconds=1))
    await hit_times(throttle, 3)  # had the refusals counted, the window would still be full


async def test_clear_empties_the_window(throttle: Throttle) -> None:
    await hit_times(throttle, 3, key="k")

    await throttle.clear(LOGIN, "k")

    await hit_times(throttle, 3, key="k")


async def test_first_in_window_is_true_once_per_window(throttle: Throttle, clock: FrozenClock) -> None:
    assert await throttle.first_in_window(LOGIN, "k") is True
    assert await throttle.first_in_window(LOGIN, "k") is False
    assert await throttle.first_in_window(LOGIN, "other") is True

    clock.advance(timedelta(minutes=1, seconds=1))
    assert await throttle.first_in_window(LOGIN, "k") is True


async def test_disabled_policy_never_refuses(clock: FrozenClock) -> None:
    throttle = Throttle(InMemoryRateLimiter(clock), RateLimitPolicy(enabled=False))

    for _ in range(100):
        await throttle.hit(LOGIN, "k")
    assert await throttle.first_in_window(LOGIN, "k") is True


async def test_guard_records_the_first_rejection_of_a_window_only(clock: FrozenClock) -> None:
    uow = RecordingUnitOfWork()
    guard = Guard(Throttle(InMemoryRateLimiter(clock), POLICY), uow, clock)
    for _ in range(3):
        await guard.hit_per_client(LOGIN, client())
    for _ in range(3):
        with pytest.raises(RateLimited):
            await guard.hit_per_client(LOGIN, client())

    assert uow.kinds() == [EventType.RATE_LIMITED]
    assert uow.recorded[0].details == {"rule": "login_per_ip"}


async def test_concurrent_password_checks_cannot_all_pass_a_full_window(clock: FrozenClock) -> None:
    """Defect 8 of issue 12: checked before the hash and counted after, 25 parallel guesses all reached a hash.
    A slot is now taken atomically before the hash: of 25 concurrent attempts, exactly the limit get through."""
    rates = {RateRule.LOGIN_FAILURES_PER_ACCOUNT_IP: Rate(10, timedelta(minutes=15))}
    guard = Guard(Throttle(InMemoryRateLimiter(clock), RateLimitPolicy(rates=rates)), RecordingUnitOfWork(), clock)
    passed: list[int] = []

    async def attempt(n: int) -> None:
        await guard.reserve_password_check("account", client(), user_id=None, known_ip=_never)
        await asyncio.sleep(0)  # the hash runs here; every other attempt gets to run its check meanwhile
        passed.append(n)

    results = await asyncio.gather(*(attempt(n) for n in range(25)), return_exceptions=True)

    assert len(passed) == 10
    assert sum(isinstance(r, RateLimited) for r in results) == 15


async def test_a_passed_check_frees_the_account_ip_window_but_not_the_account_wide_one(clock: FrozenClock) -> None:
    rates = {
        RateRule.LOGIN_FAILURES_PER_ACCOUNT_IP: Rate(2, timedelta(minutes=15)),
        RateRule.LOGIN_FAILURES_PER_ACCOUNT: Rate(3, timedelta(minutes=15)),
    }
    guard = Guard(Throttle(InMemoryRateLimiter(clock), RateLimitPolicy(rates=rates)), RecordingUnitOfWork(), clock)
    for _ in range(2):
        await guard.reserve_password_check("account", client(), user_id=None, known_ip=_never)
    await guard.password_check_passed("account", client())

    await guard.reserve_password_check("account", client(), user_id=None, known_ip=_never)  # the 3rd account-wide
    with pytest.raises(RateLimited) as excinfo:
        await guard.reserve_password_check("account", client(), user_id=None, known_ip=_never)
    assert excinfo.value.rule == "login_failures_per_account"


async def _never() -> bool:
    return False


def test_frozen_clock_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        FrozenClock(NOW.replace(tzinfo=None))


@pytest.mark.parametrize(("retry_after", "expected"), [(0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (59.5, 60)])
def test_retry_after_is_whole_seconds_and_at_least_one(retry_after: float, expected: int) -> None:
    assert RateLimited(retry_after=retry_after, limit=1, rule="r").retry_after == expected
