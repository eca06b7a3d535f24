"""Email change over HTTP, read from the real messages (``mailbox``, an SMTP server on loopback): asked for with the
password, the notice to the old address, the link to the new one followed, and what may go wrong in between."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, Account, MailSettings, Signup, running
from tests.e2e.test_auth_flow import LOGIN, ME, REGISTER, assert_problem
from tests.e2e.test_email_verification import (
    CONFIRM,
    EVENTS,
    FORGOT,
    FRONTEND_URL,
    VERIFY,
    app_log,
    clocked,
    me,
    verification_link,
)
from tests.support.smtp import Mailbox, ReceivedEmail

CHANGE = "/api/v1/users/me/email"
RESET = "/api/v1/auth/password/reset"
NEW = "ada@new.example.com"


async def request_change(
    client: httpx.AsyncClient, account: Account, new_email: str = NEW, password: str = PASSWORD, **headers: str
) -> httpx.Response:
    return await client.post(
        CHANGE, headers={**account.auth, **headers}, json={"new_email": new_email, "password": password}
    )


async def change_link(mailbox: Mailbox, to: str = NEW) -> ReceivedEmail:
    """The next confirmation email to ``to``; its link points at the frontend and carries a token."""
    message = await mailbox.wait_for(to=to, template="confirm_email_change")
    assert message.link is not None and message.link.startswith(f"{FRONTEND_URL}/confirm-email?token=")
    assert message.token is not None
    return message


async def confirm(client: httpx.AsyncClient, token: str | None, **headers: str) -> httpx.Response:
    return await client.post(CONFIRM, json={"token": token}, headers=headers)


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(LOGIN, json={"login": email, "password": password})


async def test_the_address_changes_only_once_the_new_mailbox_follows_the_link(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account = await mail_signup("ada@example.com")

    response = await request_change(mail_client, account, "Ada@New.Example.com", **{"user-agent": "Firefox/130"})

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["email"], body["pending_email"], body["email_verified"]) == (
        "ada@example.com",
        "Ada@new.example.com",
        False,
    )
    assert await me(mail_client, account.auth) == body
    notice = await mailbox.wait_for(to="ada@example.com", template="email_change_requested")
    for told in ("Ada@new.example.com", "203.0.113.7", "Firefox/130"):
        assert told in notice.text
    assert notice.token is None  # the old mailbox gets no link
    link = await change_link(mailbox, "Ada@new.example.com")
    assert "Ada@new.example.com" in link.text
    assert_problem(await login(mail_client, NEW), 401, "invalid_credentials")  # not yet

    confirmed = await confirm(mail_client, link.token, **{"user-agent": "phone"})

    assert confirmed.status_code == 204
    assert confirmed.content == b""
    profile = await me(mail_client, account.auth)  # the session survives the change
    assert (profile["email"], profile["email_verified"], profile["pending_email"]) == (
        "Ada@new.example.com",
        True,
        None,
    )
    done = await mailbox.wait_for(to="ada@example.com", template="email_changed")
    assert "Ada@new.example.com" in done.text and "phone" in done.text
    assert (await login(mail_client, NEW)).status_code == 200
    assert_problem(await login(mail_client, "ada@example.com"), 401, "invalid_credentials")
    events = [e["type"] for e in (await mail_client.get(EVENTS, headers=account.auth)).json()["items"]]
    assert events[:3] == ["login_succeeded", "email_changed", "email_change_requested"]
    logged = app_log(caplog)
    assert '"event": "email_changed"' in logged
    assert link.token is not None and link.token not in logged
    assert PASSWORD not in logged


async def test_a_wrong_password_is_refused_as_a_password_change_refuses_it(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    password_change = await mail_client.post(
        f"{ME}/password", headers=account.auth, json={"current_password": "not my password", "new_password": "x" * 12}
    )

    refused = await request_change(mail_client, account, password="not my password")

    body = assert_problem(refused, 403, "invalid_password")
    assert body == password_change.json()
    assert (await me(mail_client, account.auth))["pending_email"] is None
    await mailbox.assert_none(to=NEW)
    await mailbox.assert_none(to=account.email, template="email_change_requested")
    events = (await mail_client.get(EVENTS, headers=account.auth)).json()["items"]
    assert (events[0]["type"], events[0]["details"]) == ("password_confirmation_failed", {"purpose": "email_change"})


async def test_an_address_of_another_account_is_409(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    await mail_signup("taken@example.com")
    account = await mail_signup()

    assert_problem(await request_change(mail_client, account, "TAKEN@example.com"), 409, "email_taken")
    assert (await me(mail_client, account.auth))["pending_email"] is None


@pytest.mark.parametrize(
    ("new_email", "detail"),
    [
        ("not an address", None),
        ("USER1@example.com", "The new email address is the account's current address."),
    ],
)
async def test_a_malformed_or_unchanged_address_is_a_field_error(
    mail_client: httpx.AsyncClient, mail_signup: Signup, new_email: str, detail: str | None
) -> None:
    account = await mail_signup("user1@example.com")

    body = assert_problem(await request_change(mail_client, account, new_email), 422, "invalid_email")

    assert body["errors"] == [{"loc": ["body", "new_email"], "msg": body["detail"]}]
    assert detail is None or body["detail"] == detail
    assert (await me(mail_client, account.auth))["pending_email"] is None


async def test_a_malformed_body_is_422(mail_client: httpx.AsyncClient, mail_signup: Signup) -> None:
    account = await mail_signup()
    for payload in ({"new_email": NEW}, {"password": PASSWORD}, {"new_email": NEW, "password": PASSWORD, "x": 1}):
        assert_problem(await mail_client.post(CHANGE, headers=account.auth, json=payload), 422, "validation_error")
    payload = {"new_email": NEW, "password": PASSWORD}
    assert_problem(await mail_client.post(CHANGE, json=payload), 401, "invalid_token")


async def test_requests_are_limited_per_user(mail_client: httpx.AsyncClient, mail_signup: Signup) -> None:
    account = await mail_signup()
    for n in range(5):
        assert (await request_change(mail_client, account, f"ada{n}@new.example.com")).status_code == 202

    refused = await request_change(mail_client, account, "ada9@new.example.com")

    assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 0
    assert (await me(mail_client, account.auth))["pending_email"] == "ada4@new.example.com"


async def test_a_newer_request_replaces_the_older_one(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    assert (await request_change(mail_client, account, "first@example.org")).status_code == 202
    older = (await change_link(mailbox, "first@example.org")).token
    assert (await request_change(mail_client, account, "second@example.org")).status_code == 202
    newer = (await change_link(mailbox, "second@example.org")).token

    assert_problem(await confirm(mail_client, older), 400, "invalid_email_token")
    assert (await confirm(mail_client, newer)).status_code == 204

    assert (await me(mail_client, account.auth))["email"] == "second@example.org"


async def test_a_change_link_works_once_and_no_other_link_confirms(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    verification = (await verification_link(mailbox, account.email)).token
    assert (await request_change(mail_client, account)).status_code == 202
    token = (await change_link(mailbox)).token

    assert_problem(await confirm(mail_client, verification), 400, "invalid_email_token")
    assert_problem(await mail_client.post(VERIFY, json={"token": token}), 400, "invalid_email_token")
    assert (await confirm(mail_client, token)).status_code == 204
    assert_problem(await confirm(mail_client, token), 400, "invalid_email_token")
    await mailbox.wait_for(to=account.email, template="email_changed")
    await mailbox.assert_none(to=account.email, template="email_changed")  # one notice only


async def test_an_expired_change_link_changes_nothing(
    mail_settings: MailSettings, clean_database: AsyncEngine, mailbox: Mailbox
) -> None:
    container, clock = clocked(mail_settings)
    async with running(container) as client:
        assert (
            await client.post(REGISTER, json={"email": "late@example.com", "password": PASSWORD})
        ).status_code == 201
        tokens = (await login(client, "late@example.com")).json()
        account = Account(email="late@example.com", password=PASSWORD, user={}, tokens=tokens)
        assert (await request_change(client, account)).status_code == 202
        token = (await change_link(mailbox)).token
        clock.advance(timedelta(hours=24))  # USERMGMT_EMAIL_TOKEN_TTL

        assert_problem(await confirm(client, token), 400, "invalid_email_token")

        fresh = (await login(client, "late@example.com")).json()  # the old access token has expired by now
        profile = await me(client, {"Authorization": f"Bearer {fresh['access_token']}"})
        assert (profile["email"], profile["pending_email"]) == ("late@example.com", NEW)


async def test_an_address_taken_meanwhile_is_409_and_changes_nothing(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    assert (await request_change(mail_client, account)).status_code == 202
    token = (await change_link(mailbox)).token
    rival = await mail_signup(NEW.upper())  # someone registers the address before the link is followed
    before = await me(mail_client, account.auth)

    assert_problem(await confirm(mail_client, token), 409, "email_taken")

    assert await me(mail_client, account.auth) == before  # still the old address, the new one still pending
    assert (await me(mail_client, rival.auth))["email"] == "ADA@new.example.com"
    await mailbox.assert_none(to=account.email, template="email_changed")


async def test_the_old_addresss_reset_link_dies_with_the_change(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox
) -> None:
    account = await mail_signup()
    assert (await mail_client.post(FORGOT, json={"email": account.email})).status_code == 202
    reset = (await mailbox.wait_for(to=account.email, template="reset_password")).token
    assert (await request_change(mail_client, account)).status_code == 202
    assert (await confirm(mail_client, (await change_link(mailbox)).token)).status_code == 204

    refused = await mail_client.post(RESET, json={"token": reset, "new_password": "the attacker's passphrase"})

    assert_problem(refused, 400, "invalid_email_token")
    assert (await login(mail_client, NEW)).status_code == 200
