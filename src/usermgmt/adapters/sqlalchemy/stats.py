"""The KPIs' aggregates, over the unit of work's connection: each query reads one bounded range of an index.

- events of some types in a period: ``ix_security_events_type_at`` (type, at), then an aggregate;
- an account's other events (its newest activity, its newest reset request): ``ix_security_events_user_id_id``;
- accounts due for erasure: ``ix_users_erasure_at``; the account counts: the primary keys.

``details`` is JSON: its numbers are read with ``->>`` (PostgreSQL) or ``json_extract`` (SQLite), through
SQLAlchemy's ``as_float``. Days are UTC dates on both (a timestamptz at UTC, or SQLite's UTC text).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, and_, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from usermgmt.adapters.sqlalchemy.tables import security_events, totp_credentials, users
from usermgmt.application.ports import SignInCounts
from usermgmt.domain.events import EventType

ACTIVITY = (EventType.LOGIN_SUCCEEDED.value, EventType.TOKEN_REFRESHED.value)


def _during(kinds: Sequence[EventType], start: datetime, end: datetime) -> ColumnElement[bool]:
    """The events of ``kinds`` in [start, end): a range of (type, at)."""
    values = [kind.value for kind in kinds]
    kind = security_events.c.type == values[0] if len(values) == 1 else security_events.c.type.in_(values)
    return and_(kind, security_events.c.at >= start, security_events.c.at < end)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


class SqlAlchemyStatsQueries:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    def _utc_date(self) -> ColumnElement[Any]:
        at = security_events.c.at
        if self._connection.dialect.name == "postgresql":
            return cast(func.timezone("UTC", at), Date)
        return func.date(at)  # SQLite keeps UTC text: its date part

    async def registrations_by_day(self, start: datetime, end: datetime) -> Sequence[tuple[date, int]]:
        day = self._utc_date().label("day")
        rows = await self._connection.execute(
            select(day, func.count()).where(_during([EventType.REGISTERED], start, end)).group_by(day).order_by(day)
        )
        return [(_as_date(row[0]), int(row[1])) for row in rows]

    async def sign_ins(self, start: datetime, end: datetime) -> SignInCounts:
        succeeded = security_events.c.type == EventType.LOGIN_SUCCEEDED.value
        row = (
            await self._connection.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(case((succeeded, 1), else_=0)), 0),
                    func.avg(security_events.c.details["duration_ms"].as_float()),
                ).where(_during([EventType.LOGIN_SUCCEEDED, EventType.LOGIN_FAILED], start, end))
            )
        ).one()
        total, ok, mean = int(row[0]), int(row[1]), row[2]
        return SignInCounts(succeeded=ok, failed=total - ok, mean_duration_ms=float(mean) if mean is not None else None)

    async def accounts(self) -> tuple[int, int]:
        confirmed = (
            select(func.count()).select_from(totp_credentials).where(totp_credentials.c.confirmed_at.is_not(None))
        )
        row = (
            await self._connection.execute(
                select(select(func.count()).select_from(users).scalar_subquery(), confirmed.scalar_subquery())
            )
        ).one()
        return int(row[0]), int(row[1])

    async def registered_and_last_active(
        self, start: datetime, end: datetime, *, until: datetime
    ) -> Sequence[tuple[datetime, datetime | None]]:
        activity = security_events.alias("activity")
        last_active = (
            select(func.max(activity.c.at))
            .where(
                activity.c.user_id == security_events.c.user_id,
                activity.c.type.in_(ACTIVITY),
                activity.c.at < until,
            )
            .scalar_subquery()
        )
        rows = await self._connection.execute(
            select(security_events.c.at, last_active).where(
                _during([EventType.REGISTERED], start, end), security_events.c.user_id.is_not(None)
            )
        )
        return [(row[0], row[1]) for row in rows]

    async def password_resets(self, start: datetime, end: datetime) -> Sequence[tuple[datetime, datetime | None]]:
        requested = security_events.alias("requested")
        latest_request = (
            select(func.max(requested.c.at))
            .where(
                requested.c.user_id == security_events.c.user_id,
                requested.c.type == EventType.PASSWORD_RESET_REQUESTED.value,
                requested.c.at <= security_events.c.at,
            )
            .scalar_subquery()
        )
        rows = await self._connection.execute(
            select(security_events.c.at, latest_request).where(_during([EventType.PASSWORD_RESET], start, end))
        )
        return [(row[0], row[1]) for row in rows]

    async def deletions(self, start: datetime, end: datetime, *, within: timedelta) -> tuple[int, int]:
        lag = security_events.c.details["lag_seconds"].as_float()
        in_time = or_(lag.is_(None), lag <= within.total_seconds())
        row = (
            await self._connection.execute(
                select(func.count(), func.coalesce(func.sum(case((in_time, 1), else_=0)), 0)).where(
                    _during([EventType.ACCOUNT_DELETED], start, end)
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    async def overdue_erasures(self, start: datetime, end: datetime) -> int:
        statement = select(func.count()).select_from(users).where(users.c.erasure_at >= start, users.c.erasure_at < end)
        return int((await self._connection.execute(statement)).scalar_one())
