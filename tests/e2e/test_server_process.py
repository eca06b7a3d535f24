"""`usermgmt serve` as a process, over raw sockets: deadlines for unfinished requests (slowloris), keep-alive,
and JSON on every stderr line. Embedded SQLite: no PostgreSQL needed."""

from __future__ import annotations

import json
import queue
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.proxy import free_port
from tests.support.server import BIN, ROOT, migrate, serve, service_env

HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
# How long past its deadline a connection may stay open: a busy 2-core machine, not a precise clock.
SLACK = 4.0

LOGIN_BODY = b'{"login": "nobody@example.com", "password": "not the password"}'


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    env = service_env(tmp_path_factory.mktemp("serve") / "var", rate_limits_enabled="false")
    migrate(env)
    args = ["--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT)]
    with serve(env, args=args) as base:
        url = urlsplit(base)
        assert url.hostname is not None and url.port is not None
        yield url.hostname, url.port


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=HEADER_TIMEOUT + BODY_TIMEOUT + SLACK)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds that took.

    Raises ``TimeoutError`` if the server keeps the connection open past the socket's timeout."""
    started, received = time.monotonic(), b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length body, leaving the connection open."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {received!r}"
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of a response body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def assert_timed_out(received: bytes, seconds: float, deadline: float) -> None:
    assert deadline * 0.9 <= seconds < deadline + SLACK
    assert received.startswith(b"HTTP/1.1 408 "), received
    head, body = received.split(b"\r\n\r\n", 1)
    assert b"content-type: application/problem+json" in head.lower()
    assert b"connection: close" in head.lower()
    assert json.loads(body)["code"] == "request_timeout"


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def login_request(body: bytes, *, length: int | None = None) -> bytes:
    head = (
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


# ---------------------------------------------------------------- unfinished requests are closed


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"GET /healthz HT", id="partial request line"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ", id="partial headers"),
    ],
)
def test_a_request_whose_headers_never_end_is_answered_408_and_closed(address: tuple[str, int], sent: bytes) -> None:
    with connect(address) as sock:
        sock.sendall(sent)
        received, seconds = read_until_closed(sock)
    assert_timed_out(received, seconds, HEADER_TIMEOUT)


def test_headers_sent_a_byte_at_a_time_do_not_extend_the_deadline(address: tuple[str, int]) -> None:
    with connect(address) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        started = time.monotonic()
        # One more byte every 100 ms, until the server answers (or for far longer than the deadline).
        while not select.select([sock], [], [], 0.1)[0] and time.monotonic() - started < HEADER_TIMEOUT + SLACK:
            sock.sendall(b"a")
        received, _ = read_until_closed(sock)
        seconds = time.monotonic() - started
    assert_timed_out(received, seconds, HEADER_TIMEOUT)


def test_a_connection_that_sends_nothing_is_closed(address: tuple[str, int]) -> None:
    with connect(address) as sock:
        received, seconds = read_until_closed(sock)
    assert received == b""  # nothing was asked, so nothing is answered
    assert HEADER_TIMEOUT * 0.9 <= seconds < HEADER_TIMEOUT + SLACK


def test_a_body_shorter_than_its_content_length_is_answered_408_and_closed(address: tuple[str, int]) -> None:
    with connect(address) as sock:
        sock.sendall(login_request(LOGIN_BODY[:10], length=len(LOGIN_BODY)))
        received, seconds = read_until_closed(sock)
    assert_timed_out(received, seconds, BODY_TIMEOUT)


# ---------------------------------------------------------------- complete requests are not disturbed


def test_a_slow_but_complete_request_is_served(address: tuple[str, int]) -> None:
    """Headers and body each take most of their own deadline; together, longer than either."""
    request = login_request(LOGIN_BODY)
    head, body = request.split(b"\r\n\r\n", 1)
    pause = HEADER_TIMEOUT * 0.6 / 3
    with connect(address) as sock:
        started = time.monotonic()
        for part in (head[:10], head[10:40], head[40:], b"\r\n\r\n" + body[:5], body[5:20], body[20:40], body[40:]):
            sock.sendall(part)
            time.sleep(pause)
        status, _, answer = read_response(sock)
        assert time.monotonic() - started > HEADER_TIMEOUT  # the body's time is its own
    assert status == 401, answer
    assert json.loads(answer)["code"] == "invalid_credentials"


def test_keep_alive_connections_stay_open_between_requests_longer_than_the_header_deadline(
    address: tuple[str, int],
) -> None:
    with connect(address) as sock:
        sock.sendall(get("/healthz"))
        assert read_response(sock)[0] == 200
        time.sleep(HEADER_TIMEOUT + 0.5)  # idle, under uvicorn's keep-alive timeout (5 s)
        sock.sendall(get("/healthz"))
        assert read_response(sock)[0] == 200
        sock.sendall(login_request(LOGIN_BODY))
        assert read_response(sock)[0] == 401


def test_pipelined_requests_are_all_answered(address: tuple[str, int]) -> None:
    with connect(address) as sock:
        sock.sendall(get("/healthz") + login_request(LOGIN_BODY) + get("/readyz"))
        assert [read_response(sock)[0] for _ in range(3)] == [200, 401, 200]


# ---------------------------------------------------------------- stderr


class Stderr:
    """The lines a process writes to stderr, read by a thread so that waiting for one can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert process.stderr is not None
        stream = process.stderr

        def pump() -> None:
            for line in stream:
                self.lines.put(line)
            self.lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def until(self, text: str | None, timeout: float = 30) -> list[str]:
        """Lines up to the first containing ``text`` (``None``: up to the end of the stream)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                if text is None:
                    return self.seen
                raise AssertionError(f"stderr ended before {text!r}: {self.seen}")
            self.seen.append(line.rstrip("\n"))
            if text is not None and text in line:
                return self.seen


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [BIN / "usermgmt", "serve", "--log-level", "info", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def listening(address: tuple[str, int], timeout: float = 30) -> socket.socket:
    """A connection to ``address`` as soon as something listens there (a worker has started serving)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect(address)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def parsed(lines: list[str]) -> list[dict[str, object]]:
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line on stderr: {line!r}")
    return entries


def test_every_stderr_line_of_serve_is_json_from_the_first(tmp_path: Path) -> None:
    """Also with worker processes, which get the request deadlines too (the protocol pickles)."""
    env = service_env(tmp_path / "var")  # no key yet: the first start generates one and logs it
    migrate(env)
    port = free_port()
    process = start(env, "--port", str(port), "--workers", "2", "--header-timeout", str(HEADER_TIMEOUT))
    try:
        stderr = Stderr(process)
        started = parsed(stderr.until("Application startup complete"))
        with listening(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            assert_timed_out(*read_until_closed(sock), HEADER_TIMEOUT)
    finally:
        process.terminate()
        process.wait(timeout=30)
    everything = parsed(stderr.until(None))
    assert "generated a development signing key" in str(started[0]["message"])
    assert any("Request headers not received" in str(e["message"]) for e in everything)
    assert {"time", "level", "logger", "message"} <= set(everything[-1])


@pytest.mark.parametrize(
    ("settings", "expected", "secret"),
    [
        pytest.param({"signing_key_autogenerate": "false"}, "no signing key", None, id="no key"),
        pytest.param(
            {"database_pool_size": "lots-s3cret"},
            "USERMGMT_DATABASE_POOL_SIZE",
            "s3cret",
            id="invalid setting",
        ),
    ],
)
def test_a_failed_start_says_why_in_json_and_exits_1(
    tmp_path: Path, settings: dict[str, str], expected: str, secret: str | None
) -> None:
    process = start(service_env(tmp_path / "var", **settings), "--port", "0")
    try:
        lines = Stderr(process).until(None)
        assert process.wait(timeout=30) == 1
    finally:
        process.kill()
    entries = parsed(lines)
    assert [e["level"] for e in entries] == ["error"]
    assert expected in str(entries[0]["message"])
    if secret:
        assert secret not in "\n".join(lines)
