"""Email delivery end to end: a message queued in a committed unit of work reaches a real SMTP server (aiosmtpd on
loopback) through the app's own outbox worker, as a text and HTML message with its headers."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

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
    assert await outbox_rows(clean_database) == 0
