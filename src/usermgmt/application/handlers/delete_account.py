from __future__ import annotations

from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event
from usermgmt.application.email import Postman, Template, notice_context
from usermgmt.application.errors import (
    InvalidAccessToken,
    InvalidPassword,
    LastAdmin,
    RateLimited,
    ServiceUnavailable,
)
from usermgmt.application.handlers._shared import confirm_password
from usermgmt.application.handlers.admin import ensure_admin_remains
from usermgmt.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgmt.application.results import DeletionReceipt, Erased
from usermgmt.domain.errors import DomainError
from usermgmt.domain.events import EventType


class DeleteAccountHandler:
    """Erase the account and every row that names it, in one transaction, after proving the password.

    The account's own security history goes too, with its messages still queued; what stays is an anonymous count
    of deletions, the ``account_deleted`` line in the operator's log, and the ``account_deleted`` notice to the
    address the account had, queued after the erasure and tied to no account (so that it survives it).
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        InvalidPassword,
        InvalidAccessToken,
        LastAdmin,
        ServiceUnavailable,
    )

    def __init__(self, uow: UnitOfWork, hasher: PasswordHasher, clock: Clock, guard: Guard, postman: Postman) -> None:
        self._uow, self._hasher, self._clock, self._guard, self._postman = uow, hasher, clock, guard, postman

    async def __call__(self, cmd: commands.DeleteAccount) -> DeletionReceipt:
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
        async with self._uow:
            current = await self._uow.users.get(cmd.user_id, for_update=True)  # its address now, not when checked
            if current is not None:
                await ensure_admin_remains(self._uow, current)  # the last administrator hands over first
            counts = await self._uow.users.erase(cmd.user_id)
            await self._uow.record(
                security_event(EventType.ACCOUNT_DELETED, at=now, client=cmd.client, user_id=cmd.user_id)
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
