"""An internal service that trusts usermgmt's access tokens with nothing but its public keys, and lets only holders
of a role through.

    pip install "pyjwt[crypto]"
    python docs/examples/internal_service.py http://127.0.0.1:8000 <access token> admin

The ``roles`` claim is as fresh as the token: a role granted or taken away shows in tokens issued after the change
(at the next login or refresh), so for at most the access-token lifetime (15 minutes by default) an old token
still names the old roles. usermgmt's own API reads permissions on every request instead. A service that must
not wait that long asks usermgmt (``GET /api/v1/users/me`` with the token checks the live session).
"""

from __future__ import annotations

import sys
from typing import Any

import jwt


class Forbidden(Exception):
    """The token is valid, but its user does not hold the role."""


class TokenVerifier:
    def __init__(self, base_url: str, *, issuer: str = "usermgmt", audience: str = "usermgmt") -> None:
        # Caches the key set; refetches it once when a token names a kid it does not know (a key rotation).
        self._jwks = jwt.PyJWKClient(f"{base_url}/.well-known/jwks.json", cache_keys=True)
        self._issuer, self._audience = issuer, audience

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token. Raises: jwt.InvalidTokenError (bad signature, expired, wrong
        issuer or audience, not an access token)."""
        if jwt.get_unverified_header(token).get("typ") != "at+jwt":
            raise jwt.InvalidTokenError("not an access token")
        key = self._jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=["ES256"],  # pinned: never taken from the token
            audience=self._audience,
            issuer=self._issuer,
            options={"require": ["exp", "iat", "sub", "aud", "iss", "jti"]},
        )

    def require_role(self, token: str, role: str) -> dict[str, Any]:
        """The claims, if the token's user held ``role`` when it was issued. Raises: jwt.InvalidTokenError,
        Forbidden."""
        claims = self.claims(token)
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or role not in roles:
            raise Forbidden(f"the role {role!r} is required")
        return claims


def main(argv: list[str]) -> int:
    base_url, token, role = argv
    try:
        claims = TokenVerifier(base_url).require_role(token, role)
    except jwt.InvalidTokenError as error:
        print(f"401: {error}")  # noqa: T201 - an example's output
        return 1
    except Forbidden as error:
        print(f"403: {error}")  # noqa: T201
        return 1
    print(f"200: user {claims['sub']} holds {role!r} (roles {claims['roles']}, amr {claims['amr']})")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
