"""/api/v1/auth: register, login, refresh, logout, the forgotten password, and the links sent to verify or change
an email address."""

from __future__ import annotations

import json
from typing import ClassVar

from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from usermgmt.application import commands
from usermgmt.application.errors import MfaRequired
from usermgmt.application.handlers.email_address import ConfirmEmailChangeHandler, VerifyEmailHandler
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.logout import LogoutHandler
from usermgmt.application.handlers.mfa import LoginMfaHandler
from usermgmt.application.handlers.password_reset import ForgotPasswordHandler, ResetPasswordHandler
from usermgmt.application.handlers.privacy import RestoreAccountHandler
from usermgmt.application.handlers.refresh_session import RefreshSessionHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.application.results import FurtherStepRequired, SignInResult
from usermgmt.domain.errors import DomainError, InvalidEmail, InvalidFullName, InvalidUsername, WeakPassword
from usermgmt.entrypoints.http import dependencies as deps
from usermgmt.entrypoints.http.errors import field_errors, problem_responses
from usermgmt.entrypoints.http.openapi import component_ref
from usermgmt.entrypoints.http.routers.presenters import token_pair_out, user_out
from usermgmt.entrypoints.http.routing import StrictJsonRoute, parse_form, parse_json
from usermgmt.entrypoints.http.schemas import (
    EmailTokenIn,
    ForgotPasswordIn,
    ForgotPasswordOut,
    LoginForm,
    LoginIn,
    LoginMfaIn,
    RefreshIn,
    RegisterIn,
    ResetPasswordIn,
    TokenPairOut,
    UserOut,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], route_class=StrictJsonRoute)


@router.post(
    "/register",
    operation_id="auth_register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=problem_responses(RegisterUserHandler, body=True),
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


FORM = "application/x-www-form-urlencoded"
LOGIN_BODY = {  # read by _login_body, not by FastAPI: both named components (app.py publishes them)
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": component_ref(LoginIn)}, FORM: {"schema": component_ref(LoginForm)}},
    }
}


async def _login_body(request: Request) -> LoginIn:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if media_type == FORM:
            form = LoginForm.model_validate(parse_form(await request.body()))
            return LoginIn(login=form.username, password=form.password)
        return LoginIn.model_validate(parse_json(await request.body()))
    except json.JSONDecodeError as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "msg": exc.msg}]) from None
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        ) from None


def signed_in_or_second_step(result: SignInResult) -> TokenPairOut:
    """A first factor's answer: the token pair, or 403 ``mfa_required`` with the ``mfa_token`` of the next step."""
    if isinstance(result, FurtherStepRequired):
        raise MfaRequired(mfa_token=result.token, methods=result.methods, expires_in=result.expires_in)
    return token_pair_out(result.tokens)


class SecondStep:
    """What the login route answers itself when a second factor is due (for its OpenAPI responses)."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (MfaRequired,)


@router.post(
    "/login",
    operation_id="auth_login",
    response_model=TokenPairOut,
    openapi_extra=LOGIN_BODY,
    responses=problem_responses(LoginHandler, SecondStep, body=True),
)
async def login(request: Request, handler: deps.Login, client: deps.Client) -> TokenPairOut:
    """Exchange an email-or-username and password for an access token and a refresh token.

    JSON ``{login, password}``, or a form with ``username`` and ``password`` (OAuth2 password flow, as /docs uses).

    With two-factor authentication on, the answer is instead 403 ``mfa_required``, with the members ``mfa_token``
    (valid 5 minutes), ``mfa_methods`` (``["totp", "recovery_code"]``) and ``expires_in``, and no tokens: send the
    token and a code to ``POST /api/v1/auth/login/mfa``.
    """
    body = await _login_body(request)
    return signed_in_or_second_step(
        await handler(commands.Login(login=body.login, password=body.password, client=client))
    )


@router.post(
    "/login/mfa",
    operation_id="auth_login_mfa",
    response_model=TokenPairOut,
    responses=problem_responses(LoginMfaHandler, body=True),
)
async def login_mfa(body: LoginMfaIn, handler: deps.LoginMfa, client: deps.Client) -> TokenPairOut:
    """The second step of a sign-in with two-factor authentication: the ``mfa_token`` of the login's answer and a
    6-digit code of the authenticator app or a recovery code. Five wrong codes end the ``mfa_token`` (401
    ``invalid_mfa_token``: sign in again with the password); wrong codes also count against the account's failed-login
    limits."""
    result = await handler(commands.LoginMfa(mfa_token=body.mfa_token, code=body.code, client=client))
    return token_pair_out(result.tokens)


@router.post(
    "/refresh",
    operation_id="auth_refresh",
    response_model=TokenPairOut,
    responses=problem_responses(RefreshSessionHandler, body=True),
)
async def refresh(body: RefreshIn, handler: deps.RefreshSession, client: deps.Client) -> TokenPairOut:
    """Rotate a refresh token: the answer holds a new pair and the presented token is dead from now on."""
    pair = await handler(commands.RefreshSession(refresh_token=body.refresh_token, client=client))
    return token_pair_out(pair)


@router.post(
    "/logout",
    operation_id="auth_logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(LogoutHandler, bearer=True),
)
async def logout(principal: deps.CurrentPrincipal, handler: deps.Logout, client: deps.Client) -> Response:
    """End this session: its refresh token and access tokens stop working."""
    await handler(commands.Logout(user_id=principal.user_id, session_id=principal.session_id, client=client))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


FORGOT_PASSWORD_ANSWER = ForgotPasswordOut(
    detail="If an account uses this address, a link to reset its password has been sent to it."
)


@router.post(
    "/password/forgot",
    operation_id="auth_password_forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ForgotPasswordOut,
    responses=problem_responses(ForgotPasswordHandler, body=True),
)
@field_errors(email=InvalidEmail)
async def forgot_password(
    body: ForgotPasswordIn, handler: deps.ForgotPassword, client: deps.Client
) -> ForgotPasswordOut:
    """Ask for a password reset link. The answer is the same whether or not an account has the address; the link
    (valid for ``USERMGMT_PASSWORD_RESET_TTL``) goes to the account's address, if it has one that may sign in."""
    await handler(commands.ForgotPassword(email=body.email, client=client))
    return FORGOT_PASSWORD_ANSWER


@router.post(
    "/password/reset",
    operation_id="auth_password_reset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(ResetPasswordHandler, body=True),
)
@field_errors(new_password=WeakPassword)
async def reset_password(body: ResetPasswordIn, handler: deps.ResetPassword, client: deps.Client) -> Response:
    """Set a new password with the token of a reset link. Every session of the account ends; nobody is signed in
    (log in with the new password)."""
    await handler(commands.ResetPassword(token=body.token, new_password=body.new_password, client=client))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/email/verify",
    operation_id="auth_email_verify",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(VerifyEmailHandler, body=True),
)
async def verify_email(body: EmailTokenIn, handler: deps.VerifyEmail, client: deps.Client) -> Response:
    """Verify the account's address with the token of a verification link."""
    await handler(commands.VerifyEmail(token=body.token, client=client))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/email/confirm",
    operation_id="auth_email_confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(ConfirmEmailChangeHandler, body=True),
)
async def confirm_email_change(body: EmailTokenIn, handler: deps.ConfirmEmailChange, client: deps.Client) -> Response:
    """Finish an address change with the token of the link sent to the new address: the account moves to it,
    verified, and the old address is told."""
    await handler(commands.ConfirmEmailChange(token=body.token, client=client))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/account/restore",
    operation_id="auth_account_restore",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(RestoreAccountHandler, body=True),
)
async def restore_account(body: EmailTokenIn, handler: deps.RestoreAccount, client: deps.Client) -> Response:
    """Undo a deletion within its grace period, with the token of the link the deletion sent
    (``{FRONTEND_URL}/restore-account?token=…``). The account is active again; sign in again."""
    await handler(commands.RestoreAccount(token=body.token, client=client))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
