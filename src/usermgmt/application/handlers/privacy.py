"""Privacy: a user takes their data with them (export), and undoes a deletion within its grace period (restore)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event
from usermgmt.application.email import Postman
from usermgmt.application.errors import (
    InvalidAccessToken,
    InvalidEmailToken,
    InvalidPassword,
    RateLimited,
    ReauthenticationRequired,
    RecentSignInRequired,
    ServiceUnavailable,
)
from usermgmt.application.handlers._shared import confirm_password, load_user
from usermgmt.application.handlers.mfa import mfa_status
from usermgmt.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgmt.application.results import DataExport
from usermgmt.domain.errors import DomainError
from usermgmt.domain.events import EventType, StoredEvent
from usermgmt.domain.value_objects import EmailTokenPurpose, UserId

EXPORT_PAGE = 1000


class ExportDataHandler:
    """Everything the service holds about the caller, as one document (GDPR Art. 15 and 20): the profile, roles,
    two-factor status (never a secret or a code), every session (never a token or its hash) and the whole
    security history.

    It needs proof that the owner is at the keyboard: either a sign-in of the calling session within the last
    ``RECENT`` (10 minutes), or the password (the POST variant). Limited to ``data_exports_per_user`` (3 an hour);
    recorded as ``data_exported``.
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RecentSignInRequired,
        RateLimited,
        InvalidPassword,
        ReauthenticationRequired,
        InvalidAccessToken,
        ServiceUnavailable,
    )
    RECENT = timedelta(minutes=10)

    def __init__(self, uow: UnitOfWork, hasher: PasswordHasher, clock: Clock, guard: Guard) -> None:
        self._uow, self._hasher, self._clock, self._guard = uow, hasher, clock, guard

    async def __call__(self, cmd: commands.ExportData) -> DataExport:
        """Raises: RecentSignInRequired (no password, and the session signed in over 10 minutes ago),
        RateLimited, InvalidPassword."""
        if cmd.password is None:
            async with self._uow:
                session = await self._uow.sessions.get(cmd.session_id)
            if session is None or session.user_id != cmd.user_id:
                raise InvalidAccessToken()
            if self._clock.now() - session.authenticated_at > self.RECENT:
                raise RecentSignInRequired(max_age=int(self.RECENT.total_seconds()))
        await self._guard.hit_per_user(RateRule.DATA_EXPORTS_PER_USER, cmd.user_id, cmd.client)
        if cmd.password is not None:
            await confirm_password(
                self._uow,
                self._hasher,
                self._clock,
                user_id=cmd.user_id,
                password=cmd.password,
                client=cmd.client,
                purpose="data_export",
                session_id=cmd.session_id,
            )
        now = self._clock.now()
        async with self._uow:
            user = await load_user(self._uow, cmd.user_id)
            await self._uow.record(
                security_event(
                    EventType.DATA_EXPORTED,
                    at=now,
                    client=cmd.client,
                    user_id=user.id,
                    session_id=cmd.session_id,
                    method="password" if cmd.password is not None else "recent_sign_in",
                )
            )
            sessions = [s for s in await self._uow.sessions.list_for_user(user.id) if not s.is_expired(now)]
            events = await _all_events(self._uow, user.id)
            mfa = await mfa_status(self._uow, user.id)
            roles = await self._uow.roles.roles_of(user.id)
            identities = await self._uow.identities.list_for_user(user.id)
            await self._uow.commit()
        return DataExport(
            exported_at=now,
            user=user,
            roles=roles,
            mfa=mfa,
            sessions=sessions,
            events=events,
            identities=identities,
        )


async def _all_events(uow: UnitOfWork, user_id: UserId) -> list[StoredEvent]:
    """The user's whole history, newest first, read a page at a time."""
    found: list[StoredEvent] = []
    before: int | None = None
    while True:
        page = await uow.events.list_for_user(user_id, limit=EXPORT_PAGE, before=before)
        found += page
        if len(page) < EXPORT_PAGE:
            return found
        before = page[-1].id


class RestoreAccountHandler:
    """Undo a deletion within its grace period, with the link the deletion sent: the account is active again and
    the erasure is called off. Nobody is signed in: the user logs in again (every session ended at the deletion)."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidEmailToken, ServiceUnavailable)

    def __init__(self, uow: UnitOfWork, clock: Clock, postman: Postman) -> None:
        self._uow, self._clock, self._postman = uow, clock, postman

    async def __call__(self, cmd: commands.RestoreAccount) -> None:
        """Raises: InvalidEmailToken (unknown, used, expired, of another kind, or an account no longer waiting
        for its erasure: one answer)."""
        now = self._clock.now()
        async with self._uow:
            token = await self._postman.redeem(self._uow, cmd.token, EmailTokenPurpose.RESTORE, now)
            user = await self._uow.users.get(token.user_id, for_update=True)
            if user is None or not user.restore(now=now):
                raise InvalidEmailToken()
            await self._uow.users.update(user)
            await self._uow.record(
                security_event(EventType.ACCOUNT_RESTORED, at=now, client=cmd.client, user_id=user.id)
            )
            await self._uow.commit()
