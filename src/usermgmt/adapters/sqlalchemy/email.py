"""The email tables over the unit of work's connection: one-time tokens (as digests), the outbox's writing side,
and the known devices behind new-device notices."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from usermgmt.adapters.sqlalchemy.repositories import trusted
from usermgmt.adapters.sqlalchemy.tables import email_outbox, email_tokens, known_devices
from usermgmt.application.ports import EmailToken, OutgoingEmail
from usermgmt.domain.value_objects import Email, EmailTokenPurpose, UserId

DEFAULT_MESSAGE_ID_DOMAIN = "usermgmt.localhost"


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


def new_message_id(domain: str) -> str:
    """A globally unique Message-ID (RFC 5322 msg-id) under ``domain``."""
    return f"<{secrets.token_hex(16)}@{domain}>"


class SqlAlchemyOutbox:
    """Queues messages in ``email_outbox`` with the caller's transaction; the delivery side claims them later."""

    def __init__(self, connection: AsyncConnection, message_id_domain: str = DEFAULT_MESSAGE_ID_DOMAIN) -> None:
        self._connection, self._domain = connection, message_id_domain

    async def add(self, message: OutgoingEmail, *, now: datetime) -> None:
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
