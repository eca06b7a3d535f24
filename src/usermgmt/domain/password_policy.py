"""The password policy (NIST SP 800-63B): length only, no composition rules, not the user's own identifiers."""

from __future__ import annotations

from dataclasses import dataclass

from usermgmt.domain.errors import WeakPassword
from usermgmt.domain.value_objects import Email, PlainPassword, Username, canonical

MIN_LENGTH_FLOOR = 8
MAX_LENGTH = 128


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Checks a new password. Lengths count Unicode code points after NFKC normalisation."""

    min_length: int = MIN_LENGTH_FLOOR
    max_length: int = MAX_LENGTH

    def __post_init__(self) -> None:
        if not MIN_LENGTH_FLOOR <= self.min_length <= self.max_length <= MAX_LENGTH:
            raise ValueError(f"password lengths must satisfy {MIN_LENGTH_FLOOR} <= min <= max <= {MAX_LENGTH}")

    def check(self, password: PlainPassword, *, email: Email, username: Username | None = None) -> None:
        """Raise ``WeakPassword`` (with a reason that never repeats the password) unless ``password`` is acceptable."""
        length = len(password.value)
        if length < self.min_length:
            raise WeakPassword(f"The password must be at least {self.min_length} characters long.")
        if length > self.max_length:
            raise WeakPassword(f"The password must be at most {self.max_length} characters long.")
        folded = canonical(password.value)
        if folded == email.canonical:
            raise WeakPassword("The password must not be the email address.")
        if username is not None and folded == username.canonical:
            raise WeakPassword("The password must not be the username.")
