"""In-memory implementations of the ports: for unit tests of the core, kept honest by contract tests."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar
from uuid import UUID, uuid4

from usermgmt.adapters.audit_log import log_events
from usermgmt.adapters.sqlalchemy.tables import PERSONAL_DATA
from usermgmt.application.errors import (
    ConcurrentUpdate,
    EmailTaken,
    IdentityInUse,
    InvalidAccessToken,
    RoleExists,
    ServiceBusy,
    UsernameTaken,
)
from usermgmt.application.ports import (
    AccessClaims,
    EmailToken,
    EventDispatcher,
    IssuedToken,
    LoginCode,
    OutgoingEmail,
    PendingAuthorization,
    QueuedEmail,
    Rate,
    RateStatus,
    SignInCounts,
    UnitOfWork,
    UserPageKey,
)
from usermgmt.application.results import Principal
from usermgmt.domain.events import EventType, SecurityEvent, StoredEvent
from usermgmt.domain.identities import Identity, IdentityId
from usermgmt.domain.mfa import MfaChallenge, TotpCredential
from usermgmt.domain.model import Session, User
from usermgmt.domain.roles import ADMIN, ALL_PERMISSIONS, Permission, Role
from usermgmt.domain.value_objects import (
    AuthMethod,
    Email,
    EmailTokenPurpose,
    PasswordHash,
    PlainPassword,
    RefreshTokenHash,
    SessionId,
    UserId,
    Username,
)

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R", PendingAuthorization, LoginCode)


@dataclass
class MemoryStore:
    """The committed state shared by every ``InMemoryUnitOfWork`` built on it."""

    users: dict[UserId, User] = field(default_factory=dict)
    versions: dict[UserId, int] = field(default_factory=dict)
    sessions: dict[SessionId, Session] = field(default_factory=dict)
    retired: dict[str, SessionId] = field(default_factory=dict)
    events: list[StoredEvent] = field(default_factory=list)
    email_tokens: dict[str, EmailToken] = field(default_factory=dict)
    outbox: list[OutboxRow] = field(default_factory=list)
    known_devices: dict[tuple[UserId, str], tuple[datetime, datetime]] = field(default_factory=dict)  # first, last
    totp: dict[UserId, TotpCredential] = field(default_factory=dict)
    recovery_codes: dict[UserId, set[str]] = field(default_factory=dict)
    challenges: dict[str, MfaChallenge] = field(default_factory=dict)
    # The built-in admin role exists from the start, as migration 0006 creates it.
    roles: dict[str, Role] = field(default_factory=lambda: {ADMIN: Role.admin(now=datetime(2026, 1, 1, tzinfo=UTC))})
    user_roles: dict[UserId, dict[str, datetime]] = field(default_factory=dict)  # role name -> granted at
    identities: dict[IdentityId, Identity] = field(default_factory=dict)
    authorizations: dict[str, PendingAuthorization] = field(default_factory=dict)  # by state digest
    login_codes: dict[str, LoginCode] = field(default_factory=dict)  # by digest


@dataclass
class OutboxRow:
    """A queued message as the in-memory outbox keeps it (the columns of ``email_outbox``)."""

    id: int
    message_id: str
    message: OutgoingEmail
    created_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    claimed_until: datetime | None = None
    last_error: str | None = None


class InMemoryUserRepository:
    def __init__(self, store: MemoryStore, committed: MemoryStore | None = None) -> None:
        self._store = store
        self._committed = committed or store  # what other units of work have committed meanwhile
        self.base: dict[UserId, int] = {}  # the version each user had when this unit of work first read it
        self.loaded: dict[UserId, int] = {}  # the version this unit of work expects to overwrite next
        self.touched: set[UserId] = set()
        self.updated: set[UserId] = set()  # written back after a read: the commit checks their version
        self.locked: set[UserId] = set()  # read for update: the commit checks no one else changed them

    async def get(self, user_id: UserId, *, for_update: bool = False) -> User | None:
        # No lock to take and no one to wait for: a row read for update that another unit of work changed before
        # this one commits fails the commit instead (where the database would have made the other one wait).
        if for_update:
            self.locked.add(user_id)
        return self._load(self._store.users.get(user_id))

    async def get_by_email(self, email: Email) -> User | None:
        found = (u for u in self._store.users.values() if u.email.canonical == email.canonical)
        return self._load(next(found, None))

    async def get_by_username(self, username: Username) -> User | None:
        found = (u for u in self._store.users.values() if u.username and u.username.canonical == username.canonical)
        return self._load(next(found, None))

    async def add(self, user: User) -> None:
        check_unique(self._store, user)
        self._store.users[user.id] = copy.deepcopy(user)
        self._store.versions[user.id] = self.loaded[user.id] = 1
        self.touched.add(user.id)

    async def update(self, user: User) -> None:
        if self._store.versions.get(user.id) != self.loaded.get(user.id):
            raise ConcurrentUpdate()
        if user.id in self.base and self._committed.versions.get(user.id) != self.base[user.id]:
            raise ConcurrentUpdate()  # as the database's UPDATE ... WHERE version = n would find no row
        check_unique(self._store, user)
        self._store.users[user.id] = copy.deepcopy(user)
        self._store.versions[user.id] = self.loaded[user.id] = self.loaded[user.id] + 1
        self.touched.add(user.id)
        if user.id in self.base:
            self.updated.add(user.id)

    async def due_for_erasure(self, now: datetime, *, limit: int) -> Sequence[User]:
        due = sorted(
            (u for u in self._store.users.values() if u.erasure_at is not None and u.erasure_at <= now),
            key=lambda u: u.erasure_at or now,
        )
        return [self._load(u) or u for u in due[:limit]]

    async def erase(self, user_id: UserId) -> Mapping[str, int]:
        erased = erase_personal_data(self._store, user_id)
        self.touched.add(user_id)
        return erased

    def _load(self, user: User | None) -> User | None:
        if user is None:
            return None
        self.base.setdefault(user.id, self._store.versions[user.id])
        self.loaded.setdefault(user.id, self._store.versions[user.id])
        return copy.deepcopy(user)


def erase_personal_data(store: MemoryStore, user_id: UserId) -> dict[str, int]:
    """Walk ``PERSONAL_DATA`` backwards, as the database adapter does, deleting each entry's rows from ``store``;
    return how many went, per entry, in the registry's order."""
    erased: dict[str, int] = {}
    for entry in reversed(PERSONAL_DATA):
        eraser = _ERASERS.get(entry.name)
        if eraser is None:
            raise NotImplementedError(f"the in-memory fake does not hold {entry.name!r}: add it to _ERASERS")
        erased[entry.name] = eraser(store, user_id)
    return {entry.name: erased[entry.name] for entry in PERSONAL_DATA}


def _erase_user(store: MemoryStore, user_id: UserId) -> int:
    store.versions.pop(user_id, None)
    return int(store.users.pop(user_id, None) is not None)


def _erase_sessions(store: MemoryStore, user_id: UserId) -> int:
    doomed = [sid for sid, s in store.sessions.items() if s.user_id == user_id]
    for sid in doomed:
        del store.sessions[sid]
    return len(doomed)


def _erase_retired_refresh_tokens(store: MemoryStore, user_id: UserId) -> int:
    own = {sid for sid, s in store.sessions.items() if s.user_id == user_id}
    doomed = [token_hash for token_hash, sid in store.retired.items() if sid in own]
    for token_hash in doomed:
        del store.retired[token_hash]
    return len(doomed)


def _erase_security_events(store: MemoryStore, user_id: UserId) -> int:
    kept = [e for e in store.events if e.event.user_id != user_id]
    erased = len(store.events) - len(kept)
    store.events = kept
    return erased


def _erase_email_tokens(store: MemoryStore, user_id: UserId) -> int:
    doomed = [digest for digest, token in store.email_tokens.items() if token.user_id == user_id]
    for digest in doomed:
        del store.email_tokens[digest]
    return len(doomed)


def _erase_email_outbox(store: MemoryStore, user_id: UserId) -> int:
    kept = [row for row in store.outbox if row.message.user_id != user_id]
    erased = len(store.outbox) - len(kept)
    store.outbox = kept
    return erased


def _erase_known_devices(store: MemoryStore, user_id: UserId) -> int:
    doomed = [key for key in store.known_devices if key[0] == user_id]
    for key in doomed:
        del store.known_devices[key]
    return len(doomed)


# Where each entry of the registry lives in a MemoryStore.
_ERASERS: Mapping[str, Callable[[MemoryStore, UserId], int]] = {
    "user": _erase_user,
    "sessions": _erase_sessions,
    "retired_refresh_tokens": _erase_retired_refresh_tokens,
    "security_events": _erase_security_events,
    "email_tokens": _erase_email_tokens,
    "email_outbox": _erase_email_outbox,
    "known_devices": _erase_known_devices,
    "totp_credentials": lambda store, user_id: int(store.totp.pop(user_id, None) is not None),
    "recovery_codes": lambda store, user_id: len(store.recovery_codes.pop(user_id, set())),
    "mfa_challenges": lambda store, user_id: _erase_challenges(store, user_id),
    "user_roles": lambda store, user_id: len(store.user_roles.pop(user_id, {})),
    "identities": lambda store, user_id: _erase_where(store.identities, lambda i: i.user_id == user_id),
    "oauth_authorizations": lambda store, user_id: _erase_where(store.authorizations, lambda a: a.user_id == user_id),
    "login_codes": lambda store, user_id: _erase_where(store.login_codes, lambda c: c.user_id == user_id),
}


def _erase_where(rows: dict[K, V], doomed: Callable[[V], bool]) -> int:
    keys = [key for key, row in rows.items() if doomed(row)]
    for key in keys:
        del rows[key]
    return len(keys)


def _erase_challenges(store: MemoryStore, user_id: UserId) -> int:
    doomed = [digest for digest, challenge in store.challenges.items() if challenge.user_id == user_id]
    for digest in doomed:
        del store.challenges[digest]
    return len(doomed)


def check_unique(store: MemoryStore, user: User) -> None:
    """What the database's unique constraints guarantee."""
    for other in store.users.values():
        if other.id == user.id:
            continue
        if other.email.canonical == user.email.canonical:
            raise EmailTaken()
        if user.username and other.username and other.username.canonical == user.username.canonical:
            raise UsernameTaken()


class InMemorySessionRepository:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.touched: set[SessionId] = set()
        self.added: set[SessionId] = set()
        self.rotated: dict[SessionId, RefreshTokenHash] = {}  # committed session -> the hash it held when rotated

    async def add(self, session: Session) -> None:
        if session.user_id not in self._store.users:
            raise ConcurrentUpdate()  # the database's foreign key would refuse it
        self._store.sessions[session.id] = copy.deepcopy(session)
        self.touched.add(session.id)
        self.added.add(session.id)

    async def get(self, session_id: SessionId) -> Session | None:
        return copy.deepcopy(self._store.sessions.get(session_id))

    async def list_for_user(self, user_id: UserId) -> Sequence[Session]:
        own = [copy.deepcopy(s) for s in self._store.sessions.values() if s.user_id == user_id]
        return sorted(own, key=lambda s: s.last_used_at, reverse=True)

    async def get_by_refresh_token(self, token_hash: RefreshTokenHash) -> Session | None:
        found = (s for s in self._store.sessions.values() if s.refresh_token_hash == token_hash)
        return copy.deepcopy(next(found, None))

    async def find_by_retired_token(self, token_hash: RefreshTokenHash) -> SessionId | None:
        return self._store.retired.get(token_hash.value)

    async def save_rotation(self, session: Session, retired: RefreshTokenHash) -> None:
        stored = self._store.sessions.get(session.id)
        if stored is None or stored.refresh_token_hash != retired:
            raise ConcurrentUpdate()
        self._store.sessions[session.id] = copy.deepcopy(session)
        self._store.retired[retired.value] = session.id
        self.touched.add(session.id)
        if session.id not in self.added:
            self.rotated.setdefault(session.id, retired)

    async def delete(self, session_id: SessionId, *, user_id: UserId | None = None) -> bool:
        session = self._store.sessions.get(session_id)
        if session is None or (user_id is not None and session.user_id != user_id):
            return False
        self._drop(session_id)
        return True

    async def delete_for_user(self, user_id: UserId, *, keep: SessionId | None = None) -> int:
        doomed = [sid for sid, s in self._store.sessions.items() if s.user_id == user_id and sid != keep]
        for sid in doomed:
            self._drop(sid)
        return len(doomed)

    async def delete_expired(self, now: datetime) -> int:
        doomed = [sid for sid, s in self._store.sessions.items() if s.is_expired(now)]
        for sid in doomed:
            self._drop(sid)
        return len(doomed)

    def _drop(self, session_id: SessionId) -> None:
        del self._store.sessions[session_id]
        for token_hash in [h for h, sid in self._store.retired.items() if sid == session_id]:
            del self._store.retired[token_hash]
        self.touched.add(session_id)


def append_event(store: MemoryStore, event: SecurityEvent) -> StoredEvent:
    """Store the event's stored form, without its user if ``store`` has no such user (the foreign key's rule)."""
    stored = event.stored_form()
    if stored.user_id is not None and stored.user_id not in store.users:
        stored = dataclasses.replace(stored, user_id=None)
    position = (store.events[-1].id if store.events else 0) + 1
    row = StoredEvent(id=position, event=stored)
    store.events.append(row)
    return row


class InMemoryEventRepository:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._added: list[tuple[SecurityEvent, StoredEvent]] = []  # each event, and its row in the working copy
        self.deleted_anonymous_before: datetime | None = None  # the commit deletes those from the shared store too

    async def add(self, event: SecurityEvent) -> None:
        """As the database does: an event naming a user who is gone (here, or by the commit) is kept without them."""
        self._added.append((event, append_event(self._store, event)))

    def pending(self) -> list[SecurityEvent]:
        """What the commit appends to the shared store: the events added here whose rows are still in the working
        copy (an erasure in this unit of work deletes the ones it added before, as the database's would)."""
        present = {id(row) for row in self._store.events}
        return [event for event, row in self._added if id(row) in present]

    async def list_for_user(self, user_id: UserId, *, limit: int, before: int | None = None) -> Sequence[StoredEvent]:
        return await self.list_all(user_id=user_id, limit=limit, before=before)

    async def list_all(
        self,
        *,
        limit: int,
        before: int | None = None,
        type: EventType | None = None,
        actor_id: UserId | None = None,
        user_id: UserId | None = None,
    ) -> Sequence[StoredEvent]:
        found = [
            e
            for e in reversed(self._store.events)
            if (user_id is None or e.event.user_id == user_id)
            and (actor_id is None or e.event.actor_id == actor_id)
            and (type is None or e.event.type is type)
            and (before is None or e.id < before)
        ]
        return found[:limit]

    async def last_at(self, user_id: UserId, type: EventType, *, ip: str | None = None) -> datetime | None:
        times = [
            e.event.at
            for e in self._store.events
            if e.event.user_id == user_id and e.event.type is type and (ip is None or e.event.ip == ip)
        ]
        return max(times, default=None)

    async def failed_sign_ins(
        self, user_id: UserId, *, since: datetime, limit: int, ip: str | None = None
    ) -> Sequence[datetime]:
        found = [
            e.event.at
            for e in reversed(self._store.events)
            if e.event.user_id == user_id
            and e.event.type is EventType.LOGIN_FAILED
            and e.event.at >= since
            and (ip is None or e.event.ip == ip)
        ]
        return found[:limit]

    async def delete_anonymous_before(self, cutoff: datetime) -> int:
        kept = [e for e in self._store.events if e.event.user_id is not None or e.event.at >= cutoff]
        deleted = len(self._store.events) - len(kept)
        self._store.events = kept
        self.deleted_anonymous_before = cutoff
        return deleted


class InMemoryStatsQueries:
    """The KPIs' aggregates over the unit of work's copy, by scanning it (the SQL adapter reads indexes)."""

    ACTIVITY = frozenset({EventType.LOGIN_SUCCEEDED, EventType.TOKEN_REFRESHED})

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def _during(self, start: datetime, end: datetime, *types: EventType) -> list[SecurityEvent]:
        return [e.event for e in self._store.events if e.event.type in types and start <= e.event.at < end]

    async def registrations_by_day(self, start: datetime, end: datetime) -> Sequence[tuple[date, int]]:
        counts: dict[date, int] = {}
        for event in self._during(start, end, EventType.REGISTERED):
            day = event.at.astimezone(UTC).date()
            counts[day] = counts.get(day, 0) + 1
        return sorted(counts.items())

    async def sign_ins(self, start: datetime, end: datetime) -> SignInCounts:
        found = self._during(start, end, EventType.LOGIN_SUCCEEDED, EventType.LOGIN_FAILED)
        durations = [float(e.details["duration_ms"]) for e in found if e.details.get("duration_ms") is not None]
        return SignInCounts(
            succeeded=sum(1 for e in found if e.type is EventType.LOGIN_SUCCEEDED),
            failed=sum(1 for e in found if e.type is EventType.LOGIN_FAILED),
            mean_duration_ms=sum(durations) / len(durations) if durations else None,
        )

    async def accounts(self) -> tuple[int, int]:
        confirmed = sum(1 for user_id, c in self._store.totp.items() if c.enabled and user_id in self._store.users)
        return len(self._store.users), confirmed

    async def registered_and_last_active(
        self, start: datetime, end: datetime, *, until: datetime
    ) -> Sequence[tuple[datetime, datetime | None]]:
        found = []
        for registered in self._during(start, end, EventType.REGISTERED):
            if registered.user_id is None:
                continue
            active = [
                e.event.at
                for e in self._store.events
                if e.event.user_id == registered.user_id and e.event.type in self.ACTIVITY and e.event.at < until
            ]
            found.append((registered.at, max(active, default=None)))
        return found

    async def password_resets(self, start: datetime, end: datetime) -> Sequence[tuple[datetime, datetime | None]]:
        found = []
        for reset in self._during(start, end, EventType.PASSWORD_RESET):
            requests = [
                e.event.at
                for e in self._store.events
                if reset.user_id is not None
                and e.event.user_id == reset.user_id
                and e.event.type is EventType.PASSWORD_RESET_REQUESTED
                and e.event.at <= reset.at
            ]
            found.append((reset.at, max(requests, default=None)))
        return found

    async def deletions(self, start: datetime, end: datetime, *, within: timedelta) -> tuple[int, int]:
        marks = self._during(start, end, EventType.ACCOUNT_DELETED)
        limit = within.total_seconds()
        in_time = sum(1 for e in marks if e.details.get("lag_seconds") is None or e.details["lag_seconds"] <= limit)
        return len(marks), in_time

    async def overdue_erasures(self, start: datetime, end: datetime) -> int:
        return sum(1 for u in self._store.users.values() if u.erasure_at is not None and start <= u.erasure_at < end)


class InMemoryRoleRepository:
    """Roles and grants in the unit of work's copy; the commit writes back the roles and users it touched (the last
    writer wins, as it would after the database's lock on ``admin`` made the two wait for each other)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.touched_roles: set[str] = set()
        self.touched_users: set[UserId] = set()

    async def list(self) -> Sequence[Role]:
        return [copy.deepcopy(self._store.roles[name]) for name in sorted(self._store.roles)]

    async def get(self, name: str, *, for_update: bool = False) -> Role | None:
        role = self._store.roles.get(name)
        return copy.deepcopy(role) if role is not None else None

    async def add(self, role: Role) -> None:
        if role.name in self._store.roles:
            raise RoleExists()
        self._store.roles[role.name] = copy.deepcopy(role)
        self.touched_roles.add(role.name)

    async def update(self, role: Role) -> None:
        if role.name in self._store.roles:
            self._store.roles[role.name] = copy.deepcopy(role)
            self.touched_roles.add(role.name)

    async def delete(self, name: str) -> bool:
        for user_id, held in self._store.user_roles.items():
            if held.pop(name, None) is not None:
                self.touched_users.add(user_id)
        self.touched_roles.add(name)
        return self._store.roles.pop(name, None) is not None

    async def roles_of(self, user_id: UserId) -> tuple[str, ...]:
        return tuple(sorted(self._store.user_roles.get(user_id, {})))

    async def roles_of_many(self, user_ids: Iterable[UserId]) -> Mapping[UserId, tuple[str, ...]]:
        return {user_id: await self.roles_of(user_id) for user_id in user_ids if self._store.user_roles.get(user_id)}

    async def set_roles(self, user_id: UserId, names: Iterable[str], now: datetime) -> None:
        wanted = set(names)
        if any(name not in self._store.roles for name in wanted):
            raise ConcurrentUpdate()  # as the database's foreign key refuses a grant of a role deleted meanwhile
        held = self._store.user_roles.get(user_id, {})
        self._store.user_roles[user_id] = {name: held.get(name, now) for name in wanted}
        self.touched_users.add(user_id)

    async def active_holders(self, name: str) -> int:
        return sum(
            1
            for user_id, held in self._store.user_roles.items()
            if name in held and (user := self._store.users.get(user_id)) is not None and user.is_active
        )

    async def search_users(
        self,
        *,
        query: str | None,
        role: str | None,
        active: bool | None,
        limit: int,
        after: UserPageKey | None,
    ) -> Sequence[User]:
        def matches(user: User) -> bool:
            names = [user.email.canonical] + ([user.username.canonical] if user.username else [])
            return (
                (not query or any(name.startswith(query) for name in names))
                and (role is None or role in self._store.user_roles.get(user.id, {}))
                and (active is None or user.is_active is active)
                and (after is None or (user.created_at, user.id) < after)
            )

        found = sorted(
            (u for u in self._store.users.values() if matches(u)), key=lambda u: (u.created_at, u.id), reverse=True
        )
        return [copy.deepcopy(u) for u in found[:limit]]

    def merge_into(self, committed: MemoryStore) -> None:
        for name in self.touched_roles:
            if name in self._store.roles:
                committed.roles[name] = self._store.roles[name]
            else:
                committed.roles.pop(name, None)
                for held in committed.user_roles.values():
                    held.pop(name, None)
        for user_id in self.touched_users:
            mine = self._store.user_roles.get(user_id)
            if mine and user_id in committed.users:
                committed.user_roles[user_id] = {n: at for n, at in mine.items() if n in committed.roles}
            else:
                committed.user_roles.pop(user_id, None)


class InMemoryEmailTokenRepository:
    """Works on the unit of work's copy and remembers what it took, so that the commit can refuse a second taker."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.taken: set[str] = set()

    async def add(self, token: EmailToken) -> None:
        self._store.email_tokens[token.digest] = token

    async def take(self, digest: str, purpose: EmailTokenPurpose) -> EmailToken | None:
        token = self._store.email_tokens.get(digest)
        if token is None or token.purpose is not purpose:
            return None
        del self._store.email_tokens[digest]
        self.taken.add(digest)
        return token

    async def delete_for_user(self, user_id: UserId, *purposes: EmailTokenPurpose) -> int:
        doomed = [
            digest
            for digest, token in self._store.email_tokens.items()
            if token.user_id == user_id and (not purposes or token.purpose in purposes)
        ]
        for digest in doomed:
            del self._store.email_tokens[digest]
        return len(doomed)

    async def latest_for_user(self, user_id: UserId, purpose: EmailTokenPurpose) -> EmailToken | None:
        own = [t for t in self._store.email_tokens.values() if t.user_id == user_id and t.purpose is purpose]
        return max(own, key=lambda t: t.created_at, default=None)

    async def delete_expired(self, now: datetime) -> int:
        doomed = [digest for digest, token in self._store.email_tokens.items() if token.expires_at <= now]
        for digest in doomed:
            del self._store.email_tokens[digest]
        return len(doomed)


class InMemoryOutbox:
    """Works on the unit of work's copy. ``changed`` holds each committed row this unit of work claimed or marked,
    with its lease as it was read: the commit refuses to apply a change to a row that another unit of work changed
    meanwhile (the database's row lock and the lease fence, as a conflict), so one row is never claimed twice."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.added: list[OutboxRow] = []
        self.changed: dict[int, tuple[datetime | None, int]] = {}  # row id -> (claimed_until, attempts) when read

    async def add(self, message: OutgoingEmail, *, now: datetime) -> None:
        row = OutboxRow(
            id=0, message_id=f"<{uuid4().hex}@usermgmt.localhost>", message=message, created_at=now, next_attempt_at=now
        )
        self.added.append(row)

    async def claim(self, *, now: datetime, lease: timedelta, limit: int) -> Sequence[QueuedEmail]:
        due = [
            row
            for row in self._store.outbox
            if row.next_attempt_at is not None
            and row.next_attempt_at <= now
            and (row.claimed_until is None or row.claimed_until <= now)
        ]
        due.sort(key=lambda row: (row.next_attempt_at or now, row.id))
        claimed = []
        for row in due[:limit]:
            self.changed.setdefault(row.id, (row.claimed_until, row.attempts))
            row.claimed_until = now + lease
            claimed.append(
                QueuedEmail(
                    id=row.id,
                    message_id=row.message_id,
                    message=row.message,
                    created_at=row.created_at,
                    attempts=row.attempts,
                    claimed_until=row.claimed_until,
                )
            )
        return sorted(claimed, key=lambda email: email.id)

    def _claimed(self, email: QueuedEmail) -> OutboxRow | None:
        row = next((row for row in self._store.outbox if row.id == email.id), None)
        if row is None or row.claimed_until != email.claimed_until:
            return None
        self.changed.setdefault(row.id, (row.claimed_until, row.attempts))
        return row

    async def mark_sent(self, email: QueuedEmail) -> bool:
        row = self._claimed(email)
        if row is not None:
            self._store.outbox.remove(row)
        return row is not None

    async def reschedule(self, email: QueuedEmail, *, at: datetime, error: str) -> bool:
        row = self._claimed(email)
        if row is not None:
            row.attempts += 1
            row.next_attempt_at, row.claimed_until, row.last_error = at, None, error[:500]
        return row is not None

    async def give_up(self, email: QueuedEmail) -> bool:
        return await self.mark_sent(email)


class InMemoryKnownDeviceRepository:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def touch(self, user_id: UserId, device_key: str, now: datetime) -> datetime | None:
        first, before = self._store.known_devices.get((user_id, device_key), (now, None))
        self._store.known_devices[(user_id, device_key)] = (first, now)
        return before


def _totp_state(store: MemoryStore, user_id: UserId) -> tuple[object, ...]:
    credential = store.totp.get(user_id)
    totp = dataclasses.astuple(credential) if credential is not None else None
    return totp, frozenset(store.recovery_codes.get(user_id, ()))


def _challenge_state(store: MemoryStore, digest: str) -> tuple[object, ...] | None:
    challenge = store.challenges.get(digest)
    return dataclasses.astuple(challenge) if challenge is not None else None


class InMemoryMfaRepository:
    """Changes are tracked per user (credential and codes) and per challenge; a commit refuses (ConcurrentUpdate)
    when another unit of work changed the same ones meanwhile, as the database's conditional statements would."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.users: dict[UserId, tuple[object, ...]] = {}  # touched -> state when first touched
        self.challenges: dict[str, tuple[object, ...] | None] = {}

    def _touch_user(self, user_id: UserId) -> None:
        self.users.setdefault(user_id, _totp_state(self._store, user_id))

    def _touch_challenge(self, digest: str) -> None:
        if digest not in self.challenges:
            self.challenges[digest] = _challenge_state(self._store, digest)

    async def get_totp(self, user_id: UserId) -> TotpCredential | None:
        return copy.deepcopy(self._store.totp.get(user_id))

    async def save_totp(self, credential: TotpCredential) -> None:
        self._touch_user(credential.user_id)
        self._store.totp[credential.user_id] = copy.deepcopy(credential)

    async def use_totp_step(self, user_id: UserId, step: int) -> bool:
        credential = self._store.totp.get(user_id)
        if credential is None or not credential.accepts_step(step):
            return False
        self._touch_user(user_id)
        credential.use_step(step)
        return True

    async def delete_totp(self, user_id: UserId) -> bool:
        self._touch_user(user_id)
        return self._store.totp.pop(user_id, None) is not None

    async def recovery_codes(self, user_id: UserId) -> Sequence[str]:
        return sorted(self._store.recovery_codes.get(user_id, set()))

    async def replace_recovery_codes(self, user_id: UserId, digests: Sequence[str], now: datetime) -> None:
        self._touch_user(user_id)
        self._store.recovery_codes[user_id] = set(digests)

    async def use_recovery_code(self, user_id: UserId, digest: str) -> bool:
        codes = self._store.recovery_codes.get(user_id, set())
        if digest not in codes:
            return False
        self._touch_user(user_id)
        codes.discard(digest)
        return True

    async def delete_recovery_codes(self, user_id: UserId) -> int:
        self._touch_user(user_id)
        return len(self._store.recovery_codes.pop(user_id, set()))

    async def add_challenge(self, challenge: MfaChallenge) -> None:
        self._touch_challenge(challenge.digest)
        self._store.challenges[challenge.digest] = copy.deepcopy(challenge)

    async def get_challenge(self, digest: str) -> MfaChallenge | None:
        return copy.deepcopy(self._store.challenges.get(digest))

    async def count_challenge_failure(self, digest: str) -> int | None:
        challenge = self._store.challenges.get(digest)
        if challenge is None:
            return None
        self._touch_challenge(digest)
        challenge.failures += 1
        return challenge.failures

    async def delete_challenge(self, digest: str) -> bool:
        if digest not in self._store.challenges:
            return False
        self._touch_challenge(digest)
        del self._store.challenges[digest]
        return True

    async def delete_challenges_for_user(self, user_id: UserId) -> int:
        doomed = [d for d, c in self._store.challenges.items() if c.user_id == user_id]
        for digest in doomed:
            await self.delete_challenge(digest)
        return len(doomed)

    async def delete_expired_challenges(self, now: datetime) -> int:
        doomed = [d for d, c in self._store.challenges.items() if c.is_expired(now)]
        for digest in doomed:
            await self.delete_challenge(digest)
        return len(doomed)

    def conflicts(self, committed: MemoryStore) -> bool:
        return any(_totp_state(committed, u) != state for u, state in self.users.items()) or any(
            _challenge_state(committed, d) != state for d, state in self.challenges.items()
        )

    def merge_into(self, committed: MemoryStore) -> None:
        for user_id in self.users:
            if user_id not in committed.users:
                continue  # erased meanwhile: the foreign key would have refused the rows
            for name in ("totp", "recovery_codes"):
                mine, theirs = getattr(self._store, name), getattr(committed, name)
                if user_id in mine:
                    theirs[user_id] = mine[user_id]
                else:
                    theirs.pop(user_id, None)
        for digest in self.challenges:
            challenge = self._store.challenges.get(digest)
            if challenge is not None and challenge.user_id in committed.users:
                committed.challenges[digest] = challenge
            else:
                committed.challenges.pop(digest, None)


class InMemoryIdentityRepository:
    """Identities in the unit of work's copy. The commit checks (provider, subject) against what others committed
    meanwhile, as the database's unique index would at the second insert."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.added: set[IdentityId] = set()
        self.touched: set[IdentityId] = set()

    async def get(self, provider: str, subject: str) -> Identity | None:
        found = (i for i in self._store.identities.values() if (i.provider, i.subject) == (provider, subject))
        return copy.deepcopy(next(found, None))

    async def get_for_user(self, identity_id: IdentityId, user_id: UserId) -> Identity | None:
        identity = self._store.identities.get(identity_id)
        return copy.deepcopy(identity) if identity is not None and identity.user_id == user_id else None

    async def list_for_user(self, user_id: UserId) -> Sequence[Identity]:
        own = [copy.deepcopy(i) for i in self._store.identities.values() if i.user_id == user_id]
        return sorted(own, key=lambda i: (i.created_at, i.id))

    async def add(self, identity: Identity) -> None:
        if identity.user_id not in self._store.users:
            raise ConcurrentUpdate()  # the database's foreign key would refuse it
        check_identity_unique(self._store, identity)
        self._store.identities[identity.id] = copy.deepcopy(identity)
        self.added.add(identity.id)
        self.touched.add(identity.id)

    async def update(self, identity: Identity) -> None:
        stored = self._store.identities.get(identity.id)
        if stored is None:
            return  # as an UPDATE that matches no row
        stored.email, stored.last_used_at = identity.email, identity.last_used_at
        self.touched.add(identity.id)

    async def delete(self, identity_id: IdentityId, user_id: UserId) -> bool:
        identity = self._store.identities.get(identity_id)
        if identity is None or identity.user_id != user_id:
            return False
        del self._store.identities[identity_id]
        self.touched.add(identity_id)
        return True

    def check(self, committed: MemoryStore, users: InMemoryUserRepository) -> None:
        """Raises: IdentityInUse (another unit of work committed the same provider and subject), ConcurrentUpdate
        (the account was erased meanwhile)."""
        for identity_id in self.added:
            identity = self._store.identities.get(identity_id)
            if identity is None:
                continue
            if identity.user_id not in committed.users and identity.user_id not in users.touched:
                raise ConcurrentUpdate()
            check_identity_unique(committed, identity)

    def merge_into(self, committed: MemoryStore) -> None:
        for identity_id in self.touched:
            identity = self._store.identities.get(identity_id)
            if identity is None:
                committed.identities.pop(identity_id, None)
            elif identity.user_id in committed.users and (
                identity_id in self.added or identity_id in committed.identities  # not deleted meanwhile
            ):
                committed.identities[identity_id] = identity


def check_identity_unique(store: MemoryStore, identity: Identity) -> None:
    """What the database's unique (provider, subject) guarantees."""
    for other in store.identities.values():
        if other.id != identity.id and (other.provider, other.subject) == (identity.provider, identity.subject):
            raise IdentityInUse()


class InMemoryFederationRepository:
    """Works on the unit of work's copy and remembers what it took, so that the commit can refuse a second taker
    (as the database's DELETE ... RETURNING gives a row to one transaction only)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._authorizations_at_start = set(store.authorizations)
        self._codes_at_start = set(store.login_codes)
        self.taken_authorizations: set[str] = set()
        self.taken_codes: set[str] = set()

    async def add_authorization(self, pending: PendingAuthorization) -> None:
        if pending.user_id is not None and pending.user_id not in self._store.users:
            raise ConcurrentUpdate()  # the database's foreign key would refuse it
        self._store.authorizations[pending.state_digest] = copy.deepcopy(pending)

    async def take_authorization(self, state_digest: str) -> PendingAuthorization | None:
        pending = self._store.authorizations.pop(state_digest, None)
        if pending is not None:
            self.taken_authorizations.add(state_digest)
        return pending

    async def add_login_code(self, code: LoginCode) -> None:
        if code.user_id not in self._store.users:
            raise ConcurrentUpdate()  # the database's foreign key would refuse it
        self._store.login_codes[code.digest] = copy.deepcopy(code)

    async def take_login_code(self, digest: str) -> LoginCode | None:
        code = self._store.login_codes.pop(digest, None)
        if code is not None:
            self.taken_codes.add(digest)
        return code

    async def delete_expired(self, now: datetime) -> int:
        return _erase_where(self._store.authorizations, lambda a: a.expires_at <= now) + _erase_where(
            self._store.login_codes, lambda c: c.expires_at <= now
        )

    def conflicts(self, committed: MemoryStore) -> bool:
        """Whether another unit of work took (or deleted) a row this one took."""
        return any(d not in committed.authorizations for d in self.taken_authorizations) or any(
            d not in committed.login_codes for d in self.taken_codes
        )

    def merge_into(self, committed: MemoryStore) -> None:
        _merge_rows(self._store.authorizations, committed.authorizations, self._authorizations_at_start, committed)
        _merge_rows(self._store.login_codes, committed.login_codes, self._codes_at_start, committed)


def _merge_rows(mine: dict[str, R], theirs: dict[str, R], at_start: set[str], committed: MemoryStore) -> None:
    """Apply to ``theirs`` what this unit of work took or deleted, and what it added for an account still there."""
    for key in at_start - set(mine):
        theirs.pop(key, None)
    for key in set(mine) - at_start:
        row = mine[key]
        if row.user_id is None or row.user_id in committed.users:
            theirs[key] = row


class InMemoryUnitOfWork(UnitOfWork):
    """Works on a private copy of the store. ``commit`` merges what this unit of work touched into the shared
    store, after the checks a database would make at that moment (stale versions, lost rotations, uniqueness),
    so overlapping units of work behave as two transactions would; anything else throws the copy away.
    """

    users: InMemoryUserRepository
    sessions: InMemorySessionRepository
    events: InMemoryEventRepository
    email_tokens: InMemoryEmailTokenRepository
    outbox: InMemoryOutbox
    known_devices: InMemoryKnownDeviceRepository
    mfa: InMemoryMfaRepository
    roles: InMemoryRoleRepository
    stats: InMemoryStatsQueries
    identities: InMemoryIdentityRepository
    federation: InMemoryFederationRepository

    def __init__(
        self,
        store: MemoryStore | None = None,
        dispatcher: EventDispatcher | None = None,
        on_mail_queued: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(dispatcher or EventDispatcher(after_commit=[self._log]))
        self.store = store or MemoryStore()
        self._on_mail_queued = on_mail_queued  # as SqlAlchemyUnitOfWork's: after a commit that queued messages
        self.commits = 0
        self.logged: list[SecurityEvent] = []  # every event whose transaction committed, in order
        self._working: MemoryStore | None = None

    async def _log(self, events: Sequence[SecurityEvent]) -> None:
        self.logged.extend(events)
        log_events(events)

    async def _begin(self) -> None:
        self._open()

    def _open(self) -> None:
        self._working = copy.deepcopy(self.store)
        self._tokens_at_start = set(self._working.email_tokens)
        self._devices_at_start = set(self._working.known_devices)
        self.users = InMemoryUserRepository(self._working, committed=self.store)
        self.sessions = InMemorySessionRepository(self._working)
        self.events = InMemoryEventRepository(self._working)
        self.email_tokens = InMemoryEmailTokenRepository(self._working)
        self.outbox = InMemoryOutbox(self._working)
        self.known_devices = InMemoryKnownDeviceRepository(self._working)
        self.mfa = InMemoryMfaRepository(self._working)
        self.roles = InMemoryRoleRepository(self._working)
        self.stats = InMemoryStatsQueries(self._working)
        self.identities = InMemoryIdentityRepository(self._working)
        self.federation = InMemoryFederationRepository(self._working)

    async def _commit(self) -> None:
        working = self._working
        if working is None:
            raise RuntimeError("commit() outside 'async with'")
        store, users, sessions = self.store, self.users, self.sessions
        for user_id in users.updated | users.locked:  # check everything first: a failed commit changes nothing
            if store.versions.get(user_id) != users.base.get(user_id):
                raise ConcurrentUpdate()
        for session_id in sessions.added:
            added = working.sessions.get(session_id)
            if added is not None and added.user_id not in store.users and added.user_id not in users.touched:
                raise ConcurrentUpdate()  # the user was erased meanwhile: the database's foreign key refuses it
        for user_id in users.touched:
            if user_id in working.users:
                check_unique(store, working.users[user_id])
        for session_id, retired in sessions.rotated.items():
            current = store.sessions.get(session_id)
            if current is None or current.refresh_token_hash != retired:
                raise ConcurrentUpdate()
        if any(digest not in store.email_tokens for digest in self.email_tokens.taken):
            raise ConcurrentUpdate()  # another unit of work took the token first: single use
        committed_rows = {row.id: row for row in store.outbox}
        for row_id, (claimed_until, attempts) in self.outbox.changed.items():
            row = committed_rows.get(row_id)
            if row is not None and (row.claimed_until, row.attempts) != (claimed_until, attempts):
                raise ConcurrentUpdate()  # claimed or marked by another unit of work meanwhile
        if self.mfa.conflicts(store):
            raise ConcurrentUpdate()  # the same code, credential or challenge changed by another unit of work
        if self.federation.conflicts(store):
            raise ConcurrentUpdate()  # another unit of work took the state or login code first: single use
        self.identities.check(store, users)

        for user_id in users.touched:
            if user_id in working.users:
                store.users[user_id], store.versions[user_id] = working.users[user_id], working.versions[user_id]
            else:  # erased, with every row that names the user (the database's ON DELETE CASCADE)
                erase_personal_data(store, user_id)
        for session_id in sessions.touched:
            if session_id in working.sessions:
                store.sessions[session_id] = working.sessions[session_id]
            else:
                store.sessions.pop(session_id, None)
        store.retired = {h: sid for h, sid in store.retired.items() if sid in store.sessions}
        store.retired |= {h: sid for h, sid in working.retired.items() if sid in store.sessions}
        cutoff = self.events.deleted_anonymous_before
        if cutoff is not None:
            store.events = [e for e in store.events if e.event.user_id is not None or e.event.at >= cutoff]
        for event in self.events.pending():
            append_event(store, event)
        for digest in self._tokens_at_start - set(working.email_tokens):  # taken or deleted here
            store.email_tokens.pop(digest, None)
        for digest in set(working.email_tokens) - self._tokens_at_start:  # added here
            store.email_tokens[digest] = working.email_tokens[digest]
        working_rows = {row.id: row for row in working.outbox}
        for row_id in self.outbox.changed:
            if row_id not in committed_rows:
                continue  # erased with its account meanwhile
            position = store.outbox.index(committed_rows[row_id])
            if row_id in working_rows:
                store.outbox[position] = working_rows[row_id]
            else:
                del store.outbox[position]
        for row in self.outbox.added:
            if row.message.user_id is None or row.message.user_id in store.users:
                row.id = max((r.id for r in store.outbox), default=0) + 1
                store.outbox.append(row)
        queued = len(self.outbox.added)
        store.known_devices.update(working.known_devices)
        self.mfa.merge_into(store)
        self.roles.merge_into(store)
        self.identities.merge_into(store)
        self.federation.merge_into(store)
        for key in self._devices_at_start - set(working.known_devices):
            store.known_devices.pop(key, None)

        self.commits += 1
        self._open()
        if queued and self._on_mail_queued is not None:
            self._on_mail_queued()

    async def _end(self, error: BaseException | None) -> None:
        self._working = None


class InMemoryPrincipalReader:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def get(self, user_id: UserId, session_id: SessionId, now: datetime) -> Principal | None:
        session = self._store.sessions.get(session_id)
        user = self._store.users.get(user_id)
        if session is None or user is None or session.user_id != user_id or session.is_expired(now):
            return None
        return principal_of(user, session_id, granted_permissions(self._store, user_id))


def granted_permissions(store: MemoryStore, user_id: UserId) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for name in store.user_roles.get(user_id, {}):
        role = store.roles.get(name)
        if role is not None:
            granted |= ALL_PERMISSIONS if role.is_builtin else role.permissions
    return frozenset(granted)


def principal_of(user: User, session_id: SessionId, permissions: frozenset[Permission] = frozenset()) -> Principal:
    return Principal(
        user_id=user.id,
        session_id=session_id,
        email=user.email,
        username=user.username,
        full_name=user.full_name,
        email_verified=user.email_verified,
        is_active=user.is_active,
        created_at=user.created_at,
        updated_at=user.updated_at,
        pending_email=user.pending_email,
        permissions=permissions,
        has_password=user.has_password,
    )


class FakePasswordHasher:
    """A fast, deterministic stand-in for bcrypt. Hashes made with another ``scheme`` count as outdated."""

    def __init__(self, scheme: str = "fake2") -> None:
        self.scheme = scheme
        self.verifications = 0
        self.busy_for: float | None = None  # set: ``admit`` sheds, as a saturated pool would, for this long

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        if self.busy_for is not None:
            raise ServiceBusy(retry_after=self.busy_for)
        yield

    @property
    def dummy_hash(self) -> PasswordHash:
        return PasswordHash(f"{self.scheme}$dummy")

    def hash_sync(self, password: str, scheme: str | None = None) -> PasswordHash:
        digest = hashlib.sha256(password.encode()).hexdigest()
        return PasswordHash(f"{scheme or self.scheme}${digest}")

    async def hash(self, password: PlainPassword) -> PasswordHash:
        return self.hash_sync(password.value)

    async def verify_and_update(
        self, password: PlainPassword, password_hash: PasswordHash
    ) -> tuple[bool, PasswordHash | None]:
        self.verifications += 1
        scheme, _, _ = password_hash.value.partition("$")
        if self.hash_sync(password.value, scheme) != password_hash:
            return False, None
        return True, None if scheme == self.scheme else self.hash_sync(password.value)


class FakeAccessTokenService:
    """Readable tokens (``fake.<user>.<session>.<expiry>``); expiry checked against the given clock."""

    def __init__(self, clock: FrozenClock, ttl: timedelta = timedelta(minutes=15)) -> None:
        self._clock, self._ttl = clock, ttl
        self.issued = 0
        self.roles: tuple[str, ...] = ()

    def issue(self, session: Session, roles: Sequence[str] = ()) -> IssuedToken:
        self.issued += 1
        self.roles = tuple(roles)  # the last token's, for tests
        expiry = int((self._clock.now() + self._ttl).timestamp())
        amr = "+".join(session.amr)
        auth_time = int(session.authenticated_at.timestamp())
        return IssuedToken(
            token=f"fake.{session.user_id}.{session.id}.{expiry}.{amr}.{auth_time}.{self.issued}",
            expires_in=int(self._ttl.total_seconds()),
        )

    def verify(self, token: str) -> AccessClaims:
        try:
            prefix, user_id, session_id, expiry, amr, auth_time, _ = token.split(".")
            tz = self._clock.now().tzinfo
            expires_at = datetime.fromtimestamp(int(expiry), tz)
            claims = AccessClaims(
                user_id=UserId(UUID(user_id)),
                session_id=SessionId(UUID(session_id)),
                expires_at=expires_at,
                amr=tuple(AuthMethod(m) for m in amr.split("+")),
                auth_time=datetime.fromtimestamp(int(auth_time), tz),
            )
        except ValueError:
            raise InvalidAccessToken() from None
        if prefix != "fake" or self._clock.now() >= expires_at:
            raise InvalidAccessToken()
        return claims


class FrozenClock:
    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


class SequentialIdGenerator:
    """Predictable ids: 00000000-0000-0000-0000-000000000001, …2, …"""

    def __init__(self) -> None:
        self._next = 0

    def _new(self) -> UUID:
        self._next += 1
        return UUID(int=self._next)

    def new_user_id(self) -> UserId:
        return UserId(self._new())

    def new_session_id(self) -> SessionId:
        return SessionId(self._new())

    def new_identity_id(self) -> IdentityId:
        return IdentityId(self._new())


class InMemoryRateLimiter:
    """A moving window over the given clock's time: deterministic limits for tests of the use cases."""

    def __init__(self, clock: FrozenClock) -> None:
        self._clock = clock
        self._hits: dict[str, list[datetime]] = {}
        self.failing = False

    def _window(self, rate: Rate, key: str) -> list[datetime]:
        start = self._clock.now() - rate.period
        hits = [at for at in self._hits.get(key, []) if at > start]
        self._hits[key] = hits
        return hits

    def _status(self, rate: Rate, hits: list[datetime], *, allowed: bool) -> RateStatus:
        reset_after = (hits[0] + rate.period - self._clock.now()).total_seconds() if hits else 0.0
        return RateStatus(
            allowed=allowed, limit=rate.limit, remaining=max(0, rate.limit - len(hits)), reset_after=reset_after
        )

    async def hit(self, rate: Rate, key: str) -> RateStatus:
        hits = self._window(rate, key)
        allowed = len(hits) < rate.limit
        if allowed:
            hits.append(self._clock.now())
        return self._status(rate, hits, allowed=allowed)

    async def clear(self, rate: Rate, key: str) -> None:
        self._hits.pop(key, None)

    def degraded(self) -> bool:
        """Set ``failing`` to play a shared store that is down (the counts are then this process's alone)."""
        return self.failing
