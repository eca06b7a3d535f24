"""Email verification over HTTP, read from the real messages: the app sends through its outbox worker to an SMTP
server on loopback (``mailbox``), and each test follows the link it got, as a user would."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from dependency_injector import providers
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, MailSettings, Signup, make_mail_container, running
from tests.e2e.test_auth_flow import LOGIN, ME, REGISTER, assert_problem
from tests.support.smtp import Mailbox, ReceivedEmail
from usermgmt.adapters.memory import FrozenClock
from usermgmt.container import Container
from usermgmt.entrypoints.logging import JsonFormatter

VERIFY = "/api/v1/auth/email/verify"
CONFIRM = "/api/v1/auth/email/confirm"
RESEND = "/api/v1/users/me/email/verification"
FORGOT = "/api/v1/auth/password/forgot"
EVENTS = "/api/v1/users/me/events"
FRONTEND_URL = "http://localhost:3000"  # USERMGMT_FRONTEND_URL's default


def app_log(caplog: pytest.LogCaptureFixture) -> str:
    """Every line the service and its libraries logged, as the JSON formatter writes it (with the audit fields);
    not the test's own SMTP server (aiosmtpd's ``mail.*`` loggers print what it receives)."""
    formatter = JsonFormatter()
    return "\n".join(formatter.format(r) for r in caplog.records if not r.name.startswith("mail."))


def clocked(mail_settings: MailSettings, **overrides: object) -> tuple[Container, FrozenClock]:
    """A mail app's container whose clock the test moves (links expire by it; the outbox worker runs on it too)."""
    container = make_mail_container(mail_settings(**overrides))
    clock = FrozenClock(datetime.now(UTC))
    container.clock.override(providers.Object(clock))
    return container, clock


async def verification_link(mailbox: Mailbox, to: str) -> ReceivedEmail:
    """The next verification email to ``to``; its link points at the frontend and carries a token."""
    message = await mailbox.wait_for(to=to, template="verify_email")
    assert message.link is not None and message.link.startswith(f"{FRONTEND_URL}/verify-email?token=")
    assert message.token is not None
    return message


async def verify(client: httpx.AsyncClient, token: str | None) -> httpx.Response:
    return await client.post(VERIFY, json={"token": token})


async def me(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, object]:
    response = await client.get(ME, headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def event_types(client: httpx.AsyncClient, auth: dict[str, str]) -> list[str]:
    return [e["type"] for e in (await client.get(EVENTS, headers=auth)).json()["items"]]


# --- the link of the registration ---------------------------------------------------------------------------------


async def test_registration_sends_a_link_that_verifies_the_address(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account = await mail_signup("Ada@Example.com")
    assert account.user["email_verified"] is False

    message = await verification_link(mailbox, "Ada@example.com")
    assert message.to == "Ada@example.com"
    assert message.subject
    assert message.link in message.text and message.link.replace("&", "&amp;") in message.html

    response = await verify(mail_client, message.token)

    assert response.status_code == 204
    assert response.content == b""
    profile = await me(mail_client, account.auth)
    assert (profile["email_verified"], profile["pending_email"]) == (True, None)
    assert (await event_types(mail_client, account.auth))[:2] == ["email_verified", "login_succeeded"]
    assert "email_verification_sent" in await event_types(mail_client, account.auth)
    logged = app_log(caplog)
    assert '"event": "email_verified"' in logged  # the audit line was captured
    assert message.token is not None and message.token not in logged
    assert PASSWORD not in logged


async def test_a_link_works_once(mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox) -> None:
    account = await mail_signup()
    token = (await verification_link(mailbox, account.email)).token
    assert (await verify(mail_client, token)).status_code == 204

    body = assert_problem(await verify(mail_client, token), 400, "invalid_email_token")

    assert body["detail"] == "The link is invalid or has expired; ask for a new one."


async def test_an_expired_link_verifies_nothing(
    mail_settings: MailSettings, clean_database: AsyncEngine, mailbox: Mailbox
) -> None:
    container, clock = clocked(mail_settings)
    async with running(container) as client:
        assert (
            await client.post(REGISTER, json={"email": "late@example.com", "password": PASSWORD})
        ).status_code == 201
        token = (await verification_link(mailbox, "late@example.com")).token
        clock.advance(timedelta(hours=24))  # USERMGMT_EMAIL_TOKEN_TTL, PT24H by default

        assert_problem(await verify(client, token), 400, "invalid_email_token")

        login = await client.post(LOGIN, json={"login": "late@example.com", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert (await me(client, auth))["email_verified"] is False


async def test_a_link_of_another_kind_verifies_nothing(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    verification = (await verification_link(mailbox, account.email)).token
    assert (await mail_client.post(FORGOT, json={"email": account.email})).status_code == 202
    reset = (await mailbox.wait_for(to=account.email, template="reset_password")).token

    assert_problem(await verify(mail_client, reset), 400, "invalid_email_token")
    assert_problem(await mail_client.post(CONFIRM, json={"token": verification}), 400, "invalid_email_token")

    assert (await me(mail_client, account.auth))["email_verified"] is False
    assert (await verify(mail_client, verification)).status_code == 204  # neither attempt used it up


@pytest.mark.parametrize("token", ["x", "A" * 43, "not a token at all", "ü" * 100])
async def test_unknown_tokens_answer_alike(mail_client: httpx.AsyncClient, token: str) -> None:
    body = assert_problem(await verify(mail_client, token), 400, "invalid_email_token")
    assert "errors" not in body


async def test_a_malformed_body_is_422(mail_client: httpx.AsyncClient) -> None:
    for payload in ({}, {"token": ""}, {"token": "x" * 513}, {"token": "t", "extra": 1}, {"token": None}):
        assert_problem(await mail_client.post(VERIFY, json=payload), 422, "validation_error")


# --- asking for a fresh link --------------------------------------------------------------------------------------


async def test_a_fresh_link_replaces_the_older_one(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    first = (await verification_link(mailbox, account.email)).token

    response = await mail_client.post(RESEND, headers=account.auth)

    assert response.status_code == 202
    assert response.json() == {"detail": "A new verification link has been sent to the account's address."}
    fresh = (await verification_link(mailbox, account.email)).token
    assert fresh != first
    assert_problem(await verify(mail_client, first), 400, "invalid_email_token")
    assert (await verify(mail_client, fresh)).status_code == 204
    assert_problem(await mail_client.post(RESEND, headers=account.auth), 409, "email_already_verified")
    await mailbox.assert_none(to=account.email, template="verify_email")


async def test_fresh_links_are_limited_per_user(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    for _ in range(5):
        assert (await mail_client.post(RESEND, headers=account.auth)).status_code == 202

    refused = await mail_client.post(RESEND, headers=account.auth)

    assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 0
    for _ in range(6):  # the registration's and five fresh ones; no seventh
        await verification_link(mailbox, account.email)
    await mailbox.assert_none(to=account.email, template="verify_email")


async def test_asking_needs_a_token(mail_client: httpx.AsyncClient) -> None:
    assert_problem(await mail_client.post(RESEND), 401, "invalid_token")


# --- USERMGMT_REQUIRE_VERIFIED_EMAIL ------------------------------------------------------------------------------


async def test_a_required_verification_holds_the_sign_in_back_until_the_link_is_followed(
    mail_settings: MailSettings, clean_database: AsyncEngine, mailbox: Mailbox
) -> None:
    container, clock = clocked(mail_settings, require_verified_email=True)
    credentials = {"login": "strict@example.com", "password": PASSWORD}
    async with running(container) as client:
        assert (
            await client.post(REGISTER, json={"email": "strict@example.com", "password": PASSWORD})
        ).status_code == 201
        first = (await verification_link(mailbox, "strict@example.com")).token

        refused = await client.post(LOGIN, json=credentials)

        body = assert_problem(refused, 403, "email_not_verified")
        assert "access_token" not in refused.text and "refresh_token" not in refused.text
        await mailbox.assert_none(to="strict@example.com", template="verify_email")  # one went out minutes ago
        wrong = await client.post(LOGIN, json={**credentials, "password": "not my password"})
        assert_problem(wrong, 401, "invalid_credentials")  # the password is checked first

        clock.advance(timedelta(minutes=15))
        assert_problem(await client.post(LOGIN, json=credentials), 403, "email_not_verified")
        fresh = (await verification_link(mailbox, "strict@example.com")).token
        assert_problem(await client.post(LOGIN, json=credentials), 403, "email_not_verified")
        await mailbox.assert_none(to="strict@example.com", template="verify_email")  # at most one per 15 minutes

        assert_problem(await verify(client, first), 400, "invalid_email_token")  # the fresh link replaced it
        assert (await verify(client, fresh)).status_code == 204
        signed_in = await client.post(LOGIN, json=credentials)
        assert signed_in.status_code == 200, signed_in.text
        assert body["detail"] == "The email address is not verified yet; a new verification email is on its way."


async def test_without_the_setting_an_unverified_account_signs_in(
    mail_client: httpx.AsyncClient, mail_signup: Signup
) -> None:
    account = await mail_signup()  # logs in, unverified
    assert account.tokens["access_token"]
