"""In-memory stand-ins of the mailer and the renderer, for tests of the delivery worker and of the flows."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from usermgmt.adapters.mail import mime_message
from usermgmt.application.ports import DeliveryFailed, EmailMessage, RenderedEmail


class InMemoryMailer:
    """Keeps every message it accepts, in order, in ``sent``. It fails on demand: ``fail_next(...)`` raises the
    given failures on the next sends, one each; while ``down`` is set, every send fails as an unreachable server
    would (temporarily). A message the real mailers could not write fails here too, permanently."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.attempts = 0
        self.down = False
        self._failures: list[DeliveryFailed] = []

    def fail_next(self, *failures: DeliveryFailed) -> None:
        self._failures.extend(failures)

    async def send(self, message: EmailMessage) -> str:
        self.attempts += 1
        mime_message(message)
        if self._failures:
            raise self._failures.pop(0)
        if self.down:
            raise DeliveryFailed("cannot connect to the SMTP server", permanent=False)
        self.sent.append(message)
        return "memory"


class EchoRenderer:
    """Renders any template name: the subject is the name, the text lists the context (``key: value`` lines, in
    order), the HTML the same, escaped. Names in ``broken`` fail as a template that does not render."""

    def __init__(self, broken: frozenset[str] = frozenset()) -> None:
        self.broken = broken

    def render(self, template: str, context: Mapping[str, Any]) -> RenderedEmail:
        if template in self.broken:
            raise ValueError(f"the email template {template!r} does not render")
        text = "".join(f"{key}: {value}\n" for key, value in context.items())
        return RenderedEmail(subject=template, text=text, html=f"<pre>{html.escape(text)}</pre>")
