"""The second half of every sign-in: one place that starts a session and builds token pairs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from usermgmt.application.audit import security_event, sign_in_duration
from usermgmt.application.commands import ClientInfo
from usermgmt.application.devices import KnownDevices
from usermgmt.application.email import Postman
from usermgmt.application.errors import EmailNotVerified, InvalidCredentials
from usermgmt.application.handlers.email_address import send_verification_on_sign_in
from usermgmt.application.ports import (
    AccessTokenService,
    Clock,
    FurtherStep,
    IdGenerator,
    PasswordCheck,
    ProvenFactor,
    RefreshTokenFactory,
    SecondFactorPolicy,
    UnitOfWork,
)
from usermgmt.application.results import FurtherStepRequired, SignedIn, SignInResult, TokenPair
from usermgmt.domain.errors import AccountPendingDeletion, DomainError, UserInactive
from usermgmt.domain.events import EventType
from usermgmt.domain.model import Session, User


class NoSecondFactor:
    """The policy while no account can enrol a second factor: a first factor is enough."""

    async def further_step(
        self, uow: UnitOfWork, user: User, factor: ProvenFactor, now: datetime
    ) -> FurtherStep | None:
        return None


class SessionIssuer:
    """Finish a sign-in: re-read and lock the user, check they may sign in, write the session and its event in one
    transaction, and build the token pair. Refresh builds its pairs here too.

    The user's row stays locked until the session is committed, so a password change (which writes that row and
    then ends every other session) either sees the new session and ends it, or makes this sign-in fail.

    With ``devices``, the same transaction remembers the device signed in from and queues the ``new_device``
    notice for one not seen lately, so every first factor gets it.
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        InvalidCredentials,
        UserInactive,
        AccountPendingDeletion,
        EmailNotVerified,
    )

    def __init__(
        self,
        uow: UnitOfWork,
        access_tokens: AccessTokenService,
        refresh_tokens: RefreshTokenFactory,
        clock: Clock,
        ids: IdGenerator,
        session_lifetime: timedelta,
        second_factors: SecondFactorPolicy | None = None,
        devices: KnownDevices | None = None,
        postman: Postman | None = None,
    ) -> None:
        self._uow, self._access, self._refresh, self._clock = uow, access_tokens, refresh_tokens, clock
        self._ids, self._lifetime, self._devices = ids, session_lifetime, devices
        self._second_factors: SecondFactorPolicy = second_factors or NoSecondFactor()
        self._postman = postman  # with its policy's require_verified_email, an unverified address may not sign in

    async def sign_in(self, factor: ProvenFactor, client: ClientInfo) -> SignInResult:
        """Raises: InvalidCredentials (the account vanished or its password changed meanwhile), UserInactive,
        EmailNotVerified (``require_verified_email`` and an unverified address: a fresh verification link goes out,
        at most one per 15 minutes, since such a user has no other way to ask for one)."""
        amr = factor.amr
        refresh_token = self._refresh.generate()
        async with self._uow:
            user = await self._uow.users.get(factor.user_id, for_update=True)
            if user is None:
                raise InvalidCredentials()
            now = self._clock.now()
            check = factor.password
            if check is not None and check.changed_at is not None and user.password_changed_at != check.changed_at:
                await self._refuse(user, client, factor, reason="password_changed")
                raise InvalidCredentials()
            try:
                user.ensure_active()
            except AccountPendingDeletion:
                await self._refuse(user, client, factor, reason="pending_deletion")
                raise
            except UserInactive:
                await self._refuse(user, client, factor, reason="account_disabled")
                raise
            postman = self._postman
            if postman is not None and postman.policy.require_verified_email and not user.email_verified:
                await send_verification_on_sign_in(self._uow, postman, user, client, now)
                await self._refuse(user, client, factor, reason="email_not_verified")  # commits the link too
                raise EmailNotVerified()
            if check is not None and check.upgraded_hash is not None and user.password_hash == check.verified_hash:
                user.rehash_password(check.upgraded_hash)  # unless another sign-in upgraded it meanwhile
                await self._uow.users.update(user)
            step = await self._second_factors.further_step(self._uow, user, factor, now)
            if step is not None:
                await self._uow.commit()
                return FurtherStepRequired(
                    user_id=user.id, amr=amr, methods=step.methods, token=step.token, expires_in=step.expires_in
                )
            session = Session.start(
                id=self._ids.new_session_id(),
                user_id=user.id,
                refresh_token_hash=self._refresh.digest(refresh_token),
                amr=amr,
                now=now,
                lifetime=self._lifetime,
                user_agent=client.user_agent,
                ip=client.ip,
                provider=factor.provider,
            )
            await self._uow.sessions.add(session)
            roles = await self._uow.roles.roles_of(user.id)
            await self._uow.record(
                security_event(
                    EventType.LOGIN_SUCCEEDED,
                    at=now,
                    client=client,
                    user_id=user.id,
                    session_id=session.id,
                    amr=list(session.amr),
                    **_provider_of(factor),
                    **sign_in_duration(factor.started),
                )
            )
            if self._devices is not None:
                await self._devices.signed_in(self._uow, user_id=user.id, email=user.email, client=client, now=now)
            await self._uow.commit()
        return SignedIn(self.pair(session, refresh_token, roles))

    def pair(self, session: Session, refresh_token: str, roles: Sequence[str] = ()) -> TokenPair:
        """The token pair of ``session``, whose current refresh token is ``refresh_token``; the access token names
        the user's ``roles``."""
        access = self._access.issue(session, roles)
        return TokenPair(
            access_token=access.token,
            expires_in=access.expires_in,
            refresh_token=refresh_token,
            refresh_expires_in=int(self._lifetime.total_seconds()),
            session_id=session.id,
        )

    async def _refuse(self, user: User, client: ClientInfo, factor: ProvenFactor, *, reason: str) -> None:
        """Record a refused sign-in in the open unit of work, and commit that record alone."""
        await self._uow.record(
            security_event(
                EventType.LOGIN_FAILED,
                at=self._clock.now(),
                client=client,
                user_id=user.id,
                reason=reason,
                **_provider_of(factor),
                **sign_in_duration(factor.started),
            )
        )
        await self._uow.commit()


def _provider_of(factor: ProvenFactor) -> dict[str, Any]:
    """The ``provider`` detail of a sign-in's event, for a federated first factor only."""
    return {"provider": factor.provider} if factor.provider else {}


__all__ = ["NoSecondFactor", "PasswordCheck", "ProvenFactor", "SessionIssuer"]
