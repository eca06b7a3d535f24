from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event
from usermgmt.application.errors import ConcurrentUpdate, InvalidRefreshToken, RateLimited, ServiceUnavailable
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.ports import Clock, RefreshTokenFactory, UnitOfWork
from usermgmt.application.results import TokenPair
from usermgmt.domain.errors import DomainError, UserInactive
from usermgmt.domain.events import EventType
from usermgmt.domain.value_objects import RefreshTokenHash


class RefreshSessionHandler:
    """Trade a refresh token for a new pair. Each token works once; replaying a rotated one ends its session.

    The new access token carries the session's ``amr`` and ``auth_time``: refreshing proves possession of the
    session, not a fresh sign-in.
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidRefreshToken, RateLimited, ServiceUnavailable)

    def __init__(
        self,
        uow: UnitOfWork,
        refresh_tokens: RefreshTokenFactory,
        issuer: SessionIssuer,
        clock: Clock,
        guard: Guard,
        session_lifetime: timedelta,
    ) -> None:
        self._uow, self._refresh, self._issuer = uow, refresh_tokens, issuer
        self._clock, self._guard, self._lifetime = clock, guard, session_lifetime

    async def __call__(self, cmd: commands.RefreshSession) -> TokenPair:
        """Raises: InvalidRefreshToken, RateLimited."""
        await self._guard.reserve_refresh(cmd.client)  # before any database work: guessing costs a slot each
        presented = self._refresh.digest(cmd.refresh_token)
        now = self._clock.now()
        async with self._uow:
            session = await self._uow.sessions.get_by_refresh_token(presented)
            if session is None:
                await self._detect_reuse(presented, cmd.client)
                raise InvalidRefreshToken()
            user = await self._uow.users.get(session.user_id)
            try:
                if user is None or session.is_expired(now):
                    raise InvalidRefreshToken()
                user.ensure_active()
            except (InvalidRefreshToken, UserInactive):
                await self._uow.sessions.delete(session.id)
                await self._uow.commit()
                raise InvalidRefreshToken() from None
        await self._guard.refresh_passed(cmd.client)
        await self._guard.hit(
            RateRule.REFRESHES_PER_SESSION, str(session.id), client=cmd.client, user_id=session.user_id
        )

        new_token = self._refresh.generate()
        retired = session.rotate(
            self._refresh.digest(new_token),
            now=now,
            lifetime=self._lifetime,
            user_agent=cmd.client.user_agent,
            ip=cmd.client.ip,
        )
        async with self._uow:
            try:
                await self._uow.sessions.save_rotation(session, retired)
            except ConcurrentUpdate:  # another request rotated this token first: it won, this one loses
                raise InvalidRefreshToken() from None
            roles = await self._uow.roles.roles_of(session.user_id)
            await self._uow.record(
                security_event(
                    EventType.TOKEN_REFRESHED, at=now, client=cmd.client, user_id=session.user_id, session_id=session.id
                )
            )
            await self._uow.commit()
        return self._issuer.pair(session, new_token, roles)

    async def _detect_reuse(self, presented: RefreshTokenHash, client: commands.ClientInfo) -> None:
        """Inside the open unit of work: a rotated token came back, so whoever holds the newer one may be a thief.

        The whole session ends, and the owner sees why in their security history.
        """
        stolen_from = await self._uow.sessions.find_by_retired_token(presented)
        if stolen_from is None:
            return
        session = await self._uow.sessions.get(stolen_from)
        await self._uow.sessions.delete(stolen_from)
        await self._uow.record(
            security_event(
                EventType.REFRESH_REUSE_DETECTED,
                at=self._clock.now(),
                client=client,
                user_id=session.user_id if session else None,
                session_id=stolen_from,
            )
        )
        await self._uow.commit()
