"""The boundary of the core: what the use cases need from the outside world, and nothing about how it is done."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from usermgmt.domain.events import SecurityEvent, StoredEvent
from usermgmt.domain.model import Session, User
from usermgmt.domain.value_objects import (
    Email,
    PasswordHash,
    PlainPassword,
    RefreshTokenHash,
    SessionId,
    UserId,
    Username,
)


class UserRepository(Protocol):
    async def get(self, user_id: UserId) -> User | None: ...
    async def get_by_email(self, email: Email) -> User | None: ...
    async def get_by_username(self, username: Username) -> User | None: ...

    async def add(self, user: User) -> None:
        """Raises: EmailTaken, UsernameTaken."""

    async def update(self, user: User) -> None:
        """Write back a user loaded through this repository. Raises: EmailTaken, UsernameTaken, ConcurrentUpdate."""

    async def erase(self, user_id: UserId) -> Mapping[str, int]:
        """Delete the user and every row that names them (sessions, tokens, events); return how many of each went.

        An anonymous count of deletions is kept, nothing more.
        """


class SessionRepository(Protocol):
    async def add(self, session: Session) -> None: ...
    async def get(self, session_id: SessionId) -> Session | None: ...
    async def list_for_user(self, user_id: UserId) -> Sequence[Session]: ...
    async def get_by_refresh_token(self, token_hash: RefreshTokenHash) -> Session | None: ...

    async def find_by_retired_token(self, token_hash: RefreshTokenHash) -> SessionId | None:
        """The session that once held this (since rotated) refresh token, if it still exists."""

    async def save_rotation(self, session: Session, retired: RefreshTokenHash) -> None:
        """Persist a rotation, only if the session still holds ``retired``. Raises: ConcurrentUpdate."""

    async def delete(self, session_id: SessionId, *, user_id: UserId | None = None) -> bool: ...
    async def delete_for_user(self, user_id: UserId, *, keep: SessionId | None = None) -> int: ...

    async def delete_expired(self, now: datetime) -> int:
        """Delete the sessions that expired before ``now`` (and their retired token hashes); return how many."""


class EventRepository(Protocol):
    async def add(self, event: SecurityEvent) -> None:
        """Store the event with this transaction; it is also logged (as a structured line) once committed."""

    async def list_for_user(self, user_id: UserId, *, limit: int, before: int | None = None) -> Sequence[StoredEvent]:
        """The user's events, newest first, older than position ``before`` when given."""


class UnitOfWork(abc.ABC):
    """One transaction. Leaving the ``async with`` block without ``commit()`` rolls everything back."""

    users: UserRepository
    sessions: SessionRepository
    events: EventRepository

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.rollback()

    @abc.abstractmethod
    async def commit(self) -> None: ...

    @abc.abstractmethod
    async def rollback(self) -> None: ...


class PrincipalReader(Protocol):
    async def get_active_user(self, user_id: UserId, session_id: SessionId, now: datetime) -> User | None:
        """The user, if active and the session exists, belongs to them and has not expired. One read, no lock."""


class PasswordHasher(Protocol):
    @property
    def dummy_hash(self) -> PasswordHash:
        """A hash of no one's password, verified for unknown users so timing reveals nothing."""

    async def hash(self, password: PlainPassword) -> PasswordHash: ...

    async def verify_and_update(
        self, password: PlainPassword, password_hash: PasswordHash
    ) -> tuple[bool, PasswordHash | None]:
        """(matches, a new hash when the stored one uses outdated parameters). Runs off the event loop."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: UserId
    session_id: SessionId
    token_id: str
    expires_at: datetime


class AccessTokenService(Protocol):
    def issue(self, user_id: UserId, session_id: SessionId) -> IssuedToken: ...

    def verify(self, token: str) -> AccessClaims:
        """Raises: InvalidAccessToken."""


class RefreshTokenFactory(Protocol):
    def generate(self) -> str:
        """A new opaque refresh token with at least 256 bits of randomness."""

    def digest(self, token: str) -> RefreshTokenHash: ...


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``limit`` hits per ``period``."""

    limit: int
    period: timedelta

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period <= timedelta(0):
            raise ValueError("a rate needs limit >= 1 and a positive period")


@dataclass(frozen=True, slots=True)
class RateStatus:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the window frees a slot


class RateLimiter(Protocol):
    """Moving-window counters keyed by strings. Implementations must not raise on storage failure."""

    async def hit(self, rate: Rate, key: str) -> RateStatus:
        """Count one hit; ``allowed`` is False (and nothing is counted) when the window is already full."""

    async def peek(self, rate: Rate, key: str) -> RateStatus:
        """The state of the window without counting a hit."""

    async def clear(self, rate: Rate, key: str) -> None: ...


class BreachedPasswordChecker(Protocol):
    async def is_breached(self, password: PlainPassword) -> bool:
        """True only when the password is known to be breached; False when it is not, or when the check could not
        be made (fail-open: an outage of the breach service must not stop sign-ups)."""


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC."""


class IdGenerator(Protocol):
    def new_user_id(self) -> UserId: ...
    def new_session_id(self) -> SessionId: ...
