"""DeadlineHttpToolsProtocol on a manual clock: when unfinished requests are cut off, and when they are not.

The protocol runs on the test's event loop for its tasks, but takes ``time()`` and ``call_later()`` from
``Clock``, which only moves when a test says so. tests/e2e/test_server_process.py checks the same over real
sockets against `usermgmt serve`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from usermgmt.entrypoints.http.server import DeadlineHttpToolsProtocol, deadline_protocol

HEADERS, BODY = 1.0, 2.0  # the deadlines of most tests, in seconds
KEEP_ALIVE = 5  # uvicorn's timeout_keep_alive

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Timer:
    def __init__(self, when: float, callback: Callable[..., object], args: tuple[object, ...]) -> None:
        self._when, self.callback, self.args, self._cancelled = when, callback, args, False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled


class Clock:
    """``time()`` and ``call_later()`` on a clock that moves only in ``advance_to``; tasks on the real loop."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Timer] = []
        self.loop = asyncio.get_running_loop()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> Timer:
        timer = Timer(self.now + delay, callback, args)
        self.timers.append(timer)
        return timer

    def create_task(self, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        return self.loop.create_task(coro, **kwargs)

    async def advance_to(self, moment: float) -> None:
        """Run every timer due by ``moment``, in order, letting the tasks run after each."""
        await settle()
        while due := sorted((t for t in self.timers if not t.cancelled() and t.when() <= moment), key=Timer.when):
            timer = due[0]
            self.timers.remove(timer)
            self.now = timer.when()
            timer.callback(*timer.args)
            await settle()
        self.now = moment


async def settle() -> None:
    for _ in range(20):  # let the ASGI tasks run as far as they can
        await asyncio.sleep(0)


class Transport(asyncio.Transport):
    def __init__(self, protocol: DeadlineHttpToolsProtocol) -> None:
        super().__init__()
        self.protocol, self.sent, self.closed, self.reading = protocol, bytearray(), False, True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("203.0.113.7", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.sent += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    @property
    def statuses(self) -> list[int]:
        return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", bytes(self.sent))]


class App:
    """Reads the whole body, then answers 200 with its length. ``/slow`` waits for ``gate`` before reading;
    ``/early`` answers 413 without reading. Records what ``receive`` gave."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.received: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["path"] == "/early":
            await self.answer(send, 413, b"")
            return
        if scope["path"] == "/slow":
            await self.gate.wait()
        body = b""
        while True:
            message = await receive()
            self.received.append(message["type"])
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await self.answer(send, 200, str(len(body)).encode())

    @staticmethod
    async def answer(send: Send, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def clock() -> Clock:
    return Clock()


@pytest.fixture
def app() -> App:
    return App()


def connect(
    clock: Clock, app: App, *, header_timeout: float = HEADERS, body_timeout: float = BODY
) -> tuple[DeadlineHttpToolsProtocol, Transport]:
    config = Config(app=app, log_config=None, access_log=False, timeout_keep_alive=KEEP_ALIVE, lifespan="off")
    config.load()
    protocol = DeadlineHttpToolsProtocol(
        config=config,
        server_state=ServerState(),
        app_state={},
        _loop=clock,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
    )
    transport = Transport(protocol)
    protocol.connection_made(transport)
    return protocol, transport


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def post_head(path: str, length: int) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()


def assert_answered_408(transport: Transport) -> None:
    head, body = bytes(transport.sent).split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"content-type: application/problem+json" in head
    assert b"connection: close" in head
    assert json.loads(body) == {
        "type": "about:blank",
        "title": "Request Timeout",
        "status": 408,
        "detail": "The request was not received in time.",
        "code": "request_timeout",
    }


async def test_unfinished_headers_get_408_at_the_deadline_counted_from_the_connection(clock: Clock, app: App) -> None:
    protocol, transport = connect(clock, app)
    await clock.advance_to(0.5)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")
    await clock.advance_to(HEADERS - 0.01)
    assert not transport.closed
    await clock.advance_to(HEADERS)
    assert transport.closed
    assert_answered_408(transport)


async def test_headers_sent_a_byte_at_a_time_do_not_push_the_deadline_back(clock: Clock, app: App) -> None:
    protocol, transport = connect(clock, app)
    protocol.data_received(b"GET /")
    for step in range(1, 10):
        await clock.advance_to(step * HEADERS / 10)
        protocol.data_received(b"a")
        assert not transport.closed
    await clock.advance_to(HEADERS)
    assert transport.closed
    assert transport.statuses == [408]


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(clock: Clock, app: App) -> None:
    _, transport = connect(clock, app)
    await clock.advance_to(HEADERS)
    assert transport.closed
    assert transport.sent == b""


async def test_the_body_has_its_own_deadline_from_the_end_of_the_headers(clock: Clock, app: App) -> None:
    protocol, transport = connect(clock, app)
    await clock.advance_to(0.9)
    protocol.data_received(post_head("/echo", 10) + b"abc")
    await clock.advance_to(0.9 + BODY - 0.01)  # past the header deadline, within the body's
    assert not transport.closed
    await clock.advance_to(0.9 + BODY)
    assert transport.closed
    assert_answered_408(transport)
    await settle()
    assert app.received == ["http.request", "http.disconnect"]  # the app learns, and answers nothing more


async def test_a_body_deadline_shorter_than_what_is_left_of_the_headers_applies(clock: Clock, app: App) -> None:
    protocol, transport = connect(clock, app, header_timeout=10, body_timeout=1)
    await clock.advance_to(0.1)
    protocol.data_received(post_head("/echo", 10) + b"abc")
    await clock.advance_to(1.09)
    assert not transport.closed
    await clock.advance_to(1.1)
    assert transport.closed
    assert transport.statuses == [408]


async def test_complete_requests_are_served_and_idle_keep_alive_is_uvicorns(clock: Clock, app: App) -> None:
    protocol, transport = connect(clock, app)
    protocol.data_received(post_head("/echo", 3) + b"abc")
    await clock.advance_to(KEEP_ALIVE - 0.1)  # idle far past the header deadline: keep-alive, not a request
    assert transport.statuses == [200]
    assert not transport.closed
    protocol.data_received(get("/echo"))
    await clock.advance_to(2 * KEEP_ALIVE - 0.2)
    assert not transport.closed
    await clock.advance_to(2 * KEEP_ALIVE - 0.1)  # uvicorn's keep-alive timeout after the second answer
    assert transport.closed
    assert transport.statuses == [200, 200]


async def test_a_slow_request_within_both_deadlines_is_served(clock: Clock, app: App) -> None:
    protocol, transport = connect(clock, app)
    head = post_head("/echo", 6)
    protocol.data_received(head[:10])
    await clock.advance_to(HEADERS - 0.1)
    protocol.data_received(head[10:] + b"abc")
    await clock.advance_to(HEADERS - 0.1 + BODY - 0.1)
    protocol.data_received(b"def")
    await settle()
    assert transport.statuses == [200]
    assert transport.sent.endswith(b"\r\n\r\n6")
    assert not transport.closed


async def test_an_unfinished_request_behind_one_being_answered_is_closed_without_408(clock: Clock, app: App) -> None:
    """A 408 written now would land in the middle of the response to the request before it."""
    protocol, transport = connect(clock, app)
    protocol.data_received(get("/slow") + b"GET /next HTTP/1.1\r\nHo")
    await clock.advance_to(HEADERS)
    assert transport.closed
    assert transport.sent == b""


async def test_time_during_which_the_server_does_not_read_does_not_count(clock: Clock, app: App) -> None:
    protocol, transport = connect(clock, app)
    # A pipelined request waits for the one before it, with reading paused until that one reads or is done.
    protocol.data_received(get("/slow") + post_head("/echo", 10) + b"abc")
    await clock.advance_to(BODY + 0.5)
    assert not transport.reading
    assert not transport.closed  # past its body deadline, but nothing was read meanwhile
    app.gate.set()
    await settle()
    assert transport.statuses == [200]
    assert transport.reading  # the second request runs and reads again: its deadline counts from here on
    await clock.advance_to(2 * BODY)
    assert transport.closed
    assert transport.statuses == [200, 408]


async def test_a_request_answered_before_its_body_arrived_is_closed_without_a_second_answer(
    clock: Clock, app: App
) -> None:
    protocol, transport = connect(clock, app)
    protocol.data_received(post_head("/early", 10) + b"abc")
    await settle()
    assert transport.statuses == [413]
    await clock.advance_to(BODY)
    assert transport.closed
    assert transport.statuses == [413]


async def test_the_factory_for_uvicorn_builds_the_protocol_with_its_timeouts(clock: Clock, app: App) -> None:
    config = Config(app=app, log_config=None, lifespan="off")
    config.load()
    factory = deadline_protocol(header_timeout=3, body_timeout=4)
    protocol = factory(config=config, server_state=ServerState(), app_state={}, _loop=clock)  # type: ignore[call-arg]
    assert isinstance(protocol, DeadlineHttpToolsProtocol)
    assert (protocol.header_timeout, protocol.body_timeout) == (3, 4)
