from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import erasure_lag_seconds, security_event
from usermgmt.application.email import Postman, Template, notice_context
from usermgmt.application.errors import (
    InvalidAccessToken,
    InvalidPassword,
    LastAdmin,
    RateLimited,
    ReauthenticationRequired,
    ServiceUnavailable,
)
from usermgmt.application.handlers._shared import confirm_password, load_user
from usermgmt.application.handlers.admin import ensure_admin_remains
from usermgmt.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgmt.application.results import DeletionReceipt, Erased, ErasureScheduled
from usermgmt.domain.errors import DomainError
from usermgmt.domain.events import EventType
from usermgmt.domain.value_objects import EmailTokenPurpose


class DeleteAccountHandler:
    """Erase the account and every row that names it, in one transaction, after proving the password.

    With a ``grace_period`` (``USERMGMT_DELETION_GRACE_PERIOD``), the erasure waits instead: the account is
    disabled and every session ends now, a ``restore-account`` link valid for the grace period goes to the address,
    and the maintenance task erases the account once the period is over (``application/maintenance.py``), as below.

    The account's own security history goes too, with its messages still queued; what stays is an anonymous count
    of deletions, the ``account_deleted`` line in the operator's log, and the ``account_deleted`` notice to the
    address the account had, queued after the erasure and tied to no account (so that it survives it).
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        InvalidPassword,
        ReauthenticationRequired,
        InvalidAccessToken,
        LastAdmin,
        ServiceUnavailable,
    )

    def __init__(
        self,
        uow: UnitOfWork,
        hasher: PasswordHasher,
        clock: Clock,
        guard: Guard,
        postman: Postman,
        grace_period: timedelta = timedelta(0),
    ) -> None:
        self._uow, self._hasher, self._clock, self._guard, self._postman = uow, hasher, clock, guard, postman
        self._grace = grace_period

    async def __call__(self, cmd: commands.DeleteAccount) -> DeletionReceipt | ErasureScheduled:
        """Raises: RateLimited, InvalidPassword, LastAdmin (the last active administrator)."""
        await self._guard.hit_per_user(RateRule.DELETIONS_PER_USER, cmd.user_id, cmd.client)
        await confirm_password(
            self._uow,
            self._hasher,
            self._clock,
            user_id=cmd.user_id,
            password=cmd.password,
            client=cmd.client,
            purpose="account_deletion",
            session_id=cmd.session_id,
        )
        now = self._clock.now()
        if self._grace > timedelta(0):
            return await self._schedule(cmd, now)
        async with self._uow:
            current = await self._uow.users.get(cmd.user_id, for_update=True)  # its address now, not when checked
            if current is not None:
                await ensure_admin_remains(self._uow, current)  # the last administrator hands over first
            counts = await self._uow.users.erase(cmd.user_id)
            await self._uow.record(
                security_event(
                    EventType.ACCOUNT_DELETED,
                    at=now,
                    client=cmd.client,
                    user_id=cmd.user_id,
                    lag_seconds=erasure_lag_seconds(current, now),
                )
            )
            if current is not None:  # else a concurrent deletion erased it, and sent its own notice
                await self._postman.send(
                    self._uow,
                    to=current.email,
                    template=Template.ACCOUNT_DELETED,
                    now=now,
                    user_id=None,
                    deleted_at=now.isoformat(),  # the receipt's
                    **notice_context(cmd.client, now),
                )
            await self._uow.commit()
        return DeletionReceipt(
            user_id=cmd.user_id,
            deleted_at=now,
            erased=tuple(Erased(what=what, count=count) for what, count in counts.items()),
        )

    async def _schedule(self, cmd: commands.DeleteAccount, now: datetime) -> ErasureScheduled:
        erasure_at = now + self._grace
        async with self._uow:
            user = await load_user(self._uow, cmd.user_id, for_update=True)
            await ensure_admin_remains(self._uow, user)
            user.schedule_erasure(now=now, at=erasure_at)
            await self._uow.users.update(user)
            ended = await self._uow.sessions.delete_for_user(user.id)
            await self._uow.mfa.delete_challenges_for_user(user.id)
            await self._uow.email_tokens.delete_for_user(user.id)  # no reset or verification link while it waits
            await self._postman.send_link(
                self._uow,
                user_id=user.id,
                to=user.email,
                purpose=EmailTokenPurpose.RESTORE,
                template=Template.ACCOUNT_DELETION_SCHEDULED,
                now=now,
                erasure_at=erasure_at.isoformat(),
                **notice_context(cmd.client, now),
            )
            await self._uow.record(
                security_event(
                    EventType.ACCOUNT_DELETION_SCHEDULED,
                    at=now,
                    client=cmd.client,
                    user_id=user.id,
                    session_id=cmd.session_id,
                    erasure_at=erasure_at.isoformat(),
                    sessions_ended=ended,
                )
            )
            await self._uow.commit()
        return ErasureScheduled(user_id=user.id, erasure_at=erasure_at)
