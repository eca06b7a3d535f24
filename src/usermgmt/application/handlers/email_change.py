"""Moving an account to another address: asked for with the password, done only from the new mailbox."""

from __future__ import annotations

from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event
from usermgmt.application.email import Postman, Template, notice_context
from usermgmt.application.errors import (
    ConcurrentUpdate,
    EmailTaken,
    InvalidAccessToken,
    InvalidEmailToken,
    InvalidPassword,
    RateLimited,
    ServiceUnavailable,
)
from usermgmt.application.handlers._shared import confirm_password, load_user
from usermgmt.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgmt.domain.errors import DomainError, InvalidEmail, UserInactive
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import Email, EmailTokenPurpose


class RequestEmailChangeHandler:
    """Ask to move the signed-in account to a new address, proving the current password first (as a password change
    does). Nothing about the account's address changes yet: the new address waits in ``pending_email``, a
    ``confirm_email_change`` link goes to it, and the current address gets the ``email_change_requested`` notice at
    once. A newer request replaces an older one, whose link dies.

    Limited per user (``email_changes_per_user``, with 429): each request is also a probe of whether another account
    holds the address.
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        InvalidEmail,
        InvalidPassword,
        EmailTaken,
        ConcurrentUpdate,
        UserInactive,
        InvalidAccessToken,
        ServiceUnavailable,
    )

    def __init__(self, uow: UnitOfWork, hasher: PasswordHasher, clock: Clock, guard: Guard, postman: Postman) -> None:
        self._uow, self._hasher, self._clock, self._guard, self._postman = uow, hasher, clock, guard, postman

    async def __call__(self, cmd: commands.RequestEmailChange) -> User:
        """Return the account, its new address pending.

        Raises: RateLimited, InvalidEmail (malformed, or the current address), InvalidPassword, EmailTaken (another
        account has it), ConcurrentUpdate (the password changed meanwhile), UserInactive."""
        await self._guard.hit_per_user(RateRule.EMAIL_CHANGES_PER_USER, cmd.user_id, cmd.client)
        new_email = Email(cmd.new_email)
        checked = await confirm_password(
            self._uow,
            self._hasher,
            self._clock,
            user_id=cmd.user_id,
            password=cmd.password,
            client=cmd.client,
            purpose="email_change",
            session_id=cmd.session_id,
        )
        async with self._uow:
            user = await load_user(self._uow, cmd.user_id, for_update=True)
            if user.password_hash != checked.password_hash:  # changed since we verified it
                raise ConcurrentUpdate()
            now = self._clock.now()
            user.request_email_change(new_email, now=now)
            if await self._uow.users.get_by_email(new_email) is not None:
                raise EmailTaken()  # the confirmation checks again: the unique constraint decides in the end
            await self._uow.users.update(user)
            await self._uow.email_tokens.delete_for_user(user.id, EmailTokenPurpose.CHANGE_EMAIL)
            await self._postman.send_link(
                self._uow,
                user_id=user.id,
                to=new_email,
                purpose=EmailTokenPurpose.CHANGE_EMAIL,
                template=Template.CONFIRM_EMAIL_CHANGE,
                now=now,
                new_email=new_email.value,
            )
            await self._postman.send(
                self._uow,
                to=user.email,
                template=Template.EMAIL_CHANGE_REQUESTED,
                now=now,
                user_id=user.id,
                new_email=new_email.value,
                **notice_context(cmd.client, now),
            )
            await self._uow.record(
                security_event(
                    EventType.EMAIL_CHANGE_REQUESTED,
                    at=now,
                    client=cmd.client,
                    user_id=user.id,
                    session_id=cmd.session_id,
                )
            )
            await self._uow.commit()
        return user


class ConfirmEmailChangeHandler:
    """Follow the link sent to the new address: it becomes the account's address, verified; nothing is pending any
    more; every outstanding reset and verification link (sent to the old address) dies; the old address gets the
    ``email_changed`` notice. Sessions stay.

    Two accounts never end up with one address: if another account took it meanwhile, the unique constraint refuses
    the change (409 ``email_taken``, under concurrency too), nothing changes, and the link stays usable. As for a
    verification, the token is looked at in a rolled-back transaction first, then the user is locked before the
    token is taken.
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidEmailToken, EmailTaken, ServiceUnavailable)

    def __init__(self, uow: UnitOfWork, clock: Clock, postman: Postman) -> None:
        self._uow, self._clock, self._postman = uow, clock, postman

    async def __call__(self, cmd: commands.ConfirmEmailChange) -> None:
        """Raises: InvalidEmailToken (unknown, expired, used or other-purpose link, one replaced by a newer request,
        or an account that may not sign in: one answer), EmailTaken."""
        async with self._uow:  # a look only: leaving without commit puts the token back
            looked = await self._postman.redeem(self._uow, cmd.token, EmailTokenPurpose.CHANGE_EMAIL, self._clock.now())
        async with self._uow:
            user = await self._uow.users.get(looked.user_id, for_update=True)
            now = self._clock.now()
            token = await self._postman.redeem(self._uow, cmd.token, EmailTokenPurpose.CHANGE_EMAIL, now)
            if user is None or token.user_id != user.id or not user.is_active:
                raise InvalidEmailToken()
            old_email = user.email
            if not user.confirm_email_change(token.email, now=now):
                raise InvalidEmailToken()
            await self._uow.users.update(user)  # raises EmailTaken: the unique constraint on the address
            await self._uow.email_tokens.delete_for_user(user.id)  # links sent to the old address prove nothing now
            await self._uow.record(security_event(EventType.EMAIL_CHANGED, at=now, client=cmd.client, user_id=user.id))
            await self._postman.send(
                self._uow,
                to=old_email,
                template=Template.EMAIL_CHANGED,
                now=now,
                user_id=user.id,
                new_email=user.email.value,
                **notice_context(cmd.client, now),
            )
            await self._uow.commit()
