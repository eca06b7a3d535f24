"""The password policy (NIST SP 800-63B 5.1.1.2): length, not common or breached, not built from the user's own
identifiers; no composition rules."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from usermgmt.domain.errors import WeakPassword
from usermgmt.domain.value_objects import Email, FullName, PlainPassword, Username, canonical

MIN_LENGTH_FLOOR = 8
MAX_LENGTH = 128
_IDENTIFIER_MIN = 3  # shorter fragments of a name ("al", "jo") are too common to forbid
_LEFTOVER_MIN = 4  # a password keeps at least this many letters once the identifier is taken out
_NOT_LETTERS = re.compile(r"[\W\d_]+")
_TRAILING_DECORATION = re.compile(r"[\W\d_]+$")


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Checks a new password. Lengths count Unicode code points after NFKC normalisation.

    ``common`` holds canonical (NFKC + casefold) forms of commonly used and breached passwords.
    """

    min_length: int = MIN_LENGTH_FLOOR
    max_length: int = MAX_LENGTH
    common: frozenset[str] = field(default=frozenset(), repr=False)

    def __post_init__(self) -> None:
        if not MIN_LENGTH_FLOOR <= self.min_length <= self.max_length <= MAX_LENGTH:
            raise ValueError(f"password lengths must satisfy {MIN_LENGTH_FLOOR} <= min <= max <= {MAX_LENGTH}")

    def check(
        self,
        password: PlainPassword,
        *,
        email: Email,
        username: Username | None = None,
        full_name: FullName | None = None,
    ) -> None:
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
        if self._is_common(folded):
            raise WeakPassword("This password is too common; choose a less predictable one.")
        if _built_from(folded, _identifiers(email, username, full_name)):
            raise WeakPassword("The password must not be built from your email address, username or name.")

    def _is_common(self, folded: str) -> bool:
        if not self.common:
            return False
        undecorated = _TRAILING_DECORATION.sub("", folded)  # "password123!" is "password" with a tail
        return folded in self.common or (len(undecorated) >= _LEFTOVER_MIN and undecorated in self.common)


def _identifiers(email: Email, username: Username | None, full_name: FullName | None) -> Iterable[str]:
    local, _, domain = email.canonical.rpartition("@")
    yield from (local, domain.split(".")[0])
    yield from _NOT_LETTERS.split(local)
    if username is not None:
        yield username.canonical
        yield from _NOT_LETTERS.split(username.canonical)
    if full_name is not None:
        name = canonical(full_name.value)
        yield name.replace(" ", "")
        yield from name.split()


def _built_from(folded: str, identifiers: Iterable[str]) -> bool:
    """True when the password is the user's identifiers plus decoration: with every identifier it contains
    taken out (longest first), fewer than four letters of its own remain."""
    leftover, found = folded, False
    for identifier in sorted({i for i in identifiers if len(i) >= _IDENTIFIER_MIN}, key=len, reverse=True):
        if identifier in leftover:
            leftover, found = leftover.replace(identifier, " "), True
    return found and len(_NOT_LETTERS.sub("", leftover)) < _LEFTOVER_MIN
