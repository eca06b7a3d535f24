"""Email verification and an address change over HTTP, read from the real messages (aiosmtpd on loopback, fed by
the app's own outbox worker) and finished by following their links."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from dependency_injector import providers
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import (
    PASSWORD,
    MailClientFor,
    MailSettings,
    Signup,
    make_mail_container,
    running,
    signup_through,
)
from tests.e2e.test_auth_flow import LOGIN, ME, REGISTER, assert_problem
from tests.support.smtp import Mailbox
from usermgmt.adapters.memory import FrozenClock
from usermgmt.container import Container

VERIFY = "/api/v1/auth/email/verify"
CONFIRM = "/api/v1/auth/email/confirm"
RESEND = "/api/v1/users/me/email/verification"
CHANGE = "/api/v1/users/me/email"
FORGOT = "/api/v1/auth/password/forgot"
RESET = "/api/v1/auth/password/reset"
EVENTS = "/api/v1/users/me/events"
FRONTEND_URL = "https://app.example.com"


@pytest.fixture
def mail_container(mail_settings: MailSettings) -> Container:
    return make_mail_container(mail_settings(frontend_url=FRONTEND_URL))


async def verification_token(mailbox: Mailbox, email: str) -> str:
    message = await mailbox.wait_for(to=email, template="verify_email")
    assert message.link is not None and message.link.startswith(f"{FRONTEND_URL}/verify-email?token=")
    assert message.token is not None and message.link in message.html
    return message.token


async def me(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, object]:
    response = await client.get(ME, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def events(client: httpx.AsyncClient, auth: dict[str, str]) -> list[str]:
    return [e["type"] for e in (await client.get(EVENTS, headers=auth)).json()["items"]]


# --- verification --------------------------------------------------------------------------------------------------


async def test_registration_sends_a_link_that_verifies_the_address_once(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    token = await verification_token(mailbox, account.email)
    assert (await me(mail_client, account.auth))["email_verified"] is False

    response = await mail_client.post(VERIFY, json={"token": token})

    assert response.status_code == 204
    assert (await me(mail_client, account.auth))["email_verified"] is True
    assert_problem(await mail_client.post(VERIFY, json={"token": token}), 400, "invalid_email_token")
    assert {"email_verified", "email_verification_sent"} <= set(await events(mail_client, account.auth))
    assert_problem(await mail_client.post(RESEND, headers=account.auth), 409, "email_already_verified")


async def test_resend_sends_a_fresh_link_and_the_old_one_dies(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    first = await verification_token(mailbox, account.email)

    response = await mail_client.post(RESEND, headers=account.auth)

    assert response.status_code == 202
    second = await verification_token(mailbox, account.email)
    assert second != first
    assert_problem(await mail_client.post(VERIFY, json={"token": first}), 400, "invalid_email_token")
    assert (await mail_client.post(VERIFY, json={"token": second})).status_code == 204


async def test_resend_is_rate_limited(mail_client_for: MailClientFor, mailbox: Mailbox) -> None:
    async with mail_client_for(rate_limit_verification_emails_per_user="1/1h", frontend_url=FRONTEND_URL) as client:
        account = await signup_through(client)()
        assert (await client.post(RESEND, headers=account.auth)).status_code == 202
        response = await client.post(RESEND, headers=account.auth)
    assert_problem(response, 429, "rate_limited")
    assert "retry-after" in response.headers


async def test_an_expired_link_is_refused(mail_client_for: MailClientFor, mailbox: Mailbox) -> None:
    async with mail_client_for(email_token_ttl="1", frontend_url=FRONTEND_URL) as client:
        account = await signup_through(client)()
        token = await verification_token(mailbox, account.email)
        await mailbox.assert_none(to=account.email, template="never", within=1.1)  # let the second pass

        response = await client.post(VERIFY, json={"token": token})

        assert_problem(response, 400, "invalid_email_token")
        assert (await me(client, account.auth))["email_verified"] is False


@pytest.mark.parametrize("token", ["nonsense", "A" * 43, "x" * 512])
async def test_unknown_tokens_get_one_answer(mail_client: httpx.AsyncClient, token: str) -> None:
    for path in (VERIFY, CONFIRM):
        assert_problem(await mail_client.post(path, json={"token": token}), 400, "invalid_email_token")


async def test_a_token_of_another_purpose_is_refused_everywhere_else(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    verify_token = await verification_token(mailbox, account.email)

    assert_problem(
        await mail_client.post(RESET, json={"token": verify_token, "new_password": "a brand new passphrase"}),
        400,
        "invalid_email_token",
    )
    assert_problem(await mail_client.post(CONFIRM, json={"token": verify_token}), 400, "invalid_email_token")
    assert (await mail_client.post(VERIFY, json={"token": verify_token})).status_code == 204  # still good for its own


async def test_require_verified_email_refuses_sign_in_until_the_link_is_followed(
    mail_client_for: MailClientFor, mailbox: Mailbox
) -> None:
    async with mail_client_for(require_verified_email=True, frontend_url=FRONTEND_URL) as client:
        email = "strict@example.com"
        assert (await client.post(REGISTER, json={"email": email, "password": PASSWORD})).status_code == 201
        first = await verification_token(mailbox, email)

        assert_problem(
            await client.post(LOGIN, json={"login": email, "password": "wrong password"}), 401, "invalid_credentials"
        )
        refused = await client.post(LOGIN, json={"login": email, "password": PASSWORD})
        body = assert_problem(refused, 403, "email_not_verified")
        assert "access_token" not in body and "refresh_token" not in body
        # Registration's link went out seconds ago: no second one within 15 minutes (tests/unit: and one after).
        await mailbox.assert_none(to=email, template="verify_email", within=1.0)
        assert_problem(await client.post(LOGIN, json={"login": email, "password": PASSWORD}), 403, "email_not_verified")

        assert (await client.post(VERIFY, json={"token": first})).status_code == 204
        signed_in = await client.post(LOGIN, json={"login": email, "password": PASSWORD})
    assert signed_in.status_code == 200
    assert signed_in.json()["access_token"]


# --- the address change ---------------------------------------------------------------------------------------------


async def test_an_address_change_waits_for_the_new_mailbox_and_tells_the_old_one_twice(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup("old@example.com")
    new = "new@example.com"

    response = await mail_client.post(CHANGE, headers=account.auth, json={"new_email": new, "password": PASSWORD})

    assert response.status_code == 202
    profile = await me(mail_client, account.auth)
    assert (profile["email"], profile["pending_email"]) == ("old@example.com", new)
    requested = await mailbox.wait_for(to="old@example.com", template="email_change_requested")
    assert new in requested.text and "If this was not you" in requested.text
    link = await mailbox.wait_for(to=new, template="confirm_email_change")
    assert link.link is not None and link.link.startswith(f"{FRONTEND_URL}/confirm-email?token=")
    assert link.token is not None

    confirmed = await mail_client.post(CONFIRM, json={"token": link.token})

    assert confirmed.status_code == 204
    profile = await me(mail_client, account.auth)
    assert (profile["email"], profile["email_verified"], profile["pending_email"]) == (new, True, None)
    done = await mailbox.wait_for(to="old@example.com", template="email_changed")
    assert new in done.text
    assert (await mail_client.post(LOGIN, json={"login": new, "password": PASSWORD})).status_code == 200
    assert_problem(await mail_client.post(CONFIRM, json={"token": link.token}), 400, "invalid_email_token")
    assert {"email_change_requested", "email_changed"} <= set(await events(mail_client, account.auth))


async def test_an_address_change_needs_the_password_and_a_free_valid_address(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup("mine@example.com")
    await mail_signup("taken@example.com")

    def attempt(new_email: str, password: str = PASSWORD) -> dict[str, str]:
        return {"new_email": new_email, "password": password}

    assert_problem(
        await mail_client.post(CHANGE, headers=account.auth, json=attempt("x@example.com", "wrong password")),
        403,
        "invalid_password",
    )
    assert_problem(
        await mail_client.post(CHANGE, headers=account.auth, json=attempt("TAKEN@example.com")), 409, "email_taken"
    )
    body = assert_problem(
        await mail_client.post(CHANGE, headers=account.auth, json=attempt("not an address")), 422, "invalid_email"
    )
    assert body["errors"][0]["loc"] == ["body", "new_email"]
    assert_problem(
        await mail_client.post(CHANGE, headers=account.auth, json=attempt("MINE@example.com")), 422, "same_email"
    )
    assert_problem(await mail_client.post(CHANGE, json=attempt("x@example.com")), 401, "invalid_token")
    assert (await me(mail_client, account.auth))["pending_email"] is None
    await mailbox.assert_none(template="confirm_email_change", within=0.5)


async def test_an_address_taken_meanwhile_fails_the_confirmation(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup("first@example.com")
    new = "wanted@example.com"
    assert (
        await mail_client.post(CHANGE, headers=account.auth, json={"new_email": new, "password": PASSWORD})
    ).status_code == 202
    link = await mailbox.wait_for(to=new, template="confirm_email_change")
    assert (
        await mail_client.post(REGISTER, json={"email": new, "password": "someone else's passphrase"})
    ).status_code == 201

    response = await mail_client.post(CONFIRM, json={"token": link.token})

    assert_problem(response, 409, "email_taken")
    profile = await me(mail_client, account.auth)
    assert profile["email"] == "first@example.com"


async def test_patch_no_longer_changes_the_address(mail_client: httpx.AsyncClient, mail_signup: Signup) -> None:
    account = await mail_signup("keep@example.com")

    response = await mail_client.patch(ME, headers=account.auth, json={"email": "stolen@example.com"})

    body = assert_problem(response, 422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "email"]
    assert (await me(mail_client, account.auth))["email"] == "keep@example.com"


async def test_a_confirmed_change_kills_the_reset_links_sent_to_the_old_address(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup("before@example.com")
    assert (await mail_client.post(FORGOT, json={"email": account.email})).status_code == 202
    reset = await mailbox.wait_for(to=account.email, template="reset_password")
    await mail_client.post(CHANGE, headers=account.auth, json={"new_email": "after@example.com", "password": PASSWORD})
    link = await mailbox.wait_for(to="after@example.com", template="confirm_email_change")
    assert (await mail_client.post(CONFIRM, json={"token": link.token})).status_code == 204

    response = await mail_client.post(RESET, json={"token": reset.token, "new_password": "a brand new passphrase"})

    assert_problem(response, 400, "invalid_email_token")


async def test_no_link_token_password_or_hash_reaches_the_logs(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account = await mail_signup("logs@example.com")
    tokens = [await verification_token(mailbox, account.email)]
    await mail_client.post(RESEND, headers=account.auth)
    tokens.append(await verification_token(mailbox, account.email))
    await mail_client.post(VERIFY, json={"token": tokens[-1]})
    await mail_client.post(CHANGE, headers=account.auth, json={"new_email": "moved@example.com", "password": PASSWORD})
    link = await mailbox.wait_for(to="moved@example.com", template="confirm_email_change")
    assert link.token is not None
    tokens.append(link.token)
    await mail_client.post(CONFIRM, json={"token": link.token})
    await mail_client.post(CONFIRM, json={"token": link.token})  # refused: logged as a 400, without the token
    await mailbox.wait_for(to="logs@example.com", template="email_changed")

    # Every record whole (message, arguments and the structured extras the JSON formatter writes), but the test's
    # own SMTP server's ("mail.log"), which logs what it receives.
    logged = "\n".join(
        f"{record.getMessage()} {vars(record)!r}" for record in caplog.records if not record.name.startswith("mail.")
    )
    assert "confirm_email_change" in logged  # deliveries were logged, by Message-ID and template
    for secret in (*tokens, PASSWORD, account.tokens["access_token"], account.tokens["refresh_token"]):
        assert secret not in logged
    assert "$2b$" not in logged  # no bcrypt hash


# --- time moved by a clock --------------------------------------------------------------------------------------


def clocked(mail_settings: MailSettings, **overrides: object) -> tuple[Container, FrozenClock]:
    """A mail app's container whose clock the test moves (links expire by it; the outbox worker runs on it too)."""
    container = make_mail_container(mail_settings(frontend_url=FRONTEND_URL, **overrides))
    clock = FrozenClock(datetime.now(UTC))
    container.clock.override(providers.Object(clock))
    return container, clock


async def test_a_refused_sign_in_sends_a_fresh_link_once_15_minutes_have_passed(
    mail_settings: MailSettings, clean_database: AsyncEngine, mailbox: Mailbox
) -> None:
    container, clock = clocked(mail_settings, require_verified_email=True)
    credentials = {"login": "strict@example.com", "password": PASSWORD}
    async with running(container) as client:
        assert (
            await client.post(REGISTER, json={"email": "strict@example.com", "password": PASSWORD})
        ).status_code == 201
        first = await verification_token(mailbox, "strict@example.com")
        clock.advance(timedelta(minutes=15))

        assert_problem(await client.post(LOGIN, json=credentials), 403, "email_not_verified")
        fresh = await verification_token(mailbox, "strict@example.com")
        assert_problem(await client.post(LOGIN, json=credentials), 403, "email_not_verified")
        await mailbox.assert_none(to="strict@example.com", template="verify_email")  # at most one per 15 minutes

        assert_problem(await client.post(VERIFY, json={"token": first}), 400, "invalid_email_token")  # replaced
        assert (await client.post(VERIFY, json={"token": fresh})).status_code == 204
        assert (await client.post(LOGIN, json=credentials)).status_code == 200


async def test_a_newer_change_request_kills_the_older_link_and_an_expired_one_changes_nothing(
    mail_settings: MailSettings, clean_database: AsyncEngine, mailbox: Mailbox
) -> None:
    container, clock = clocked(mail_settings)
    async with running(container) as client:
        account = await signup_through(client)("owner@example.com")
        for new in ("first@example.org", "second@example.org"):
            change = {"new_email": new, "password": PASSWORD}
            assert (await client.post(CHANGE, headers=account.auth, json=change)).status_code == 202
        older = await mailbox.wait_for(to="first@example.org", template="confirm_email_change")
        newer = await mailbox.wait_for(to="second@example.org", template="confirm_email_change")

        assert_problem(await client.post(CONFIRM, json={"token": older.token}), 400, "invalid_email_token")
        clock.advance(timedelta(hours=24))  # USERMGMT_EMAIL_TOKEN_TTL
        assert_problem(await client.post(CONFIRM, json={"token": newer.token}), 400, "invalid_email_token")

        fresh = (await client.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})).json()
        profile = await me(client, {"Authorization": f"Bearer {fresh['access_token']}"})
        assert (profile["email"], profile["pending_email"]) == ("owner@example.com", "second@example.org")
