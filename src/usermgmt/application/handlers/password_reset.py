"""A forgotten password: a reset link to the account's address, and the new password set through it."""

from __future__ import annotations

from typing import Any, ClassVar

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event
from usermgmt.application.email import Postman, Template, notice_context
from usermgmt.application.errors import InvalidEmailToken, RateLimited, ServiceUnavailable
from usermgmt.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import DomainError, InvalidEmail, WeakPassword
from usermgmt.domain.events import EventType
from usermgmt.domain.value_objects import Email, EmailTokenPurpose, PlainPassword


class ForgotPasswordHandler:
    """Send a reset link to the account that has this address, if there is one that may sign in.

    The caller learns nothing about accounts: the answer is the same whether or not the address has one, and so is
    the work done inline (one read of the users table, one security event, one commit, the same rate-limit hits);
    only a link's token row and its outbox row are added for a known account, no hash is spent for anyone. The
    link goes to the address as the account stores it, never to the spelling that was typed.

    Throttled per client IP (``password_forgot_per_ip``, with 429), and per address (``password_reset_emails_per_
    account``), silently: past that limit the answer stays the same and no email goes out. The per-address limit is
    keyed by the canonical form of the typed address, for every address, so it behaves alike for unknown ones.
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (RateLimited, InvalidEmail, ServiceUnavailable)

    def __init__(self, uow: UnitOfWork, clock: Clock, guard: Guard, postman: Postman) -> None:
        self._uow, self._clock, self._guard, self._postman = uow, clock, guard, postman

    async def __call__(self, cmd: commands.ForgotPassword) -> None:
        """Raises: RateLimited (per client IP), InvalidEmail (a malformed address only)."""
        await self._guard.hit_per_client(RateRule.PASSWORD_FORGOT_PER_IP, cmd.client)
        email = Email(cmd.email)
        within = await self._guard.within(RateRule.PASSWORD_RESET_EMAILS_PER_ACCOUNT, f"email:{email.canonical}")
        async with self._uow:
            user = await self._uow.users.get_by_email(email)
            now = self._clock.now()
            if user is None:
                reason: str | None = "unknown_email"
            elif not user.is_active:
                reason = "account_disabled"
            elif not within:
                reason = "rate_limited"
            else:
                reason = None
                await self._postman.send_link(
                    self._uow,
                    user_id=user.id,
                    to=user.email,
                    purpose=EmailTokenPurpose.RESET,
                    template=Template.RESET_PASSWORD,
                    now=now,
                )
            details: dict[str, Any] = {} if reason is None else {"reason": reason}  # for operators only
            await self._uow.record(
                security_event(
                    EventType.PASSWORD_RESET_REQUESTED,
                    at=now,
                    client=cmd.client,
                    user_id=user.id if user is not None else None,
                    **details,
                )
            )
            await self._uow.commit()


class ResetPasswordHandler:
    """Set a new password through a reset link. The password policy applies as at registration; every session of
    the account ends, every other reset link dies, the address counts as verified, and the ``password_changed``
    notice goes to it. Nobody is signed in: the new password is used at the login, through every further step the
    account requires.

    Order: the token is looked at first in a transaction that is rolled back (a dead link costs no hash and keeps
    nothing), the new password is screened and hashed with no transaction open, and then one transaction locks the
    user (first, as a password change does, so the two never deadlock), takes the token (single use), and applies
    the reset unless the password changed since the look (a change kills the reset links, and a link older than the
    current password must never win).
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidEmailToken, WeakPassword, ServiceUnavailable)

    def __init__(
        self, uow: UnitOfWork, hasher: PasswordHasher, screen: PasswordScreen, clock: Clock, postman: Postman
    ) -> None:
        self._uow, self._hasher, self._screen, self._clock, self._postman = uow, hasher, screen, clock, postman

    async def __call__(self, cmd: commands.ResetPassword) -> None:
        """Raises: InvalidEmailToken (unknown, expired, used or other-purpose link, or an account that may not sign
        in: one answer), WeakPassword."""
        new_password = PlainPassword(cmd.new_password)
        async with self._uow:  # a look only: leaving without commit puts the token back
            token = await self._postman.redeem(self._uow, cmd.token, EmailTokenPurpose.RESET, self._clock.now())
            user = await self._uow.users.get(token.user_id)
        if user is None or not user.is_active:
            raise InvalidEmailToken()
        await self._screen.check(new_password, email=user.email, username=user.username, full_name=user.full_name)
        new_hash = await self._hasher.hash(new_password)
        async with self._uow:
            current = await self._uow.users.get(user.id, for_update=True)
            now = self._clock.now()
            taken = await self._postman.redeem(self._uow, cmd.token, EmailTokenPurpose.RESET, now)
            if (
                current is None
                or not current.is_active
                or taken.user_id != current.id
                or current.password_changed_at != user.password_changed_at  # changed since the look
            ):
                raise InvalidEmailToken()
            current.reset_password(new_hash, now=now, proven=taken.email)
            await self._uow.users.update(current)
            revoked = await self._uow.sessions.delete_for_user(current.id)
            await self._uow.email_tokens.delete_for_user(current.id, EmailTokenPurpose.RESET)
            await self._uow.record(
                security_event(
                    EventType.PASSWORD_RESET, at=now, client=cmd.client, user_id=current.id, revoked_sessions=revoked
                )
            )
            await self._postman.send(
                self._uow,
                to=current.email,
                template=Template.PASSWORD_CHANGED,
                now=now,
                user_id=current.id,
                reset=True,
                **notice_context(cmd.client, now),
            )
            await self._uow.commit()
