from __future__ import annotations

from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event
from usermgmt.application.errors import (
    ConcurrentUpdate,
    InvalidAccessToken,
    RateLimited,
    ServiceUnavailable,
    UsernameTaken,
)
from usermgmt.application.handlers._shared import load_user
from usermgmt.application.ports import Clock, UnitOfWork
from usermgmt.domain.errors import DomainError, InvalidFullName, InvalidUsername, UserInactive
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import FullName, Username


class UpdateProfileHandler:
    """Change username or full name; a username stays unique as at registration. (The email address changes only
    through ``RequestEmailChangeHandler`` and the link it sends.)"""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        UsernameTaken,
        InvalidUsername,
        InvalidFullName,
        ConcurrentUpdate,
        UserInactive,
        InvalidAccessToken,
        ServiceUnavailable,
    )

    def __init__(self, uow: UnitOfWork, clock: Clock, guard: Guard) -> None:
        self._uow, self._clock, self._guard = uow, clock, guard

    async def __call__(self, cmd: commands.UpdateProfile) -> User:
        """Raises: RateLimited, UsernameTaken, InvalidUsername, InvalidFullName, ConcurrentUpdate.

        Limited per user: each change of username is also a probe of whether another account holds it.
        """
        await self._guard.hit_per_user(RateRule.PROFILE_UPDATES_PER_USER, cmd.user_id, cmd.client)
        username = Username(cmd.username) if cmd.username is not None else None
        full_name = FullName(cmd.full_name) if cmd.full_name is not None else None
        async with self._uow:
            user = await load_user(self._uow, cmd.user_id)
            now = self._clock.now()
            changed = user.update_profile(
                now=now,
                username=username,
                full_name=full_name,
                clear_username="username" in cmd.clear,
                clear_full_name="full_name" in cmd.clear,
            )
            if changed:
                await self._uow.users.update(user)
                await self._uow.record(
                    security_event(
                        EventType.PROFILE_UPDATED, at=now, client=cmd.client, user_id=user.id, fields=changed
                    )
                )
                await self._uow.commit()
        return user
