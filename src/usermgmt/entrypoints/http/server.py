"""uvicorn's httptools protocol with deadlines for unfinished requests (slowloris).

uvicorn bounds only the idle time between two requests of a keep-alive connection (``timeout_keep_alive``). A
client that opens a connection and then sends its headers, or its body, a byte at a time (or never) keeps the
connection, and a slot of the server, for as long as it likes. ``DeadlineHttpToolsProtocol`` closes it:

- the request line and headers must be complete within ``header_timeout`` seconds of the connection's opening
  (first request) or of the request's first byte (later requests on a keep-alive connection);
- the body must be complete within ``body_timeout`` seconds of the end of the headers.

A deadline that falls while the server itself is not reading (a pipelined request waiting for the one before
it, or a body the application has not read yet) is not the client's fault: it moves one full timeout later.

On a deadline the connection gets ``408 request_timeout`` (problem+json) when no other response is under way
on it, and is closed; a connection that has sent nothing at all is just closed, as an idle keep-alive one is.
The application sees the same ``http.disconnect`` as when a client goes away. Between requests, uvicorn's own
keep-alive timeout applies unchanged.

Cost per request: one timer handle (``loop.call_later``, cancelled when the request is complete) and one
``loop.time()``.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, Final, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

_BODY: Final = json.dumps(
    {
        "type": "about:blank",
        "title": "Request Timeout",
        "status": 408,
        "detail": "The request was not received in time.",
        "code": "request_timeout",
    },
    separators=(",", ":"),
).encode()
_HEAD: Final = b"".join(
    [
        b"HTTP/1.1 408 Request Timeout\r\n",
        b"content-type: application/problem+json\r\n",
        b"content-length: " + str(len(_BODY)).encode() + b"\r\n",
        b"x-content-type-options: nosniff\r\n",
        b"cache-control: no-store\r\n",
        b"connection: close\r\n",
    ]
)


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose requests must arrive within ``header_timeout`` and ``body_timeout`` seconds."""

    def __init__(
        self,
        *args: Any,
        header_timeout: float,
        body_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._in_request = False  # between the first byte of a request and its end
        self._body_deadline: float | None = None  # set once the headers are complete

    # Connection and parser callbacks: arm at the start, move the deadline at the end of the headers, disarm at
    # the end of the request.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_request = True
        self._body_deadline = None
        if self._deadline_timer is None:  # the first request's deadline runs from the connection's opening
            self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        self._body_deadline = self.loop.time() + self.body_timeout
        if self._deadline_timer is not None and self._deadline_timer.when() > self._body_deadline:
            self._arm(self.body_timeout)  # only when body_timeout is the shorter: the usual case moves nothing
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_request = False
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the connection belongs to the WebSocket protocol from now on
        super().handle_websocket_upgrade()

    # The deadline.

    def _arm(self, seconds: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_timer = self.loop.call_later(seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    def _deadline_passed(self) -> None:
        self._deadline_timer = None
        if self.transport.is_closing():
            return
        in_body = self._body_deadline is not None
        if self.flow.read_paused:  # the server is not reading: the client cannot be late
            self._arm(self.body_timeout if in_body else self.header_timeout)
            return
        if self._body_deadline is not None and (left := self._body_deadline - self.loop.time()) > 0:
            self._arm(left)  # the headers were on time; the body has until its own deadline
            return

        cycle: RequestResponseCycle | None = self.cycle
        if not self._in_request:
            self.logger.debug("No request within %s s of connecting: closing the connection", self.header_timeout)
            self.transport.close()
            return
        part, seconds = ("body", self.body_timeout) if in_body else ("headers", self.header_timeout)
        self.logger.info("Request %s not received within %s s: closing the connection", part, seconds)
        if in_body:  # ``cycle`` is this request's; nobody else answers it once the 408 is out
            answer = not self.pipeline and cycle is not None and not cycle.response_started
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        else:  # ``cycle`` is the previous request's, if any: do not cut into its response
            answer = cycle is None or cycle.response_complete
        if answer:
            self._send_408()
        self.transport.close()

    def _send_408(self) -> None:
        content = [_HEAD]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([b"\r\n", _BODY])
        self.transport.write(b"".join(content))


def deadline_protocol(*, header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    """The protocol to pass as ``uvicorn.run(http=...)``, with these timeouts.

    A ``functools.partial`` of the class, which uvicorn only ever calls; unlike a class made on the fly, it
    pickles, as the worker processes (``--workers`` > 1) need.
    """
    factory = functools.partial(DeadlineHttpToolsProtocol, header_timeout=header_timeout, body_timeout=body_timeout)
    return cast(type[asyncio.Protocol], factory)
