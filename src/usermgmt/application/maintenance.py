"""The periodic clean-up: one run per interval per deployment, whichever process wins the lock.

A run, in one transaction that first takes the deployment-wide maintenance lock (``UnitOfWork.try_lock``: a
PostgreSQL advisory lock; SQLite's single writer), deletes expired sessions with their retired refresh-token
hashes, expired sign-in challenges, expired email links, and the expired trips to identity providers and login
codes (not counted in the report), erases the accounts whose deletion grace period ended (each with the receipt,
the anonymous mark and the notice of an immediate deletion), and deletes anonymous security events (those naming
no account) older than the retention. Sent outbox rows need nothing: a message's row is deleted when it is sent or
given up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from usermgmt.application.audit import erasure_lag_seconds, security_event
from usermgmt.application.background import BackgroundTask
from usermgmt.application.commands import ClientInfo
from usermgmt.application.email import Postman, Template, notice_context
from usermgmt.application.errors import ServiceUnavailable
from usermgmt.application.ports import Clock, UnitOfWork
from usermgmt.domain.errors import DomainError
from usermgmt.domain.events import EventType

logger = logging.getLogger(__name__)

MAINTENANCE_LOCK = "usermgmt.maintenance"
ERASURES_PER_RUN = 100  # a backlog is worked off over several runs, each a bounded transaction


@dataclass(frozen=True, slots=True, kw_only=True)
class MaintenanceReport:
    ran: bool  # False: another process held the lock
    sessions: int = 0
    mfa_challenges: int = 0
    email_tokens: int = 0
    erased_accounts: int = 0
    anonymous_events: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "sessions": self.sessions,
            "mfa_challenges": self.mfa_challenges,
            "email_tokens": self.email_tokens,
            "erased_accounts": self.erased_accounts,
            "anonymous_events": self.anonymous_events,
        }


class MaintenanceHandler:
    raises: ClassVar[tuple[type[DomainError], ...]] = (ServiceUnavailable,)

    def __init__(self, uow: UnitOfWork, clock: Clock, postman: Postman, anonymous_event_retention: timedelta) -> None:
        self._uow, self._clock, self._postman = uow, clock, postman
        self._retention = anonymous_event_retention

    async def __call__(self) -> MaintenanceReport:
        async with self._uow:
            if not await self._uow.try_lock(MAINTENANCE_LOCK):
                return MaintenanceReport(ran=False)
            now = self._clock.now()
            sessions = await self._uow.sessions.delete_expired(now)
            challenges = await self._uow.mfa.delete_expired_challenges(now)
            tokens = await self._uow.email_tokens.delete_expired(now)
            await self._uow.federation.delete_expired(now)
            erased = 0
            for user in await self._uow.users.due_for_erasure(now, limit=ERASURES_PER_RUN):
                counts = await self._uow.users.erase(user.id)
                await self._uow.record(
                    security_event(
                        EventType.ACCOUNT_DELETED,
                        at=now,
                        client=ClientInfo(),
                        user_id=user.id,
                        lag_seconds=erasure_lag_seconds(user, now),
                    )
                )
                await self._postman.send(
                    self._uow,
                    to=user.email,
                    template=Template.ACCOUNT_DELETED,
                    now=now,
                    user_id=None,
                    deleted_at=now.isoformat(),
                    **notice_context(ClientInfo(), now),
                )
                due = user.erasure_at.isoformat() if user.erasure_at else None
                logger.info("erased an account whose deletion grace period ended",
                            extra={"erased": dict(counts), "erasure_due": due})  # fmt: skip
                erased += 1
            anonymous = await self._uow.events.delete_anonymous_before(now - self._retention)
            await self._uow.commit()
        report = MaintenanceReport(
            ran=True,
            sessions=sessions,
            mfa_challenges=challenges,
            email_tokens=tokens,
            erased_accounts=erased,
            anonymous_events=anonymous,
        )
        logger.info("maintenance removed %s", ", ".join(f"{n} {what}" for what, n in report.counts().items()),
                    extra={"removed": report.counts()})  # fmt: skip
        return report


class MaintenanceLoop(BackgroundTask):
    """Runs the maintenance every ``interval`` in the background of a server process (every process runs one;
    the lock makes one run do the work). A failed run is logged, and the next one comes at its time."""

    name = "usermgmt-maintenance"

    def __init__(self, run: MaintenanceHandler, interval: timedelta) -> None:
        super().__init__()
        self._run, self._interval = run, interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval.total_seconds())
            try:
                await self._run()
            except ServiceUnavailable:
                logger.warning("maintenance skipped: the database is unavailable")
            except Exception:
                logger.exception("maintenance failed")
