"""/api/v1/auth: register, login, refresh, logout."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from usermgmt.application import commands
from usermgmt.application.results import SignedIn
from usermgmt.domain.errors import InvalidEmail, InvalidFullName, InvalidUsername, WeakPassword
from usermgmt.entrypoints.http import dependencies as deps
from usermgmt.entrypoints.http.errors import field_errors, responses
from usermgmt.entrypoints.http.routers.presenters import token_pair_out, user_out
from usermgmt.entrypoints.http.routing import StrictJsonRoute, parse_json
from usermgmt.entrypoints.http.schemas import LoginIn, RefreshIn, RegisterIn, TokenPairOut, UserOut

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], redirect_slashes=False, route_class=StrictJsonRoute)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=responses(400, 409, 413, 415, 422, 429, 503),
)
@field_errors(email=InvalidEmail, username=InvalidUsername, full_name=InvalidFullName, password=WeakPassword)
async def register(body: RegisterIn, response: Response, handler: deps.RegisterUser, client: deps.Client) -> UserOut:
    """Create an account. The email (and username, if given) must be free; the password must meet the policy."""
    user = await handler(
        commands.RegisterUser(
            email=body.email,
            password=body.password,
            username=body.username,
            full_name=body.full_name,
            client=client,
        )
    )
    response.headers["Location"] = "/api/v1/users/me"
    return user_out(user)


LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginIn.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {"type": "string", "description": "Email address or username."},
                        "password": {"type": "string", "format": "password"},
                    },
                }
            },
        },
    }
}


async def _login_body(request: Request) -> LoginIn:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if media_type == "application/x-www-form-urlencoded":
            form = await request.form()
            data = {"login": form.get("username"), "password": form.get("password")}
            return LoginIn.model_validate({k: v for k, v in data.items() if v is not None})
        return LoginIn.model_validate(parse_json(await request.body()))
    except json.JSONDecodeError as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "msg": exc.msg}]) from None
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        ) from None


@router.post(
    "/login",
    response_model=TokenPairOut,
    openapi_extra=LOGIN_BODY,
    responses=responses(400, 401, 403, 413, 415, 422, 429, 503),
)
async def login(request: Request, handler: deps.Login, client: deps.Client) -> TokenPairOut:
    """Exchange an email-or-username and password for an access token and a refresh token.

    JSON ``{login, password}``, or a form with ``username`` and ``password`` (OAuth2 password flow, as /docs uses).
    """
    body = await _login_body(request)
    result = await handler(commands.Login(login=body.login, password=body.password, client=client))
    if not isinstance(result, SignedIn):  # no account can require a second factor yet
        raise RuntimeError("a further sign-in step is required but not offered over HTTP")
    return token_pair_out(result.tokens)


@router.post("/refresh", response_model=TokenPairOut, responses=responses(400, 401, 413, 415, 422, 429, 503))
async def refresh(body: RefreshIn, handler: deps.RefreshSession, client: deps.Client) -> TokenPairOut:
    """Rotate a refresh token: the answer holds a new pair and the presented token is dead from now on."""
    pair = await handler(commands.RefreshSession(refresh_token=body.refresh_token, client=client))
    return token_pair_out(pair)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 503))
async def logout(principal: deps.CurrentPrincipal, handler: deps.Logout, client: deps.Client) -> Response:
    """End this session: its refresh token and access tokens stop working."""
    await handler(commands.Logout(user_id=principal.user_id, session_id=principal.session_id, client=client))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
