"""Breached-password checks against the Have I Been Pwned range API, by k-anonymity and failing open.

Only the first 5 hex digits of the password's SHA-1 leave the process; the match against the returned suffixes
happens here. https://haveibeenpwned.com/API/v3#PwnedPasswords
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re

import httpx

from usermgmt.adapters.tracing import span
from usermgmt.domain.value_objects import PlainPassword

logger = logging.getLogger(__name__)

PREFIX_LENGTH = 5
_LINE = re.compile(r"([0-9A-Fa-f]{35}):([0-9]{1,15})")
_HEADERS = {"Add-Padding": "true", "User-Agent": "usermgmt"}


class PwnedPasswordsChecker:
    """The ``BreachedPasswordChecker`` port over ``GET {base_url}/range/{first 5 hex digits of SHA-1}``.

    Breached means the password's hash suffix is listed with a count of at least ``min_count`` (padding entries,
    count 0, never match). Asks for padding so the response size reveals nothing either. Never raises: a network
    error, a timeout (``timeout`` seconds for the whole request), a status other than 200 or a malformed body
    logs a WARNING naming the reason (never the password, its hash or the prefix) and counts as not breached.
    A ``client`` passed in is shared and left open by ``aclose()``; otherwise the checker owns its own. The
    public API's URL is the default of ``USERMGMT_PWNED_PASSWORDS_URL`` (``PasswordSettings.pwned_url``).
    """

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float = 1.5,
        min_count: int = 1,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("the breached-password check timeout must be positive")
        if min_count < 1:
            raise ValueError("min_count must be at least 1")
        self._range_url = base_url.rstrip("/") + "/range/"
        self._timeout = timeout
        self._min_count = min_count
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)

    async def is_breached(self, password: PlainPassword) -> bool:
        digest = hashlib.sha1(password.value.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
        prefix, suffix = digest[:PREFIX_LENGTH], digest[PREFIX_LENGTH:]
        try:
            async with asyncio.timeout(self._timeout):
                with span("pwned_passwords.range"):  # the prefix is not an attribute: it narrows down the password
                    response = await self._client.get(self._range_url + prefix, headers=_HEADERS, timeout=self._timeout)
        except Exception as exc:  # httpx, asyncio and OS errors alike mean "no answer": fail open
            # The exception's text may hold the URL, and so the prefix: only its type is logged.
            return _unavailable(type(exc).__name__)
        if response.status_code != httpx.codes.OK:
            return _unavailable(f"HTTP {response.status_code}")
        try:
            count = _count_for(suffix, response.text)
        except ValueError as exc:
            return _unavailable(str(exc))
        return count >= self._min_count

    async def aclose(self) -> None:
        """Close the HTTP client if this checker created it; a shared one is left to its owner."""
        if self._owns_client:
            await self._client.aclose()


def _count_for(suffix: str, body: str) -> int:
    """How often ``suffix`` is listed in a range response (0 if not). Raises ``ValueError`` on a malformed body."""
    count = 0
    entries = 0
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.fullmatch(line.strip())
        if match is None:
            raise ValueError(f"malformed response (line {number})")
        entries += 1
        if match[1].upper() == suffix:
            count = max(count, int(match[2]))
    if entries == 0:
        raise ValueError("empty response")
    return count


def _unavailable(reason: str) -> bool:
    logger.warning("breached-password check skipped, treating the password as not breached: %s", reason)
    return False
