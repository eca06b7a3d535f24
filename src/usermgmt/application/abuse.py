"""Abuse prevention as use-case policy: named rate limits applied through the ``RateLimiter`` port."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from usermgmt.application.errors import RateLimited
from usermgmt.application.ports import Rate, RateLimiter, RateStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitPolicy:
    """The limits, by name. Defaults follow the spirit of Auth0's and Supabase's documented ones.

    Failed logins are counted per account *and client IP* (an attacker throttles only themselves), and per account
    across all IPs with a higher ceiling that does not apply to IPs the owner already has a live session from.
    """

    enabled: bool = True
    login_per_ip: Rate = Rate(50, timedelta(minutes=1))
    login_failures_per_account_ip: Rate = Rate(10, timedelta(minutes=15))
    login_failures_per_account: Rate = Rate(100, timedelta(minutes=15))
    registrations_per_ip: Rate = Rate(30, timedelta(hours=1))
    refreshes_per_session: Rate = Rate(30, timedelta(minutes=1))
    refresh_failures_per_ip: Rate = Rate(60, timedelta(minutes=1))
    profile_updates_per_user: Rate = Rate(20, timedelta(minutes=15))
    password_changes_per_user: Rate = Rate(5, timedelta(minutes=15))
    deletions_per_user: Rate = Rate(5, timedelta(minutes=15))


class Throttle:
    """Applies a ``RateLimitPolicy``; each check raises ``RateLimited`` naming the rule that was hit."""

    def __init__(self, limiter: RateLimiter, policy: RateLimitPolicy) -> None:
        self._limiter, self._policy = limiter, policy

    @property
    def enabled(self) -> bool:
        return self._policy.enabled

    def _rate(self, rule: str) -> Rate:
        rate = getattr(self._policy, rule)
        if not isinstance(rate, Rate):
            raise KeyError(rule)
        return rate

    async def hit(self, rule: str, key: str) -> None:
        """Count an attempt; raise if the window was already full."""
        if self._policy.enabled:
            self._raise_unless_allowed(rule, await self._limiter.hit(self._rate(rule), f"{rule}:{key}"))

    async def check(self, rule: str, key: str) -> None:
        """Raise if the window is full, without counting."""
        if self._policy.enabled:
            self._raise_unless_allowed(rule, await self._limiter.peek(self._rate(rule), f"{rule}:{key}"))

    async def is_full(self, rule: str, key: str) -> RateLimited | None:
        if not self._policy.enabled:
            return None
        status = await self._limiter.peek(self._rate(rule), f"{rule}:{key}")
        return None if status.allowed else self._error(rule, status)

    async def count(self, rule: str, key: str) -> None:
        """Count a hit whatever the window holds (failures are counted after the fact)."""
        if self._policy.enabled:
            await self._limiter.hit(self._rate(rule), f"{rule}:{key}")

    async def clear(self, rule: str, key: str) -> None:
        if self._policy.enabled:
            await self._limiter.clear(self._rate(rule), f"{rule}:{key}")

    async def first_in_window(self, rule: str, key: str) -> bool:
        """True once per window of ``rule`` for ``key``: lets a flood of rejections leave one audit record."""
        if not self._policy.enabled:
            return True
        status = await self._limiter.hit(Rate(1, self._rate(rule).period), f"first:{rule}:{key}")
        return status.allowed

    def _raise_unless_allowed(self, rule: str, status: RateStatus) -> None:
        if not status.allowed:
            raise self._error(rule, status)

    @staticmethod
    def _error(rule: str, status: RateStatus) -> RateLimited:
        return RateLimited(retry_after=status.reset_after, limit=status.limit, rule=rule)
