from __future__ import annotations

from usermgmt.application import commands
from usermgmt.application.handlers._shared import confirm_password
from usermgmt.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgmt.application.results import DeletionReceipt, Erased


class DeleteAccountHandler:
    """Erase the account and every row that names it, in one transaction, after proving the password."""

    def __init__(self, uow: UnitOfWork, hasher: PasswordHasher, clock: Clock) -> None:
        self._uow, self._hasher, self._clock = uow, hasher, clock

    async def __call__(self, cmd: commands.DeleteAccount) -> DeletionReceipt:
        """Raises: InvalidPassword."""
        await confirm_password(self._uow, self._hasher, cmd.user_id, cmd.password)
        async with self._uow:
            counts = await self._uow.users.erase(cmd.user_id)
            await self._uow.commit()
        return DeletionReceipt(
            user_id=cmd.user_id,
            deleted_at=self._clock.now(),
            erased=tuple(Erased(what=what, count=count) for what, count in counts.items()),
        )
