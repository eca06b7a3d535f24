"""The development mailer: one private .eml file per message, named by time, template and Message-ID, and one log
line naming the file, never its link."""

from __future__ import annotations

import logging
import stat
from email import message_from_bytes, policy
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import cast

import pytest

from usermgmt.adapters.mail.files import FileMailer
from usermgmt.application.ports import DeliveryFailed, EmailMessage

LINK = "http://localhost:3000/verify-email?token=SECRET-TOKEN"


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def message(**overrides: str) -> EmailMessage:
    fields = {
        "message_id": "<0123abcd@example.com>",
        "sender": "usermgmt <no-reply@example.com>",
        "to": "ada@example.com",
        "subject": "Confirm your email address",
        "text": f"Open {LINK}\n",
        "html": f'<a href="{LINK}">confirm</a>\n',
        "template": "verify_email",
        **overrides,
    }
    return EmailMessage(**fields)


async def test_each_message_is_a_private_eml_file_named_by_time_template_and_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mailer = FileMailer(tmp_path / "mail")

    with caplog.at_level(logging.INFO):
        where = await mailer.send(message())

    [path] = (tmp_path / "mail").iterdir()
    assert where == str(path)
    assert path.name.endswith("-verify_email-0123abcd.eml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "mail").stat().st_mode) == 0o700
    parsed = cast(MimeMessage, message_from_bytes(path.read_bytes(), policy=policy.default))
    assert parsed["Message-ID"] == "<0123abcd@example.com>"
    assert parsed["X-Usermgmt-Template"] == "verify_email"
    assert parsed["To"] == "ada@example.com" and parsed["From"] == "usermgmt <no-reply@example.com>"
    assert parsed["Date"] is not None
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and LINK in cast(MimeMessage, text).get_content()
    assert html is not None and LINK in cast(MimeMessage, html).get_content()
    assert f"Open {LINK}".encode() in path.read_bytes()  # whole in the raw file too (7bit, not quoted-printable)
    [line] = [r for r in caplog.records if r.name == "usermgmt.adapters.mail.files"]
    assert line.levelno == logging.INFO and str(path) in line.getMessage()
    assert "SECRET-TOKEN" not in caplog.text and "ada@example.com" not in caplog.text


async def test_two_messages_are_two_files(tmp_path: Path) -> None:
    mailer = FileMailer(tmp_path)

    await mailer.send(message())
    await mailer.send(message(message_id="<4567@example.com>", template="new_device"))

    assert [name.split("-", 1)[1] for name in names(tmp_path)] == [  # in the order they were sent
        "verify_email-0123abcd.eml",
        "new_device-4567.eml",
    ]


async def test_a_folder_that_cannot_be_written_is_a_temporary_failure(tmp_path: Path) -> None:
    (tmp_path / "mail").write_text("a file where the folder should be")

    with pytest.raises(DeliveryFailed) as failed:
        await FileMailer(tmp_path / "mail").send(message())

    assert failed.value.permanent is False


async def test_a_header_with_a_line_break_is_a_permanent_failure(tmp_path: Path) -> None:
    with pytest.raises(DeliveryFailed) as failed:
        await FileMailer(tmp_path).send(message(subject="Hi\nBcc: someone@example.com"))

    assert failed.value.permanent is True
    assert names(tmp_path) == []
