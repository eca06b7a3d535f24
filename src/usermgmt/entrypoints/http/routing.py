"""How every route reads a JSON body: UTF-8 JSON text only, and nothing a parser should be made to build."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``. Raises: ``json.JSONDecodeError``, for anything but one JSON text in UTF-8
    (RFC 8259 8.1) without a byte order mark.

    That covers other encodings (UTF-16 and UTF-32, which ``json.loads`` would otherwise detect, and a UTF-8 BOM),
    invalid UTF-8, ``NaN`` and ``Infinity``, nesting deeper than the parser's recursion limit, and integers longer
    than Python converts (4,300 digits). The error never holds the document: it may contain a password.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("The body is not UTF-8", "", exc.start) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise json.JSONDecodeError(exc.msg, "", exc.pos) from None
    except RecursionError:
        raise json.JSONDecodeError("The body is nested too deeply", "", 0) from None
    except ValueError as exc:  # an integer too long to convert, or NaN/Infinity
        raise json.JSONDecodeError(str(exc), "", 0) from None


def parse_form(body: bytes) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body, UTF-8 only, percent-escapes included (a later
    field of the same name wins). Raises: ``json.JSONDecodeError``, so that it is answered like every undecodable
    body (400 ``malformed_json``) instead of turning invalid bytes into U+FFFD, which would make different byte
    strings the same password."""
    try:
        return dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict"))
    except (UnicodeDecodeError, ValueError):
        raise json.JSONDecodeError("The form is not UTF-8", "", 0) from None


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        return parse_json(await self.body())


class StrictJsonRoute(APIRoute):
    """The route class of every router: a JSON body is read with ``parse_json``, so whatever it refuses is answered
    400 ``malformed_json`` (by ``handle_validation_error``), the same on every route."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:  # no body to parse (the hot GET routes): nothing to wrap
            return handler

        async def strict_json_handler(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict_json_handler
