from __future__ import annotations

from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.errors import InvalidAccessToken, ServiceUnavailable
from usermgmt.application.ports import AccessTokenService, Clock, PrincipalReader
from usermgmt.application.results import Principal
from usermgmt.domain.errors import DomainError, UserInactive


class AuthenticateHandler:
    """Turn a bearer token into the caller, only while its session lives and its user may sign in (one read)."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidAccessToken, ServiceUnavailable)

    def __init__(self, access_tokens: AccessTokenService, principals: PrincipalReader, clock: Clock) -> None:
        self._access, self._principals, self._clock = access_tokens, principals, clock

    async def __call__(self, cmd: commands.Authenticate) -> Principal:
        """Raises: InvalidAccessToken, ServiceUnavailable."""
        claims = self._access.verify(cmd.access_token)
        principal = await self._principals.get(claims.user_id, claims.session_id, self._clock.now())
        if principal is None:
            raise InvalidAccessToken()
        try:
            principal.ensure_may_authenticate()
        except UserInactive:
            raise InvalidAccessToken() from None
        return principal
