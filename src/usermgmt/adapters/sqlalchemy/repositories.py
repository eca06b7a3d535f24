"""Repositories over one ``AsyncConnection`` owned by the unit of work. Explicit mapping, no ORM identity map."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from usermgmt.adapters.sqlalchemy.tables import (
    PERSONAL_DATA,
    retired_refresh_tokens,
    security_events,
    sessions,
    users,
)
from usermgmt.application.errors import ConcurrentUpdate, EmailTaken, IdentityInUse, RoleExists, UsernameTaken
from usermgmt.domain.errors import DomainError
from usermgmt.domain.events import EventType, SecurityEvent, StoredEvent
from usermgmt.domain.model import Session, User
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

T = TypeVar("T")

# A violated unique constraint (PostgreSQL names it, SQLite names the column) -> the error the core knows.
_UNIQUE_VIOLATIONS: Mapping[str, type[DomainError]] = {
    "email_canonical": EmailTaken,
    "username_canonical": UsernameTaken,
    "pk_roles": RoleExists,
    "roles.name": RoleExists,
    "uq_identities_provider_subject": IdentityInUse,
    "identities.provider, identities.subject": IdentityInUse,
    # A role deleted while being granted.
    "fk_user_roles_role_name_roles": ConcurrentUpdate,
    # A session for a user deleted in the meantime (PostgreSQL names the key; SQLite says only this).
    "fk_sessions_user_id_users": ConcurrentUpdate,
    "fk_identities_user_id_users": ConcurrentUpdate,
    "fk_oauth_authorizations_user_id_users": ConcurrentUpdate,
    "fk_login_codes_user_id_users": ConcurrentUpdate,
    "FOREIGN KEY constraint failed": ConcurrentUpdate,
}


def translate_integrity_error(error: IntegrityError) -> DomainError | None:
    message = str(error.orig)
    for marker, domain_error in _UNIQUE_VIOLATIONS.items():
        if marker in message:
            return domain_error()
    return None


def user_from_row(row: Row[Any]) -> User:
    return User(
        id=UserId(row.id),
        email=trusted(Email, row.email),
        username=trusted(Username, row.username) if row.username is not None else None,
        full_name=trusted(FullName, row.full_name) if row.full_name is not None else None,
        password_hash=PasswordHash(row.password_hash) if row.password_hash is not None else None,
        email_verified=row.email_verified,
        is_active=row.is_active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        password_changed_at=row.password_changed_at,
        pending_email=trusted(Email, row.pending_email) if row.pending_email is not None else None,
        erasure_at=row.erasure_at,
    )


def trusted(cls: type[T], value: str) -> T:
    """Rebuild a value object from a stored value without validating it again (it was validated on the way in)."""
    obj = object.__new__(cls)
    object.__setattr__(obj, "value", value)
    return obj


def _user_values(user: User) -> dict[str, Any]:
    return {
        "email": user.email.value,
        "email_canonical": user.email.canonical,
        "username": user.username.value if user.username else None,
        "username_canonical": user.username.canonical if user.username else None,
        "full_name": user.full_name.value if user.full_name else None,
        "password_hash": user.password_hash.value if user.password_hash is not None else None,
        "email_verified": user.email_verified,
        "is_active": user.is_active,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "password_changed_at": user.password_changed_at,
        "pending_email": user.pending_email.value if user.pending_email else None,
        "erasure_at": user.erasure_at,
    }


class SqlAlchemyUserRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._versions: dict[UserId, int] = {}  # optimistic locking: the version each loaded user had

    async def get(self, user_id: UserId, *, for_update: bool = False) -> User | None:
        statement = select(users).where(users.c.id == user_id)
        if not for_update:
            return await self._one(statement)
        if self._connection.dialect.name == "sqlite":
            # SQLite has no row locks, and its driver begins a transaction only at the first write: a no-op write
            # takes the database's write lock now, so a concurrent writer waits until this transaction ends.
            await self._connection.execute(update(users).where(users.c.id == user_id).values(version=users.c.version))
        # FOR NO KEY UPDATE: what an UPDATE of the row takes, so a concurrent update waits; foreign-key checks on
        # the row (inserting a session or an event for the user) do not.
        return await self._one(statement.with_for_update(key_share=True))

    async def get_by_email(self, email: Email) -> User | None:
        return await self._one(select(users).where(users.c.email_canonical == email.canonical))

    async def get_by_username(self, username: Username) -> User | None:
        return await self._one(select(users).where(users.c.username_canonical == username.canonical))

    async def add(self, user: User) -> None:
        await self._write(insert(users).values(id=user.id, version=1, **_user_values(user)))
        self._versions[user.id] = 1

    async def update(self, user: User) -> None:
        version = self._versions[user.id]
        result = await self._write(
            update(users)
            .where(users.c.id == user.id, users.c.version == version)
            .values(version=version + 1, **_user_values(user))
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate()
        self._versions[user.id] = version + 1

    async def due_for_erasure(self, now: datetime, *, limit: int) -> Sequence[User]:
        rows = await self._connection.execute(
            select(users).where(users.c.erasure_at <= now).order_by(users.c.erasure_at).limit(limit)
        )
        return [user_from_row(row) for row in rows]

    async def erase(self, user_id: UserId) -> Mapping[str, int]:
        """Walk ``PERSONAL_DATA`` backwards (what a user owns before the user) and delete each entry's rows."""
        erased: dict[str, int] = {}
        for entry in reversed(PERSONAL_DATA):
            result = await self._connection.execute(delete(entry.table).where(entry.owned_by(user_id)))
            erased[entry.name] = int(result.rowcount)
        self._versions.pop(user_id, None)
        return {entry.name: erased[entry.name] for entry in PERSONAL_DATA}

    async def _one(self, statement: Any) -> User | None:
        row = (await self._connection.execute(statement)).first()
        if row is None:
            return None
        self._versions[UserId(row.id)] = row.version
        return user_from_row(row)

    async def _write(self, statement: Any) -> Any:
        return await execute_translated(self._connection, statement)


async def execute_translated(connection: AsyncConnection, statement: Any) -> Any:
    try:
        return await connection.execute(statement)
    except IntegrityError as exc:
        translated = translate_integrity_error(exc)
        if translated is None:
            raise
        raise translated from exc


def session_from_row(row: Row[Any]) -> Session:
    return Session(
        id=SessionId(row.id),
        user_id=UserId(row.user_id),
        refresh_token_hash=RefreshTokenHash(row.refresh_token_hash),
        authenticated_at=row.authenticated_at,
        amr=tuple(AuthMethod(method) for method in row.amr),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        user_agent=row.user_agent,
        ip=row.ip,
        provider=row.provider,
    )


class SqlAlchemySessionRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, session: Session) -> None:
        await execute_translated(
            self._connection,
            insert(sessions).values(
                id=session.id,
                user_id=session.user_id,
                refresh_token_hash=session.refresh_token_hash.value,
                authenticated_at=session.authenticated_at,
                amr=list(session.amr),
                created_at=session.created_at,
                last_used_at=session.last_used_at,
                expires_at=session.expires_at,
                user_agent=session.user_agent,
                ip=session.ip,
                provider=session.provider,
            ),
        )

    async def get(self, session_id: SessionId) -> Session | None:
        row = (await self._connection.execute(select(sessions).where(sessions.c.id == session_id))).first()
        return session_from_row(row) if row else None

    async def list_for_user(self, user_id: UserId) -> Sequence[Session]:
        rows = await self._connection.execute(
            select(sessions).where(sessions.c.user_id == user_id).order_by(sessions.c.last_used_at.desc())
        )
        return [session_from_row(row) for row in rows]

    async def get_by_refresh_token(self, token_hash: RefreshTokenHash) -> Session | None:
        statement = select(sessions).where(sessions.c.refresh_token_hash == token_hash.value)
        row = (await self._connection.execute(statement)).first()
        return session_from_row(row) if row else None

    async def find_by_retired_token(self, token_hash: RefreshTokenHash) -> SessionId | None:
        statement = select(retired_refresh_tokens.c.session_id).where(
            retired_refresh_tokens.c.token_hash == token_hash.value
        )
        session_id = (await self._connection.execute(statement)).scalar_one_or_none()
        return SessionId(session_id) if session_id is not None else None

    async def save_rotation(self, session: Session, retired: RefreshTokenHash) -> None:
        # Compare-and-set on the old hash: of two concurrent rotations, the second matches no row.
        result = await self._connection.execute(
            update(sessions)
            .where(sessions.c.id == session.id, sessions.c.refresh_token_hash == retired.value)
            .values(
                refresh_token_hash=session.refresh_token_hash.value,
                last_used_at=session.last_used_at,
                expires_at=session.expires_at,
                user_agent=session.user_agent,
                ip=session.ip,
            )
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate()
        await self._connection.execute(
            insert(retired_refresh_tokens).values(
                token_hash=retired.value, session_id=session.id, retired_at=session.last_used_at
            )
        )

    async def delete(self, session_id: SessionId, *, user_id: UserId | None = None) -> bool:
        condition = sessions.c.id == session_id
        if user_id is not None:
            condition = condition & (sessions.c.user_id == user_id)
        await self._delete_retired(condition)
        result = await self._connection.execute(delete(sessions).where(condition))
        return bool(result.rowcount)

    async def delete_for_user(self, user_id: UserId, *, keep: SessionId | None = None) -> int:
        condition = sessions.c.user_id == user_id
        if keep is not None:
            condition = condition & (sessions.c.id != keep)
        await self._delete_retired(condition)
        result = await self._connection.execute(delete(sessions).where(condition))
        return int(result.rowcount)

    async def delete_expired(self, now: datetime) -> int:
        condition = sessions.c.expires_at <= now
        await self._delete_retired(condition)
        result = await self._connection.execute(delete(sessions).where(condition))
        return int(result.rowcount)

    async def _delete_retired(self, session_condition: Any) -> None:
        """Retired tokens go with their session (explicitly: SQLite enforces ON DELETE CASCADE only if told)."""
        doomed = select(sessions.c.id).where(session_condition).scalar_subquery()
        await self._connection.execute(
            delete(retired_refresh_tokens).where(retired_refresh_tokens.c.session_id.in_(doomed))
        )


def _existing_user(user_id: UserId | None) -> Any:
    if user_id is None:
        return None
    return select(users.c.id).where(users.c.id == user_id).with_for_update(read=True, key_share=True).scalar_subquery()


class SqlAlchemyEventRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, event: SecurityEvent) -> None:
        """An event naming a user who no longer exists is stored without the user: the user id is read in the
        INSERT itself, ``(SELECT id FROM users WHERE id = :user_id FOR KEY SHARE)``, NULL when the row is gone.

        The lock is the one the foreign key's check takes anyway. It makes a deletion still in flight decide
        first: the subquery waits for it and, once it commits, finds no row (a plain subquery would still see the
        row, and the foreign key's check would then fail after the deletion commits). If the user is found, the
        deletion waits for this transaction instead, and its ``ON DELETE CASCADE`` takes this event with the user.
        """
        stored = event.stored_form()
        await self._connection.execute(
            insert(security_events).values(
                type=stored.type.value,
                at=stored.at,
                user_id=_existing_user(stored.user_id),
                session_id=stored.session_id,
                ip=stored.ip,
                user_agent=stored.user_agent,
                request_id=stored.request_id,
                details=dict(stored.details),
                actor_id=stored.actor_id,
            )
        )

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
        statement = select(security_events)
        if user_id is not None:
            statement = statement.where(security_events.c.user_id == user_id)
        if actor_id is not None:
            statement = statement.where(security_events.c.actor_id == actor_id)
        if type is not None:
            statement = statement.where(security_events.c.type == type.value)
        if before is not None:
            statement = statement.where(security_events.c.id < before)
        rows = await self._connection.execute(statement.order_by(security_events.c.id.desc()).limit(limit))
        return [_stored_event(row) for row in rows]

    async def delete_anonymous_before(self, cutoff: datetime) -> int:
        result = await self._connection.execute(
            delete(security_events).where(security_events.c.user_id.is_(None), security_events.c.at < cutoff)
        )
        return int(result.rowcount)

    async def last_at(self, user_id: UserId, type: EventType, *, ip: str | None = None) -> datetime | None:
        statement = select(func.max(security_events.c.at)).where(
            security_events.c.user_id == user_id, security_events.c.type == type.value
        )
        if ip is not None:
            statement = statement.where(security_events.c.ip == ip)
        result: datetime | None = (await self._connection.execute(statement)).scalar_one_or_none()
        return result

    async def failed_sign_ins(
        self, user_id: UserId, *, since: datetime, limit: int, ip: str | None = None
    ) -> Sequence[datetime]:
        # The user's events newest first through (user_id, id): an account's own trail, not the table.
        statement = (
            select(security_events.c.at)
            .where(
                security_events.c.user_id == user_id,
                security_events.c.type == EventType.LOGIN_FAILED.value,
                security_events.c.at >= since,
            )
            .order_by(security_events.c.id.desc())
            .limit(limit)
        )
        if ip is not None:
            statement = statement.where(security_events.c.ip == ip)
        return list((await self._connection.execute(statement)).scalars())


def _stored_event(row: Row[Any]) -> StoredEvent:
    return StoredEvent(
        id=row.id,
        event=SecurityEvent(
            type=EventType(row.type),
            at=row.at,
            user_id=UserId(row.user_id) if row.user_id is not None else None,
            session_id=SessionId(row.session_id) if row.session_id else None,
            ip=row.ip,
            user_agent=row.user_agent,
            request_id=row.request_id,
            details=row.details,
            actor_id=UserId(row.actor_id) if row.actor_id is not None else None,
        ),
    )
