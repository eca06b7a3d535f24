"""Use-case outputs that are not domain objects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from usermgmt.domain.events import StoredEvent
from usermgmt.domain.identities import Identity
from usermgmt.domain.model import Session, User, ensure_may_authenticate
from usermgmt.domain.roles import Permission
from usermgmt.domain.value_objects import AuthMethod, Email, FullName, SessionId, UserId, Username


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str = field(repr=False)
    refresh_expires_in: int
    session_id: SessionId


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A sign-in that is complete: the session exists and these are its first tokens."""

    tokens: TokenPair


@dataclass(frozen=True, slots=True)
class FurtherStepRequired:
    """The first factor was right, but the account requires another one before a session may start: prove one of
    ``methods`` with ``token`` (the ``mfa_token``) within ``expires_in`` seconds."""

    user_id: UserId
    amr: tuple[AuthMethod, ...]
    methods: tuple[str, ...]
    token: str = field(repr=False)
    expires_in: int


SignInResult = SignedIn | FurtherStepRequired


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who is calling: the user (as the API shows them; never their password hash) and the live session their
    access token belongs to."""

    user_id: UserId
    session_id: SessionId
    email: Email
    username: Username | None
    full_name: FullName | None
    email_verified: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime
    pending_email: Email | None = None
    permissions: frozenset[Permission] = frozenset()  # what the user's roles grant, as of this request
    has_password: bool = True  # False: an account made through an identity provider, without a password yet

    def ensure_may_authenticate(self) -> None:
        """Raises: UserInactive."""
        ensure_may_authenticate(is_active=self.is_active)


@dataclass(frozen=True, slots=True)
class SessionView:
    session: Session
    current: bool


@dataclass(frozen=True, slots=True)
class Erased:
    what: str
    count: int


@dataclass(frozen=True, slots=True)
class DeletionReceipt:
    user_id: UserId
    deleted_at: datetime
    erased: tuple[Erased, ...]


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[StoredEvent]
    next_before: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MfaStatus:
    totp_enabled: bool
    enabled_at: datetime | None
    recovery_codes_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TotpEnrolment:
    """A pending enrolment: what an authenticator app needs (the secret, as text, as a URI and as a QR code)."""

    secret: str = field(repr=False)
    otpauth_uri: str = field(repr=False)
    qr_svg: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RecoveryCodes:
    """A fresh set of recovery codes, shown once (``xxxxx-xxxxx``); only their digests are stored."""

    codes: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminUserView:
    """A user as administrators see them: the account, its roles and, for one user, its sign-in facts."""

    user: User
    roles: tuple[str, ...]
    last_sign_in_at: datetime | None = None
    mfa: MfaStatus | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErasureScheduled:
    """A deletion within its grace period: the account is disabled now and erased at ``erasure_at``."""

    user_id: UserId
    erasure_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DataExport:
    """Everything the service holds about an account, without a secret."""

    exported_at: datetime
    user: User
    roles: tuple[str, ...]
    mfa: MfaStatus
    sessions: list[Session]
    events: list[StoredEvent]
    identities: Sequence[Identity] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Introspection:
    """RFC 7662's answer: ``active``, and for an active token what it says (None members are left out)."""

    active: bool
    sub: str | None = None
    sid: str | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None
    aud: str | None = None
    amr: tuple[str, ...] | None = None
    auth_time: int | None = None
    roles: tuple[str, ...] | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True)
class UserPage:
    items: list[AdminUserView]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """The service's KPIs over the period [``from_``, ``to``), as docs/operations.md defines them. A rate or a mean
    is None when the period holds nothing to divide by. ``users_*`` and ``mfa_adoption`` are as of now."""

    from_: datetime
    to: datetime
    registrations: int
    registrations_per_day: float
    registrations_by_day: Sequence[tuple[date, int]]  # every UTC date the period touches, by date
    sign_in_attempts: int
    sign_ins_succeeded: int
    login_success_rate: float | None
    authentication_latency_ms: float | None
    users_total: int
    users_with_mfa: int
    mfa_adoption: float | None
    retention_cohort: int
    retained_7d: int
    retention_7d: float | None
    password_resets: int
    password_reset_median_seconds: float | None
    deletions: int
    deletions_within_24h: int
    deletions_overdue: int
    deletions_within_24h_rate: float | None
