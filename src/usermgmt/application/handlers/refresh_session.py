from __future__ import annotations

from datetime import timedelta

from usermgmt.application import commands
from usermgmt.application.audit import security_event
from usermgmt.application.errors import ConcurrentUpdate, InvalidRefreshToken
from usermgmt.application.handlers._shared import Guard, client_key
from usermgmt.application.ports import AccessTokenService, Clock, RefreshTokenFactory, UnitOfWork
from usermgmt.application.results import TokenPair
from usermgmt.domain.events import EventType
from usermgmt.domain.value_objects import RefreshTokenHash


class RefreshSessionHandler:
    """Trade a refresh token for a new pair. Each token works once; replaying a rotated one ends its session."""

    def __init__(
        self,
        uow: UnitOfWork,
        access_tokens: AccessTokenService,
        refresh_tokens: RefreshTokenFactory,
        clock: Clock,
        guard: Guard,
        session_lifetime: timedelta,
    ) -> None:
        self._uow, self._access, self._refresh = uow, access_tokens, refresh_tokens
        self._clock, self._guard, self._lifetime = clock, guard, session_lifetime

    async def __call__(self, cmd: commands.RefreshSession) -> TokenPair:
        """Raises: InvalidRefreshToken, RateLimited."""
        ip_key = client_key(cmd.client)
        full = await self._guard.throttle.is_full("refresh_failures_per_ip", ip_key)
        if full is not None:  # a client guessing or replaying tokens: refused before any database work
            await self._guard.reject(full, ip_key, client=cmd.client)
        presented = self._refresh.digest(cmd.refresh_token)
        now = self._clock.now()
        try:
            async with self._uow:
                session = await self._uow.sessions.get_by_refresh_token(presented)
                if session is None:
                    await self._detect_reuse(presented, cmd.client)
                    raise InvalidRefreshToken()
                user = await self._uow.users.get(session.user_id)
                if session.is_expired(now) or user is None or not user.is_active:
                    await self._uow.sessions.delete(session.id)
                    await self._uow.commit()
                    raise InvalidRefreshToken()
        except InvalidRefreshToken:
            await self._guard.throttle.count("refresh_failures_per_ip", ip_key)
            raise
        await self._guard.hit("refreshes_per_session", str(session.id), client=cmd.client, user_id=session.user_id)

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
            await self._uow.events.add(
                security_event(
                    EventType.TOKEN_REFRESHED, at=now, client=cmd.client, user_id=session.user_id, session_id=session.id
                )
            )
            await self._uow.commit()
        access = self._access.issue(session.user_id, session.id)
        return TokenPair(
            access_token=access.token,
            expires_in=access.expires_in,
            refresh_token=new_token,
            refresh_expires_in=int(self._lifetime.total_seconds()),
            session_id=session.id,
        )

    async def _detect_reuse(self, presented: RefreshTokenHash, client: commands.ClientInfo) -> None:
        """Inside the open unit of work: a rotated token came back, so whoever holds the newer one may be a thief.

        The whole session ends, and the owner sees why in their security history.
        """
        stolen_from = await self._uow.sessions.find_by_retired_token(presented)
        if stolen_from is None:
            return
        session = await self._uow.sessions.get(stolen_from)
        await self._uow.sessions.delete(stolen_from)
        await self._uow.events.add(
            security_event(
                EventType.REFRESH_REUSE_DETECTED,
                at=self._clock.now(),
                client=client,
                user_id=session.user_id if session else None,
                session_id=stolen_from,
            )
        )
        await self._uow.commit()
