"""A real SMTP server on loopback (aiosmtpd) that records what it receives: the test suite's mailbox.

``Mailbox`` listens on 127.0.0.1 (a free port, or the one given), runs in a thread of its own (aiosmtpd's
``Controller``), and can be stopped and started again on the same port, as a mail server that goes down and comes
back. It can offer STARTTLS or speak implicit TLS, require a login, and refuse recipients with a chosen reply.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.proxy import free_port

TEMPLATE_HEADER = "X-Usermgmt-Template"
_URL = re.compile(r"https?://[^\s<>\"')]+")


@dataclass(frozen=True)
class ReceivedEmail:
    """One message as the server received it, parsed with ``policy.default``."""

    mail_from: str  # the envelope's sender
    rcpt_tos: tuple[str, ...]  # the envelope's recipients
    message: EmailMessage = field(repr=False)

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def headers(self) -> Mapping[str, str]:
        return {name: str(value) for name, value in self.message.items()}

    @property
    def template(self) -> str | None:
        value = self.message[TEMPLATE_HEADER]
        return None if value is None else str(value)

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        return "" if part is None else str(cast(EmailMessage, part).get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        return "" if part is None else str(cast(EmailMessage, part).get_content())

    @property
    def links(self) -> list[str]:
        """Every http(s) URL in the text part, in order (without a sentence's final punctuation)."""
        return [url.rstrip(".,;:!?") for url in _URL.findall(self.text)]

    @property
    def link(self) -> str | None:
        """The first link of the text part (the one a message is about comes first)."""
        return next(iter(self.links), None)

    @property
    def token(self) -> str | None:
        """The ``token`` query value of ``link``, if any."""
        if self.link is None:
            return None
        values = parse_qs(urlsplit(self.link).query).get("token")
        return values[0] if values else None

    def matches(self, to: str | None, template: str | None) -> bool:
        recipients = {address.lower() for address in self.rcpt_tos}
        return (to is None or to.lower() in recipients) and (template is None or self.template == template)


class _Recorder:
    """aiosmtpd's handler: refuses recipients while ``refusal`` is set, records every message it accepts."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    async def handle_RCPT(  # aiosmtpd's hook names
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self._mailbox.refusal
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        # SMTP carries CRLF line ends; read them as a file would be (LF), so texts compare as written.
        parsed = cast(EmailMessage, message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=policy.default))
        self._mailbox.record(
            ReceivedEmail(mail_from=str(envelope.mail_from), rcpt_tos=tuple(envelope.rcpt_tos), message=parsed)
        )
        return "250 Message accepted for delivery"


class Mailbox:
    """An SMTP server on 127.0.0.1:``port`` recording what it accepts, in ``messages`` (in arrival order).

    - ``starttls``: offer STARTTLS with this (server) context, and require it before MAIL; ``implicit_tls``: speak
      TLS from the first byte. ``logins``: username -> password, then AUTH is required (on a plain connection too).
    - ``refusal``: while set (e.g. ``"550 5.1.1 No such user"``), every recipient is refused with that reply.
    - ``stop()``/``start()``: the port closes (connections are refused) and opens again, the same port.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        logins: Mapping[str, str] | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.messages: list[ReceivedEmail] = []
        self.refusal: str | None = None
        self._starttls, self._implicit_tls, self._logins = starttls, implicit_tls, dict(logins or {})
        self._lock = threading.Lock()
        self._returned: set[int] = set()  # ids of the messages wait_for returned
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def record(self, message: ReceivedEmail) -> None:
        with self._lock:
            self.messages.append(message)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if self._logins.get(user) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def _new_controller(self) -> Controller:
        options: dict[str, Any] = {}
        if self._starttls is not None:
            options.update(tls_context=self._starttls, require_starttls=True)
        if self._logins:
            options.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=False)
        return Controller(
            _Recorder(self),
            hostname=self.host,
            port=self.port,
            ssl_context=self._implicit_tls,
            ready_timeout=10,
            **options,
        )

    def start_sync(self) -> None:
        if self._controller is None:
            controller = self._new_controller()
            controller.start()
            self._controller = controller

    def stop_sync(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def _unreturned(self, to: str | None, template: str | None) -> list[ReceivedEmail]:
        with self._lock:
            messages = list(self.messages)
        return [m for m in messages if id(m) not in self._returned and m.matches(to, template)]

    async def wait_for(
        self,
        *,
        to: str | None = None,
        template: str | None = None,
        timeout: float = 10,  # noqa: ASYNC109 - a bound on the wait, named as the tests read it
    ) -> ReceivedEmail:
        """The first message to ``to`` (an envelope recipient, case-insensitive) of ``template`` that no earlier
        ``wait_for`` returned, waiting up to ``timeout`` seconds for it to arrive; fails the test otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._unreturned(to, template)
            if found:
                self._returned.add(id(found[0]))
                return found[0]
            if time.monotonic() >= deadline:
                seen = [(m.rcpt_tos, m.template) for m in self.messages]
                raise AssertionError(f"no message to {to!r} of template {template!r} within {timeout} s; got {seen}")
            await asyncio.sleep(0.02)

    async def assert_none(self, *, to: str | None = None, template: str | None = None, within: float = 1.0) -> None:
        """Fails if a message to ``to`` of ``template`` that ``wait_for`` has not returned arrives (or is there)
        within ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            found = self._unreturned(to, template)
            assert not found, f"unexpected message(s): {[(m.rcpt_tos, m.template, m.subject) for m in found]}"
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.02)


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A fresh self-signed certificate for 127.0.0.1 and localhost (written to ``directory``): the server's TLS
    context, and a client context that trusts that certificate only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    (directory / "smtp-cert.pem").write_bytes(certificate_pem)
    (directory / "smtp-key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "smtp-cert.pem", directory / "smtp-key.pem")
    client = ssl.create_default_context(cadata=certificate_pem.decode())
    return server, client
