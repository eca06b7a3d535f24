"""Access tokens: ES256 JWTs with python-jose, with the algorithm pinned and the risky header features refused."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from jose import jwk, jwt
from jose.backends.base import Key
from jose.exceptions import JOSEError

from usermgmt.adapters.keys import ALGORITHM, KeyRing
from usermgmt.application.errors import InvalidAccessToken
from usermgmt.application.ports import AccessClaims, Clock, IssuedToken
from usermgmt.domain.model import Session
from usermgmt.domain.value_objects import AuthMethod, SessionId, UserId

ALLOWED_HEADERS = frozenset({"alg", "typ", "kid"})
REQUIRED_CLAIMS = ("exp", "iat", "sub", "aud", "iss", "jti")
ACCESS_CLAIMS = ("sid", "amr", "auth_time")
VERIFIED_CACHE_SIZE = 10_000


class TokenPurpose(Enum):
    """What a JWT signed with our keys is for, stated in its ``typ`` header and checked on every verification, so a
    token of one purpose never passes as another. A purpose added later (a sign-in challenge, say) also gets its own
    audience, so that services which check only ``aud`` refuse it too."""

    ACCESS = "at+jwt"  # RFC 9068

    @property
    def typ(self) -> str:
        return str(self.value)


def _roles(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError("roles is a list of names")
    return tuple(value)


class JoseAccessTokenService:
    """Issues and verifies access tokens. See docs/adr/0003-python-jose-pinned-es256.md for the hardening.

    - The algorithm is fixed (ES256) and never taken from the token: no ``none``, no HS* with a public key.
    - Headers other than ``alg``, ``typ`` and ``kid`` are refused (python-jose ignores ``crit``, ``jku``, ``jwk``…).
    - The ``kid`` must name one of our keys; that key alone verifies, as a key object built once.
    - ``exp``, ``iat``, ``sub``, ``aud``, ``iss`` and ``jti`` are required; ``aud`` and ``iss`` must match.
    - ``typ`` must be ``at+jwt``: a JWT of another purpose signed with our key is not an access token.
    - Access tokens carry ``sid``, ``amr`` (RFC 8176) and ``auth_time`` from their session, and the user's
      ``roles`` when it was issued (for internal services; our own API reads permissions fresh on every request).
    """

    def __init__(self, *, keyring: KeyRing, issuer: str, audience: str, ttl: timedelta, clock: Clock) -> None:
        self._issuer, self._audience, self._ttl, self._clock = issuer, audience, ttl, clock
        self._kid = keyring.active.kid
        self._signer: Key = jwk.construct(keyring.active.private_pem().decode(), ALGORITHM)
        self._verifiers: dict[str, Key] = {
            key.kid: jwk.construct(dict(key.public_jwk), ALGORITHM) for key in keyring.keys
        }
        # Expiry is checked against the injected clock (below), not by python-jose against the system's.
        self._options = {f"require_{claim}": True for claim in REQUIRED_CLAIMS} | {"leeway": 0, "verify_exp": False}
        # Tokens that verified, until they expire: a client sends the same token for its whole 15 minutes, and
        # the signature check is most of a request's CPU. Revocation is unaffected: sessions are checked anyway.
        self._verified: dict[str, AccessClaims] = {}
        self._hits = self._misses = 0  # read by the metrics sampler: plain integers cost nothing per request

    def issue(self, session: Session, roles: Sequence[str] = ()) -> IssuedToken:
        lifetime = int(self._ttl.total_seconds())
        token = self._sign(
            TokenPurpose.ACCESS,
            str(session.user_id),
            lifetime,
            sid=str(session.id),
            amr=[str(method) for method in session.amr],
            auth_time=int(session.authenticated_at.timestamp()),
            roles=list(roles),
        )
        return IssuedToken(token=token, expires_in=lifetime)

    def verify(self, token: str) -> AccessClaims:
        now = self._clock.now()
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at > now:
                self._hits += 1
                return cached
            del self._verified[token]
        self._misses += 1
        claims = self._verify(token, now)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # oldest first: dicts keep insertion order
        self._verified[token] = claims
        return claims

    def cache_counts(self) -> tuple[int, int]:
        """Verifications so far answered from the cache (hits) and by a signature check (misses)."""
        return self._hits, self._misses

    def _sign(self, purpose: TokenPurpose, subject: str, lifetime: int, **extra: Any) -> str:
        issued_at = int(self._clock.now().timestamp())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "jti": secrets.token_urlsafe(16),
            "iat": issued_at,
            "exp": issued_at + lifetime,
            **extra,
        }
        headers = {"kid": self._kid, "typ": purpose.typ}
        return str(jwt.encode(claims, self._signer, algorithm=ALGORITHM, headers=headers))

    def _decode(self, token: str, purpose: TokenPurpose, now: datetime) -> dict[str, Any]:
        """The claims of a valid token of ``purpose``. Raises: InvalidAccessToken."""
        try:
            header = jwt.get_unverified_header(token)
        except JOSEError:
            raise InvalidAccessToken() from None
        if set(header) - ALLOWED_HEADERS or header.get("alg") != ALGORITHM:
            raise InvalidAccessToken()
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower().removeprefix("application/") != purpose.typ:
            raise InvalidAccessToken()  # a JWT of another purpose (or none) signed with our key
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
            expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        except (JOSEError, KeyError, ValueError, TypeError, AttributeError, OverflowError):
            raise InvalidAccessToken() from None
        if expires_at <= now:  # RFC 7519: not on or after exp (jose allows "on")
            raise InvalidAccessToken()
        return claims

    def _verify(self, token: str, now: datetime) -> AccessClaims:
        claims = self._decode(token, TokenPurpose.ACCESS, now)
        try:
            if any(claim not in claims for claim in ACCESS_CLAIMS) or not isinstance(claims["amr"], list):
                raise ValueError("missing access claims")
            return AccessClaims(
                user_id=UserId(UUID(claims["sub"])),
                session_id=SessionId(UUID(claims["sid"])),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
                amr=tuple(AuthMethod(method) for method in claims["amr"]),
                auth_time=datetime.fromtimestamp(int(claims["auth_time"]), UTC),
                issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
                roles=_roles(claims.get("roles", [])),
            )
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError):
            raise InvalidAccessToken() from None
