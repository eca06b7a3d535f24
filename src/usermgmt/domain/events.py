"""Security events: what happened to an account, when, and from where. Recorded for the audit trail."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from usermgmt.domain.value_objects import SessionId, UserId


class EventType(StrEnum):
    REGISTERED = "registered"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    TOKEN_REFRESHED = "token_refreshed"  # noqa: S105 - an event name
    REFRESH_REUSE_DETECTED = "refresh_reuse_detected"
    LOGGED_OUT = "logged_out"
    SESSION_REVOKED = "session_revoked"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - an event name
    PASSWORD_CONFIRMATION_FAILED = "password_confirmation_failed"  # noqa: S105 - an event name
    PROFILE_UPDATED = "profile_updated"
    ACCOUNT_DELETED = "account_deleted"
    RATE_LIMITED = "rate_limited"
    EMAIL_VERIFICATION_SENT = "email_verification_sent"
    EMAIL_VERIFIED = "email_verified"
    PASSWORD_RESET_REQUESTED = "password_reset_requested"  # noqa: S105 - an event name
    PASSWORD_RESET = "password_reset"  # noqa: S105 - an event name
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    MFA_ENABLED = "mfa_enabled"
    MFA_DISABLED = "mfa_disabled"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    RECOVERY_CODE_USED = "recovery_code_used"
    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_ENABLED = "account_enabled"
    SESSIONS_REVOKED = "sessions_revoked"
    ROLES_CHANGED = "roles_changed"
    ROLE_CREATED = "role_created"
    ROLE_UPDATED = "role_updated"
    ROLE_DELETED = "role_deleted"
    DATA_EXPORTED = "data_exported"
    ACCOUNT_DELETION_SCHEDULED = "account_deletion_scheduled"
    ACCOUNT_RESTORED = "account_restored"
    IDENTITY_LINKED = "identity_linked"
    IDENTITY_UNLINKED = "identity_unlinked"


# Detail keys kept for operators only: never shown to the account's owner through the API. ``duration_ms``: the
# server-side time of a sign-in attempt (the authentication latency of docs/operations.md).
INTERNAL_DETAILS = frozenset({"reason", "duration_ms"})

# What the anonymous mark of a deletion keeps of its details: nothing that names or describes the account.
# ``lag_seconds``: how long after its due time the account was erased (0 for one erased at once).
DELETION_MARK_DETAILS = frozenset({"lag_seconds"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityEvent:
    type: EventType
    at: datetime
    user_id: UserId | None = None
    session_id: SessionId | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    actor_id: UserId | None = None  # the administrator who did it, when it was not the account's owner

    def public_details(self) -> dict[str, Any]:
        """What the account's owner sees: no internal detail, and an administrator's action as such, unnamed."""
        shown = {k: v for k, v in self.details.items() if k not in INTERNAL_DETAILS}
        return shown | {"by": "administrator"} if self.actor_id is not None else shown

    def stored_form(self) -> SecurityEvent:
        """What the audit table keeps. A deletion is kept only as an anonymous mark (so deletions can be counted,
        and how late they were: ``DELETION_MARK_DETAILS``): the account's erasure must not leave a row that names it.
        An administrator's deletion keeps who did it, for the admin trail."""
        if self.type is not EventType.ACCOUNT_DELETED:
            return self
        kept = {k: v for k, v in self.details.items() if k in DELETION_MARK_DETAILS}
        return SecurityEvent(type=self.type, at=self.at, actor_id=self.actor_id, details=kept)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back: with the position the store gave it (newest = highest)."""

    id: int
    event: SecurityEvent
