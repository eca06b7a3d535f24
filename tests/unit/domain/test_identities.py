"""The linking rule for an identity no account has yet, every case of it."""

from __future__ import annotations

import pytest

from usermgmt.domain.identities import Resolution, resolve_new_identity
from usermgmt.domain.value_objects import Email

ADDRESS = Email("ada@example.com")


@pytest.mark.parametrize(
    ("email", "provider_verified", "account_email_verified", "expected"),
    [
        (None, True, None, Resolution.NO_EMAIL),
        (None, True, True, Resolution.NO_EMAIL),
        (ADDRESS, True, None, Resolution.CREATE),
        (ADDRESS, False, None, Resolution.CREATE),  # a new account, its address unverified until the link is used
        (ADDRESS, True, True, Resolution.LINK),  # both sides proved the mailbox
        (ADDRESS, True, False, Resolution.REFUSE),  # the pre-registration takeover: never joined
        (ADDRESS, False, True, Resolution.REFUSE),  # the provider does not vouch for the address
        (ADDRESS, False, False, Resolution.REFUSE),
    ],
)
def test_an_existing_account_is_joined_only_when_both_sides_verified_the_address(
    email: Email | None, provider_verified: bool, account_email_verified: bool | None, expected: Resolution
) -> None:
    assert (
        resolve_new_identity(
            email=email, provider_verified=provider_verified, account_email_verified=account_email_verified
        )
        is expected
    )


def test_the_refusals_are_the_frontend_error_codes() -> None:
    assert Resolution.REFUSE.value == "account_exists"
    assert Resolution.NO_EMAIL.value == "email_required"
