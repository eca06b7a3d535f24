from __future__ import annotations

from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.audit import security_event
from usermgmt.application.errors import ServiceUnavailable
from usermgmt.application.ports import Clock, UnitOfWork
from usermgmt.domain.errors import DomainError
from usermgmt.domain.events import EventType


class LogoutHandler:
    """End the caller's session: its refresh token and its access tokens stop working."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (ServiceUnavailable,)

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def __call__(self, cmd: commands.Logout) -> None:
        async with self._uow:
            if await self._uow.sessions.delete(cmd.session_id, user_id=cmd.user_id):
                await self._uow.record(
                    security_event(
                        EventType.LOGGED_OUT,
                        at=self._clock.now(),
                        client=cmd.client,
                        user_id=cmd.user_id,
                        session_id=cmd.session_id,
                    )
                )
            await self._uow.commit()
