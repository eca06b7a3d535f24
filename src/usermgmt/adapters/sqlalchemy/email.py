"""The email tables over the unit of work's connection: one-time tokens (as digests), the outbox (queued by the use
cases, claimed and marked by the delivery worker), and the known devices behind new-device notices."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Row, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from usermgmt.adapters.sqlalchemy.repositories import trusted
from usermgmt.adapters.sqlalchemy.tables import email_outbox, email_tokens, known_devices
from usermgmt.application.ports import EmailToken, OutgoingEmail, QueuedEmail
from usermgmt.domain.value_objects import Email, EmailTokenPurpose, UserId

DEFAULT_MESSAGE_ID_DOMAIN = "usermgmt.localhost"
LAST_ERROR_LENGTH: Final = 500  # email_outbox.last_error


def _token_from_row(row: Row[Any]) -> EmailToken:
    return EmailToken(
        digest=row.digest,
        user_id=UserId(row.user_id),
        purpose=EmailTokenPurpose(row.purpose),
        email=trusted(Email, row.email),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


class SqlAlchemyEmailTokenRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, token: EmailToken) -> None:
        await self._connection.execute(
            insert(email_tokens).values(
                digest=token.digest,
                user_id=token.user_id,
                purpose=token.purpose.value,
                email=token.email.value,
                created_at=token.created_at,
                expires_at=token.expires_at,
            )
        )

    async def take(self, digest: str, purpose: EmailTokenPurpose) -> EmailToken | None:
        # DELETE ... RETURNING (PostgreSQL, SQLite >= 3.35): of two transactions taking one token, the second waits
        # for the first and then finds no row (PostgreSQL), or waits for the write lock (SQLite).
        statement = (
            delete(email_tokens)
            .where(email_tokens.c.digest == digest, email_tokens.c.purpose == purpose.value)
            .returning(*email_tokens.c)
        )
        row = (await self._connection.execute(statement)).first()
        return _token_from_row(row) if row is not None else None

    async def delete_for_user(self, user_id: UserId, *purposes: EmailTokenPurpose) -> int:
        statement = delete(email_tokens).where(email_tokens.c.user_id == user_id)
        if purposes:
            statement = statement.where(email_tokens.c.purpose.in_([purpose.value for purpose in purposes]))
        return int((await self._connection.execute(statement)).rowcount)

    async def latest_for_user(self, user_id: UserId, purpose: EmailTokenPurpose) -> EmailToken | None:
        statement = (
            select(email_tokens)
            .where(email_tokens.c.user_id == user_id, email_tokens.c.purpose == purpose.value)
            .order_by(email_tokens.c.created_at.desc())
            .limit(1)
        )
        row = (await self._connection.execute(statement)).first()
        return _token_from_row(row) if row is not None else None

    async def delete_expired(self, now: datetime) -> int:
        result = await self._connection.execute(delete(email_tokens).where(email_tokens.c.expires_at <= now))
        return int(result.rowcount)


def new_message_id(domain: str) -> str:
    """A globally unique Message-ID (RFC 5322 msg-id) under ``domain``."""
    return f"<{secrets.token_hex(16)}@{domain}>"


class SqlAlchemyOutbox:
    """``email_outbox`` over the unit of work's connection: use cases queue messages with their own transaction;
    the delivery worker claims due rows (a lease in ``claimed_until``) and marks each one tried.

    Claiming on PostgreSQL selects the due rows ``FOR UPDATE SKIP LOCKED`` and sets their lease in the same
    transaction, so concurrent claimers (workers of other processes and instances) each get other rows, and after the
    commit the lease keeps them away until it ends. On SQLite, writers take turns: one ``UPDATE ... RETURNING`` picks
    and leases the rows in one statement, after a read that finds whether any is due at all (an idle poll then
    takes no write lock). Marking is fenced by the lease: it changes the row only while ``claimed_until`` is still the
    claim's own, so a worker that outlived its lease cannot undo another's claim.
    """

    def __init__(self, connection: AsyncConnection, message_id_domain: str = DEFAULT_MESSAGE_ID_DOMAIN) -> None:
        self._connection, self._domain = connection, message_id_domain
        self.queued = 0  # messages added in this transaction (the unit of work wakes the worker when it commits)

    async def add(self, message: OutgoingEmail, *, now: datetime) -> None:
        self.queued += 1
        await self._connection.execute(
            insert(email_outbox).values(
                message_id=new_message_id(self._domain),
                user_id=message.user_id,
                recipient=message.to,
                template=message.template,
                context=dict(message.context),
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )

    async def claim(self, *, now: datetime, lease: timedelta, limit: int) -> Sequence[QueuedEmail]:
        table = email_outbox.c
        due = (table.next_attempt_at <= now) & or_(table.claimed_until.is_(None), table.claimed_until <= now)
        oldest = select(table.id).where(due).order_by(table.next_attempt_at, table.id).limit(limit)
        until = now + lease
        if self._connection.dialect.name == "postgresql":
            ids = (await self._connection.execute(oldest.with_for_update(skip_locked=True))).scalars().all()
            if not ids:
                return []
            statement = update(email_outbox).where(table.id.in_(ids))
        else:
            if (await self._connection.execute(oldest.limit(1))).first() is None:
                return []
            statement = update(email_outbox).where(table.id.in_(oldest.scalar_subquery()), due)
        rows = (await self._connection.execute(statement.values(claimed_until=until).returning(*email_outbox.c))).all()
        claimed = [_queued_from_row(row, until) for row in rows]
        return sorted(claimed, key=lambda email: email.id)

    async def mark_sent(self, email: QueuedEmail) -> bool:
        result = await self._connection.execute(delete(email_outbox).where(_still_claimed(email)))
        return bool(result.rowcount)

    async def reschedule(self, email: QueuedEmail, *, at: datetime, error: str) -> bool:
        statement = (
            update(email_outbox)
            .where(_still_claimed(email))
            .values(
                attempts=email_outbox.c.attempts + 1,
                next_attempt_at=at,
                claimed_until=None,
                last_error=error[:LAST_ERROR_LENGTH],
            )
        )
        return bool((await self._connection.execute(statement)).rowcount)

    async def give_up(self, email: QueuedEmail) -> bool:
        return await self.mark_sent(email)


def _still_claimed(email: QueuedEmail) -> ColumnElement[bool]:
    return (email_outbox.c.id == email.id) & (email_outbox.c.claimed_until == email.claimed_until)


def _queued_from_row(row: Row[Any], claimed_until: datetime) -> QueuedEmail:
    return QueuedEmail(
        id=row.id,
        message_id=row.message_id,
        message=OutgoingEmail(
            to=row.recipient,
            template=row.template,
            context=row.context,
            user_id=UserId(row.user_id) if row.user_id is not None else None,
        ),
        created_at=row.created_at,
        attempts=row.attempts,
        claimed_until=claimed_until,
    )


class SqlAlchemyKnownDeviceRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def touch(self, user_id: UserId, device_key: str, now: datetime) -> datetime | None:
        key = (known_devices.c.user_id == user_id) & (known_devices.c.device_key == device_key)
        before = (await self._connection.execute(select(known_devices.c.last_seen_at).where(key))).scalar()
        dialect_insert = postgresql_insert if self._connection.dialect.name == "postgresql" else sqlite_insert
        upsert = dialect_insert(known_devices).values(
            user_id=user_id, device_key=device_key, first_seen_at=now, last_seen_at=now
        )
        # ON CONFLICT: two sign-ins from one new device at once both succeed (and both may see "new").
        await self._connection.execute(
            upsert.on_conflict_do_update(
                index_elements=[known_devices.c.user_id, known_devices.c.device_key],
                set_={"last_seen_at": upsert.excluded.last_seen_at},
            )
        )
        return before
