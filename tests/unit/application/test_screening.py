"""PasswordScreen: the domain policy first, then the (optional) breach check, with a reason that never echoes."""

from __future__ import annotations

import pytest

from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import WeakPassword
from usermgmt.domain.password_policy import PasswordPolicy
from usermgmt.domain.value_objects import Email, PlainPassword

EMAIL = Email("alice@example.com")


class FakeBreachedChecker:
    """Knows a fixed set of breached passwords; counts how often it was asked."""

    def __init__(self, breached: set[str]) -> None:
        self._breached, self.asked = breached, 0

    async def is_breached(self, password: PlainPassword) -> bool:
        self.asked += 1
        return password.value in self._breached


async def test_breached_password_is_rejected() -> None:
    checker = FakeBreachedChecker({"troubador-horse-7"})
    screen = PasswordScreen(PasswordPolicy(), checker)

    with pytest.raises(WeakPassword) as excinfo:
        await screen.check(PlainPassword("troubador-horse-7"), email=EMAIL)

    assert "breach" in excinfo.value.detail
    assert "troubador" not in excinfo.value.detail
    await screen.check(PlainPassword("a different long one"), email=EMAIL)
    assert checker.asked == 2


async def test_policy_failures_never_reach_the_breach_check() -> None:
    checker = FakeBreachedChecker(set())
    screen = PasswordScreen(PasswordPolicy(), checker)

    for weak in ("short", "alice@example.com", "alice2024!!"):
        with pytest.raises(WeakPassword):
            await screen.check(PlainPassword(weak), email=EMAIL)

    assert checker.asked == 0


async def test_without_a_checker_only_the_policy_applies() -> None:
    screen = PasswordScreen(PasswordPolicy())

    await screen.check(PlainPassword("troubador-horse-7"), email=EMAIL)
    with pytest.raises(WeakPassword):
        await screen.check(PlainPassword("short"), email=EMAIL)


async def test_the_policy_is_given_every_identifier() -> None:
    from usermgmt.domain.value_objects import FullName, Username

    screen = PasswordScreen(PasswordPolicy())

    with pytest.raises(WeakPassword):
        await screen.check(PlainPassword("wonder2024!"), email=EMAIL, username=Username("wonder"))
    with pytest.raises(WeakPassword):
        await screen.check(PlainPassword("Liddell2024!"), email=EMAIL, full_name=FullName("Alice Liddell"))
