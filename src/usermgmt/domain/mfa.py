"""Second factors: a TOTP credential (pending until confirmed), recovery codes, and the sign-in challenge that sits
between a proven first factor and a session. No I/O, no clock: time is passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from usermgmt.domain.value_objects import AuthMethod, UserId

# Crockford's base32 alphabet: no I, L, O or U, so nothing reads as another character. 10 of them are 50 bits.
RECOVERY_ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"
RECOVERY_CODE_LENGTH: Final = 10
_READ_AS: Final = str.maketrans({"i": "1", "l": "1", "o": "0"})


def normalise_recovery_code(text: str) -> str | None:
    """A recovery code as typed (any case, with or without its dash or spaces; ``i``/``l`` read as 1, ``o`` as 0)
    in its stored form, or None when it cannot be one."""
    compact = "".join(text.split()).replace("-", "").lower().translate(_READ_AS)
    if len(compact) != RECOVERY_CODE_LENGTH or any(c not in RECOVERY_ALPHABET for c in compact):
        return None
    return compact


def format_recovery_code(code: str) -> str:
    """``xxxxx-xxxxx``, as shown to the user."""
    half = RECOVERY_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


@dataclass(eq=False, kw_only=True)
class TotpCredential:
    """An account's authenticator-app secret (sealed: only the adapter that seals it can open it). Pending until a
    code from the app confirms it; ``last_step`` is the newest time step accepted, so no code is accepted twice."""

    user_id: UserId
    sealed_secret: str = field(repr=False)
    created_at: datetime
    confirmed_at: datetime | None = None
    last_step: int | None = None

    @property
    def enabled(self) -> bool:
        return self.confirmed_at is not None

    def accepts_step(self, step: int) -> bool:
        """Whether a code of time ``step`` may still be used: only a step newer than every step used before."""
        return self.last_step is None or step > self.last_step

    def use_step(self, step: int) -> None:
        if not self.accepts_step(step):
            raise ValueError("this time step was already used")
        self.last_step = step

    def confirm(self, step: int, *, now: datetime) -> None:
        self.use_step(step)
        self.confirmed_at = now


@dataclass(eq=False, kw_only=True)
class MfaChallenge:
    """The second step of one sign-in: the first factor ``amr`` was proven for ``user_id`` (and, for a password,
    which version of it: ``password_changed_at``). Its token is known only by its digest. It dies when used, when it
    expires, and after ``max_failures`` wrong codes."""

    digest: str = field(repr=False)
    user_id: UserId
    amr: tuple[AuthMethod, ...]
    password_changed_at: datetime | None
    throttle_key: str | None = field(repr=False)  # the failed-login throttles of the first factor
    created_at: datetime
    expires_at: datetime
    failures: int = 0
    provider: str | None = None  # the identity provider of the first factor, if it was one

    @classmethod
    def open(
        cls,
        *,
        digest: str,
        user_id: UserId,
        amr: tuple[AuthMethod, ...],
        password_changed_at: datetime | None,
        throttle_key: str | None,
        now: datetime,
        lifetime: timedelta,
        provider: str | None = None,
    ) -> MfaChallenge:
        return cls(
            digest=digest,
            user_id=user_id,
            amr=amr,
            password_changed_at=password_changed_at,
            throttle_key=throttle_key,
            created_at=now,
            expires_at=now + lifetime,
            provider=provider,
        )

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def fail(self, max_failures: int) -> bool:
        """Count a wrong code; return True when the challenge is now exhausted (and must be deleted)."""
        self.failures += 1
        return self.failures >= max_failures
