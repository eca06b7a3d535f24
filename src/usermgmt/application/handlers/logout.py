from __future__ import annotations

from usermgmt.application import commands
from usermgmt.application.ports import UnitOfWork


class LogoutHandler:
    """End the caller's session: its refresh token and its access tokens stop working."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def __call__(self, cmd: commands.Logout) -> None:
        async with self._uow:
            await self._uow.sessions.delete(cmd.session_id, user_id=cmd.user_id)
            await self._uow.commit()
