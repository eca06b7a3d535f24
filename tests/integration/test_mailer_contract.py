"""The Mailer contract: the SMTP mailer against a real SMTP server on loopback (aiosmtpd: no TLS, STARTTLS, implicit
TLS with a self-signed certificate, a login, a server that never answers, 4xx and 5xx replies), and, where the cases
apply, the file mailer and the in-memory fake held to the same cases."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import cast

import pytest

from tests.support.proxy import free_port
from tests.support.smtp import Mailbox, self_signed_tls
from usermgmt.adapters.mail import mime_message
from usermgmt.adapters.mail.files import FileMailer
from usermgmt.adapters.mail.memory import InMemoryMailer
from usermgmt.adapters.mail.smtp import SmtpMailer
from usermgmt.application.ports import DeliveryFailed, EmailMessage, Mailer
from usermgmt.config import SmtpSecurity

LINK = "http://localhost:3000/reset-password?token=ONE-TIME"


def message(**overrides: str) -> EmailMessage:
    fields = {
        "message_id": "<c0ffee@example.com>",
        "sender": "usermgmt <no-reply@example.com>",
        "to": "ada@example.com",
        "subject": "Reset your password — ünïcode",
        "text": f"Open {LINK}\n",
        "html": f'<p><a href="{LINK}">Reset</a></p>\n',
        "template": "reset_password",
        **overrides,
    }
    return EmailMessage(**fields)


@dataclass
class Delivery:
    """A mailer under test and how to read back what it delivered."""

    mailer: Mailer
    delivered: Callable[[], list[MimeMessage]]


def parse(raw: bytes) -> MimeMessage:
    return cast(MimeMessage, message_from_bytes(raw, policy=policy.default))


def read_files(folder: Path) -> list[MimeMessage]:
    return [parse(path.read_bytes()) for path in sorted(folder.glob("*.eml"))] if folder.exists() else []


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    async with Mailbox() as box:
        yield box


@pytest.fixture(params=["smtp", "file", "memory"])
def delivery(request: pytest.FixtureRequest, tmp_path: Path) -> Delivery:
    if request.param == "smtp":
        box: Mailbox = request.getfixturevalue("mailbox")
        mailer = SmtpMailer(host=box.host, port=box.port, security=SmtpSecurity.NONE, timeout=5)
        return Delivery(mailer, lambda: [received.message for received in box.messages])
    if request.param == "file":
        return Delivery(FileMailer(tmp_path / "mail"), lambda: read_files(tmp_path / "mail"))
    fake = InMemoryMailer()
    return Delivery(fake, lambda: [parse(mime_message(sent).as_bytes()) for sent in fake.sent])


async def test_a_message_arrives_whole(delivery: Delivery) -> None:
    where = await delivery.mailer.send(message())

    assert where
    [mime] = delivery.delivered()
    assert mime["Message-ID"] == "<c0ffee@example.com>"
    assert mime["From"] == "usermgmt <no-reply@example.com>"
    assert mime["To"] == "ada@example.com"
    assert mime["Subject"] == "Reset your password — ünïcode"
    assert mime["X-Usermgmt-Template"] == "reset_password"
    assert mime["Auto-Submitted"] == "auto-generated"
    assert mime["Date"] is not None
    assert mime.get_content_type() == "multipart/alternative"
    text, html = mime.get_body(("plain",)), mime.get_body(("html",))
    assert text is not None and cast(MimeMessage, text).get_content() == f"Open {LINK}\n"
    assert html is not None and cast(MimeMessage, html).get_content() == f'<p><a href="{LINK}">Reset</a></p>\n'


async def test_a_header_with_a_line_break_fails_for_good_and_sends_nothing(delivery: Delivery) -> None:
    with pytest.raises(DeliveryFailed) as failed:
        await delivery.mailer.send(message(subject="Hello\r\nBcc: everyone@example.com"))

    assert failed.value.permanent is True
    assert delivery.delivered() == []


# --- SMTP only ------------------------------------------------------------------------------------------------


def smtp(box: Mailbox, **options: object) -> SmtpMailer:
    defaults: dict[str, object] = {"host": box.host, "port": box.port, "security": SmtpSecurity.NONE, "timeout": 5}
    return SmtpMailer(**{**defaults, **options})  # type: ignore[arg-type]


async def test_smtp_says_where_it_sent(mailbox: Mailbox) -> None:
    assert await smtp(mailbox).send(message()) == f"127.0.0.1:{mailbox.port}"
    assert mailbox.messages[0].rcpt_tos == ("ada@example.com",)
    assert mailbox.messages[0].mail_from == "no-reply@example.com"


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return self_signed_tls(tmp_path)


async def test_starttls_upgrades_before_sending(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server, client = tls
    async with Mailbox(starttls=server) as box:  # refuses MAIL before STARTTLS
        await smtp(box, security=SmtpSecurity.STARTTLS, tls_context=client).send(message())

        assert [m.template for m in box.messages] == ["reset_password"]


async def test_starttls_is_required_not_opportunistic(mailbox: Mailbox) -> None:
    """A server that does not offer STARTTLS gets nothing in clear text."""
    with pytest.raises(DeliveryFailed) as failed:
        await smtp(mailbox, security=SmtpSecurity.STARTTLS).send(message())

    assert failed.value.permanent is False
    assert mailbox.messages == []


async def test_starttls_refuses_a_certificate_it_does_not_trust(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server, _ = tls
    async with Mailbox(starttls=server) as box:
        with pytest.raises(DeliveryFailed) as failed:
            await smtp(box, security=SmtpSecurity.STARTTLS).send(message())  # the system's trust store

        assert failed.value.permanent is False
        assert box.messages == []


async def test_implicit_tls_speaks_tls_from_the_first_byte(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server, client = tls
    async with Mailbox(implicit_tls=server) as box:
        await smtp(box, security=SmtpSecurity.TLS, tls_context=client).send(message())
        with pytest.raises(DeliveryFailed):  # the same server in clear text: no SMTP greeting comes
            await smtp(box, security=SmtpSecurity.NONE, timeout=0.5).send(message())

        assert len(box.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd's; fine on loopback
async def test_a_login_is_sent_when_configured() -> None:
    async with Mailbox(logins={"mailer": "s3cret"}) as box:
        await smtp(box, username="mailer", password="s3cret").send(message())
        with pytest.raises(DeliveryFailed) as wrong:
            await smtp(box, username="mailer", password="wrong").send(message())
        with pytest.raises(DeliveryFailed) as anonymous:
            await smtp(box).send(message())

        assert len(box.messages) == 1
    # Someone must fix the configuration; the message waits for them rather than being dropped.
    assert wrong.value.permanent is False and "535" in wrong.value.reason
    assert anonymous.value.permanent is False


async def test_a_server_that_never_answers_times_out_as_a_temporary_failure() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the connection, never greets
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(DeliveryFailed) as failed:
            await SmtpMailer(host="127.0.0.1", port=port, security=SmtpSecurity.NONE, timeout=0.2).send(message())
    finally:
        server.close()
        await server.wait_closed()

    assert failed.value.permanent is False and "timed out" in failed.value.reason


async def test_a_closed_port_is_a_temporary_failure() -> None:
    with pytest.raises(DeliveryFailed) as failed:
        await SmtpMailer(host="127.0.0.1", port=free_port(), security=SmtpSecurity.NONE, timeout=2).send(message())

    assert failed.value.permanent is False and failed.value.reason == "cannot connect to the SMTP server"


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("451 4.3.0 Try again later", False), ("452 4.2.2 Mailbox full", False), ("550 5.1.1 No such user", True)],
)
async def test_4xx_replies_are_temporary_and_5xx_permanent(mailbox: Mailbox, reply: str, permanent: bool) -> None:
    mailbox.refusal = reply

    with pytest.raises(DeliveryFailed) as failed:
        await smtp(mailbox).send(message())

    assert failed.value.permanent is permanent
    assert reply[:3] in failed.value.reason
    assert "ada@example.com" not in failed.value.reason  # the reason is logged; the detail is not
    assert reply[4:] in failed.value.detail


async def test_the_server_going_down_and_up_on_the_same_port(mailbox: Mailbox) -> None:
    mailer = smtp(mailbox, timeout=2)
    await mailbox.stop()
    with pytest.raises(DeliveryFailed) as failed:
        await mailer.send(message())
    await mailbox.start()
    await mailer.send(message())

    assert failed.value.permanent is False
    assert len(mailbox.messages) == 1


async def test_the_fake_fails_as_told() -> None:
    fake = InMemoryMailer()
    fake.fail_next(DeliveryFailed("SMTP reply 550", permanent=True))

    with pytest.raises(DeliveryFailed):
        await fake.send(message())
    fake.down = True
    with pytest.raises(DeliveryFailed) as down:
        await fake.send(message())
    fake.down = False
    await fake.send(message())

    assert down.value.permanent is False
    assert (fake.attempts, len(fake.sent)) == (3, 1)
