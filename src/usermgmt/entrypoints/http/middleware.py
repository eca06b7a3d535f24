"""Pure-ASGI layers in front of the routes: request id, access log, security headers (no-store on the API),
allowed hosts; CORS; then body size and content type."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from usermgmt.entrypoints.http.client_ip import Networks, client_ip, forwarded_for
from usermgmt.entrypoints.http.errors import PROBLEM_CODE_KEY, PROBLEM_JSON, problem
from usermgmt.entrypoints.logging import request_id_var

access_logger = logging.getLogger("usermgmt.access")
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_DOCS_PATHS = ("/docs", "/redoc")

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPES = frozenset({"application/json"})
FORM_TYPE = "application/x-www-form-urlencoded"


async def _send_problem(scope: Scope, send: Send, status: int, code: str, detail: str) -> None:
    """The same problem+json the exception handlers give, for answers made before the app runs."""
    scope[PROBLEM_CODE_KEY] = code
    problem = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    body = json.dumps({**problem, "code": code}, separators=(",", ":")).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as 400 problem+json ``cors_preflight_refused`` (with the
    same ``Vary`` and ``Access-Control-*`` headers) instead of text/plain."""

    _REFUSED_PREFIX = "Disallowed CORS "

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        text = bytes(response.body).decode()
        refused = text.removeprefix(self._REFUSED_PREFIX) if text.startswith(self._REFUSED_PREFIX) else "request"
        headers = {k: v for k, v in response.headers.items() if k not in {"content-type", "content-length"}}
        detail = f"The CORS preflight was refused: its {refused} is not allowed."
        return problem(response.status_code, "cors_preflight_refused", detail, headers=headers)


class RequestGuardMiddleware:
    """Reject oversized bodies (413, also when chunked) and non-JSON bodies (415).

    Bodies are read here, up to ``max_body_bytes``, and replayed to the app: they are small by contract, and
    counting the bytes actually received is the only check a chunked body without Content-Length cannot dodge.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, form_paths: Collection[str] = ()) -> None:
        self.app, self.max_body_bytes, self.form_paths = app, max_body_bytes, frozenset(form_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return

        headers = _headers(scope)
        declared = headers.get("content-length")
        chunked = "transfer-encoding" in headers
        if declared is not None:
            if not declared.isdigit():
                await _send_problem(scope, send, 400, "bad_request", "Invalid Content-Length header.")
                return
            if int(declared) > self.max_body_bytes:
                await self._too_large(scope, send)
                return
        if (declared is not None and int(declared) > 0) or chunked:
            media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            allowed = media_type in JSON_TYPES or (media_type == FORM_TYPE and scope["path"] in self.form_paths)
            if not allowed:
                await _send_problem(scope, send, 415, "unsupported_media_type", "Send the body as application/json.")
                return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await _send_problem(
            scope, send, 413, "payload_too_large", f"The body must be at most {self.max_body_bytes} bytes."
        )


# Told of every request once it is answered (or abandoned: status None): its scope, status and duration.
RequestObserver = Callable[[Scope, int | None, float], None]


class RequestContextMiddleware:
    """Outermost layer: a request id (taken from ``X-Request-ID`` when well-formed, else new) for logs and the
    response; security headers on every response; the Host allow-list; one access-log line per request, and
    ``observe`` (the metrics) told of it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_hosts: Sequence[str] = ("*",),
        trusted_proxies: Networks = (),
        hsts_max_age: int = 0,
        observe: RequestObserver | None = None,
    ) -> None:
        self.app, self.trusted_proxies, self.observe = app, trusted_proxies, observe
        self.any_host = "*" in trusted_hosts
        self.hosts = [h.lower() for h in trusted_hosts if h != "*"]
        self.hsts = f"max-age={hsts_max_age}; includeSubDomains".encode() if hsts_max_age else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        given = headers.get(REQUEST_ID_HEADER, "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | None = None  # no answer at all: the client went away, or the server's deadline closed it
        extra = self._extra_headers(scope["path"], request_id)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                names = {name.lower() for name, _ in message.get("headers", [])}
                added = [(name, value) for name, value in extra if name not in names]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        try:
            if not self._host_allowed(headers.get("host", "")):
                await _send_problem(scope, send_with_headers, 400, "invalid_host", "Unknown Host header.")
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            if self.observe is not None:
                self.observe(scope, status, seconds)
            if access_logger.isEnabledFor(logging.INFO):  # build the line only when it will be written
                self._log(scope, status, seconds)
            request_id_var.reset(token)

    def _log(self, scope: Scope, status: int | None, seconds: float) -> None:
        forwarded = forwarded_for([v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"])
        peer = scope["client"][0] if scope.get("client") else None
        access_logger.info(
            "%s %s %s",
            scope["method"],
            scope["path"],
            status if status is not None else "- (no answer)",
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "client_ip": client_ip(peer, forwarded, self.trusted_proxies),
            },
        )

    def _host_allowed(self, host: str) -> bool:
        if self.any_host:
            return True
        name = host.rsplit(":", 1)[0].lower() if not host.endswith("]") else host.lower()
        return any(name == h or (h.startswith("*.") and name.endswith(h[1:])) for h in self.hosts)

    def _extra_headers(self, path: str, request_id: str) -> list[tuple[bytes, bytes]]:
        docs = path.startswith(_DOCS_PATHS)  # Swagger UI and ReDoc load their scripts and styles from a CDN
        csp = b"frame-ancestors 'none'" if docs else b"default-src 'none'; frame-ancestors 'none'"
        extra = [
            (REQUEST_ID_HEADER.encode(), request_id.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"content-security-policy", csp),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if self.hsts:
            extra.append((b"strict-transport-security", self.hsts))
        if path.startswith("/api/"):  # user data and tokens: never cached (the one place that says so)
            extra += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]  # Pragma: RFC 6749 5.1
        return extra


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
