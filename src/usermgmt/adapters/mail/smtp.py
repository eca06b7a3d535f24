"""The SMTP mailer (aiosmtplib): one connection per message, with STARTTLS, implicit TLS or neither, and a login
when one is configured."""

from __future__ import annotations

import logging
import ssl

import aiosmtplib

from usermgmt.adapters.mail import mime_message
from usermgmt.adapters.tracing import span
from usermgmt.application.ports import DeliveryFailed, EmailMessage
from usermgmt.config import SmtpSecurity

logger = logging.getLogger(__name__)

# RFC 4954: authentication required (530), too weak (534), refused (535), or needing encryption (538). Whatever the
# command they answer, they are about our configuration, not about the message.
_NEEDS_LOGIN = frozenset({530, 534, 535, 538})


class SmtpMailer:
    """Sends through ``host:port``.

    - ``starttls``: a plain connection that must be upgraded with STARTTLS before anything else is said (a server
      that does not offer it is a failure, never a silent fallback to clear text); ``tls``: TLS from the first byte;
      ``none``: clear text (a relay on loopback or a private network only).
    - Certificates are verified against the system's trust store, or against ``tls_context``'s when given.
    - ``timeout`` bounds each exchange (connecting, each command and reply).

    Failures raise ``DeliveryFailed``. Permanent: a 5xx reply about this message (its sender, a recipient, its
    content). Temporary: the server unreachable or silent, a 4xx reply, and what only a change of configuration fixes
    (a missing or refused login, a TLS failure, no STARTTLS, a 5xx greeting or EHLO), so that messages wait (up to
    the outbox's give-up time) rather than being dropped while someone fixes it.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: SmtpSecurity = SmtpSecurity.STARTTLS,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.security, self.timeout = host, port, security, timeout
        self._username, self._password, self._tls_context = username, password, tls_context

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.security is SmtpSecurity.TLS,
            start_tls=self.security is SmtpSecurity.STARTTLS,  # True: required; False: never (never opportunistic)
            tls_context=self._tls_context,
            username=self._username,
            password=self._password if self._username is not None else None,
            timeout=self.timeout,
        )

    async def send(self, message: EmailMessage) -> str:
        mime = mime_message(message)
        try:
            with span("smtp.send", **{"email.template": message.template}):
                async with self._client() as client:
                    await client.send_message(mime)
        except Exception as error:
            raise _failure(error) from error
        logger.info("email %s (%s) sent via %s", message.message_id, message.template, self.address)
        return self.address


def _failure(error: Exception) -> DeliveryFailed:
    """What a failed exchange means for the message: permanent only for a 5xx reply about the message itself."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in error.recipients]
        return DeliveryFailed(
            f"SMTP recipient refused ({', '.join(map(str, codes))})",
            permanent=all(500 <= code < 600 for code in codes),
            detail="; ".join(f"{refused.code} {refused.message}" for refused in error.recipients),
        )
    if isinstance(error, aiosmtplib.SMTPTimeoutError):
        return DeliveryFailed("SMTP server timed out", permanent=False, detail=str(error))
    if isinstance(
        error, aiosmtplib.SMTPAuthenticationError | aiosmtplib.SMTPConnectResponseError | aiosmtplib.SMTPHeloError
    ):
        what = {
            aiosmtplib.SMTPAuthenticationError: "SMTP login refused",
            aiosmtplib.SMTPConnectResponseError: "SMTP greeting refused us",
            aiosmtplib.SMTPHeloError: "SMTP EHLO refused",
        }.get(type(error), "SMTP refused us")
        return DeliveryFailed(f"{what} ({error.code})", permanent=False, detail=f"{error.code} {error.message}")
    if isinstance(error, aiosmtplib.SMTPResponseException) and error.code in _NEEDS_LOGIN:
        return DeliveryFailed(f"SMTP needs a (valid) login ({error.code})", permanent=False, detail=error.message)
    if isinstance(error, aiosmtplib.SMTPResponseException):  # MAIL FROM, RCPT TO, DATA
        return DeliveryFailed(
            f"SMTP reply {error.code}", permanent=500 <= error.code < 600, detail=f"{error.code} {error.message}"
        )
    if isinstance(error, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | ConnectionError):
        return DeliveryFailed("cannot connect to the SMTP server", permanent=False, detail=str(error))
    if isinstance(error, ssl.SSLError):
        return DeliveryFailed("TLS with the SMTP server failed", permanent=False, detail=str(error))
    if isinstance(error, aiosmtplib.SMTPException):  # no STARTTLS offered, no AUTH, ...
        return DeliveryFailed(f"SMTP failed ({type(error).__name__})", permanent=False, detail=str(error))
    if isinstance(error, OSError | TimeoutError):
        return DeliveryFailed(f"SMTP failed ({type(error).__name__})", permanent=False, detail=str(error))
    return DeliveryFailed(f"SMTP failed ({type(error).__name__})", permanent=False, detail=str(error))
