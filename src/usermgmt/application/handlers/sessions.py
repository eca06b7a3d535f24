from __future__ import annotations

from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.audit import security_event
from usermgmt.application.errors import ServiceUnavailable, SessionNotFound
from usermgmt.application.ports import Clock, UnitOfWork
from usermgmt.application.results import EventPage, SessionView
from usermgmt.domain.errors import DomainError
from usermgmt.domain.events import EventType


class ListSessionsHandler:
    """The caller's live sessions, newest first, the current one marked."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (ServiceUnavailable,)

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def __call__(self, cmd: commands.ListSessions) -> list[SessionView]:
        now = self._clock.now()
        async with self._uow:
            sessions = await self._uow.sessions.list_for_user(cmd.user_id)
        return [
            SessionView(session=s, current=s.id == cmd.current_session_id) for s in sessions if not s.is_expired(now)
        ]


class RevokeSessionHandler:
    """End one of the caller's own sessions (possibly the current one)."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (SessionNotFound, ServiceUnavailable)

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def __call__(self, cmd: commands.RevokeSession) -> None:
        """Raises: SessionNotFound (also for another user's session)."""
        async with self._uow:
            if not await self._uow.sessions.delete(cmd.session_id, user_id=cmd.user_id):
                raise SessionNotFound()
            await self._uow.record(
                security_event(
                    EventType.SESSION_REVOKED,
                    at=self._clock.now(),
                    client=cmd.client,
                    user_id=cmd.user_id,
                    session_id=cmd.session_id,
                )
            )
            await self._uow.commit()


class ListEventsHandler:
    """The caller's security history, newest first, a page at a time."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (ServiceUnavailable,)

    MAX_LIMIT = 100

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def __call__(self, cmd: commands.ListEvents) -> EventPage:
        limit = max(1, min(cmd.limit, self.MAX_LIMIT))
        async with self._uow:
            events = await self._uow.events.list_for_user(cmd.user_id, limit=limit + 1, before=cmd.before)
        page = list(events[:limit])
        return EventPage(items=page, next_before=page[-1].id if len(events) > limit else None)


class PurgeExpiredSessionsHandler:
    """Delete expired sessions and the refresh-token hashes they retired, and expired second-step challenges (run
    it periodically: a cron job). Returns the number of sessions."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (ServiceUnavailable,)

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def __call__(self) -> int:
        async with self._uow:
            now = self._clock.now()
            purged = await self._uow.sessions.delete_expired(now)
            await self._uow.mfa.delete_expired_challenges(now)
            await self._uow.commit()
        return purged
