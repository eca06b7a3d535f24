"""Proving that an account's address is its owner's: the verification link, sent at registration, on request, and
at a sign-in refused for an unverified address; and following it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar, Final

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event
from usermgmt.application.email import Postman, Template
from usermgmt.application.errors import (
    EmailAlreadyVerified,
    InvalidAccessToken,
    InvalidEmailToken,
    RateLimited,
    ServiceUnavailable,
)
from usermgmt.application.handlers._shared import load_user
from usermgmt.application.ports import Clock, UnitOfWork
from usermgmt.domain.errors import DomainError, UserInactive
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import EmailTokenPurpose

# A sign-in refused for an unverified address sends a fresh link, but no more often than this: whoever knows the
# password cannot turn the login route into a way of flooding the mailbox.
REMIND_EVERY: Final = timedelta(minutes=15)


class EmailVerification:
    """Sends verification links (``verify_email``, valid ``EmailPolicy.token_ttl``) to an account's current address,
    in the caller's unit of work, each recorded as ``email_verification_sent``. A fresh link kills the older ones.

    ``required`` is ``USERMGMT_REQUIRE_VERIFIED_EMAIL``: a sign-in needs a verified address (``SessionIssuer``
    applies it to every first factor).
    """

    def __init__(self, postman: Postman, *, required: bool = False) -> None:
        self._postman, self.required = postman, required

    async def send(
        self, uow: UnitOfWork, user: User, client: commands.ClientInfo, now: datetime, *, replacing: bool = True
    ) -> None:
        """Queue a fresh link to ``user``'s address; with ``replacing`` (unless the account is new and has none),
        the links sent before die."""
        if replacing:
            await uow.email_tokens.delete_for_user(user.id, EmailTokenPurpose.VERIFY)
        await self._postman.send_link(
            uow,
            user_id=user.id,
            to=user.email,
            purpose=EmailTokenPurpose.VERIFY,
            template=Template.VERIFY_EMAIL,
            now=now,
        )
        await uow.record(security_event(EventType.EMAIL_VERIFICATION_SENT, at=now, client=client, user_id=user.id))

    async def remind(self, uow: UnitOfWork, user: User, client: commands.ClientInfo, now: datetime) -> bool:
        """At a sign-in refused for an unverified address (the one way such a user can ask): send a fresh link,
        unless the latest went out less than ``REMIND_EVERY`` ago. Return whether one was queued."""
        latest = await uow.email_tokens.latest_for_user(user.id, EmailTokenPurpose.VERIFY)
        if latest is not None and now - latest.created_at < REMIND_EVERY:
            return False
        await self.send(uow, user, client, now)
        return True


class VerifyEmailHandler:
    """Follow a verification link: the address it went to is verified, if it is still the account's.

    The token is looked at first in a transaction that is rolled back (to learn whose it is); then one transaction
    locks the user first (as every writer of the account does, so that none of them deadlocks with this one), takes
    the token (single use) and marks the address verified. The account's other verification links die with it.
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidEmailToken, ServiceUnavailable)

    def __init__(self, uow: UnitOfWork, clock: Clock, postman: Postman) -> None:
        self._uow, self._clock, self._postman = uow, clock, postman

    async def __call__(self, cmd: commands.VerifyEmail) -> None:
        """Raises: InvalidEmailToken (unknown, expired, used or other-purpose link, a link to an address the account
        no longer has, or an account that may not sign in: one answer)."""
        async with self._uow:  # a look only: leaving without commit puts the token back
            looked = await self._postman.redeem(self._uow, cmd.token, EmailTokenPurpose.VERIFY, self._clock.now())
        async with self._uow:
            user = await self._uow.users.get(looked.user_id, for_update=True)
            now = self._clock.now()
            token = await self._postman.redeem(self._uow, cmd.token, EmailTokenPurpose.VERIFY, now)
            if user is None or token.user_id != user.id or not user.is_active:
                raise InvalidEmailToken()
            already = user.email_verified
            if not user.verify_email(token.email, now=now):
                raise InvalidEmailToken()  # sent to an address the account had before an email change
            await self._uow.email_tokens.delete_for_user(user.id, EmailTokenPurpose.VERIFY)
            if not already:
                await self._uow.users.update(user)
                await self._uow.record(
                    security_event(EventType.EMAIL_VERIFIED, at=now, client=cmd.client, user_id=user.id)
                )
            await self._uow.commit()


class ResendVerificationHandler:
    """Send the signed-in user a fresh verification link (the older ones die). Limited per user
    (``verification_emails_per_user``, with 429)."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        EmailAlreadyVerified,
        UserInactive,
        InvalidAccessToken,
        ServiceUnavailable,
    )

    def __init__(self, uow: UnitOfWork, clock: Clock, guard: Guard, verification: EmailVerification) -> None:
        self._uow, self._clock, self._guard, self._verification = uow, clock, guard, verification

    async def __call__(self, cmd: commands.ResendVerification) -> None:
        """Raises: RateLimited, EmailAlreadyVerified, UserInactive."""
        await self._guard.hit_per_user(RateRule.VERIFICATION_EMAILS_PER_USER, cmd.user_id, cmd.client)
        async with self._uow:
            user = await load_user(self._uow, cmd.user_id, for_update=True)  # two requests at once: one link lives
            user.ensure_active()
            if user.email_verified:
                raise EmailAlreadyVerified()
            await self._verification.send(self._uow, user, cmd.client, self._clock.now())
            await self._uow.commit()
