"""Federated identities: an account's sign-ins at identity providers (Google, Facebook, any OpenID provider), and
the rules that decide which account a provider's user signs in to.

An identity is the pair (provider, subject): the provider's own stable id for its user, never the email address,
which the user can change there and which another provider may assert for someone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NewType, Self
from uuid import UUID

from usermgmt.domain.value_objects import Email, UserId

IdentityId = NewType("IdentityId", UUID)


@dataclass(eq=False, kw_only=True)
class Identity:
    """One provider account joined to one of ours. ``email`` is the address the provider gave last (shown to the
    owner to tell two identities apart; never used to find the account)."""

    id: IdentityId
    user_id: UserId
    provider: str
    subject: str
    email: Email | None
    created_at: datetime
    last_used_at: datetime

    @classmethod
    def link(
        cls, *, id: IdentityId, user_id: UserId, provider: str, subject: str, email: Email | None, now: datetime
    ) -> Self:
        return cls(
            id=id,
            user_id=user_id,
            provider=provider,
            subject=subject,
            email=email,
            created_at=now,
            last_used_at=now,
        )

    def used(self, *, now: datetime, email: Email | None) -> None:
        """A sign-in through it: remember when, and the address the provider gives now."""
        self.last_used_at = now
        if email is not None:
            self.email = email

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


class Resolution(StrEnum):
    """What a sign-in through a provider does, for an identity no account has yet."""

    CREATE = "create"  # no account has the address: a new one, without a password
    LINK = "link"  # an account has it, and both sides have verified it: join the identity to that account
    REFUSE = "account_exists"  # an account has it, unproven on one side: sign in the usual way, link from settings
    NO_EMAIL = "email_required"  # the provider gave no address: nothing to make an account with


def resolve_new_identity(
    *, email: Email | None, provider_verified: bool, account_email_verified: bool | None
) -> Resolution:
    """The linking rule for an unknown identity (docs/security.md, "Signing in through a provider").

    ``account_email_verified`` is the verified flag of the account that has ``email``, None when none has it. An
    existing account is joined only when the provider asserts the address verified **and** the account has proven
    it too: so an attacker who registered the victim's address unverified is never joined to the victim's Google
    identity, and a provider that lets anyone claim any address (Facebook's are not asserted verified) joins none.
    """
    if email is None:
        return Resolution.NO_EMAIL
    if account_email_verified is None:
        return Resolution.CREATE
    if provider_verified and account_email_verified:
        return Resolution.LINK
    return Resolution.REFUSE
