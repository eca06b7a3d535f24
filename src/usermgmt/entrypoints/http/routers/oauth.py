"""/api/v1/oauth/introspect: token introspection (RFC 7662) for internal services, behind HTTP Basic."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError

from usermgmt.application import commands
from usermgmt.application.handlers.introspect import IntrospectTokenHandler
from usermgmt.entrypoints.http import dependencies as deps
from usermgmt.entrypoints.http.errors import problem_responses
from usermgmt.entrypoints.http.routers.presenters import introspection_out
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
async def introspect(request: Request, handler: deps.Introspect) -> IntrospectionOut:
    """Whether an access token is active now (RFC 7662): `{active: true, sub, sid, exp, iat, iss, aud, amr,
    auth_time, roles, username}`, or `{active: false}` for anything expired, revoked, malformed, of another kind or
    signed by an unknown key. For internal services: authenticate with the HTTP Basic credentials of a client in
    `USERMGMT_INTROSPECTION_CLIENTS` (401 `invalid_client` otherwise). The body is a form: `token=...`."""
    client_id, secret = basic_credentials(request.headers.get("authorization"))
    token = await _token(request)
    result = await handler(commands.IntrospectToken(token=token, client_id=client_id, client_secret=secret))
    return introspection_out(result)
