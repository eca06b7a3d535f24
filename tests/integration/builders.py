"""Builders of domain objects for the integration tests: fixed instants, valid value objects, 64-char digests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from usermgmt.application.ports import EmailToken
from usermgmt.domain.model import Session, User
from usermgmt.domain.value_objects import (
    AuthMethod,
    Email,
    EmailTokenPurpose,
    FullName,
    PasswordHash,
    RefreshTokenHash,
    SessionId,
    UserId,
    Username,
)

# Microseconds on purpose: they must survive the round trip through timestamptz.
NOW = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
SESSION_LIFETIME = timedelta(days=30)


def token_hash(label: str) -> RefreshTokenHash:
    """A 64-character digest, the shape the column expects."""
    return RefreshTokenHash(hashlib.sha256(label.encode()).hexdigest())


def new_user(
    email: str = "alice@example.com",
    *,
    username: str | None = None,
    full_name: str | None = None,
    now: datetime = NOW,
    user_id: UUID | None = None,
) -> User:
    return User.register(
        id=UserId(user_id or uuid4()),
        email=Email(email),
        password_hash=PasswordHash(f"$2b$12${uuid4().hex}"),
        now=now,
        username=Username(username) if username is not None else None,
        full_name=FullName(full_name) if full_name is not None else None,
    )


def new_session(
    user: User,
    *,
    label: str | None = None,
    now: datetime = NOW,
    lifetime: timedelta = SESSION_LIFETIME,
    user_agent: str | None = "pytest/1.0",
    ip: str | None = "192.0.2.7",
) -> Session:
    session_id = SessionId(uuid4())
    return Session.start(
        id=session_id,
        user_id=user.id,
        refresh_token_hash=token_hash(label or str(session_id)),
        amr=(AuthMethod.PASSWORD,),
        now=now,
        lifetime=lifetime,
        user_agent=user_agent,
        ip=ip,
    )


def user_fields(user: User) -> dict[str, Any]:
    """Every field of a user: ``User.__eq__`` compares identity only, a round trip must keep everything."""
    return dict(vars(user))


def session_fields(session: Session) -> dict[str, Any]:
    return dict(vars(session))


def email_token(
    user: User,
    purpose: EmailTokenPurpose = EmailTokenPurpose.VERIFY,
    *,
    secret: str | None = None,
    now: datetime = NOW,
    ttl: timedelta = timedelta(hours=1),
) -> EmailToken:
    """An outstanding one-time token of ``user``; its digest is the SHA-256 of ``secret`` (random by default)."""
    secret = secret or uuid4().hex
    return EmailToken(
        digest=hashlib.sha256(secret.encode()).hexdigest(),
        user_id=user.id,
        purpose=purpose,
        email=user.email,
        created_at=now,
        expires_at=now + ttl,
    )
