"""The only place that opens, commits and rolls back transactions."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from usermgmt.adapters.audit_log import log_committed
from usermgmt.adapters.sqlalchemy.email import (
    DEFAULT_MESSAGE_ID_DOMAIN,
    SqlAlchemyEmailTokenRepository,
    SqlAlchemyKnownDeviceRepository,
    SqlAlchemyOutbox,
)
from usermgmt.adapters.sqlalchemy.engine import is_unavailable
from usermgmt.adapters.sqlalchemy.identities import SqlAlchemyFederationRepository, SqlAlchemyIdentityRepository
from usermgmt.adapters.sqlalchemy.mfa import SqlAlchemyMfaRepository
from usermgmt.adapters.sqlalchemy.repositories import (
    SqlAlchemyEventRepository,
    SqlAlchemySessionRepository,
    SqlAlchemyUserRepository,
    translate_integrity_error,
)
from usermgmt.adapters.sqlalchemy.roles import SqlAlchemyRoleRepository
from usermgmt.adapters.sqlalchemy.stats import SqlAlchemyStatsQueries
from usermgmt.application.errors import ServiceUnavailable
from usermgmt.application.ports import EventDispatcher, UnitOfWork

logger = logging.getLogger(__name__)


class SqlAlchemyUnitOfWork(UnitOfWork):
    """One connection and one transaction per ``async with``; the instance can be entered again afterwards.

    Every failure to reach or use the database (``engine.is_unavailable``: refused or broken connections, timeouts,
    an exhausted pool, a database that refuses sessions or is shutting down), whether in connecting, beginning, a
    statement or the commit, leaves as ``ServiceUnavailable``; other database errors are bugs and leave as they are.

    ``on_mail_queued`` is called (on the event loop, once per commit) when a commit made messages of the outbox
    durable: it wakes this process's delivery worker, which otherwise finds them at its next poll.
    """

    users: SqlAlchemyUserRepository
    sessions: SqlAlchemySessionRepository
    events: SqlAlchemyEventRepository
    email_tokens: SqlAlchemyEmailTokenRepository
    outbox: SqlAlchemyOutbox
    known_devices: SqlAlchemyKnownDeviceRepository
    mfa: SqlAlchemyMfaRepository
    roles: SqlAlchemyRoleRepository
    stats: SqlAlchemyStatsQueries
    identities: SqlAlchemyIdentityRepository
    federation: SqlAlchemyFederationRepository

    def __init__(
        self,
        engine: AsyncEngine,
        dispatcher: EventDispatcher | None = None,
        message_id_domain: str = DEFAULT_MESSAGE_ID_DOMAIN,
        on_mail_queued: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(dispatcher or EventDispatcher(after_commit=[log_committed]))
        self._engine, self._message_id_domain = engine, message_id_domain
        self._on_mail_queued = on_mail_queued
        self._connection: AsyncConnection | None = None

    async def _begin(self) -> None:
        try:
            self._connection = await self._engine.connect()
        except Exception as exc:
            if is_unavailable(exc, connecting=True):
                raise ServiceUnavailable() from exc
            raise
        try:
            await self._connection.begin()
        except Exception as exc:
            await self._close()
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise
        self.users = SqlAlchemyUserRepository(self._connection)
        self.sessions = SqlAlchemySessionRepository(self._connection)
        self.events = SqlAlchemyEventRepository(self._connection)
        self.email_tokens = SqlAlchemyEmailTokenRepository(self._connection)
        self.outbox = SqlAlchemyOutbox(self._connection, self._message_id_domain)
        self.known_devices = SqlAlchemyKnownDeviceRepository(self._connection)
        self.mfa = SqlAlchemyMfaRepository(self._connection)
        self.roles = SqlAlchemyRoleRepository(self._connection)
        self.stats = SqlAlchemyStatsQueries(self._connection)
        self.identities = SqlAlchemyIdentityRepository(self._connection)
        self.federation = SqlAlchemyFederationRepository(self._connection)

    async def try_lock(self, name: str) -> bool:
        """PostgreSQL: a transaction-level advisory lock keyed by ``name``'s hash (``pg_try_advisory_xact_lock``),
        released at commit or rollback. SQLite has one writer at a time: taking its write lock (a no-op write)
        waits for the other writer instead, so the answer there is always True."""
        if self._connection is None:
            raise RuntimeError("try_lock() outside 'async with'")
        if self._connection.dialect.name != "postgresql":
            return True
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        result = await self._connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
        return bool(result.scalar_one())

    async def _end(self, error: BaseException | None) -> None:
        try:
            await self._rollback()
        except Exception:
            # The connection died after the block's last statement. Nothing it did without commit() survives
            # anyway, and what it read is still true: report the original failure, if any, not this one.
            logger.debug("rollback failed; the connection is discarded", exc_info=True)
        finally:
            await self._close()
        if error is not None and is_unavailable(error):
            raise ServiceUnavailable() from error

    async def _commit(self) -> None:
        if self._connection is None:
            raise RuntimeError("commit() outside 'async with'")
        try:
            await self._connection.commit()
        except IntegrityError as exc:
            translated = translate_integrity_error(exc)
            if translated is None:
                raise
            raise translated from exc
        queued, self.outbox.queued = self.outbox.queued, 0
        if queued and self._on_mail_queued is not None:
            self._on_mail_queued()

    async def _rollback(self) -> None:
        if self._connection is not None and self._connection.in_transaction():
            await self._connection.rollback()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.close()
            except Exception:
                logger.debug("closing a broken connection failed", exc_info=True)
