"""The schema as SQLAlchemy metadata, and where in it an account's personal data lives (``PERSONAL_DATA``).

Alembic owns the real schema; ``migrations/`` must match this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    select,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on PostgreSQL (timestamptz) and SQLite (naive text, UTC by convention)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; the domain speaks aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", String(254), nullable=False),
    Column("email_canonical", String(254), nullable=False, unique=True),
    Column("username", String(32), nullable=True),
    Column("username_canonical", String(32), nullable=True, unique=True),
    Column("full_name", String(128), nullable=True),
    Column("password_hash", String(255), nullable=True),  # NULL: made through an identity provider, no password yet
    Column("email_verified", Boolean, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("password_changed_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Column("pending_email", String(254), nullable=True),  # asked for, not yet confirmed from its mailbox
    Column("erasure_at", UTCDateTime, nullable=True),  # deleted within a grace period: erased then
    Index("ix_users_erasure_at", "erasure_at"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("refresh_token_hash", String(64), nullable=False, unique=True),
    Column("authenticated_at", UTCDateTime, nullable=False),
    Column("amr", JSON, nullable=False),  # RFC 8176 method values, e.g. ["pwd"]
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("user_agent", String(512), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("provider", String(64), nullable=True),  # the identity provider it signed in through; NULL: a password
)

retired_refresh_tokens = Table(
    "retired_refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("session_id", Uuid, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("retired_at", UTCDateTime, nullable=False),
)

security_events = Table(
    "security_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("type", String(40), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("session_id", Uuid, nullable=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("request_id", String(128), nullable=True),
    Column("details", JSON, nullable=False),
    # The administrator who acted (no foreign key: the admin trail outlives an administrator's own erasure, and
    # then names no one).
    Column("actor_id", Uuid, nullable=True),
    Index("ix_security_events_user_id_id", "user_id", "id"),
    Index("ix_security_events_actor_id_id", "actor_id", "id"),
    Index("ix_security_events_type_id", "type", "id"),
    Index(
        "ix_security_events_type_at", "type", "at"
    ),  # the KPIs: events of a type in a period (adapters/sqlalchemy/stats.py)
)

email_tokens = Table(
    "email_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),  # SHA-256 of the token; the token itself is never stored
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", String(20), nullable=False),
    Column("email", String(254), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_email_tokens_user_id_purpose", "user_id", "purpose"),
)

# Messages waiting to be sent (the transactional outbox). A row is deleted once sent or given up: the link it may
# carry does not outlive the delivery. ``user_id`` ties a queued message to the account it is about, so that an
# erasure takes it along (the deletion notice itself is queued after the erasure, naming no account).
email_outbox = Table(
    "email_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", String(255), nullable=False, unique=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("recipient", String(254), nullable=False),
    Column("template", String(64), nullable=False),
    Column("context", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("last_error", String(500), nullable=True),
    Index("ix_email_outbox_next_attempt_at", "next_attempt_at"),
)

# The devices (a user agent and an IP network) an account signed in from: a sign-in from one not seen for 90 days
# sends a notice. ``device_key`` is a SHA-256 of the pair, so the table holds no address or user agent in clear.
known_devices = Table(
    "known_devices",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("device_key", String(64), primary_key=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
)

# Second factors. The TOTP secret is sealed (AES-GCM, adapters/crypto.py): this table alone does not give it.
# ``confirmed_at`` NULL: enrolment pending. ``last_step``: the newest TOTP time step accepted (no replay).
totp_credentials = Table(
    "totp_credentials",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("sealed_secret", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime, nullable=True),
    Column("last_step", BigInteger, nullable=True),
)

# Unused recovery codes, as keyed digests (HMAC-SHA-256); a used code's row is deleted.
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# Sign-ins waiting for their second step: the mfa_token's SHA-256, never the token.
mfa_challenges = Table(
    "mfa_challenges",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("amr", JSON, nullable=False),
    Column("password_changed_at", UTCDateTime, nullable=True),
    Column("throttle_key", String(300), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("failures", Integer, nullable=False),
    Column("provider", String(64), nullable=True),  # the identity provider of the first factor, if it was one
)


# Roles: named sets of permissions, space-separated (``users:read events:read``), read by the principal query in
# one aggregate. The built-in ``admin`` row is created by migration 0006 with every permission.
roles = Table(
    "roles",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("description", String(256), nullable=False),
    Column("permissions", String(512), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

user_roles = Table(
    "user_roles",
    metadata,
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role_name", String(32), ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True),
    Column("granted_at", UTCDateTime, nullable=False),
    Index("ix_user_roles_role_name", "role_name"),
)

# Sign-in through identity providers. An identity is the provider's stable id for its user (``subject``), joined to
# one account; ``email`` is the address the provider gave last, shown to the owner, never used to find the account.
identities = Table(
    "identities",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("provider", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("email", String(254), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=False),
    UniqueConstraint("provider", "subject", name="uq_identities_provider_subject"),
)

# Trips to a provider under way, under the SHA-256 of their ``state`` (never the state): what the callback needs,
# for 10 minutes. ``user_id``: the account a link was started from (NULL for a sign-in). A row is taken once.
oauth_authorizations = Table(
    "oauth_authorizations",
    metadata,
    Column("state_digest", String(64), primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("browser_digest", String(64), nullable=True),
    Column("redirect_uri", String(2048), nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("nonce", String(128), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# The one-time codes a callback hands the frontend, as digests: 60 seconds, taken once.
login_codes = Table(
    "login_codes",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("provider", String(64), nullable=False),
    Column("redirect_uri", String(2048), nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)


# --- where an account's personal data lives ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonalData:
    """One place where an account's data lives: the rows of ``table`` that belong to a user.

    ``name`` is stable: it is the entry's key in the erasure receipt (and the section of a data export). ``path``
    leads from ``table`` to ``users.id`` along foreign keys: ``(sessions.c.user_id,)`` for a table that names the
    user, ``(retired_refresh_tokens.c.session_id, sessions.c.user_id)`` for one that names a session of theirs, and
    ``()`` for the users row itself. Each step is checked to be a foreign key into the next step's table.
    """

    name: str
    table: Table
    path: tuple[Column[Any], ...]

    def __post_init__(self) -> None:
        if not self.path:
            if self.table is not users:
                raise ValueError(f"{self.name}: only the users row needs no path to users.id")
            return
        if self.path[0].table is not self.table:
            raise ValueError(f"{self.name}: the path must start in {self.table.name}")
        targets = [column.table for column in self.path[1:]] + [users]
        for column, target in zip(self.path, targets, strict=True):
            if {key.column for key in column.foreign_keys} != set(target.primary_key.columns):
                raise ValueError(f"{self.name}: {column} is not a foreign key to {target.name}'s primary key")

    def owned_by(self, user_id: UUID) -> ColumnElement[bool]:
        """The condition that selects this entry's rows of ``user_id``: ``select(entry.table).where(...)``."""
        return _owned_by(self.path, user_id) if self.path else users.c.id == user_id


def _owned_by(path: tuple[Column[Any], ...], user_id: UUID) -> ColumnElement[bool]:
    first, *rest = path
    if not rest:
        return first == user_id
    (key,) = first.foreign_keys
    return first.in_(select(key.column).where(_owned_by(tuple(rest), user_id)))


# Owners before what they own: erasure walks it backwards (dependents first), the receipt and an export forwards.
# Every table with a foreign-key path to users.id must be here (tests/unit/adapters/test_personal_data.py checks it).
PERSONAL_DATA: tuple[PersonalData, ...] = (
    PersonalData("user", users, ()),
    PersonalData("sessions", sessions, (sessions.c.user_id,)),
    PersonalData(
        "retired_refresh_tokens", retired_refresh_tokens, (retired_refresh_tokens.c.session_id, sessions.c.user_id)
    ),
    PersonalData("security_events", security_events, (security_events.c.user_id,)),
    PersonalData("email_tokens", email_tokens, (email_tokens.c.user_id,)),
    PersonalData("email_outbox", email_outbox, (email_outbox.c.user_id,)),
    PersonalData("known_devices", known_devices, (known_devices.c.user_id,)),
    PersonalData("totp_credentials", totp_credentials, (totp_credentials.c.user_id,)),
    PersonalData("recovery_codes", recovery_codes, (recovery_codes.c.user_id,)),
    PersonalData("mfa_challenges", mfa_challenges, (mfa_challenges.c.user_id,)),
    PersonalData("user_roles", user_roles, (user_roles.c.user_id,)),
    PersonalData("identities", identities, (identities.c.user_id,)),
    PersonalData("oauth_authorizations", oauth_authorizations, (oauth_authorizations.c.user_id,)),
    PersonalData("login_codes", login_codes, (login_codes.c.user_id,)),
)
