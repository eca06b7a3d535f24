"""Email delivery end to end: a message queued in a committed unit of work reaches a real SMTP server (aiosmtpd on
loopback) through the app's own outbox worker, as a text and HTML message with its headers; with the server down, a
request that queues an email (a forgotten password) still answers, and the email arrives once the server is back,
whether or not the service was restarted in between."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import MailClientFor, MailSettings, Signup, make_mail_container, running, signup_through
from tests.support.smtp import Mailbox
from usermgmt.adapters.sqlalchemy.tables import email_outbox
from usermgmt.application.email import Template
from usermgmt.container import Container
from usermgmt.domain.value_objects import Email


async def queue_test_email(container: Container, to: str) -> None:
    """What a use case does: queue a message in its unit of work, and commit."""
    now = datetime.now(UTC)
    async with container.uow() as uow:
        await container.postman().send(
            uow, to=Email(to), template=Template.TEST, now=now, user_id=None, at=now.isoformat(timespec="seconds")
        )
        await uow.commit()


async def outbox_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(email_outbox))).scalar_one())


async def until_outbox_empty(engine: AsyncEngine) -> None:
    """Wait until every message was recorded as sent (a message is received just before its row is deleted)."""
    for _ in range(500):
        if await outbox_rows(engine) == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{await outbox_rows(engine)} message(s) still in the outbox")


async def test_a_queued_message_arrives_through_smtp_and_leaves_the_outbox(
    mail_client: httpx.AsyncClient, mail_container: Container, mailbox: Mailbox, clean_database: AsyncEngine
) -> None:
    await queue_test_email(mail_container, "ada@example.com")

    message = await mailbox.wait_for(to="ada@example.com", template="test_email")

    assert message.subject == "usermgmt test message"
    assert message.to == "ada@example.com"
    assert message.headers["From"] == "usermgmt <no-reply@localhost>"
    assert message.message_id.startswith("<") and message.message_id.endswith("@localhost>")
    assert message.headers["Date"]
    assert "ada@example.com" in message.text
    assert "<strong>ada@example.com</strong>" in message.html
    assert message.link == "http://localhost:3000"  # the frontend it names; no token
    assert message.token is None
    await until_outbox_empty(clean_database)


# --- the SMTP server down, then up; and the service restarted in between ------------------------------------------

FORGOT = "/api/v1/auth/password/forgot"
RESET = "/api/v1/auth/password/reset"
LOGIN = "/api/v1/auth/login"
NEW_PASSWORD = "a brand new passphrase"


async def failed_attempts(engine: AsyncEngine) -> int:
    """The failed attempts of the one queued message (0 once it is gone)."""
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.coalesce(func.sum(email_outbox.c.attempts), 0)))).scalar_one())


async def until_attempted(engine: AsyncEngine) -> None:
    """Wait until the worker tried the message and failed at least once (bounded: a test that waits longer fails)."""
    for _ in range(500):
        if await failed_attempts(engine) >= 1:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the outbox worker never tried the message")


async def follow_reset_link(client: httpx.AsyncClient, mailbox: Mailbox, email: str) -> None:
    message = await mailbox.wait_for(to=email, template="reset_password", timeout=30)
    assert message.link is not None and message.link.startswith("http://localhost:3000/reset-password?token=")
    reset = await client.post(RESET, json={"token": message.token, "new_password": NEW_PASSWORD})
    assert reset.status_code == 204, reset.text
    login = await client.post(LOGIN, json={"login": email, "password": NEW_PASSWORD})
    assert login.status_code == 200, login.text
    await mailbox.wait_for(to=email, template="password_changed")  # the notice the reset queued


async def test_with_the_smtp_server_down_the_request_answers_and_the_email_arrives_once_it_is_back(
    mail_client: httpx.AsyncClient, mail_signup: Signup, mailbox: Mailbox, clean_database: AsyncEngine
) -> None:
    account = await mail_signup("down@example.com")
    await mailbox.wait_for(to=account.email, template="verify_email")  # registration's, before the outage
    await mailbox.stop()

    forgot = await mail_client.post(FORGOT, json={"email": account.email})

    assert forgot.status_code == 202  # answered with the server down: the request only queued the message
    await until_attempted(clean_database)  # the worker tried, failed, and will try again
    assert [m.template for m in mailbox.messages] == ["verify_email"]  # nothing since the server went down
    await mailbox.start()  # the same port
    await follow_reset_link(mail_client, mailbox, account.email)
    await until_outbox_empty(clean_database)
    assert [m.template for m in mailbox.messages] == ["verify_email", "reset_password", "password_changed"]


async def test_the_email_arrives_after_the_server_comes_back_even_with_the_service_restarted_in_between(
    mail_client_for: MailClientFor, mailbox: Mailbox, clean_database: AsyncEngine
) -> None:
    await mailbox.stop()
    async with mail_client_for() as before_restart:
        await signup_through(before_restart)("restart@example.com")
        forgot = await before_restart.post(FORGOT, json={"email": "restart@example.com"})
        assert forgot.status_code == 202
        await until_attempted(clean_database)
    # The service is stopped: the messages (registration's verification, the reset link) wait in the database.
    assert await outbox_rows(clean_database) == 2

    await mailbox.start()
    async with mail_client_for() as after_restart:
        await follow_reset_link(after_restart, mailbox, "restart@example.com")
        # The verification failed first and may have failed more than once before the stop: its next try can come
        # after the reset's (a slow machine's backoff), so it is awaited, not assumed.
        await mailbox.wait_for(to="restart@example.com", template="verify_email", timeout=30)
        await until_outbox_empty(clean_database)

    # Each sent once, by the restarted service; the notice of the reset after it.
    assert sorted(m.template or "" for m in mailbox.messages) == ["password_changed", "reset_password", "verify_email"]


async def test_an_override_template_that_does_not_render_stops_the_start(
    mail_settings: MailSettings, tmp_path: Path
) -> None:
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "verify_email.txt").write_text("Open {{ url }}")  # the context has `link`, not `url`
    container = make_mail_container(mail_settings(email_templates_dir=str(overrides)))

    with pytest.raises(ValueError, match="'verify_email' does not render: 'url' is undefined"):
        async with running(container):
            pass
