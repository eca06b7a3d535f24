"""Token introspection (RFC 7662) for internal services that must not accept a revoked token: is this access
token active now, and whose is it. The same checks as every authenticated request, the one-query principal read
included, behind HTTP Basic credentials of the listed clients."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.errors import InvalidAccessToken, InvalidClient, ServiceUnavailable
from usermgmt.application.ports import AccessTokenService, Clock, PrincipalReader
from usermgmt.application.results import Introspection
from usermgmt.domain.errors import DomainError

TOKEN_MAX_LENGTH = 4096


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class IntrospectionClients:
    """The services allowed to introspect: client id -> secret. Secrets are compared in constant time (as
    digests, so their lengths do not show either), and every client id is checked against one, known or not."""

    def __init__(self, clients: Mapping[str, str]) -> None:
        self._digests = {client_id: _digest(secret) for client_id, secret in clients.items()}
        self._nobody = _digest("no such client")
        # Pairs that passed, so a client's next calls skip the two digests (at most one pair per client: only
        # a client's own secret passes, and a wrong guess is never stored).
        self._passed: dict[tuple[str, str], str] = {}

    def __bool__(self) -> bool:
        return bool(self._digests)

    def check(self, client_id: str | None, secret: str | None) -> str:
        """The client id, if ``secret`` is its secret. Raises: InvalidClient."""
        if client_id is not None and secret is not None:
            passed = self._passed.get((client_id, secret))
            if passed is not None:
                return passed
        known = self._digests.get(client_id) if client_id is not None else None
        matches = hmac.compare_digest(known or self._nobody, _digest(secret or ""))
        if known is None or secret is None or not matches:
            raise InvalidClient()
        assert client_id is not None  # noqa: S101 - known is None without one
        self._passed[(client_id, secret)] = client_id
        return client_id


class IntrospectTokenHandler:
    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidClient, ServiceUnavailable)

    def __init__(
        self,
        access_tokens: AccessTokenService,
        principals: PrincipalReader,
        clock: Clock,
        clients: IntrospectionClients,
        issuer: str,
        audience: str,
    ) -> None:
        self._access, self._principals, self._clock, self._clients = access_tokens, principals, clock, clients
        self._issuer, self._audience = issuer, audience

    async def __call__(self, cmd: commands.IntrospectToken) -> Introspection:
        """``active`` only for an access token of ours, unexpired, whose session lives and whose user may sign in;
        every other token (expired, revoked, malformed, a refresh token, signed by an unknown key) is inactive,
        and says nothing more. Raises: InvalidClient, ServiceUnavailable."""
        self._clients.check(cmd.client_id, cmd.client_secret)
        if not cmd.token or len(cmd.token) > TOKEN_MAX_LENGTH:
            return Introspection(active=False)
        try:
            claims = self._access.verify(cmd.token)
        except InvalidAccessToken:
            return Introspection(active=False)
        principal = await self._principals.get(claims.user_id, claims.session_id, self._clock.now())
        if principal is None or not principal.is_active:
            return Introspection(active=False)
        return Introspection(
            active=True,
            sub=str(claims.user_id),
            sid=str(claims.session_id),
            exp=int(claims.expires_at.timestamp()),
            iat=int(claims.issued_at.timestamp()) if claims.issued_at else None,
            iss=self._issuer,
            aud=self._audience,
            amr=tuple(str(method) for method in claims.amr),
            auth_time=int(claims.auth_time.timestamp()) if claims.auth_time else None,
            roles=claims.roles,
            username=principal.username.value if principal.username else None,
        )
