from __future__ import annotations

from datetime import timedelta

from usermgmt.application import commands
from usermgmt.application.errors import ConcurrentUpdate, InvalidRefreshToken
from usermgmt.application.ports import AccessTokenService, Clock, RefreshTokenFactory, UnitOfWork
from usermgmt.application.results import TokenPair


class RefreshSessionHandler:
    """Trade a refresh token for a new pair. Each token works once; replaying a rotated one ends its session."""

    def __init__(
        self,
        uow: UnitOfWork,
        access_tokens: AccessTokenService,
        refresh_tokens: RefreshTokenFactory,
        clock: Clock,
        session_lifetime: timedelta,
    ) -> None:
        self._uow, self._access, self._refresh = uow, access_tokens, refresh_tokens
        self._clock, self._lifetime = clock, session_lifetime

    async def __call__(self, cmd: commands.RefreshSession) -> TokenPair:
        """Raises: InvalidRefreshToken."""
        presented = self._refresh.digest(cmd.refresh_token)
        now = self._clock.now()
        async with self._uow:
            session = await self._uow.sessions.get_by_refresh_token(presented)
            if session is None:
                stolen_from = await self._uow.sessions.find_by_retired_token(presented)
                if stolen_from is not None:  # reuse: whoever holds the newer token may be a thief; end it all
                    await self._uow.sessions.delete(stolen_from)
                    await self._uow.commit()
                raise InvalidRefreshToken()
            user = await self._uow.users.get(session.user_id)
            if session.is_expired(now) or user is None or not user.is_active:
                await self._uow.sessions.delete(session.id)
                await self._uow.commit()
                raise InvalidRefreshToken()

            new_token = self._refresh.generate()
            retired = session.rotate(
                self._refresh.digest(new_token),
                now=now,
                lifetime=self._lifetime,
                user_agent=cmd.client.user_agent,
                ip=cmd.client.ip,
            )
            try:
                await self._uow.sessions.save_rotation(session, retired)
                await self._uow.commit()
            except ConcurrentUpdate:  # another request rotated this token first: it won, this one loses
                raise InvalidRefreshToken() from None
        access = self._access.issue(session.user_id, session.id)
        return TokenPair(
            access_token=access.token,
            expires_in=access.expires_in,
            refresh_token=new_token,
            refresh_expires_in=int(self._lifetime.total_seconds()),
            session_id=session.id,
        )
