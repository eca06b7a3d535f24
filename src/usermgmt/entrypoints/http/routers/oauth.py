"""/api/v1/oauth/introspect: token introspection (RFC 7662) for internal services, behind HTTP Basic."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from usermgmt.application import commands
from usermgmt.application.handlers.introspect import IntrospectTokenHandler
from usermgmt.application.results import Introspection
from usermgmt.entrypoints.http.errors import problem_responses
from usermgmt.entrypoints.http.routing import StrictJsonRoute, parse_form
from usermgmt.entrypoints.http.schemas import IntrospectionOut

router = APIRouter(prefix="/api/v1/oauth", tags=["oauth"], route_class=StrictJsonRoute)

INTROSPECT_PATH = "/api/v1/oauth/introspect"
FORM = "application/x-www-form-urlencoded"
INTROSPECT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {
                        "token": {"type": "string", "minLength": 1, "maxLength": 4096},
                        "token_type_hint": {"type": "string", "maxLength": 64},
                    },
                }
            }
        },
    }
}


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """(client id, secret) of an ``Authorization: Basic`` header, each form-urlencoded as RFC 6749 2.3.1 says;
    (None, None) when there is none or it is malformed."""
    if not header:
        return None, None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        return None, None
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


async def _token(request: Request) -> str:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        fields = parse_form(await request.body()) if media_type == FORM else {}
    except json.JSONDecodeError as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "msg": exc.msg}]) from None
    token = fields.get("token")
    if media_type != FORM or token is None or not token or len(token) > 4096 or "\x00" in token:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body", "token"), "msg": "A form field token of 1 to 4096 characters."}]
        )
    return token


@router.post(
    "/introspect",
    operation_id="oauth_introspect",
    response_model=IntrospectionOut,
    response_model_exclude_none=True,
    openapi_extra=INTROSPECT_BODY,
    responses=problem_responses(IntrospectTokenHandler, body=True),
)
async def introspect(request: Request) -> JSONResponse:
    """Whether an access token is active now (RFC 7662): `{active: true, sub, sid, exp, iat, iss, aud, amr,
    auth_time, roles, username}`, or `{active: false}` for anything expired, revoked, malformed, of another kind or
    signed by an unknown key. For internal services: authenticate with the HTTP Basic credentials of a client in
    `USERMGMT_INTROSPECTION_CLIENTS` (401 `invalid_client` otherwise). The body is a form: `token=...`."""
    # An internal service's hot path: the handler straight from the container (no dependency to solve), the
    # credentials of a header that passed before from a small cache, and the answer serialised once.
    handler: IntrospectTokenHandler = request.app.state.container.introspect()
    header = request.headers.get("authorization")
    credentials = _passed_headers.get(header) if header else None
    client_id, secret = credentials if credentials is not None else basic_credentials(header)
    token = await _token(request)
    result = await handler(commands.IntrospectToken(token=token, client_id=client_id, client_secret=secret))
    if header and credentials is None and len(_passed_headers) < PASSED_HEADERS_MAX:
        _passed_headers[header] = (client_id, secret)  # it passed the client check: the handler did not raise
    return JSONResponse(introspection_body(result))


PASSED_HEADERS_MAX = 64
_passed_headers: dict[str, tuple[str | None, str | None]] = {}


def introspection_body(result: Introspection) -> dict[str, Any]:
    """``IntrospectionOut`` as JSON, its None members left out."""
    if not result.active:
        return {"active": False}
    body: dict[str, Any] = {
        "active": True,
        "token_type": "access_token",
        "sub": result.sub,
        "sid": result.sid,
        "exp": result.exp,
        "iat": result.iat,
        "iss": result.iss,
        "aud": result.aud,
        "amr": list(result.amr or ()),
        "auth_time": result.auth_time,
        "roles": list(result.roles or ()),
        "username": result.username,
    }
    return {key: value for key, value in body.items() if value is not None}
