"""Self-validating, immutable value objects. Raw strings become these at the first line of a use case."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType
from uuid import UUID

from email_validator import EmailNotValidError, validate_email

from usermgmt.domain.errors import InvalidEmail, InvalidFullName, InvalidUsername

UserId = NewType("UserId", UUID)
SessionId = NewType("SessionId", UUID)


class AuthMethod(StrEnum):
    """How a sign-in was proven: RFC 8176 Authentication Method Reference values, as carried in ``amr``."""

    PASSWORD = "pwd"  # noqa: S105 - a method name, not a secret
    OTP = "otp"
    FEDERATED = "fed"  # an identity provider (Google, Facebook, OIDC) vouched for the user; not in RFC 8176


class EmailTokenPurpose(StrEnum):
    """What a one-time email token proves: each token serves one purpose, for one user, once."""

    VERIFY = "verify"
    RESET = "reset"
    CHANGE_EMAIL = "change_email"
    RESTORE = "restore"  # undo a deletion within its grace period


EMAIL_MAX_LENGTH = 254
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{3,32}")
FULL_NAME_MAX_LENGTH = 128


def canonical(text: str) -> str:
    """The form two identifiers are compared in: Unicode NFKC, then full case folding.

    NFKC maps compatibility characters (ligatures, full-width letters) to their plain form; casefold is the
    Unicode caseless match, so ``Alice`` = ``alice`` while ``mıke`` (dotless i) stays distinct from ``mike``.
    """
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass(frozen=True, slots=True)
class Email:
    """A syntactically valid email address. ``value`` is as normalised by email-validator; compare ``canonical``."""

    value: str

    def __post_init__(self) -> None:
        raw = self.value.strip()
        if not raw or len(raw) > EMAIL_MAX_LENGTH or "\x00" in raw:
            raise InvalidEmail()
        try:
            result = validate_email(raw, check_deliverability=False, test_environment=False)
        except EmailNotValidError as exc:
            raise InvalidEmail(f"The email address is not valid: {exc}") from None
        if len(canonical(result.normalized)) > EMAIL_MAX_LENGTH:  # NFKC can expand a character up to 18-fold
            raise InvalidEmail("The email address is too long.")
        object.__setattr__(self, "value", result.normalized)

    @property
    def canonical(self) -> str:
        return canonical(self.value)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Username:
    """3-32 characters of ``[A-Za-z0-9._-]``; unique case-insensitively (compare ``canonical``)."""

    value: str

    def __post_init__(self) -> None:
        if not USERNAME_PATTERN.fullmatch(self.value):
            raise InvalidUsername()

    @property
    def canonical(self) -> str:
        return self.value.lower()

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class FullName:
    """A display name: 1-128 printable characters after NFKC normalisation and trimming."""

    value: str

    def __post_init__(self) -> None:
        normalized = unicodedata.normalize("NFKC", self.value).strip()
        if not normalized or len(normalized) > FULL_NAME_MAX_LENGTH:
            raise InvalidFullName("A full name is 1 to 128 characters.")
        if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in normalized):
            raise InvalidFullName("A full name cannot contain control or invisible characters.")
        object.__setattr__(self, "value", normalized)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class PlainPassword:
    """A password as typed, NFKC-normalised (NIST SP 800-63B 5.1.1.2). Never printed."""

    value: str = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", unicodedata.normalize("NFKC", self.value))


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A password hash in modular-crypt format. Never printed."""

    value: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RefreshTokenHash:
    """The digest of a refresh token: what is stored instead of the token itself. Never printed."""

    value: str = field(repr=False)
