"""Email delivery adapters: the MIME form every message takes, the SMTP and file mailers, the in-memory fake, and
the Jinja2 renderer of the built-in (and overridden) templates."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime

from usermgmt.application.ports import DeliveryFailed, EmailMessage

TEMPLATE_HEADER = "X-Usermgmt-Template"


def mime_message(message: EmailMessage, *, date: datetime | None = None) -> MimeMessage:
    """``message`` as a MIME message: a plain-text part and its HTML alternative, with ``From``, ``To``,
    ``Subject``, ``Date`` (``date``, or now), the stable ``Message-ID``, ``Auto-Submitted: auto-generated`` (RFC 3834:
    no auto-replies) and ``X-Usermgmt-Template`` naming the template.

    Raises ``DeliveryFailed`` (permanent) for a message that cannot be written (a line break in a header, say)."""
    try:
        return _mime(message, date)
    except (ValueError, TypeError) as error:
        raise DeliveryFailed(f"invalid message ({type(error).__name__})", permanent=True, detail=str(error)) from error


def _mime(message: EmailMessage, date: datetime | None) -> MimeMessage:
    mime = MimeMessage()
    mime["From"] = message.sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(date or datetime.now(UTC))
    mime["Message-ID"] = message.message_id
    mime["Auto-Submitted"] = "auto-generated"
    mime[TEMPLATE_HEADER] = message.template
    mime.set_content(message.text, cte=_transfer_encoding(message.text))
    mime.add_alternative(message.html, subtype="html", cte=_transfer_encoding(message.html))
    return mime


def _transfer_encoding(body: str) -> str | None:
    """7bit when RFC 5322 allows it (ASCII, lines of at most 998 characters), so that a link stays whole and
    readable in the raw message (a development ``.eml`` file); otherwise the email package's choice
    (quoted-printable or base64)."""
    if body.isascii() and all(len(line) <= 998 for line in body.splitlines()):
        return "7bit"
    return None
