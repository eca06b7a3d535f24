"""TOTP through pyotp (RFC 6238: SHA-1, 6 digits, 30 s, what every authenticator app accepts) and QR codes as SVG
through segno. Chosen because both are small, maintained, pure Python and do exactly this."""

from __future__ import annotations

import hmac
import io
from datetime import datetime
from typing import Final

import pyotp
import segno

STEP_SECONDS: Final = 30
WINDOW: Final = 1  # steps accepted either side of now: clocks drift and people type slowly


class PyotpAuthenticator:
    """The ``TotpAuthenticator`` port."""

    def new_secret(self) -> str:
        return pyotp.random_base32(length=32)  # 160 bits, RFC 4226's recommendation

    def provisioning_uri(self, secret: str, *, account: str, issuer: str) -> str:
        return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=account, issuer_name=issuer)

    def matching_step(self, secret: str, code: str, now: datetime) -> int | None:
        totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
        current = totp.timecode(now)
        found = None
        for step in range(current - WINDOW, current + WINDOW + 1):  # every step compared: no early exit
            if hmac.compare_digest(totp.generate_otp(step), code):
                found = step
        return found


class SegnoQrCodes:
    """The ``QrCodeRenderer`` port: an SVG document with no external references."""

    def svg(self, data: str) -> str:
        out = io.BytesIO()
        segno.make(data, error="m").save(out, kind="svg", scale=4, border=2, xmldecl=False)
        return out.getvalue().decode()
