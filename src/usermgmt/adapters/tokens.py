"""Access tokens: ES256 JWTs with python-jose, with the algorithm pinned and the risky header features refused."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from jose import jwk, jwt
from jose.backends.base import Key
from jose.exceptions import JOSEError

from usermgmt.adapters.keys import ALGORITHM, KeyRing
from usermgmt.application.errors import InvalidAccessToken
from usermgmt.application.ports import AccessClaims, Clock, IssuedToken
from usermgmt.domain.value_objects import SessionId, UserId

ALLOWED_HEADERS = frozenset({"alg", "typ", "kid"})
REQUIRED_CLAIMS = ("exp", "iat", "sub", "aud", "iss", "jti")
VERIFIED_CACHE_SIZE = 10_000
TOKEN_TYPE = "at+jwt"  # noqa: S105 - RFC 9068 media type, not a secret


class JoseAccessTokenService:
    """Issues and verifies access tokens. See docs/adr/0003-python-jose-pinned-es256.md for the hardening.

    - The algorithm is fixed (ES256) and never taken from the token: no ``none``, no HS* with a public key.
    - Headers other than ``alg``, ``typ`` and ``kid`` are refused (python-jose ignores ``crit``, ``jku``, ``jwk``…).
    - The ``kid`` must name one of our keys; that key alone verifies, as a key object built once.
    - ``exp``, ``iat``, ``sub``, ``aud``, ``iss`` and ``jti`` are required; ``aud`` and ``iss`` must match.
    """

    def __init__(self, *, keyring: KeyRing, issuer: str, audience: str, ttl: timedelta, clock: Clock) -> None:
        self._issuer, self._audience, self._ttl, self._clock = issuer, audience, ttl, clock
        self._kid = keyring.active.kid
        self._signer: Key = jwk.construct(keyring.active.private_pem().decode(), ALGORITHM)
        self._verifiers: dict[str, Key] = {
            key.kid: jwk.construct(dict(key.public_jwk), ALGORITHM) for key in keyring.keys
        }
        self._options = {f"require_{claim}": True for claim in REQUIRED_CLAIMS} | {"leeway": 0}
        # Tokens that verified, until they expire: a client sends the same token for its whole 15 minutes, and
        # the signature check is most of a request's CPU. Revocation is unaffected: sessions are checked anyway.
        self._verified: dict[str, AccessClaims] = {}

    def issue(self, user_id: UserId, session_id: SessionId) -> IssuedToken:
        now = self._clock.now()
        issued_at = int(now.timestamp())
        lifetime = int(self._ttl.total_seconds())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": secrets.token_urlsafe(16),
            "iat": issued_at,
            "exp": issued_at + lifetime,
        }
        token = jwt.encode(claims, self._signer, algorithm=ALGORITHM, headers={"kid": self._kid, "typ": TOKEN_TYPE})
        return IssuedToken(token=token, expires_in=lifetime)

    def verify(self, token: str) -> AccessClaims:
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at.timestamp() > time.time():
                return cached
            del self._verified[token]
        claims = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # oldest first: dicts keep insertion order
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except JOSEError:
            raise InvalidAccessToken() from None
        if set(header) - ALLOWED_HEADERS or header.get("alg") != ALGORITHM:
            raise InvalidAccessToken()
        typ = header.get("typ", TOKEN_TYPE)
        if not isinstance(typ, str) or typ.lower() not in {TOKEN_TYPE, "jwt", "application/at+jwt"}:
            raise InvalidAccessToken()  # some other kind of JWT signed with our key is not an access token
        kid = header.get("kid")
        verifier = self._verifiers.get(kid) if isinstance(kid, str) else None
        if verifier is None:
            raise InvalidAccessToken()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                verifier,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options=self._options,
            )
            verified = AccessClaims(
                user_id=UserId(UUID(claims["sub"])),
                session_id=SessionId(UUID(claims["sid"])),
                token_id=str(claims["jti"]),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            )
        except (JOSEError, KeyError, ValueError, TypeError, AttributeError):
            raise InvalidAccessToken() from None
        if verified.expires_at.timestamp() <= time.time():  # RFC 7519: not on or after exp (jose allows "on")
            raise InvalidAccessToken()
        return verified
