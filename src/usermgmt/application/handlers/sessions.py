from __future__ import annotations

from usermgmt.application import commands
from usermgmt.application.errors import SessionNotFound
from usermgmt.application.ports import Clock, UnitOfWork
from usermgmt.application.results import SessionView


class ListSessionsHandler:
    """The caller's live sessions, newest first, the current one marked."""

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

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def __call__(self, cmd: commands.RevokeSession) -> None:
        """Raises: SessionNotFound (also for another user's session)."""
        async with self._uow:
            if not await self._uow.sessions.delete(cmd.session_id, user_id=cmd.user_id):
                raise SessionNotFound()
            await self._uow.commit()
