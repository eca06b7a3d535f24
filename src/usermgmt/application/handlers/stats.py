"""The service's KPIs, computed from the audit trail (``GET /api/v1/admin/stats``, ``usermgmt stats``).

docs/operations.md defines each figure; this module is that definition in code. The storage answers a few indexed
aggregates (``StatsQueries``); what they mean (which events count, the 7 days of retention, the 24 hours of a
deletion, the median) is decided here.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Final

from usermgmt.application import commands
from usermgmt.application.errors import InvalidPeriod
from usermgmt.application.handlers.admin import GATE_ERRORS, AdminGate
from usermgmt.application.ports import Clock, UnitOfWork
from usermgmt.application.results import Stats
from usermgmt.domain.errors import DomainError
from usermgmt.domain.roles import Permission

DEFAULT_PERIOD: Final = timedelta(days=30)
MAX_PERIOD: Final = timedelta(days=366)
RETENTION_DELAY: Final = timedelta(days=7)  # retained: active again at least this long after registering
DELETION_DEADLINE: Final = timedelta(hours=24)  # a deletion is processed in time when erased within this of its due
_EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(9999, 1, 1, tzinfo=UTC)
_DAY: Final = timedelta(days=1)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (one without an offset is taken as UTC). Raises: InvalidPeriod (out of range)."""
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise InvalidPeriod("The period must lie between 1970 and 9998.") from None
    if not _EARLIEST <= moment < _LATEST:
        raise InvalidPeriod("The period must lie between 1970 and 9998.")
    return moment


def period(from_: datetime | None, to: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) in UTC: ``to`` defaults to ``now``, ``from_`` to 30 days before ``to``. Raises: InvalidPeriod
    (``from_`` not before ``to``, more than 366 days, outside 1970 to 9998)."""
    end = _utc(to) if to is not None else now
    start = _utc(from_) if from_ is not None else _utc(end - DEFAULT_PERIOD)
    if start >= end:
        raise InvalidPeriod("'from' must be before 'to'.")
    if end - start > MAX_PERIOD:
        raise InvalidPeriod(f"The period may span at most {MAX_PERIOD.days} days.")
    return start, end


class StatsHandler:
    """The KPIs of a period (permission ``events:read``): registrations, sign-in success and latency, 2FA adoption,
    7-day retention, password-reset time and deletions processed within 24 hours."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, InvalidPeriod)

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate) -> None:
        self._uow, self._clock, self._gate = uow, clock, gate

    async def __call__(self, cmd: commands.GetStats) -> Stats:
        await self._gate.authorize(cmd.actor, Permission.EVENTS_READ)
        return await self.compute(cmd.from_, cmd.to)

    async def compute(self, from_: datetime | None = None, to: datetime | None = None) -> Stats:
        """The figures without a permission check, for internal callers (the command line, periodic gauges).
        Raises: InvalidPeriod."""
        now = self._clock.now()
        start, end = period(from_, to, now)
        cohort_end = end - RETENTION_DELAY
        overdue_end = min(end, now) - DELETION_DEADLINE  # due before this, and still not erased: late
        async with self._uow:
            stats = self._uow.stats
            by_day = dict(await stats.registrations_by_day(start, end))
            sign_ins = await stats.sign_ins(start, end)
            users_total, users_with_mfa = await stats.accounts()
            cohort = await stats.registered_and_last_active(start, cohort_end, until=end) if cohort_end > start else []
            resets = await stats.password_resets(start, end)
            deletions, within = await stats.deletions(start, end, within=DELETION_DEADLINE)
            overdue = (
                await stats.overdue_erasures(start - DELETION_DEADLINE, overdue_end)
                if overdue_end > start - DELETION_DEADLINE
                else 0
            )
        days = [start.date() + n * _DAY for n in range(((end - timedelta.resolution).date() - start.date()).days + 1)]
        registrations = sum(by_day.values())
        attempts = sign_ins.succeeded + sign_ins.failed
        retained = sum(1 for joined, last in cohort if last is not None and last >= joined + RETENTION_DELAY)
        waits = [(reset - requested).total_seconds() for reset, requested in resets if requested is not None]
        return Stats(
            from_=start,
            to=end,
            registrations=registrations,
            registrations_per_day=registrations / ((end - start) / _DAY),
            registrations_by_day=tuple((day, by_day.get(day, 0)) for day in days),
            sign_in_attempts=attempts,
            sign_ins_succeeded=sign_ins.succeeded,
            login_success_rate=_ratio(sign_ins.succeeded, attempts),
            authentication_latency_ms=sign_ins.mean_duration_ms,
            users_total=users_total,
            users_with_mfa=users_with_mfa,
            mfa_adoption=_ratio(users_with_mfa, users_total),
            retention_cohort=len(cohort),
            retained_7d=retained,
            retention_7d=_ratio(retained, len(cohort)),
            password_resets=len(resets),
            password_reset_median_seconds=statistics.median(waits) if waits else None,
            deletions=deletions,
            deletions_within_24h=within,
            deletions_overdue=overdue,
            deletions_within_24h_rate=_ratio(within, deletions + overdue),
        )
