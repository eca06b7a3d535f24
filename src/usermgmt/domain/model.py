"""The aggregates: ``User`` (an account) and ``Session`` (one signed-in device). No I/O, no clock: time is passed in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Self

from usermgmt.domain.errors import AccountPendingDeletion, SameEmail, SessionExpired, UserInactive
from usermgmt.domain.value_objects import (
    AuthMethod,
    Email,
    FullName,
    PasswordHash,
    RefreshTokenHash,
    SessionId,
    UserId,
    Username,
)


def ensure_may_authenticate(*, is_active: bool) -> None:
    """The one rule for whether an account may sign in, refresh or call the API: login, refresh and both principal
    readers apply it. Raises: UserInactive."""
    if not is_active:
        raise UserInactive()


@dataclass(eq=False, kw_only=True)
class User:
    """An account. Identity is ``id``; every change goes through a method that keeps the invariants."""

    id: UserId
    email: Email
    username: Username | None
    full_name: FullName | None
    password_hash: PasswordHash | None  # None: an account made by an identity provider, until a reset sets one
    email_verified: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime
    pending_email: Email | None = None  # an address change asked for, until confirmed from the new mailbox
    erasure_at: datetime | None = None  # deleted within a grace period: erased then, unless restored before

    @classmethod
    def register(
        cls,
        *,
        id: UserId,
        email: Email,
        password_hash: PasswordHash,
        now: datetime,
        username: Username | None = None,
        full_name: FullName | None = None,
    ) -> Self:
        return cls(
            id=id,
            email=email,
            username=username,
            full_name=full_name,
            password_hash=password_hash,
            email_verified=False,
            is_active=True,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )

    @classmethod
    def register_federated(
        cls, *, id: UserId, email: Email, email_verified: bool, now: datetime, full_name: FullName | None = None
    ) -> Self:
        """An account made at its first sign-in through an identity provider: no password (the owner sets one
        through the reset email), its address verified only if the provider says so."""
        return cls(
            id=id,
            email=email,
            username=None,
            full_name=full_name,
            password_hash=None,
            email_verified=email_verified,
            is_active=True,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None

    def ensure_active(self) -> None:
        """Raises: AccountPendingDeletion (a deletion within its grace period), UserInactive."""
        if self.erasure_at is not None:
            raise AccountPendingDeletion(erasure_at=self.erasure_at)
        ensure_may_authenticate(is_active=self.is_active)

    def schedule_erasure(self, *, now: datetime, at: datetime) -> None:
        """A deletion with a grace period: sign-in stops now, the erasure comes ``at``, unless ``restore``d first.
        The caller ends the sessions."""
        self.is_active = False
        self.erasure_at = at
        self.updated_at = now

    def erasure_lag(self, now: datetime) -> timedelta:
        """How late an erasure at ``now`` is: the time since ``erasure_at`` was due (nothing when the account was
        not scheduled, or is erased before its time)."""
        if self.erasure_at is None or now <= self.erasure_at:
            return timedelta(0)
        return now - self.erasure_at

    def restore(self, *, now: datetime) -> bool:
        """Call off a scheduled erasure that is still ahead; return whether it was (False: none was scheduled, or
        its time has come)."""
        if self.erasure_at is None or now >= self.erasure_at:
            return False
        self.erasure_at = None
        self.is_active = True
        self.updated_at = now
        return True

    def deactivate(self, *, now: datetime) -> bool:
        """Disable sign-in; return whether anything changed. The caller ends the account's sessions."""
        if not self.is_active:
            return False
        self.is_active = False
        self.updated_at = now
        return True

    def reactivate(self, *, now: datetime) -> bool:
        """Allow sign-in again (an administrator's: it also calls off a scheduled erasure); return whether anything
        changed."""
        if self.is_active and self.erasure_at is None:
            return False
        self.is_active = True
        self.erasure_at = None
        self.updated_at = now
        return True

    def update_profile(
        self,
        *,
        now: datetime,
        username: Username | None = None,
        full_name: FullName | None = None,
        clear_username: bool = False,
        clear_full_name: bool = False,
    ) -> list[str]:
        """Apply the given changes; return the names of the fields that really changed.

        The email address is not among them: it changes only through ``request_email_change`` and
        ``change_email``, once the new mailbox has proven it is the owner's.
        """
        self.ensure_active()
        return self._apply_profile(
            now=now,
            username=username,
            full_name=full_name,
            clear_username=clear_username,
            clear_full_name=clear_full_name,
        )

    def administer(
        self,
        *,
        now: datetime,
        username: Username | None = None,
        full_name: FullName | None = None,
        clear_username: bool = False,
        clear_full_name: bool = False,
        email: Email | None = None,
        email_verified: bool | None = None,
    ) -> tuple[list[str], Email | None]:
        """An administrator's change, also of a disabled account: the profile, and the address without a link
        (the administrator vouches for it: it is set as verified, and any pending change is dropped) or only its
        verified flag. Return the fields that really changed, and the old address when the address changed."""
        changed = self._apply_profile(
            now=now,
            username=username,
            full_name=full_name,
            clear_username=clear_username,
            clear_full_name=clear_full_name,
        )
        old: Email | None = None
        if email is not None and email.value != self.email.value:
            old, self.email, self.pending_email = self.email, email, None
            changed.append("email")
            if not self.email_verified:
                self.email_verified = True
                changed.append("email_verified")
        if email_verified is not None and email_verified != self.email_verified:
            self.email_verified = email_verified
            changed.append("email_verified")
        if changed:
            self.updated_at = now
        return list(dict.fromkeys(changed)), old

    def _apply_profile(
        self,
        *,
        now: datetime,
        username: Username | None,
        full_name: FullName | None,
        clear_username: bool,
        clear_full_name: bool,
    ) -> list[str]:
        changed: list[str] = []
        if clear_username and self.username is not None:
            self.username = None
            changed.append("username")
        elif username is not None and username != self.username:
            self.username = username
            changed.append("username")
        if clear_full_name and self.full_name is not None:
            self.full_name = None
            changed.append("full_name")
        elif full_name is not None and full_name != self.full_name:
            self.full_name = full_name
            changed.append("full_name")
        if changed:
            self.updated_at = now
        return changed

    def change_password(self, new_hash: PasswordHash, *, now: datetime) -> None:
        self.ensure_active()
        self.password_hash = new_hash
        self.password_changed_at = now
        self.updated_at = now

    def reset_password(self, new_hash: PasswordHash, *, now: datetime, proven: Email) -> None:
        """Set a new password through a reset link that went to ``proven``: following it proved that mailbox, so
        the address is verified too, if it is still the account's."""
        self.change_password(new_hash, now=now)
        if proven.canonical == self.email.canonical:
            self.email_verified = True

    def verify_email(self, proven: Email, *, now: datetime) -> bool:
        """The mailbox ``proven`` followed a link sent to it: if that is still the account's address, it is verified.
        Return whether it is (whether or not it was before)."""
        if proven.canonical != self.email.canonical:
            return False
        if not self.email_verified:
            self.email_verified = True
            self.updated_at = now
        return True

    def request_email_change(self, new: Email, *, now: datetime) -> None:
        """Remember ``new`` as the address asked for; the address stays the current one until ``change_email``.
        A newer request replaces an older one. Raises: UserInactive, SameEmail."""
        self.ensure_active()
        if new.canonical == self.email.canonical:
            raise SameEmail()
        self.pending_email = new
        self.updated_at = now

    def change_email(self, new: Email, *, now: datetime) -> Email:
        """Make ``new`` the account's address, verified (its mailbox proved it), and drop the pending request;
        return the old address. Raises: UserInactive."""
        self.ensure_active()
        old = self.email
        self.email = new
        self.email_verified = True
        self.pending_email = None
        self.updated_at = now
        return old

    def rehash_password(self, new_hash: PasswordHash) -> None:
        """Store the same password under newer hashing parameters; not a password change."""
        self.password_hash = new_hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, User) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


@dataclass(eq=False, kw_only=True)
class Session:
    """One signed-in device: it holds the current refresh token (as a hash) and dies with logout or expiry.

    It remembers how it began: ``authenticated_at`` and the methods used (``amr``), carried into every access token
    it issues, refreshed ones included.
    """

    id: SessionId
    user_id: UserId
    refresh_token_hash: RefreshTokenHash
    authenticated_at: datetime
    amr: tuple[AuthMethod, ...]
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    provider: str | None = None  # the identity provider it signed in through; None: a password

    @property
    def sign_in_method(self) -> str:
        """How the session began, for its owner: ``password`` or the provider's name (``google``...)."""
        return self.provider or "password"

    @classmethod
    def start(
        cls,
        *,
        id: SessionId,
        user_id: UserId,
        refresh_token_hash: RefreshTokenHash,
        amr: Sequence[AuthMethod],
        now: datetime,
        lifetime: timedelta,
        user_agent: str | None,
        ip: str | None,
        provider: str | None = None,
    ) -> Self:
        if not amr:
            raise ValueError("a session needs at least one authentication method")
        return cls(
            id=id,
            user_id=user_id,
            refresh_token_hash=refresh_token_hash,
            authenticated_at=now,
            amr=tuple(dict.fromkeys(amr)),
            created_at=now,
            last_used_at=now,
            expires_at=now + lifetime,
            user_agent=user_agent,
            ip=ip,
            provider=provider,
        )

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def rotate(
        self,
        new_hash: RefreshTokenHash,
        *,
        now: datetime,
        lifetime: timedelta,
        user_agent: str | None,
        ip: str | None,
    ) -> RefreshTokenHash:
        """Replace the refresh token; return the retired hash so reuse of it can be recognised later.

        The session slides: each rotation extends it by ``lifetime`` from now.
        """
        if self.is_expired(now):
            raise SessionExpired()
        retired = self.refresh_token_hash
        self.refresh_token_hash = new_hash
        self.last_used_at = now
        self.expires_at = now + lifetime
        if user_agent is not None:
            self.user_agent = user_agent
        if ip is not None:
            self.ip = ip
        return retired

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Session) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)
