"""The account's email address: proving it (verification) and changing it (only once the new mailbox proves it).

A verification link goes out at registration, on request, and (with ``require_verified_email``) when an unverified
account signs in. An address change needs the current password, leaves the address as it is until the link sent to
the new address is followed, and tells the old address both when it is asked for and when it is done: a stolen
access token alone cannot move the account to another mailbox.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar, Final

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event
from usermgmt.application.commands import ClientInfo
from usermgmt.application.email import Postman, Template, notice_context
from usermgmt.application.errors import (
    ConcurrentUpdate,
    EmailAlreadyVerified,
    EmailTaken,
    InvalidAccessToken,
    InvalidEmailToken,
    InvalidPassword,
    RateLimited,
    ReauthenticationRequired,
    ServiceUnavailable,
)
from usermgmt.application.handlers._shared import confirm_password, load_user
from usermgmt.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgmt.domain.errors import DomainError, InvalidEmail, SameEmail, UserInactive
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import Email, EmailTokenPurpose

# A sign-in refused for an unverified address sends a fresh link at most this often (the user has no other way to
# ask for one, and a script must not turn the login into a mail cannon).
SIGN_IN_VERIFICATION_INTERVAL: Final = timedelta(minutes=15)


async def send_verification(
    uow: UnitOfWork, postman: Postman, user: User, client: ClientInfo, now: datetime, *, reason: str
) -> None:
    """Inside ``uow``: kill the user's older verification links, queue a fresh one to their address, and record
    ``email_verification_sent`` (``reason``: registration, requested, sign_in)."""
    await uow.email_tokens.delete_for_user(user.id, EmailTokenPurpose.VERIFY)
    await postman.send_link(
        uow,
        user_id=user.id,
        to=user.email,
        purpose=EmailTokenPurpose.VERIFY,
        template=Template.VERIFY_EMAIL,
        now=now,
    )
    await uow.record(
        security_event(EventType.EMAIL_VERIFICATION_SENT, at=now, client=client, user_id=user.id, reason=reason)
    )


async def send_verification_on_sign_in(
    uow: UnitOfWork, postman: Postman, user: User, client: ClientInfo, now: datetime
) -> bool:
    """For a sign-in refused because the address is unverified: a fresh link, unless one went out in the last
    ``SIGN_IN_VERIFICATION_INTERVAL``. Return whether one was queued."""
    latest = await uow.email_tokens.latest_for_user(user.id, EmailTokenPurpose.VERIFY)
    if latest is not None and now - latest.created_at < SIGN_IN_VERIFICATION_INTERVAL:
        return False
    await send_verification(uow, postman, user, client, now, reason="sign_in")
    return True


class VerifyEmailHandler:
    """Follow a verification link: the address it went to, if it is still the account's, is verified. Every other
    verification link of the account dies with it.

    Lock order: the token is looked at first in a transaction that is rolled back (to learn whose it is); then one
    transaction locks the user's row *before* it takes the token, as every writer of the account does (a resend, a
    reset, a change request lock the row, then delete links). Taking the token first would hold its row while
    waiting for the user's, and a writer holding the user's row and deleting that link would wait for this one: a
    deadlock on PostgreSQL."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidEmailToken, ServiceUnavailable)

    def __init__(self, uow: UnitOfWork, clock: Clock, postman: Postman) -> None:
        self._uow, self._clock, self._postman = uow, clock, postman

    async def __call__(self, cmd: commands.VerifyEmail) -> None:
        """Raises: InvalidEmailToken (unknown, expired, used, other purpose, an address the account no longer has,
        or an account that may not sign in: one answer)."""
        async with self._uow:  # a look only: leaving without commit puts the token back
            looked = await self._postman.redeem(self._uow, cmd.token, EmailTokenPurpose.VERIFY, self._clock.now())
        async with self._uow:
            user = await self._uow.users.get(looked.user_id, for_update=True)
            now = self._clock.now()
            token = await self._postman.redeem(self._uow, cmd.token, EmailTokenPurpose.VERIFY, now)
            if (
                user is None
                or token.user_id != user.id
                or not user.is_active
                or not user.verify_email(token.email, now=now)
            ):
                raise InvalidEmailToken()
            await self._uow.users.update(user)
            await self._uow.email_tokens.delete_for_user(user.id, EmailTokenPurpose.VERIFY)
            await self._uow.record(security_event(EventType.EMAIL_VERIFIED, at=now, client=cmd.client, user_id=user.id))
            await self._uow.commit()


class ResendVerificationHandler:
    """A fresh verification link to the caller's address; the older ones die."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        EmailAlreadyVerified,
        UserInactive,
        InvalidAccessToken,
        ServiceUnavailable,
    )

    def __init__(self, uow: UnitOfWork, clock: Clock, guard: Guard, postman: Postman) -> None:
        self._uow, self._clock, self._guard, self._postman = uow, clock, guard, postman

    async def __call__(self, cmd: commands.ResendVerification) -> None:
        """Raises: RateLimited, EmailAlreadyVerified."""
        async with self._uow:  # an early answer that spends no rate budget on a verified address
            if (await load_user(self._uow, cmd.user_id)).email_verified:
                raise EmailAlreadyVerified()
        await self._guard.hit_per_user(RateRule.VERIFICATION_EMAILS_PER_USER, cmd.user_id, cmd.client)
        async with self._uow:
            user = await load_user(self._uow, cmd.user_id, for_update=True)
            user.ensure_active()
            if user.email_verified:
                raise EmailAlreadyVerified()
            await send_verification(self._uow, self._postman, user, cmd.client, self._clock.now(), reason="requested")
            await self._uow.commit()


class RequestEmailChangeHandler:
    """Ask to move the account to another address, proving the current password. The address stays as it is; a
    link goes to the new address and a notice to the current one. A newer request replaces an older one."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        InvalidEmail,
        SameEmail,
        InvalidPassword,
        ReauthenticationRequired,
        EmailTaken,
        ConcurrentUpdate,
        UserInactive,
        InvalidAccessToken,
        ServiceUnavailable,
    )

    def __init__(self, uow: UnitOfWork, hasher: PasswordHasher, clock: Clock, guard: Guard, postman: Postman) -> None:
        self._uow, self._hasher, self._clock, self._guard, self._postman = uow, hasher, clock, guard, postman

    async def __call__(self, cmd: commands.RequestEmailChange) -> None:
        """Raises: RateLimited, InvalidEmail, SameEmail, InvalidPassword, EmailTaken, ConcurrentUpdate."""
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
            holder = await self._uow.users.get_by_email(new_email)
            if holder is not None and holder.id != user.id:
                raise EmailTaken()
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
                    new_email=new_email.value,
                )
            )
            await self._uow.commit()


class ConfirmEmailChangeHandler:
    """Follow the link sent to the new address: the account moves to it, verified; the old address is told; every
    outstanding reset, verification and change link dies (they were sent to, or about, the old address).

    Lock order as for a verification: a rolled-back look at the token, then the user's row, then the token."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidEmailToken, EmailTaken, ServiceUnavailable)

    def __init__(self, uow: UnitOfWork, clock: Clock, postman: Postman) -> None:
        self._uow, self._clock, self._postman = uow, clock, postman

    async def __call__(self, cmd: commands.ConfirmEmailChange) -> None:
        """Raises: InvalidEmailToken (unknown, expired, used, other purpose, superseded by a newer request, or an
        account that may not sign in: one answer), EmailTaken (another account took the address meanwhile)."""
        async with self._uow:  # a look only: leaving without commit puts the token back
            looked = await self._postman.redeem(self._uow, cmd.token, EmailTokenPurpose.CHANGE_EMAIL, self._clock.now())
        async with self._uow:
            user = await self._uow.users.get(looked.user_id, for_update=True)
            now = self._clock.now()
            token = await self._postman.redeem(self._uow, cmd.token, EmailTokenPurpose.CHANGE_EMAIL, now)
            if (
                user is None
                or token.user_id != user.id
                or not user.is_active
                or user.pending_email is None
                or user.pending_email.canonical != token.email.canonical
            ):
                raise InvalidEmailToken()
            old = user.change_email(token.email, now=now)
            await self._uow.users.update(user)  # the unique address constraint decides a race: EmailTaken
            await self._uow.email_tokens.delete_for_user(user.id)
            await self._postman.send(
                self._uow,
                to=old,
                template=Template.EMAIL_CHANGED,
                now=now,
                user_id=user.id,
                new_email=user.email.value,
                **notice_context(cmd.client, now),
            )
            await self._uow.record(
                security_event(
                    EventType.EMAIL_CHANGED,
                    at=now,
                    client=cmd.client,
                    user_id=user.id,
                    old_email=old.value,
                    new_email=user.email.value,
                )
            )
            await self._uow.commit()
