"""Two-factor authentication from the use cases' side: the second sign-in step, and the codes that prove it.

- TOTP (RFC 6238) through the ``TotpAuthenticator`` port: one step either side of now is accepted, and a code is
  accepted only if its time step is newer than every step accepted before for the account (no replay).
- The secret is sealed by the ``SecretBox`` port, bound to its owner: a database dump alone does not give it.
- Recovery codes: 10 per set, 10 characters each from Crockford's base32 (50 bits), shown once as ``xxxxx-xxxxx``
  and stored as keyed digests; single use, compared in constant time.
- A sign-in whose account has TOTP on stops after the first factor with an ``MfaChallenge``: its opaque token (256
  bits, stored as a SHA-256 digest) lives 5 minutes, belongs to one user and one password check, and dies when used
  or after 5 wrong codes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from usermgmt.application.ports import (
    FurtherStep,
    ProvenFactor,
    QrCodeRenderer,
    SecondFactorPolicy,
    SecretBox,
    TotpAuthenticator,
    UnitOfWork,
)
from usermgmt.application.results import RecoveryCodes, TotpEnrolment
from usermgmt.domain.mfa import (
    RECOVERY_ALPHABET,
    RECOVERY_CODE_LENGTH,
    MfaChallenge,
    TotpCredential,
    format_recovery_code,
    normalise_recovery_code,
)
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import AuthMethod, UserId

MFA_TOKEN_BYTES: Final = 32
TOTP_DIGITS: Final = 6


class MfaMethod(StrEnum):
    """What a second step may be proven with (``mfa_methods`` of the ``mfa_required`` problem)."""

    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"


@dataclass(frozen=True, slots=True, kw_only=True)
class MfaPolicy:
    issuer: str = "usermgmt"  # names the service in authenticator apps
    challenge_ttl: timedelta = timedelta(minutes=5)
    max_failures: int = 5  # wrong codes an mfa_token survives
    recovery_codes: int = 10


def mfa_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenCode:
    """A code that proved the second factor: which kind, and (for a recovery code) how many are left."""

    method: MfaMethod
    codes_left: int | None = None


class Codes:
    """Everything about second-factor codes the use cases need: enrolment material, checking a code, and sets of
    recovery codes."""

    def __init__(self, policy: MfaPolicy, box: SecretBox, authenticator: TotpAuthenticator, qr: QrCodeRenderer) -> None:
        self.policy, self._box, self._authenticator, self._qr = policy, box, authenticator, qr

    def enrolment(self, user: User, now: datetime) -> tuple[TotpCredential, TotpEnrolment]:
        """A new pending credential for ``user`` (sealed) and what the app needs to enrol it."""
        secret = self._authenticator.new_secret()
        uri = self._authenticator.provisioning_uri(secret, account=user.email.value, issuer=self.policy.issuer)
        credential = TotpCredential(
            user_id=user.id, sealed_secret=self._box.seal(secret.encode(), context=str(user.id)), created_at=now
        )
        return credential, TotpEnrolment(secret=secret, otpauth_uri=uri, qr_svg=self._qr.svg(uri))

    def totp_step(self, credential: TotpCredential, code: str, now: datetime) -> int | None:
        """The time step ``code`` is the TOTP of, if it is one of the accepted steps and not used yet."""
        digits = "".join(code.split())
        if len(digits) != TOTP_DIGITS or not digits.isascii() or not digits.isdigit():
            return None
        try:
            secret = self._box.open(credential.sealed_secret, context=str(credential.user_id)).decode()
        except ValueError:
            return None  # sealed under a key no longer configured: the owner must use a recovery code
        step = self._authenticator.matching_step(secret, digits, now)
        return step if step is not None and credential.accepts_step(step) else None

    async def prove(self, uow: UnitOfWork, user_id: UserId, code: str, now: datetime) -> ProvenCode | None:
        """Check ``code`` (a TOTP or a recovery code) against the user's enabled second factor and use it up with
        this unit of work; None when it proves nothing."""
        credential = await uow.mfa.get_totp(user_id)
        if credential is None or not credential.enabled or len(code) > 64:
            return None
        step = self.totp_step(credential, code, now)
        if step is not None:
            return ProvenCode(method=MfaMethod.TOTP) if await uow.mfa.use_totp_step(user_id, step) else None
        normalised = normalise_recovery_code(code)
        if normalised is None:
            return None
        stored = await uow.mfa.recovery_codes(user_id)
        matched = _constant_time_find(self._box.fingerprints(normalised), stored)
        if matched is None or not await uow.mfa.use_recovery_code(user_id, matched):
            return None
        return ProvenCode(method=MfaMethod.RECOVERY_CODE, codes_left=len(stored) - 1)

    def recovery_codes(self) -> tuple[RecoveryCodes, list[str]]:
        """A fresh set: as shown to the user, and the digests to store."""
        raw = [
            "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
            for _ in range(self.policy.recovery_codes)
        ]
        return RecoveryCodes(tuple(format_recovery_code(c) for c in raw)), [self._box.fingerprints(c)[0] for c in raw]


def _constant_time_find(candidates: Sequence[str], stored: Sequence[str]) -> str | None:
    """The stored digest equal to one of ``candidates``, comparing every pair in constant time."""
    found = None
    for digest in stored:
        for candidate in candidates:
            if hmac.compare_digest(digest, candidate):
                found = digest
    return found


class TotpSecondFactor(SecondFactorPolicy):
    """An account with TOTP on needs a second step after any first factor that is not itself a one-time code."""

    def __init__(self, policy: MfaPolicy) -> None:
        self._policy = policy

    async def further_step(
        self, uow: UnitOfWork, user: User, factor: ProvenFactor, now: datetime
    ) -> FurtherStep | None:
        if AuthMethod.OTP in factor.amr:
            return None
        credential = await uow.mfa.get_totp(user.id)
        if credential is None or not credential.enabled:
            return None
        token = secrets.token_urlsafe(MFA_TOKEN_BYTES)
        await uow.mfa.add_challenge(
            MfaChallenge.open(
                digest=mfa_token_digest(token),
                user_id=user.id,
                amr=factor.amr,
                password_changed_at=factor.password.changed_at if factor.password else None,
                throttle_key=factor.throttle_key,
                now=now,
                lifetime=self._policy.challenge_ttl,
                provider=factor.provider,
            )
        )
        return FurtherStep(
            methods=(MfaMethod.TOTP.value, MfaMethod.RECOVERY_CODE.value),
            token=token,
            expires_in=int(self._policy.challenge_ttl.total_seconds()),
        )
