"""Email from the use cases' side: one-time tokens, the links that carry them, and the messages queued for them.

A use case never talks to a mail server. It queues an ``OutgoingEmail`` (a template name and its context) in its own
unit of work through ``Postman``; the outbox delivers it after the commit. So a change that rolls back sends nothing,
and a change that commits cannot lose its message.

One-time tokens: 256 bits from ``secrets``, sent only inside the link, stored only as their SHA-256 digest, bound to
one purpose and one user, and single use (``EmailTokenRepository.take``). Every way a token can fail answers
``InvalidEmailToken``, the same for each.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlencode

from usermgmt.application.commands import ClientInfo
from usermgmt.application.errors import InvalidEmailToken
from usermgmt.application.ports import EmailToken, OutgoingEmail, UnitOfWork
from usermgmt.domain.value_objects import Email, EmailTokenPurpose, UserId

TOKEN_BYTES: Final = 32

# Where the frontend receives each kind of link: {FRONTEND_URL}{path}?token=...
LINK_PATHS: Final[Mapping[EmailTokenPurpose, str]] = {
    EmailTokenPurpose.VERIFY: "/verify-email",
    EmailTokenPurpose.RESET: "/reset-password",
    EmailTokenPurpose.CHANGE_EMAIL: "/confirm-email",
    EmailTokenPurpose.RESTORE: "/restore-account",
}


class Template(StrEnum):
    """Every message the service sends. Each is three Jinja2 files in the templates folder: ``<name>.subject.txt``,
    ``<name>.txt`` and ``<name>.html``."""

    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a template name
    CONFIRM_EMAIL_CHANGE = "confirm_email_change"
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a template name
    ACCOUNT_DELETED = "account_deleted"
    NEW_DEVICE = "new_device"
    MFA_ENABLED = "mfa_enabled"
    MFA_DISABLED = "mfa_disabled"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    RECOVERY_CODE_USED = "recovery_code_used"
    ACCOUNT_DELETION_SCHEDULED = "account_deletion_scheduled"
    IDENTITY_LINKED = "identity_linked"
    IDENTITY_UNLINKED = "identity_unlinked"
    TEST = "test_email"


def token_digest(token: str) -> str:
    """What is stored of a one-time token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailPolicy:
    """The email settings the use cases act on."""

    frontend_url: str  # no trailing slash
    token_ttl: timedelta = timedelta(hours=24)  # verification and email change
    password_reset_ttl: timedelta = timedelta(minutes=30)
    require_verified_email: bool = False
    notify_new_device: bool = True
    deletion_grace_period: timedelta = timedelta(0)  # a restore link lives as long as the grace period

    def ttl(self, purpose: EmailTokenPurpose) -> timedelta:
        if purpose is EmailTokenPurpose.RESTORE:
            return self.deletion_grace_period
        return self.password_reset_ttl if purpose is EmailTokenPurpose.RESET else self.token_ttl

    def link(self, purpose: EmailTokenPurpose, token: str) -> str:
        return f"{self.frontend_url}{LINK_PATHS[purpose]}?{urlencode({'token': token})}"


def notice_context(client: ClientInfo, at: datetime) -> dict[str, Any]:
    """What every security notice tells: when, from which IP and which device (user agent)."""
    return {"at": at.isoformat(timespec="seconds"), "ip": client.ip, "user_agent": client.user_agent}


class Postman:
    """Queues the messages of a use case in its unit of work, and issues and redeems the one-time tokens."""

    def __init__(self, policy: EmailPolicy) -> None:
        self.policy = policy

    async def send(
        self,
        uow: UnitOfWork,
        *,
        to: Email,
        template: Template,
        now: datetime,
        user_id: UserId | None,
        **context: Any,
    ) -> None:
        """Queue ``template`` for ``to`` with this unit of work. ``user_id`` ties a still-queued message to the
        account it is about, so that an erasure takes it along; None for a message that must outlive the account."""
        await uow.outbox.add(
            OutgoingEmail(to=to.value, template=template.value, context=context, user_id=user_id), now=now
        )

    async def send_link(
        self,
        uow: UnitOfWork,
        *,
        user_id: UserId,
        to: Email,
        purpose: EmailTokenPurpose,
        template: Template,
        now: datetime,
        **context: Any,
    ) -> None:
        """Issue a fresh one-time token of ``purpose`` for ``user_id`` and queue ``template`` to ``to`` with its
        link (context ``link``, and ``expires_at``)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        expires_at = now + self.policy.ttl(purpose)
        await uow.email_tokens.add(
            EmailToken(
                digest=token_digest(token),
                user_id=user_id,
                purpose=purpose,
                email=to,
                created_at=now,
                expires_at=expires_at,
            )
        )
        await self.send(
            uow,
            to=to,
            template=template,
            now=now,
            user_id=user_id,
            link=self.policy.link(purpose, token),
            expires_at=expires_at.isoformat(timespec="seconds"),
            **context,
        )

    async def redeem(self, uow: UnitOfWork, token: str, purpose: EmailTokenPurpose, now: datetime) -> EmailToken:
        """Take the token (it is used up, whatever the caller does next, once the unit of work commits).

        Raises: InvalidEmailToken (unknown, expired, already used, or of another purpose: one answer for all)."""
        if not token or len(token) > 256:
            raise InvalidEmailToken()
        digest = token_digest(token)
        found = await uow.email_tokens.take(digest, purpose)
        if found is None or not hmac.compare_digest(found.digest, digest) or now >= found.expires_at:
            raise InvalidEmailToken()
        return found
