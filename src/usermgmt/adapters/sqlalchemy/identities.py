"""Sign-in through identity providers over the unit of work's connection: the identities joined to accounts, and
the short-lived rows of a sign-in under way (a trip to a provider, the login code its callback hands out).

What must happen once is one ``DELETE ... RETURNING`` (PostgreSQL, SQLite >= 3.35): of two transactions taking one
state or code, the second waits for the first and then finds no row (PostgreSQL), or waits for the write lock
(SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from usermgmt.adapters.sqlalchemy.repositories import execute_translated, trusted
from usermgmt.adapters.sqlalchemy.tables import identities, login_codes, oauth_authorizations
from usermgmt.application.ports import FlowPurpose, LoginCode, PendingAuthorization
from usermgmt.domain.identities import Identity, IdentityId
from usermgmt.domain.value_objects import Email, UserId


def _identity_from_row(row: Row[Any]) -> Identity:
    return Identity(
        id=IdentityId(row.id),
        user_id=UserId(row.user_id),
        provider=row.provider,
        subject=row.subject,
        email=trusted(Email, row.email) if row.email is not None else None,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


class SqlAlchemyIdentityRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, provider: str, subject: str) -> Identity | None:
        return await self._one(
            select(identities).where(identities.c.provider == provider, identities.c.subject == subject)
        )

    async def get_for_user(self, identity_id: IdentityId, user_id: UserId) -> Identity | None:
        return await self._one(
            select(identities).where(identities.c.id == identity_id, identities.c.user_id == user_id)
        )

    async def list_for_user(self, user_id: UserId) -> Sequence[Identity]:
        rows = await self._connection.execute(
            select(identities).where(identities.c.user_id == user_id).order_by(identities.c.created_at, identities.c.id)
        )
        return [_identity_from_row(row) for row in rows]

    async def add(self, identity: Identity) -> None:
        """Raises: IdentityInUse (the unique (provider, subject)), ConcurrentUpdate (the user is gone)."""
        await execute_translated(
            self._connection,
            insert(identities).values(
                id=identity.id,
                user_id=identity.user_id,
                provider=identity.provider,
                subject=identity.subject,
                email=identity.email.value if identity.email is not None else None,
                created_at=identity.created_at,
                last_used_at=identity.last_used_at,
            ),
        )

    async def update(self, identity: Identity) -> None:
        await self._connection.execute(
            update(identities)
            .where(identities.c.id == identity.id)
            .values(
                email=identity.email.value if identity.email is not None else None,
                last_used_at=identity.last_used_at,
            )
        )

    async def delete(self, identity_id: IdentityId, user_id: UserId) -> bool:
        result = await self._connection.execute(
            delete(identities).where(identities.c.id == identity_id, identities.c.user_id == user_id)
        )
        return bool(result.rowcount)

    async def _one(self, statement: Any) -> Identity | None:
        row = (await self._connection.execute(statement)).first()
        return _identity_from_row(row) if row is not None else None


def _authorization_from_row(row: Row[Any]) -> PendingAuthorization:
    return PendingAuthorization(
        state_digest=row.state_digest,
        provider=row.provider,
        purpose=FlowPurpose(row.purpose),
        user_id=UserId(row.user_id) if row.user_id is not None else None,
        browser_digest=row.browser_digest,
        redirect_uri=row.redirect_uri,
        code_challenge=row.code_challenge,
        nonce=row.nonce,
        code_verifier=row.code_verifier,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


def _login_code_from_row(row: Row[Any]) -> LoginCode:
    return LoginCode(
        digest=row.digest,
        user_id=UserId(row.user_id),
        provider=row.provider,
        redirect_uri=row.redirect_uri,
        code_challenge=row.code_challenge,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


class SqlAlchemyFederationRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add_authorization(self, pending: PendingAuthorization) -> None:
        """Raises: ConcurrentUpdate (a link's user is gone)."""
        await execute_translated(
            self._connection,
            insert(oauth_authorizations).values(
                state_digest=pending.state_digest,
                provider=pending.provider,
                purpose=pending.purpose.value,
                user_id=pending.user_id,
                browser_digest=pending.browser_digest,
                redirect_uri=pending.redirect_uri,
                code_challenge=pending.code_challenge,
                nonce=pending.nonce,
                code_verifier=pending.code_verifier,
                created_at=pending.created_at,
                expires_at=pending.expires_at,
            ),
        )

    async def take_authorization(self, state_digest: str) -> PendingAuthorization | None:
        statement = (
            delete(oauth_authorizations)
            .where(oauth_authorizations.c.state_digest == state_digest)
            .returning(*oauth_authorizations.c)
        )
        row = (await self._connection.execute(statement)).first()
        return _authorization_from_row(row) if row is not None else None

    async def add_login_code(self, code: LoginCode) -> None:
        """Raises: ConcurrentUpdate (the user is gone)."""
        await execute_translated(
            self._connection,
            insert(login_codes).values(
                digest=code.digest,
                user_id=code.user_id,
                provider=code.provider,
                redirect_uri=code.redirect_uri,
                code_challenge=code.code_challenge,
                created_at=code.created_at,
                expires_at=code.expires_at,
            ),
        )

    async def take_login_code(self, digest: str) -> LoginCode | None:
        statement = delete(login_codes).where(login_codes.c.digest == digest).returning(*login_codes.c)
        row = (await self._connection.execute(statement)).first()
        return _login_code_from_row(row) if row is not None else None

    async def delete_expired(self, now: datetime) -> int:
        deleted = 0
        for table in (oauth_authorizations, login_codes):
            result = await self._connection.execute(delete(table).where(table.c.expires_at <= now))
            deleted += int(result.rowcount)
        return deleted
