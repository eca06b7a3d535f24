"""A scripted history for the KPIs (docs/operations.md): accounts and audit events written straight through a unit
of work, each at a chosen instant, so that every figure of ``StatsHandler`` has one exact expected value. The unit
tests run it on the in-memory fakes; the integration tests on PostgreSQL and SQLite, for the same numbers.

The period is [FROM, TO), 10 days of March 2026; NOW, the clock's time, is after it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from usermgmt.application.ports import UnitOfWork
from usermgmt.domain.events import EventType, SecurityEvent
from usermgmt.domain.mfa import TotpCredential
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import Email, PasswordHash, UserId

FROM = datetime(2026, 3, 1, tzinfo=UTC)
TO = datetime(2026, 3, 11, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """An instant of March 2026."""
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


def account(n: int, created_at: datetime, *, erasure_at: datetime | None = None) -> User:
    user = User.register(
        id=UserId(UUID(int=n)),
        email=Email(f"kpi{n}@example.com"),
        password_hash=PasswordHash("$2b$04$" + "x" * 53),
        now=created_at,
    )
    if erasure_at is not None:
        user.schedule_erasure(now=created_at, at=erasure_at)
    return user


def event(kind: EventType, when: datetime, user: User | None = None, **details: Any) -> SecurityEvent:
    return SecurityEvent(type=kind, at=when, user_id=user.id if user else None, details=details)


# What StatsHandler.compute(FROM, TO) must give for the history below, figure by figure.
EXPECTED: dict[str, Any] = {
    "from_": FROM,
    "to": TO,
    # u6 (at FROM, included), u1 (1 March), u2, u3, u4; not u5 (before FROM) nor u7 (at TO, excluded).
    "registrations": 5,
    "registrations_per_day": 0.5,
    "registrations_by_day": (
        (date(2026, 3, 1), 2),
        (date(2026, 3, 2), 1),
        (date(2026, 3, 3), 1),
        (date(2026, 3, 4), 0),
        (date(2026, 3, 5), 1),
        *((date(2026, 3, d), 0) for d in range(6, 11)),
    ),
    # 2 succeeded (u1, u3; u2's is at TO), 3 failed (one for an unknown login, two of u4's); the rate-limited
    # request is neither. The mean is over the four that carry duration_ms: (40 + 60 + 100 + 20) / 4.
    "sign_in_attempts": 5,
    "sign_ins_succeeded": 2,
    "login_success_rate": 0.4,
    "authentication_latency_ms": 55.0,
    # u1..u9 exist (u8 and u9 wait for erasure); u1 and u3 have a confirmed authenticator, u2 only a pending one.
    "users_total": 9,
    "users_with_mfa": 2,
    "mfa_adoption": 2 / 9,
    # Registered in [FROM, TO - 7 days = 4 March): u6, u1, u2, u3. Retained: u1 (signed in exactly 7 days after)
    # and u3; not u2 (a refresh one second short of 7 days, and a sign-in at TO) nor u6 (never back).
    "retention_cohort": 4,
    "retained_7d": 2,
    "retention_7d": 0.5,
    # u1 60 s, u3 120 s (from its latest request), u4 300 s; u2's reset has no request kept: counted, not timed.
    "password_resets": 4,
    "password_reset_median_seconds": 120.0,
    # Marks with lag 0, 3600, 86400 (exactly 24 h: in time), 90000 (late), and one without the detail (in time);
    # u8, due 5 March, is still there: late, and counted. u9's 24 hours end after TO.
    "deletions": 5,
    "deletions_within_24h": 4,
    "deletions_overdue": 1,
    "deletions_within_24h_rate": 4 / 6,
}


async def write_history(uow: UnitOfWork) -> dict[str, User]:
    """Write the history (its accounts, their authenticators, the events) and commit; the accounts, by name."""
    users = {
        "u1": account(1, at(1, 10)),
        "u2": account(2, at(2, 12)),
        "u3": account(3, at(3, 8)),
        "u4": account(4, at(5, 9)),
        "u5": account(5, datetime(2026, 2, 20, tzinfo=UTC)),
        "u6": account(6, FROM),
        "u7": account(7, TO),
        "u8": account(8, datetime(2026, 2, 1, tzinfo=UTC), erasure_at=at(5)),
        "u9": account(9, datetime(2026, 2, 1, tzinfo=UTC), erasure_at=at(10, 12)),
    }
    u1, u2, u3, u4, u5 = (users[n] for n in ("u1", "u2", "u3", "u4", "u5"))
    events = [
        # registrations
        *(event(EventType.REGISTERED, user.created_at, user) for user in users.values()),
        # sign-ins
        event(EventType.LOGIN_SUCCEEDED, at(8, 10), u1, amr=["pwd"], duration_ms=40.0),  # registered + 7 days
        event(EventType.TOKEN_REFRESHED, at(9, 11, 59, 59), u2),  # 1 s short of 7 days
        event(EventType.LOGIN_SUCCEEDED, TO, u2, amr=["pwd"], duration_ms=500.0),  # at TO: outside
        event(EventType.LOGIN_SUCCEEDED, at(10, 23), u3, amr=["pwd", "otp"], duration_ms=60.0),
        event(EventType.LOGIN_FAILED, at(6, 1), None, reason="unknown_login", duration_ms=100.0),
        event(EventType.LOGIN_FAILED, at(6, 2), u4, reason="wrong_password", duration_ms=20.0),
        event(EventType.LOGIN_FAILED, at(6, 3), u4, reason="wrong_password"),  # from before duration_ms
        event(EventType.RATE_LIMITED, at(6, 4), u4, rule="login_failures_per_account_ip"),
        event(EventType.LOGIN_SUCCEEDED, datetime(2026, 2, 28, 23, 59, tzinfo=UTC), u5, duration_ms=900.0),
        # password resets
        event(EventType.PASSWORD_RESET_REQUESTED, at(2, 10), u1),
        event(EventType.PASSWORD_RESET, at(2, 10, 1), u1),
        event(EventType.PASSWORD_RESET_REQUESTED, at(4, 9), u3),
        event(EventType.PASSWORD_RESET_REQUESTED, at(4, 9, 10), u3),
        event(EventType.PASSWORD_RESET, at(4, 9, 12), u3),
        event(EventType.PASSWORD_RESET_REQUESTED, at(6), u4),
        event(EventType.PASSWORD_RESET, at(6, 0, 5), u4),
        event(EventType.PASSWORD_RESET, at(7), u2),
        event(EventType.PASSWORD_RESET_REQUESTED, at(7, 0, 1), u2),  # after its reset: not its request
        # deletions (anonymous marks)
        event(EventType.ACCOUNT_DELETED, at(2), lag_seconds=0),
        event(EventType.ACCOUNT_DELETED, at(3), lag_seconds=3600),
        event(EventType.ACCOUNT_DELETED, at(4), lag_seconds=86400),
        event(EventType.ACCOUNT_DELETED, at(5), lag_seconds=90000),
        event(EventType.ACCOUNT_DELETED, at(6)),
        event(EventType.ACCOUNT_DELETED, TO, lag_seconds=0),  # at TO: outside
    ]
    async with uow:
        for user in users.values():
            await uow.users.add(user)
        await uow.commit()
    async with uow:
        for user, confirmed in ((u1, True), (u2, False), (u3, True)):
            await uow.mfa.save_totp(
                TotpCredential(
                    user_id=user.id,
                    sealed_secret="sealed",
                    created_at=user.created_at,
                    confirmed_at=user.created_at + MINUTE if confirmed else None,
                )
            )
        for e in events:
            await uow.record(e)
        await uow.commit()
    return users
