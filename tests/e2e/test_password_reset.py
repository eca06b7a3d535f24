"""Forgot password, reset, and the security notices, over HTTP: each flow read from the real messages (an aiosmtpd
server on loopback, fed by the app's own outbox worker) and finished by following their links."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import (
    PASSWORD,
    MailClientFor,
    MailSettings,
    Signup,
    make_mail_container,
    running,
)
from tests.e2e.test_auth_flow import LOGIN, ME, REFRESH, REGISTER, assert_problem
from tests.support.smtp import Mailbox, ReceivedEmail
from usermgmt.adapters.sqlalchemy.tables import users
from usermgmt.application.email import Template
from usermgmt.container import Container
from usermgmt.domain.value_objects import Email, EmailTokenPurpose, UserId

FORGOT = "/api/v1/auth/password/forgot"
RESET = "/api/v1/auth/password/reset"
PASSWORD_URL = "/api/v1/users/me/password"
EVENTS = "/api/v1/users/me/events"
FRONTEND_URL = "https://app.example.com"
NEW_PASSWORD = "a brand new passphrase"
CLIENT_IP = "203.0.113.7"  # client_for's peer address


@pytest.fixture
def mail_container(mail_settings: MailSettings) -> Container:
    """The mail fixtures' container, with links to ``FRONTEND_URL``."""
    return make_mail_container(mail_settings(frontend_url=FRONTEND_URL))


# --- helpers --------------------------------------------------------------------------------------------------------


async def forgot(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post(FORGOT, json={"email": email})


async def reset_link(client: httpx.AsyncClient, mailbox: Mailbox, email: str) -> str:
    """Ask for a reset and open the email: the token of its link, which points at the frontend."""
    response = await forgot(client, email)
    assert response.status_code == 202, response.text
    message = await mailbox.wait_for(to=email, template="reset_password")
    assert message.link is not None and message.link.startswith(f"{FRONTEND_URL}/reset-password?token=")
    assert message.token is not None
    assert message.link in message.html
    return message.token


async def reset(client: httpx.AsyncClient, token: str, new_password: str = NEW_PASSWORD) -> httpx.Response:
    return await client.post(RESET, json={"token": token, "new_password": new_password})


async def login(client: httpx.AsyncClient, email: str, password: str, **headers: str) -> httpx.Response:
    return await client.post(LOGIN, json={"login": email, "password": password}, headers=headers)


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """A response as a client can tell responses apart: status, headers but the request id and date, body."""
    headers = {k: v for k, v in response.headers.items() if k not in {"x-request-id", "date"}}
    return response.status_code, headers, response.content


def device_lines(message: ReceivedEmail, *, ip: str, user_agent: str) -> None:
    """The notice says from where and from what, and what to do if it was not the owner."""
    assert f"IP address: {ip}" in message.text
    assert f"Device:     {user_agent}" in message.text
    assert "If this was not you" in message.text


# --- forgot and reset -----------------------------------------------------------------------------------------------


async def test_forgot_then_reset_sets_the_password_ends_every_session_and_signs_nobody_in(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = mail_client
    account = await mail_signup()
    other_device = (await login(client, account.email, PASSWORD, **{"user-agent": "phone"})).json()

    token = await reset_link(client, mailbox, account.email)
    response = await reset(client, token)

    assert response.status_code == 204
    assert response.content == b""
    assert "set-cookie" not in response.headers
    for pair in (account.tokens, other_device):
        assert_problem(
            await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}), 401, "invalid_refresh_token"
        )
        assert_problem(
            await client.get(ME, headers={"Authorization": f"Bearer {pair['access_token']}"}), 401, "invalid_token"
        )
    assert_problem(await login(client, account.email, PASSWORD), 401, "invalid_credentials")
    signed_in = await login(client, account.email, NEW_PASSWORD)
    assert signed_in.status_code == 200
    auth = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    assert (await client.get(ME, headers=auth)).json()["email_verified"] is True
    notice = await mailbox.wait_for(to=account.email, template="password_changed")
    assert "reset with a link sent to this address" in notice.text
    device_lines(notice, ip=CLIENT_IP, user_agent=client.headers["user-agent"])
    events = [e["type"] for e in (await client.get(EVENTS, headers=auth)).json()["items"]]
    assert events[:4] == ["login_succeeded", "login_failed", "password_reset", "password_reset_requested"]
    # Everything the service logged, delivery included; not the test's own SMTP server (aiosmtpd's "mail.log"),
    # which logs what it receives.
    logged = "\n".join(record.getMessage() for record in caplog.records if not record.name.startswith("mail."))
    assert "reset_password" in logged  # the delivery of the link was logged (by its Message-ID and template)
    for secret in (token, NEW_PASSWORD, PASSWORD):
        assert secret not in logged


async def test_a_reset_link_works_once(mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox) -> None:
    account = await mail_signup()
    token = await reset_link(mail_client, mailbox, account.email)
    assert (await reset(mail_client, token)).status_code == 204

    assert_problem(await reset(mail_client, token, "the second passphrase"), 400, "invalid_email_token")
    assert (await login(mail_client, account.email, NEW_PASSWORD)).status_code == 200


async def test_a_reset_kills_every_other_reset_link(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    first = await reset_link(mail_client, mailbox, account.email)
    second = await reset_link(mail_client, mailbox, account.email)

    assert (await reset(mail_client, second)).status_code == 204

    assert_problem(await reset(mail_client, first, "the attacker's passphrase"), 400, "invalid_email_token")


class ShiftedClock:
    """The real time, plus ``shift``: for a reset that comes later than it does."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


async def test_an_expired_link_is_refused(
    mail_settings: MailSettings, clean_database: AsyncEngine, mailbox: Mailbox
) -> None:
    container = make_mail_container(mail_settings(frontend_url=FRONTEND_URL, password_reset_ttl="PT5M"))
    later = ShiftedClock()
    container.reset_password.add_kwargs(clock=later)  # only the reset is late; the link was issued on time
    async with running(container) as client:
        assert (
            await client.post(REGISTER, json={"email": "late@example.com", "password": PASSWORD})
        ).status_code == 201
        token = await reset_link(client, mailbox, "late@example.com")
        later.shift = timedelta(minutes=5)  # USERMGMT_PASSWORD_RESET_TTL

        assert_problem(await reset(client, token), 400, "invalid_email_token")

        assert (await login(client, "late@example.com", PASSWORD)).status_code == 200
        later.shift = timedelta(minutes=4)
        assert (await reset(client, token)).status_code == 204  # the expired answer did not use the link up


async def test_a_token_of_another_purpose_is_refused(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mail_container: Container, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    postman, uow = mail_container.postman(), mail_container.uow()
    async with uow:  # a verification link, as the verification flow sends it
        await postman.send_link(
            uow,
            user_id=UserId(account.user["id"]),
            to=Email(account.email),
            purpose=EmailTokenPurpose.VERIFY,
            template=Template.VERIFY_EMAIL,
            now=datetime.now(UTC),
        )
        await uow.commit()
    verification = await mailbox.wait_for(to=account.email, template="verify_email")
    assert verification.token is not None

    assert_problem(await reset(mail_client, verification.token), 400, "invalid_email_token")
    assert (await login(mail_client, account.email, PASSWORD)).status_code == 200


@pytest.mark.parametrize("token", ["x", "A" * 43, "not a token at all"])
async def test_unknown_tokens_answer_alike(client: httpx.AsyncClient, token: str) -> None:
    body = assert_problem(await reset(client, token), 400, "invalid_email_token")
    assert "errors" not in body


async def test_a_password_change_kills_the_reset_link(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    token = await reset_link(mail_client, mailbox, account.email)
    changed = await mail_client.post(
        PASSWORD_URL, headers=account.auth, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert changed.status_code == 204, changed.text

    assert_problem(await reset(mail_client, token, "the attacker's passphrase"), 400, "invalid_email_token")
    assert (await login(mail_client, account.email, NEW_PASSWORD)).status_code == 200


@pytest.mark.parametrize("new_password", ["short", "x" * 129, "user1@example.com"])
async def test_the_password_policy_applies_with_field_errors_and_the_link_survives(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox, new_password: str
) -> None:
    account = await mail_signup()
    token = await reset_link(mail_client, mailbox, account.email)

    body = assert_problem(await reset(mail_client, token, new_password), 422, "weak_password")

    assert body["errors"] == [{"loc": ["body", "new_password"], "msg": body["detail"]}]
    assert (await reset(mail_client, token)).status_code == 204


async def test_a_malformed_body_is_422(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(RESET, json={"token": "t"}), 422, "validation_error")
    assert_problem(await client.post(RESET, json={"token": "", "new_password": NEW_PASSWORD}), 422, "validation_error")
    assert_problem(await client.post(FORGOT, json={}), 422, "validation_error")
    assert_problem(await client.post(FORGOT, json={"email": "a@example.com", "x": 1}), 422, "validation_error")


# --- no enumeration and throttling -------------------------------------------------------------------------------


async def test_an_unknown_address_answers_like_a_known_one_and_sends_nothing(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()

    known = await forgot(mail_client, account.email)
    unknown = await forgot(mail_client, "nobody@example.com")

    assert known.status_code == 202
    assert comparable(known) == comparable(unknown)
    assert known.json() == {
        "detail": "If an account uses this address, a link to reset its password has been sent to it."
    }
    await mailbox.wait_for(to=account.email, template="reset_password")
    await mailbox.assert_none(to="nobody@example.com")


async def test_only_a_malformed_address_is_refused(client: httpx.AsyncClient) -> None:
    body = assert_problem(await forgot(client, "not an address"), 422, "invalid_email")
    assert body["errors"][0]["loc"] == ["body", "email"]


async def test_a_disabled_account_gets_nothing(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox, clean_database: AsyncEngine
) -> None:
    account = await mail_signup()
    async with clean_database.begin() as connection:
        await connection.execute(update(users).where(users.c.email == account.email).values(is_active=False))

    disabled = await forgot(mail_client, account.email)
    unknown = await forgot(mail_client, "nobody@example.com")

    assert comparable(disabled) == comparable(unknown)
    await mailbox.assert_none(to=account.email, template="reset_password")


async def test_the_fourth_email_in_an_hour_is_silently_not_sent(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    spellings = (account.email, account.email.upper(), account.email)
    answers = [await forgot(mail_client, spelling) for spelling in spellings]
    for _ in spellings:
        await mailbox.wait_for(to=account.email, template="reset_password")

    fourth = await forgot(mail_client, account.email)

    assert comparable(fourth) == comparable(answers[0])
    await mailbox.assert_none(to=account.email, template="reset_password")


async def test_requests_per_client_ip_are_limited(client: httpx.AsyncClient, app: FastAPI) -> None:
    for n in range(10):
        assert (await forgot(client, f"someone{n}@example.com")).status_code == 202

    refused = await forgot(client, "someone@example.com")

    assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 0
    transport = httpx.ASGITransport(app=app, client=("198.51.100.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as elsewhere:
        assert (await forgot(elsewhere, "someone@example.com")).status_code == 202


async def test_no_limit_applies_when_rate_limits_are_off(mail_client_for: MailClientFor, mailbox: Mailbox) -> None:
    async with mail_client_for(rate_limits_enabled=False) as client:
        assert (
            await client.post(REGISTER, json={"email": "many@example.com", "password": PASSWORD})
        ).status_code == 201
        for _ in range(12):
            assert (await forgot(client, "many@example.com")).status_code == 202
        for _ in range(12):
            await mailbox.wait_for(to="many@example.com", template="reset_password")


# --- notices --------------------------------------------------------------------------------------------------------


async def test_a_password_change_sends_its_notice(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()

    changed = await mail_client.post(
        PASSWORD_URL,
        headers={**account.auth, "user-agent": "laptop"},
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert changed.status_code == 204
    notice = await mailbox.wait_for(to=account.email, template="password_changed")
    assert notice.subject == "Your password was changed"
    assert "changed by someone signed in to it" in notice.text
    device_lines(notice, ip=CLIENT_IP, user_agent="laptop")
    assert f"{FRONTEND_URL}/reset-password" in notice.text


def as_people_read(moment: str) -> str:
    at = datetime.fromisoformat(moment).astimezone(UTC)
    return f"{at.day} {at:%B %Y, %H:%M} UTC"


async def test_a_deletion_sends_its_notice_and_the_accounts_queued_mail_goes_with_it(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    await mailbox.wait_for(to=account.email, template="verify_email")  # registration's, delivered
    await mailbox.stop()  # the mail server is down: what the account queues from now on stays queued
    await login(mail_client, account.email, PASSWORD, **{"user-agent": "phone"})  # new_device
    await forgot(mail_client, account.email)  # reset_password

    deleted = await mail_client.request(
        "DELETE", ME, headers={**account.auth, "user-agent": "tablet"}, json={"password": PASSWORD}
    )
    await mailbox.start()

    assert deleted.status_code == 200
    receipt = deleted.json()
    assert {e["what"]: e["count"] for e in receipt["erased"]}["email_outbox"] == 2
    notice = await mailbox.wait_for(to=account.email, template="account_deleted")
    assert as_people_read(receipt["deleted_at"]) in notice.text
    device_lines(notice, ip=CLIENT_IP, user_agent="tablet")
    await mailbox.assert_none(to=account.email)  # neither the new_device notice nor the reset link


async def test_a_sign_in_from_a_new_device_sends_a_notice_and_a_known_one_none(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()  # registered and signed in from one browser
    assert (await login(mail_client, account.email, PASSWORD)).status_code == 200
    await mailbox.assert_none(to=account.email, template="new_device")

    phone = "Mozilla/5.0 (new phone)"
    assert (await login(mail_client, account.email, PASSWORD, **{"user-agent": phone})).status_code == 200
    notice = await mailbox.wait_for(to=account.email, template="new_device")
    assert notice.subject == "New sign-in to your account"
    device_lines(notice, ip=CLIENT_IP, user_agent=phone)
    assert (await login(mail_client, account.email, PASSWORD, **{"user-agent": phone})).status_code == 200
    await mailbox.assert_none(to=account.email, template="new_device")


async def test_no_new_device_notice_when_switched_off(mail_client_for: MailClientFor, mailbox: Mailbox) -> None:
    async with mail_client_for(notify_new_device=False) as client:
        assert (
            await client.post(REGISTER, json={"email": "quiet@example.com", "password": PASSWORD})
        ).status_code == 201
        assert (await login(client, "quiet@example.com", PASSWORD, **{"user-agent": "elsewhere"})).status_code == 200
        await mailbox.assert_none(to="quiet@example.com", template="new_device")


async def test_the_known_devices_table_holds_no_address_or_agent(
    client: httpx.AsyncClient, signup: Signup, clean_database: AsyncEngine
) -> None:
    await signup()
    async with clean_database.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM known_devices"))).all()
    assert len(rows) == 1
    dump = str(rows)
    assert "203.0.113" not in dump
    assert "python-httpx" not in dump
