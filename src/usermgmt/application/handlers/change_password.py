from __future__ import annotations

from usermgmt.application import commands
from usermgmt.application.errors import ConcurrentUpdate
from usermgmt.application.handlers._shared import confirm_password, load_user
from usermgmt.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgmt.domain.password_policy import PasswordPolicy
from usermgmt.domain.value_objects import PlainPassword


class ChangePasswordHandler:
    """Replace the password after proving the current one; every other session of the user ends."""

    def __init__(self, uow: UnitOfWork, hasher: PasswordHasher, policy: PasswordPolicy, clock: Clock) -> None:
        self._uow, self._hasher, self._policy, self._clock = uow, hasher, policy, clock

    async def __call__(self, cmd: commands.ChangePassword) -> int:
        """Return how many other sessions were revoked. Raises: InvalidPassword, WeakPassword, ConcurrentUpdate."""
        user = await confirm_password(self._uow, self._hasher, cmd.user_id, cmd.current_password)
        new_password = PlainPassword(cmd.new_password)
        self._policy.check(new_password, email=user.email, username=user.username)
        new_hash = await self._hasher.hash(new_password)
        async with self._uow:
            current = await load_user(self._uow, cmd.user_id)
            if current.password_hash != user.password_hash:  # changed since we verified it
                raise ConcurrentUpdate()
            current.change_password(new_hash, now=self._clock.now())
            await self._uow.users.update(current)
            revoked = await self._uow.sessions.delete_for_user(cmd.user_id, keep=cmd.session_id)
            await self._uow.commit()
        return revoked
