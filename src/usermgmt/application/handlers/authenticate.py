from __future__ import annotations

from usermgmt.application import commands
from usermgmt.application.errors import InvalidAccessToken
from usermgmt.application.ports import AccessTokenService, Clock, PrincipalReader
from usermgmt.application.results import Principal


class AuthenticateHandler:
    """Turn a bearer token into the caller, only while its session lives and its user is active (one read)."""

    def __init__(self, access_tokens: AccessTokenService, principals: PrincipalReader, clock: Clock) -> None:
        self._access, self._principals, self._clock = access_tokens, principals, clock

    async def __call__(self, cmd: commands.Authenticate) -> Principal:
        """Raises: InvalidAccessToken."""
        claims = self._access.verify(cmd.access_token)
        user = await self._principals.get_active_user(claims.user_id, claims.session_id, self._clock.now())
        if user is None:
            raise InvalidAccessToken()
        return Principal(user=user, session_id=claims.session_id)
