"""Rate limiting with the ``limits`` library (moving window): in memory, or in Redis shared by every instance.

If Redis fails, counting falls back to this process's memory for a while (and says so in the log) rather than
failing requests or switching protection off: limits stay per-process until Redis answers again, except the
account limits on failed sign-ins, which are then counted from the ``login_failed`` events in PostgreSQL (shared
by every process and instance; ``Guard.reserve_password_check``).
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from usermgmt.application.ports import Rate, RateStatus

logger = logging.getLogger(__name__)


def _item(rate: Rate) -> RateLimitItem:
    return RateLimitItemPerSecond(rate.limit, max(1, math.ceil(rate.period.total_seconds())))


class LimitsRateLimiter:
    """One ``limits`` storage (memory or Redis) behind the ``RateLimiter`` port."""

    def __init__(self, storage: Storage, *, namespace: str = "usermgmt") -> None:
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)
        self._namespace = namespace

    async def hit(self, rate: Rate, key: str) -> RateStatus:
        item = _item(rate)
        allowed = await self._strategy.hit(item, self._namespace, key)
        return await self._status(item, key, allowed=allowed)

    async def clear(self, rate: Rate, key: str) -> None:
        await self._strategy.clear(_item(rate), self._namespace, key)

    def degraded(self) -> bool:
        return False  # memory is this process's by design; Redis is shared

    async def _status(self, item: RateLimitItem, key: str, *, allowed: bool) -> RateStatus:
        stats = await self._strategy.get_window_stats(item, self._namespace, key)
        return RateStatus(
            allowed=allowed,
            limit=item.amount,
            remaining=max(0, stats.remaining),
            reset_after=max(0.0, stats.reset_time - time.time()),
        )


class FallbackRateLimiter:
    """Redis first; on a storage error, memory for ``cooldown`` seconds, then Redis again. Never raises."""

    def __init__(self, primary: LimitsRateLimiter, fallback: LimitsRateLimiter, *, cooldown: float = 5.0) -> None:
        self._primary, self._fallback, self._cooldown = primary, fallback, cooldown
        self._down_until = 0.0
        self._degraded = False  # the last count was made in memory because Redis failed

    async def hit(self, rate: Rate, key: str) -> RateStatus:
        if self._primary_usable():
            try:
                status = await self._primary.hit(rate, key)
            except Exception as exc:  # the limits/Redis client raises many types; all mean "storage unusable"
                self._trip(exc)
            else:
                self._degraded = False
                return status
        return await self._fallback.hit(rate, key)

    def degraded(self) -> bool:
        """Whether Redis failed at the last try: counts are then per process (the account limits fall back on the
        failed sign-ins PostgreSQL records, ``Guard``)."""
        return self._degraded

    async def clear(self, rate: Rate, key: str) -> None:
        if self._primary_usable():
            try:
                await self._primary.clear(rate, key)
            except Exception as exc:
                self._trip(exc)
        await self._fallback.clear(rate, key)

    def _primary_usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _trip(self, exc: Exception) -> None:
        self._down_until = time.monotonic() + self._cooldown
        self._degraded = True
        logger.warning(
            "rate-limit storage unavailable (%s); counting in memory for %.0fs",
            type(exc).__name__,
            self._cooldown,
        )


def build_rate_limiter(redis_url: str | None) -> LimitsRateLimiter | FallbackRateLimiter:
    memory = LimitsRateLimiter(MemoryStorage())
    if not redis_url:
        return memory
    uri = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
    redis = RedisStorage(uri, wrap_exceptions=True, connect_timeout=0.5, stream_timeout=0.5)
    return FallbackRateLimiter(LimitsRateLimiter(redis), memory)
