from __future__ import annotations

from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event
from usermgmt.application.email import Postman, Template, notice_context
from usermgmt.application.errors import (
    ConcurrentUpdate,
    InvalidAccessToken,
    InvalidPassword,
    NoPassword,
    RateLimited,
    ServiceUnavailable,
)
from usermgmt.application.handlers._shared import confirm_password, load_user
from usermgmt.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import DomainError, WeakPassword
from usermgmt.domain.events import EventType
from usermgmt.domain.value_objects import EmailTokenPurpose, PlainPassword


class ChangePasswordHandler:
    """Replace the password after proving the current one; every other session of the user ends, every outstanding
    reset link dies, and the account's address gets the ``password_changed`` notice."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        NoPassword,
        InvalidPassword,
        WeakPassword,
        ConcurrentUpdate,
        InvalidAccessToken,
        ServiceUnavailable,
    )

    def __init__(
        self,
        uow: UnitOfWork,
        hasher: PasswordHasher,
        screen: PasswordScreen,
        clock: Clock,
        guard: Guard,
        postman: Postman,
    ) -> None:
        self._uow, self._hasher, self._screen, self._clock, self._guard = uow, hasher, screen, clock, guard
        self._postman = postman

    async def __call__(self, cmd: commands.ChangePassword) -> int:
        """Return how many other sessions were revoked.

        Raises: RateLimited, NoPassword (an account made through a provider), InvalidPassword, WeakPassword,
        ConcurrentUpdate.
        """
        await self._guard.hit_per_user(RateRule.PASSWORD_CHANGES_PER_USER, cmd.user_id, cmd.client)
        async with self._uow:
            if not (await load_user(self._uow, cmd.user_id)).has_password:
                raise NoPassword()  # it is set through the reset email, which proves the mailbox
        user = await confirm_password(
            self._uow,
            self._hasher,
            self._clock,
            user_id=cmd.user_id,
            password=cmd.current_password,
            client=cmd.client,
            purpose="password_change",
            session_id=cmd.session_id,
        )
        new_password = PlainPassword(cmd.new_password)
        await self._screen.check(new_password, email=user.email, username=user.username, full_name=user.full_name)
        new_hash = await self._hasher.hash(new_password)
        async with self._uow:
            # Locked first: a sign-in issuing a session for this user (SessionIssuer holds the row) commits before
            # this reads on, so its session is among those ended below; one that starts later sees the new password.
            current = await load_user(self._uow, cmd.user_id, for_update=True)
            if current.password_hash != user.password_hash:  # changed since we verified it
                raise ConcurrentUpdate()
            now = self._clock.now()
            current.change_password(new_hash, now=now)
            await self._uow.users.update(current)
            revoked = await self._uow.sessions.delete_for_user(cmd.user_id, keep=cmd.session_id)
            # A reset link sent before proves nothing about the new password: it must not undo this change.
            await self._uow.email_tokens.delete_for_user(cmd.user_id, EmailTokenPurpose.RESET)
            await self._uow.record(
                security_event(
                    EventType.PASSWORD_CHANGED,
                    at=now,
                    client=cmd.client,
                    user_id=cmd.user_id,
                    session_id=cmd.session_id,
                    revoked_sessions=revoked,
                )
            )
            await self._postman.send(
                self._uow,
                to=current.email,
                template=Template.PASSWORD_CHANGED,
                now=now,
                user_id=cmd.user_id,
                reset=False,
                **notice_context(cmd.client, now),
            )
            await self._uow.commit()
        return revoked
