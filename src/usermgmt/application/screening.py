"""Password screening for new passwords: the domain policy, then (optionally) a breach-corpus lookup."""

from __future__ import annotations

from usermgmt.application.ports import BreachedPasswordChecker
from usermgmt.domain.errors import WeakPassword
from usermgmt.domain.password_policy import PasswordPolicy
from usermgmt.domain.value_objects import Email, FullName, PlainPassword, Username


class PasswordScreen:
    def __init__(self, policy: PasswordPolicy, breached: BreachedPasswordChecker | None = None) -> None:
        self._policy, self._breached = policy, breached

    async def check(
        self,
        password: PlainPassword,
        *,
        email: Email,
        username: Username | None = None,
        full_name: FullName | None = None,
    ) -> None:
        """Raises: WeakPassword, saying why (never repeating the password)."""
        self._policy.check(password, email=email, username=username, full_name=full_name)
        if self._breached is not None and await self._breached.is_breached(password):
            raise WeakPassword("This password has appeared in a known data breach; choose another one.")
