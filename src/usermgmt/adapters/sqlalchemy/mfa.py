"""The ``MfaRepository`` port on SQLAlchemy Core: TOTP credentials, recovery code digests and sign-in challenges.

What must happen once happens in one conditional statement (a replayed time step, a recovery code used twice, a
challenge used twice): of two transactions, the database lets one change the row and the other sees no row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from usermgmt.adapters.sqlalchemy.tables import mfa_challenges, recovery_codes, totp_credentials
from usermgmt.domain.mfa import MfaChallenge, TotpCredential
from usermgmt.domain.value_objects import AuthMethod, UserId


def _challenge_from_row(row: Row[Any]) -> MfaChallenge:
    return MfaChallenge(
        digest=row.digest,
        user_id=UserId(row.user_id),
        amr=tuple(AuthMethod(method) for method in row.amr),
        password_changed_at=row.password_changed_at,
        throttle_key=row.throttle_key,
        created_at=row.created_at,
        expires_at=row.expires_at,
        failures=row.failures,
        provider=row.provider,
    )


class SqlAlchemyMfaRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get_totp(self, user_id: UserId) -> TotpCredential | None:
        row = (
            await self._connection.execute(select(totp_credentials).where(totp_credentials.c.user_id == user_id))
        ).first()
        if row is None:
            return None
        return TotpCredential(
            user_id=UserId(row.user_id),
            sealed_secret=row.sealed_secret,
            created_at=row.created_at,
            confirmed_at=row.confirmed_at,
            last_step=row.last_step,
        )

    async def save_totp(self, credential: TotpCredential) -> None:
        dialect_insert = postgresql_insert if self._connection.dialect.name == "postgresql" else sqlite_insert
        values = {
            "user_id": credential.user_id,
            "sealed_secret": credential.sealed_secret,
            "created_at": credential.created_at,
            "confirmed_at": credential.confirmed_at,
            "last_step": credential.last_step,
        }
        upsert = dialect_insert(totp_credentials).values(**values)
        await self._connection.execute(
            upsert.on_conflict_do_update(
                index_elements=[totp_credentials.c.user_id],
                set_={name: upsert.excluded[name] for name in values if name != "user_id"},
            )
        )

    async def use_totp_step(self, user_id: UserId, step: int) -> bool:
        result = await self._connection.execute(
            update(totp_credentials)
            .where(
                totp_credentials.c.user_id == user_id,
                or_(totp_credentials.c.last_step.is_(None), totp_credentials.c.last_step < step),
            )
            .values(last_step=step)
        )
        return bool(result.rowcount)

    async def delete_totp(self, user_id: UserId) -> bool:
        result = await self._connection.execute(delete(totp_credentials).where(totp_credentials.c.user_id == user_id))
        return bool(result.rowcount)

    async def recovery_codes(self, user_id: UserId) -> Sequence[str]:
        result = await self._connection.execute(
            select(recovery_codes.c.digest).where(recovery_codes.c.user_id == user_id)
        )
        return list(result.scalars())

    async def replace_recovery_codes(self, user_id: UserId, digests: Sequence[str], now: datetime) -> None:
        await self.delete_recovery_codes(user_id)
        if digests:
            await self._connection.execute(
                insert(recovery_codes), [{"user_id": user_id, "digest": d, "created_at": now} for d in digests]
            )

    async def use_recovery_code(self, user_id: UserId, digest: str) -> bool:
        result = await self._connection.execute(
            delete(recovery_codes).where(recovery_codes.c.user_id == user_id, recovery_codes.c.digest == digest)
        )
        return bool(result.rowcount)

    async def delete_recovery_codes(self, user_id: UserId) -> int:
        result = await self._connection.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
        return int(result.rowcount)

    async def add_challenge(self, challenge: MfaChallenge) -> None:
        await self._connection.execute(
            insert(mfa_challenges).values(
                digest=challenge.digest,
                user_id=challenge.user_id,
                amr=[method.value for method in challenge.amr],
                password_changed_at=challenge.password_changed_at,
                throttle_key=challenge.throttle_key,
                created_at=challenge.created_at,
                expires_at=challenge.expires_at,
                failures=challenge.failures,
                provider=challenge.provider,
            )
        )

    async def get_challenge(self, digest: str) -> MfaChallenge | None:
        row = (await self._connection.execute(select(mfa_challenges).where(mfa_challenges.c.digest == digest))).first()
        return _challenge_from_row(row) if row is not None else None

    async def count_challenge_failure(self, digest: str) -> int | None:
        result = await self._connection.execute(
            update(mfa_challenges)
            .where(mfa_challenges.c.digest == digest)
            .values(failures=mfa_challenges.c.failures + 1)
            .returning(mfa_challenges.c.failures)
        )
        failures = result.scalar()
        return int(failures) if failures is not None else None

    async def delete_challenge(self, digest: str) -> bool:
        result = await self._connection.execute(delete(mfa_challenges).where(mfa_challenges.c.digest == digest))
        return bool(result.rowcount)

    async def delete_challenges_for_user(self, user_id: UserId) -> int:
        result = await self._connection.execute(delete(mfa_challenges).where(mfa_challenges.c.user_id == user_id))
        return int(result.rowcount)

    async def delete_expired_challenges(self, now: datetime) -> int:
        result = await self._connection.execute(delete(mfa_challenges).where(mfa_challenges.c.expires_at <= now))
        return int(result.rowcount)
