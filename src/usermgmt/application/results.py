"""Use-case outputs that are not domain objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from usermgmt.domain.events import StoredEvent
from usermgmt.domain.model import Session, User
from usermgmt.domain.value_objects import SessionId, UserId


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str = field(repr=False)
    refresh_expires_in: int
    session_id: SessionId


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an active user and the live session their access token belongs to."""

    user: User
    session_id: SessionId


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
