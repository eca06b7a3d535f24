"""The service's Prometheus metrics (prometheus-client), defined once.

Every process of ``usermgmt serve`` creates one ``Metrics``. With ``PROMETHEUS_MULTIPROC_DIR`` set (``usermgmt
serve`` sets it when ``USERMGMT_METRICS_PORT`` is), prometheus-client writes each process's values to memory-mapped
files in that folder, and the metrics port (entrypoints/metrics_server.py) sums them over every worker. Without
it, values stay in this process (the in-process tests read ``registry``).

What is never a label: an email, a user or session id, an IP address, a token, a raw path. Labels hold route
templates, methods, status codes, problem ``code``s, rate-limit rule names, event types and fixed outcome words;
a test checks the exposition of a real server for the rest.

Costs on the hot path (``GET /users/me``): one histogram observation per request. Pool and cache figures are not
counted per request but sampled every few seconds by ``MetricsSampler``; the gauges read from the database (the
KPIs, the outbox) every ``USERMGMT_KPI_REFRESH_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from usermgmt.application.background import BackgroundTask
from usermgmt.application.results import Stats
from usermgmt.domain.events import SecurityEvent

logger = logging.getLogger(__name__)
T = TypeVar("T")

LATENCY_BUCKETS: Final = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HASH_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# The KPI gauges: name suffix -> help. Values come from the stats use case over a rolling window (README).
KPI_GAUGES: Final = {
    "registrations_per_day": "Registrations per day over the last 24 hours.",
    "login_success_ratio": "Successful sign-ins / sign-in attempts over the last 24 hours (rate-limited excluded).",
    "authentication_latency_seconds": "Mean server-side sign-in time over the last 24 hours.",
    "mfa_adoption_ratio": "Share of accounts with two-factor authentication on, now.",
    "retention_7d_ratio": "Share of the last 30 days' registrations still signing in 7 days later.",
    "password_reset_median_seconds": "Median time from reset request to new password over the last 30 days.",
    "deletions_within_24h_ratio": "Share of the last 30 days' deletions erased within 24 hours of their due time.",
}


class Metrics:
    """The metric families, on ``registry`` (a fresh one by default, so that several apps in one test process
    never collide). Label values are passed by the callers below, all from closed sets."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry if registry is not None else CollectorRegistry()
        self.http_requests = Histogram(
            "usermgmt_http_request_duration_seconds",
            "HTTP requests by route template, method and status, and how long they took.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.problems = Counter(
            "usermgmt_problems", "problem+json answers by status and code.", ["status", "code"], registry=registry
        )
        self.sign_ins = Counter(
            "usermgmt_sign_in_attempts",
            "Sign-in attempts by method (password, mfa, provider) and outcome (success or the problem code).",
            ["method", "outcome"],
            registry=registry,
        )
        self.refreshes = Counter(
            "usermgmt_token_refreshes", "Refresh-token exchanges by outcome.", ["outcome"], registry=registry
        )
        self.refresh_reuse = Counter(
            "usermgmt_refresh_token_reuse_detections",
            "Rotated refresh tokens presented again (the session was ended as stolen).",
            registry=registry,
        )
        self.rate_limited = Counter(
            "usermgmt_rate_limit_rejections", "Requests refused by a rate limit, by rule.", ["rule"], registry=registry
        )
        self.events = Counter(
            "usermgmt_security_events", "Committed security events by type.", ["type"], registry=registry
        )
        self.hash_queue = Gauge(
            "usermgmt_password_hash_queue_depth",
            "Password hashes waiting for a hashing thread.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.hash_wait = Histogram(
            "usermgmt_password_hash_wait_seconds",
            "Time a password hash waited for a hashing thread.",
            buckets=HASH_BUCKETS,
            registry=registry,
        )
        self.hash_duration = Histogram(
            "usermgmt_password_hash_duration_seconds",
            "Time a password hash took on its thread, by operation (hash, verify).",
            ["operation"],
            buckets=HASH_BUCKETS,
            registry=registry,
        )
        self.db_connections = Gauge(
            "usermgmt_db_connections",
            "Database connections by pool (orm, principal) and state (in_use, idle).",
            ["pool", "state"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.token_cache = Counter(
            "usermgmt_token_verification_cache",
            "Access-token verifications answered from the verified-token cache (hit) or by a signature check (miss).",
            ["result"],
            registry=registry,
        )
        self.email_deliveries = Counter(
            "usermgmt_email_deliveries",
            "Outbox delivery attempts by outcome (sent, retried, given_up).",
            ["outcome"],
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            "usermgmt_outbox_backlog_messages",
            "Emails in the outbox not sent yet.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.outbox_oldest_age = Gauge(
            "usermgmt_outbox_oldest_message_age_seconds",
            "Age of the oldest email in the outbox (0 when empty).",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.kpis = {
            name: Gauge(f"usermgmt_kpi_{name}", text, registry=registry, multiprocess_mode="mostrecent")
            for name, text in KPI_GAUGES.items()
        }
        for gauge in self.kpis.values():
            gauge.set(math.nan)  # no figure until the first refresh: not a misleading 0

    # Callers in the adapters.

    async def count_committed(self, events: Sequence[SecurityEvent]) -> None:
        """An after-commit handler of the event dispatcher: each committed event by type."""
        for event in events:
            self.events.labels(event.type.value).inc()
            if event.type.value == "refresh_reuse_detected":
                self.refresh_reuse.inc()

    def hashing(self, operation: str) -> HashTiming:
        """The timing of one hash (``operation``: hash or verify) submitted to the pool now."""
        return HashTiming(self, operation)

    def email_outcome(self, outcome: str) -> None:
        self.email_deliveries.labels(outcome).inc()

    def show_stats(self, day: Stats, month: Stats) -> None:
        """The KPI gauges from the figures of the last 24 hours (``day``) and of the last 30 days (``month``)."""
        latency = day.authentication_latency_ms
        self.set_kpis(
            {
                "registrations_per_day": day.registrations_per_day,
                "login_success_ratio": day.login_success_rate,
                "authentication_latency_seconds": latency / 1000 if latency is not None else None,
                "mfa_adoption_ratio": day.mfa_adoption,
                "retention_7d_ratio": month.retention_7d,
                "password_reset_median_seconds": month.password_reset_median_seconds,
                "deletions_within_24h_ratio": month.deletions_within_24h_rate,
            }
        )

    def set_kpis(self, values: dict[str, float | None]) -> None:
        """Each KPI gauge to its value; a figure without data (None: nothing to divide by) is NaN, which no alert
        threshold compares true with."""
        for name, value in values.items():
            self.kpis[name].set(value if value is not None else math.nan)


class HashTiming:
    """One hash's trip through the hashing pool: queued when made; ``run`` (on the thread) takes it off the queue,
    observes the wait and times the hash; ``abandon`` (the awaiting side, always) takes it off the queue if no
    thread ever did (cancelled while queued). Leaving the queue happens once, whichever side comes first."""

    __slots__ = ("_left", "_lock", "_metrics", "_operation", "_queued")

    def __init__(self, metrics: Metrics, operation: str) -> None:
        self._metrics, self._operation = metrics, operation
        self._lock = threading.Lock()
        self._left = False
        self._queued = time.perf_counter()
        metrics.hash_queue.inc()

    def _leave_queue(self) -> bool:
        with self._lock:
            if self._left:
                return False
            self._left = True
        self._metrics.hash_queue.dec()
        return True

    def run(self, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        if self._leave_queue():
            self._metrics.hash_wait.observe(started - self._queued)
        try:
            return call()
        finally:
            self._metrics.hash_duration.labels(self._operation).observe(time.perf_counter() - started)

    def abandon(self) -> None:
        self._leave_queue()


@dataclass(frozen=True, slots=True)
class PoolStatus:
    open: int
    idle: int


class MetricsSampler(BackgroundTask):
    """The figures not worth counting per request, sampled in the background of each server process:

    - every ``sample_interval`` seconds: the database pools (``pools``: name -> a function giving its status) and
      the token cache's hits and misses since the last sample (``token_cache``: a function giving the running
      totals);
    - every ``refresh_interval`` seconds: ``refresh()``, which reads the database (KPIs, outbox) and sets gauges.
    """

    name = "metrics-sampler"

    def __init__(
        self,
        metrics: Metrics,
        *,
        pools: dict[str, Callable[[], PoolStatus]],
        token_cache: Callable[[], tuple[int, int]] | None,
        refresh: Callable[[], Awaitable[None]] | None,
        sample_interval: float = 5.0,
        refresh_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self._metrics, self._pools, self._token_cache, self._refresh = metrics, pools, token_cache, refresh
        self.sample_interval, self.refresh_interval = sample_interval, refresh_interval
        self._counted = (0, 0)

    def sample(self) -> None:
        for name, status in self._pools.items():
            current = status()
            self._metrics.db_connections.labels(name, "in_use").set(current.open - current.idle)
            self._metrics.db_connections.labels(name, "idle").set(current.idle)
        if self._token_cache is not None:
            hits, misses = self._token_cache()
            self._metrics.token_cache.labels("hit").inc(max(0, hits - self._counted[0]))
            self._metrics.token_cache.labels("miss").inc(max(0, misses - self._counted[1]))
            self._counted = (hits, misses)

    async def refresh(self) -> None:
        if self._refresh is None:
            return
        try:
            await self._refresh()
        except Exception:  # a database outage must not end the sampling; the gauges keep their last values
            logger.warning("cannot refresh the KPI and outbox gauges; retrying at the next interval", exc_info=True)

    async def run(self) -> None:
        next_refresh = 0.0
        while True:
            self.sample()
            now = time.monotonic()
            if now >= next_refresh:
                await self.refresh()
                next_refresh = now + self.refresh_interval
            await asyncio.sleep(self.sample_interval)
