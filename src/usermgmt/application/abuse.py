"""Abuse prevention as use-case policy: typed rate-limit rules, applied through the ``RateLimiter`` port.

Adding a rule is one edit here: a ``RateRule`` member and its default in ``DEFAULT_RATES`` (settings and the README
table take both from this module). Use cases never name a rule by a string.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Final, NoReturn

from usermgmt.application.audit import security_event
from usermgmt.application.commands import ClientInfo
from usermgmt.application.errors import RateLimited
from usermgmt.application.ports import Clock, Rate, RateLimiter, RateStatus, UnitOfWork
from usermgmt.domain.events import EventType
from usermgmt.domain.value_objects import UserId


class RateRule(StrEnum):
    """Every rate limit the service applies. The value names its setting: ``USERMGMT_RATE_LIMIT_<VALUE>``."""

    LOGIN_PER_IP = "login_per_ip"
    LOGIN_FAILURES_PER_ACCOUNT_IP = "login_failures_per_account_ip"
    LOGIN_FAILURES_PER_ACCOUNT = "login_failures_per_account"
    REGISTRATIONS_PER_IP = "registrations_per_ip"
    REFRESHES_PER_SESSION = "refreshes_per_session"
    REFRESH_FAILURES_PER_IP = "refresh_failures_per_ip"
    PROFILE_UPDATES_PER_USER = "profile_updates_per_user"
    PASSWORD_CHANGES_PER_USER = "password_changes_per_user"  # noqa: S105 - a rule name
    DELETIONS_PER_USER = "deletions_per_user"
    PASSWORD_FORGOT_PER_IP = "password_forgot_per_ip"  # noqa: S105 - a rule name
    PASSWORD_RESET_EMAILS_PER_ACCOUNT = "password_reset_emails_per_account"  # noqa: S105 - a rule name
    VERIFICATION_EMAILS_PER_USER = "verification_emails_per_user"
    EMAIL_CHANGES_PER_USER = "email_changes_per_user"
    MFA_CHANGES_PER_USER = "mfa_changes_per_user"
    ADMIN_REQUESTS_PER_ACTOR = "admin_requests_per_actor"
    DATA_EXPORTS_PER_USER = "data_exports_per_user"


_MINUTE, _QUARTER, _HOUR = timedelta(minutes=1), timedelta(minutes=15), timedelta(hours=1)

# The defaults follow the spirit of Auth0's and Supabase's documented ones. Failed logins are counted per account
# *and client IP* (an attacker throttles only themselves), and per account across all IPs with a higher ceiling that
# does not apply to IPs the owner already has a live session from.
DEFAULT_RATES: Final[Mapping[RateRule, Rate]] = MappingProxyType(
    {
        RateRule.LOGIN_PER_IP: Rate(50, _MINUTE),
        RateRule.LOGIN_FAILURES_PER_ACCOUNT_IP: Rate(10, _QUARTER),
        RateRule.LOGIN_FAILURES_PER_ACCOUNT: Rate(100, _QUARTER),
        RateRule.REGISTRATIONS_PER_IP: Rate(30, _HOUR),
        RateRule.REFRESHES_PER_SESSION: Rate(30, _MINUTE),
        RateRule.REFRESH_FAILURES_PER_IP: Rate(60, _MINUTE),
        RateRule.PROFILE_UPDATES_PER_USER: Rate(20, _QUARTER),
        RateRule.PASSWORD_CHANGES_PER_USER: Rate(5, _QUARTER),
        RateRule.DELETIONS_PER_USER: Rate(5, _QUARTER),
        RateRule.PASSWORD_FORGOT_PER_IP: Rate(10, _HOUR),
        RateRule.PASSWORD_RESET_EMAILS_PER_ACCOUNT: Rate(3, _HOUR),
        RateRule.VERIFICATION_EMAILS_PER_USER: Rate(5, _HOUR),
        RateRule.EMAIL_CHANGES_PER_USER: Rate(5, _HOUR),
        RateRule.MFA_CHANGES_PER_USER: Rate(10, _QUARTER),
        RateRule.ADMIN_REQUESTS_PER_ACTOR: Rate(300, _MINUTE),
        RateRule.DATA_EXPORTS_PER_USER: Rate(3, _HOUR),
    }
)

DEFAULT_IPV6_PREFIX: Final = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitPolicy:
    """The rate of every rule (a rule left out keeps its default), and how client addresses are grouped.

    IPv6 clients are keyed by their ``/ipv6_prefix`` network (one customer usually holds a whole /64, so keying by
    full address would give each of them 2**64 budgets); IPv4 clients by their address.
    """

    enabled: bool = True
    rates: Mapping[RateRule, Rate] = field(default_factory=dict)
    ipv6_prefix: int = DEFAULT_IPV6_PREFIX

    def __post_init__(self) -> None:
        if not 1 <= self.ipv6_prefix <= 128:
            raise ValueError("the IPv6 prefix length for rate limits must be 1 to 128")
        object.__setattr__(self, "rates", MappingProxyType({**DEFAULT_RATES, **self.rates}))

    def rate(self, rule: RateRule) -> Rate:
        return self.rates[rule]

    def client_key(self, client: ClientInfo) -> str:
        """The key of per-IP limits for ``client``: its IPv4 address, or its IPv6 network (``/ipv6_prefix``)."""
        if client.ip is None:
            return "unknown"
        try:
            address = ipaddress.ip_address(client.ip)
        except ValueError:
            return client.ip
        if isinstance(address, ipaddress.IPv6Address):
            mapped = address.ipv4_mapped
            if mapped is not None:
                return str(mapped)
            return str(ipaddress.IPv6Network((address, self.ipv6_prefix), strict=False))
        return str(address)


def _recorded_limit(rule: RateRule, rate: Rate, newest_first: Sequence[datetime], now: datetime) -> RateLimited:
    """The rejection of a window full of recorded failures: open again when the oldest of them leaves it."""
    reopens = newest_first[rate.limit - 1] + rate.period
    return RateLimited(retry_after=max(0.0, (reopens - now).total_seconds()), limit=rate.limit, rule=rule.value)


class Throttle:
    """Applies a ``RateLimitPolicy``: counts hits of a rule per key and raises ``RateLimited`` naming the rule."""

    def __init__(self, limiter: RateLimiter, policy: RateLimitPolicy) -> None:
        self._limiter, self.policy = limiter, policy

    async def hit(self, rule: RateRule, key: str) -> None:
        """Count an attempt; raise (counting nothing) if the window was already full. Raises: RateLimited."""
        if self.policy.enabled:
            status = await self._limiter.hit(self.policy.rate(rule), f"{rule}:{key}")
            if not status.allowed:
                raise self._error(rule, status)

    async def clear(self, rule: RateRule, key: str) -> None:
        if self.policy.enabled:
            await self._limiter.clear(self.policy.rate(rule), f"{rule}:{key}")

    def degraded(self) -> bool:
        """Whether the limits are on and counted in this process alone because the shared store is failing."""
        return self.policy.enabled and self._limiter.degraded()

    async def first_in_window(self, rule: RateRule, key: str) -> bool:
        """True once per window of ``rule`` for ``key``: lets a flood of rejections leave one audit record."""
        if not self.policy.enabled:
            return True
        status = await self._limiter.hit(Rate(1, self.policy.rate(rule).period), f"first:{rule}:{key}")
        return status.allowed

    @staticmethod
    def _error(rule: RateRule, status: RateStatus) -> RateLimited:
        return RateLimited(retry_after=status.reset_after, limit=status.limit, rule=rule.value)


class Guard:
    """Rate limits as use cases speak of them, plus their audit record: the first rejection per window (per rule and
    key) becomes a ``rate_limited`` security event.

    Sign-in limits take their slot *before* the expensive or revealing step (the password hash, the token lookup),
    in one atomic hit of the limiter: concurrent attempts cannot all slip past a check made before any of them was
    counted. A success frees the slots that count failures from that client (the window holds the attempts since
    the last success), except the account-wide one, which an IP with a live session of the account is exempt from.
    """

    def __init__(self, throttle: Throttle, uow: UnitOfWork, clock: Clock) -> None:
        self._throttle, self._uow, self._clock = throttle, uow, clock

    def client_key(self, client: ClientInfo) -> str:
        return self._throttle.policy.client_key(client)

    async def hit(self, rule: RateRule, key: str, *, client: ClientInfo, user_id: UserId | None = None) -> None:
        """Count an attempt against ``rule``. Raises: RateLimited."""
        try:
            await self._throttle.hit(rule, key)
        except RateLimited as exc:
            await self._reject(exc, key, client=client, user_id=user_id)

    async def within(self, rule: RateRule, key: str) -> bool:
        """Count an attempt against ``rule``, silently: False (counting nothing, recording nothing) when the window
        is already full. For a limit whose rejection must not show, such as reset emails per account."""
        try:
            await self._throttle.hit(rule, key)
        except RateLimited:
            return False
        return True

    async def hit_per_user(self, rule: RateRule, user_id: UserId, client: ClientInfo) -> None:
        """Count an attempt of the signed-in ``user_id``. Raises: RateLimited."""
        await self.hit(rule, str(user_id), client=client, user_id=user_id)

    async def hit_per_client(self, rule: RateRule, client: ClientInfo) -> None:
        """Count an attempt from ``client``'s address (or IPv6 network). Raises: RateLimited."""
        await self.hit(rule, self.client_key(client), client=client)

    async def reserve_password_check(
        self,
        account: str,
        client: ClientInfo,
        *,
        user_id: UserId | None,
        known_ip: Callable[[], Awaitable[bool]],
    ) -> None:
        """Take a slot for one password check against ``account`` (the canonical login) before the hash is spent.
        ``user_id`` (the account it found, if any) is named in the audit record of a rejection; ``known_ip`` is asked
        only when the account-wide window is full.

        While the shared store is down (``Throttle.degraded``), the account limits are also counted from the failed
        sign-ins the database records, which every process and instance share (``_recorded_failures``).

        Raises: RateLimited.
        """
        await self.hit(
            RateRule.LOGIN_FAILURES_PER_ACCOUNT_IP, self._account_ip(account, client), client=client, user_id=user_id
        )
        if user_id is not None and self._throttle.degraded():  # asked after a hit: it finds the store down
            await self._recorded_failures(account, client, user_id, known_ip)
        try:
            await self._throttle.hit(RateRule.LOGIN_FAILURES_PER_ACCOUNT, account)
        except RateLimited as exc:
            if user_id is None or not await known_ip():
                await self._reject(exc, account, client=client, user_id=user_id)

    async def _recorded_failures(
        self, account: str, client: ClientInfo, user_id: UserId, known_ip: Callable[[], Awaitable[bool]]
    ) -> None:
        """The account limits counted from the ``login_failed`` events of ``user_id``: from ``client``'s address
        since its last successful sign-in (within the window), and from anywhere (unless ``known_ip``).

        Each process's memory would let through its own full window, so N processes (or instances) would allow N
        times the limit; the events are shared. They are written once a check has failed, so sequential guesses
        are held to the limit exactly; guesses sent in parallel can each pass before any is recorded (at most the
        concurrency over the limit). The address is matched exactly (the memory limits group an IPv6 network).
        Raises: RateLimited."""
        now = self._clock.now()
        policy = self._throttle.policy
        per_ip, everywhere = (
            policy.rate(RateRule.LOGIN_FAILURES_PER_ACCOUNT_IP),
            policy.rate(RateRule.LOGIN_FAILURES_PER_ACCOUNT),
        )
        async with self._uow:
            events = self._uow.events
            from_ip: Sequence[datetime] = []
            if client.ip is not None:
                since = now - per_ip.period
                succeeded = await events.last_at(user_id, EventType.LOGIN_SUCCEEDED, ip=client.ip)
                from_ip = await events.failed_sign_ins(
                    user_id, since=max(since, succeeded) if succeeded else since, limit=per_ip.limit, ip=client.ip
                )
            anywhere = await events.failed_sign_ins(user_id, since=now - everywhere.period, limit=everywhere.limit)
        if len(from_ip) >= per_ip.limit:
            error = _recorded_limit(RateRule.LOGIN_FAILURES_PER_ACCOUNT_IP, per_ip, from_ip, now)
            await self._reject(error, self._account_ip(account, client), client=client, user_id=user_id)
        if len(anywhere) >= everywhere.limit and not await known_ip():
            error = _recorded_limit(RateRule.LOGIN_FAILURES_PER_ACCOUNT, everywhere, anywhere, now)
            await self._reject(error, account, client=client, user_id=user_id)

    async def is_known_ip(self, user_id: UserId | None, client: ClientInfo) -> bool:
        """Whether the owner has a live session from ``client``'s address (its IPv6 network, as per-IP limits
        group addresses: a device whose temporary IPv6 address rotated is still known)."""
        if user_id is None or client.ip is None:
            return False
        now = self._clock.now()
        key = self.client_key(client)
        async with self._uow:
            sessions = await self._uow.sessions.list_for_user(user_id)
        return any(
            not s.is_expired(now) and self.client_key(ClientInfo(ip=s.ip)) == key for s in sessions if s.ip is not None
        )

    async def password_check_passed(self, account: str, client: ClientInfo) -> None:
        await self._throttle.clear(RateRule.LOGIN_FAILURES_PER_ACCOUNT_IP, self._account_ip(account, client))

    async def reserve_refresh(self, client: ClientInfo) -> None:
        """Take a slot for one refresh-token lookup from ``client``, before any database work. Raises: RateLimited."""
        await self.hit_per_client(RateRule.REFRESH_FAILURES_PER_IP, client)

    async def refresh_passed(self, client: ClientInfo) -> None:
        await self._throttle.clear(RateRule.REFRESH_FAILURES_PER_IP, self.client_key(client))

    def _account_ip(self, account: str, client: ClientInfo) -> str:
        return f"{account}|{self.client_key(client)}"

    async def _reject(
        self, error: RateLimited, key: str, *, client: ClientInfo, user_id: UserId | None = None
    ) -> NoReturn:
        """Record (once per window) and raise ``error``."""
        if await self._throttle.first_in_window(RateRule(error.rule), key):
            async with self._uow:
                await self._uow.record(
                    security_event(
                        EventType.RATE_LIMITED, at=self._clock.now(), client=client, user_id=user_id, rule=error.rule
                    )
                )
                await self._uow.commit()
        raise error
