"""Expected failures of the core. Each carries a stable machine-readable ``code``; HTTP status lives elsewhere."""

from __future__ import annotations

from datetime import datetime


class DomainError(Exception):
    """Base of every expected failure. ``code`` is stable; ``detail`` is safe to show to the client."""

    code: str = "domain_error"
    default_detail: str = "The request could not be processed."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class InvalidEmail(DomainError):
    code = "invalid_email"
    default_detail = "The email address is not valid."


class InvalidUsername(DomainError):
    code = "invalid_username"
    default_detail = "A username is 3 to 32 characters of letters, digits, '.', '_' or '-'."


class InvalidFullName(DomainError):
    code = "invalid_full_name"
    default_detail = "The full name is not valid."


class WeakPassword(DomainError):
    code = "weak_password"
    default_detail = "The password does not meet the password policy."


class UserInactive(DomainError):
    code = "account_disabled"
    default_detail = "This account is disabled."


class AccountPendingDeletion(UserInactive):
    """An account deleted within its grace period: it signs in again only once restored with the link it was sent.
    ``erasure_at`` is when it will be erased."""

    code = "account_pending_deletion"
    default_detail = "This account is being deleted; follow the link in the deletion email to restore it."

    def __init__(self, *, erasure_at: datetime) -> None:
        super().__init__(f"This account will be erased at {erasure_at.isoformat(timespec='seconds')}; follow the link "
                         "in the deletion email to restore it before then.")  # fmt: skip
        self.erasure_at = erasure_at
        self.members = {"erasure_at": erasure_at.isoformat().replace("+00:00", "Z")}


class SessionExpired(DomainError):
    code = "session_expired"
    default_detail = "The session has expired."


class SameEmail(InvalidEmail):
    """A change to the address the account already has (in any spelling that compares equal)."""

    code = "same_email"
    default_detail = "This is already the account's email address."
