from __future__ import annotations

from usermgmt.application import commands
from usermgmt.application.audit import security_event
from usermgmt.application.ports import Clock, UnitOfWork
from usermgmt.domain.events import EventType


class LogoutHandler:
    """End the caller's session: its refresh token and its access tokens stop working."""

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def __call__(self, cmd: commands.Logout) -> None:
        async with self._uow:
            if await self._uow.sessions.delete(cmd.session_id, user_id=cmd.user_id):
                await self._uow.events.add(
                    security_event(
                        EventType.LOGGED_OUT,
                        at=self._clock.now(),
                        client=cmd.client,
                        user_id=cmd.user_id,
                        session_id=cmd.session_id,
                    )
                )
            await self._uow.commit()
