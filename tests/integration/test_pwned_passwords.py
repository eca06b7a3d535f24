"""PwnedPasswordsChecker against a real HTTP server on 127.0.0.1 that speaks the HIBP range protocol."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.proxy import free_port
from usermgmt.adapters.pwned_passwords import PwnedPasswordsChecker
from usermgmt.domain.value_objects import PlainPassword

LOGGER = "usermgmt.adapters.pwned_passwords"
BREACHED = {"password": 9_659_365, "correct horse battery staple": 400, "pässwörd-ünïcode": 7}
PADDED_ONLY = "listed only as padding"  # its suffix is in the response, with count 0
UNKNOWN = "a password no breach has seen 7f3c"
PADDING_LINES = 40
SECRET = "correct horse battery staple"  # breached, so a silent "no" would be a real miss


def sha1(password: str) -> str:
    return hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


def build_ranges() -> dict[str, list[str]]:
    """prefix -> response lines: real entries for BREACHED, count-0 padding everywhere, PADDED_ONLY as padding."""
    ranges: dict[str, list[str]] = {}
    for password, count in BREACHED.items():
        digest = sha1(password)
        ranges.setdefault(digest[:5], []).append(f"{digest[5:]}:{count}")
    padded = sha1(PADDED_ONLY)
    ranges.setdefault(padded[:5], []).append(f"{padded[5:]}:0")
    for lines in ranges.values():
        lines.extend(f"{secrets.token_hex(18)[:35].upper()}:0" for _ in range(PADDING_LINES))
    return ranges


def padding_only() -> list[str]:
    return [f"{secrets.token_hex(18)[:35].upper()}:0" for _ in range(PADDING_LINES)]


@dataclass
class RangeServer:
    """A minimal HTTP/1.1 server: one request per connection, the answer chosen by ``mode``; records every request."""

    mode: str = "ok"  # ok | lf | slow | error | garbage | empty
    ranges: dict[str, list[str]] = field(default_factory=build_ranges)
    raw_requests: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.raw_requests.append(head)
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ")
            self.paths.append(path)
            self.headers.append(
                {
                    name.strip().lower(): value.strip()
                    for name, _, value in (h.partition(":") for h in header_lines if h)
                }
            )
            status, body = await self._answer(method, path)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, method: str, path: str) -> tuple[str, bytes]:
        match = re.fullmatch(r"/range/([0-9A-F]{5})", path)
        if method != "GET" or match is None:
            return "404 Not Found", b""
        if self.mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), timeout=10)
        if self.mode == "error":
            return "500 Internal Server Error", b"oops"
        if self.mode == "garbage":
            return "200 OK", b"<html><body>Service Unavailable</body></html>\r\n"
        if self.mode == "empty":
            return "200 OK", b""
        lines = self.ranges.get(match[1]) or padding_only()
        newline = "\n" if self.mode == "lf" else "\r\n"
        return "200 OK", newline.join(lines).encode()


@pytest.fixture
async def server() -> AsyncIterator[RangeServer]:
    server = RangeServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def checker(server: RangeServer) -> AsyncIterator[PwnedPasswordsChecker]:
    checker = PwnedPasswordsChecker(base_url=server.base_url, timeout=1.0)
    yield checker
    await checker.aclose()


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    return caplog


def assert_nothing_secret_logged(caplog: pytest.LogCaptureFixture, password: str) -> None:
    text = "\n".join(record.getMessage() for record in caplog.records)
    digest = sha1(password)
    for secret in (password, digest, digest.lower(), digest[:5]):
        assert secret not in text


@pytest.mark.parametrize("password", list(BREACHED))
async def test_a_known_password_is_breached(checker: PwnedPasswordsChecker, password: str) -> None:
    assert await checker.is_breached(PlainPassword(password)) is True


async def test_the_hash_is_of_the_nfkc_normalised_utf8_password(checker: PwnedPasswordsChecker) -> None:
    decomposed = unicodedata.normalize("NFD", "pässwörd-ünïcode")
    assert decomposed != "pässwörd-ünïcode"
    assert await checker.is_breached(PlainPassword(decomposed)) is True


async def test_an_unknown_password_is_not_breached(
    checker: PwnedPasswordsChecker, warnings: pytest.LogCaptureFixture
) -> None:
    assert await checker.is_breached(PlainPassword(UNKNOWN)) is False
    assert not warnings.records  # a clean "no" is not a failure


async def test_a_suffix_listed_only_as_padding_is_not_breached(
    checker: PwnedPasswordsChecker, server: RangeServer
) -> None:
    assert f"{sha1(PADDED_ONLY)[5:]}:0" in server.ranges[sha1(PADDED_ONLY)[:5]]
    assert await checker.is_breached(PlainPassword(PADDED_ONLY)) is False


async def test_lf_line_endings_are_understood(checker: PwnedPasswordsChecker, server: RangeServer) -> None:
    server.mode = "lf"
    assert await checker.is_breached(PlainPassword("password")) is True
    assert await checker.is_breached(PlainPassword(UNKNOWN)) is False


async def test_min_count_sets_the_threshold(server: RangeServer) -> None:
    strict = PwnedPasswordsChecker(base_url=server.base_url, min_count=401)
    exact = PwnedPasswordsChecker(base_url=server.base_url, min_count=400)
    try:
        assert await strict.is_breached(PlainPassword("correct horse battery staple")) is False
        assert await strict.is_breached(PlainPassword("password")) is True
        assert await exact.is_breached(PlainPassword("correct horse battery staple")) is True
    finally:
        await strict.aclose()
        await exact.aclose()


async def test_only_a_five_digit_prefix_leaves_the_machine(checker: PwnedPasswordsChecker, server: RangeServer) -> None:
    passwords = [*BREACHED, PADDED_ONLY, UNKNOWN]
    for password in passwords:
        await checker.is_breached(PlainPassword(password))

    assert len(server.raw_requests) == len(passwords)
    assert server.paths == [f"/range/{sha1(password)[:5]}" for password in passwords]
    sent = b"".join(server.raw_requests)
    for password in passwords:
        digest = sha1(password)
        for secret in (password, digest, digest.lower(), digest[5:], digest[5:].lower()):
            assert secret.encode() not in sent
    for headers in server.headers:
        assert "content-length" not in headers and "transfer-encoding" not in headers  # no body either


async def test_padding_is_requested_and_the_client_names_itself(
    checker: PwnedPasswordsChecker, server: RangeServer
) -> None:
    await checker.is_breached(PlainPassword("password"))
    (headers,) = server.headers
    assert headers["add-padding"] == "true"
    assert headers["user-agent"] == "usermgmt"


async def test_a_slow_server_times_out_fast_and_fails_open(
    server: RangeServer, warnings: pytest.LogCaptureFixture
) -> None:
    server.mode = "slow"
    checker = PwnedPasswordsChecker(base_url=server.base_url, timeout=0.2)
    try:
        started = time.monotonic()
        assert await checker.is_breached(PlainPassword(SECRET)) is False
        assert time.monotonic() - started < 1.0
    finally:
        await checker.aclose()
    (record,) = warnings.records
    assert record.levelno == logging.WARNING
    assert "Timeout" in record.getMessage()
    assert_nothing_secret_logged(warnings, SECRET)


async def test_a_server_error_fails_open(
    checker: PwnedPasswordsChecker, server: RangeServer, warnings: pytest.LogCaptureFixture
) -> None:
    server.mode = "error"
    assert await checker.is_breached(PlainPassword(SECRET)) is False
    (record,) = warnings.records
    assert "HTTP 500" in record.getMessage()
    assert_nothing_secret_logged(warnings, SECRET)


async def test_a_refused_connection_fails_open(warnings: pytest.LogCaptureFixture) -> None:
    checker = PwnedPasswordsChecker(base_url=f"http://127.0.0.1:{free_port()}", timeout=1.0)
    try:
        started = time.monotonic()
        assert await checker.is_breached(PlainPassword(SECRET)) is False
        assert time.monotonic() - started < 1.0
    finally:
        await checker.aclose()
    (record,) = warnings.records
    assert "ConnectError" in record.getMessage()
    assert_nothing_secret_logged(warnings, SECRET)


@pytest.mark.parametrize(("mode", "reason"), [("garbage", "malformed response"), ("empty", "empty response")])
async def test_an_unreadable_body_fails_open(
    checker: PwnedPasswordsChecker,
    server: RangeServer,
    warnings: pytest.LogCaptureFixture,
    mode: str,
    reason: str,
) -> None:
    server.mode = mode
    assert await checker.is_breached(PlainPassword(SECRET)) is False
    (record,) = warnings.records
    assert reason in record.getMessage()
    assert_nothing_secret_logged(warnings, SECRET)


async def test_a_shared_client_is_used_and_left_open(server: RangeServer) -> None:
    async with httpx.AsyncClient() as client:
        checker = PwnedPasswordsChecker(base_url=server.base_url + "/", client=client)
        assert await checker.is_breached(PlainPassword("password")) is True
        await checker.aclose()
        assert not client.is_closed
    assert server.paths == [f"/range/{sha1('password')[:5]}"]  # the trailing slash of base_url is not doubled


async def test_an_owned_client_is_closed(server: RangeServer) -> None:
    checker = PwnedPasswordsChecker(base_url=server.base_url)
    await checker.aclose()
    assert await checker.is_breached(PlainPassword("password")) is False  # closed, so unavailable: still no raise
    assert server.paths == []


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": -1.0}, {"min_count": 0}])
def test_nonsense_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"timeout|min_count"):
        PwnedPasswordsChecker(base_url="http://127.0.0.1:1", **kwargs)
