"""FastAPI dependencies: handlers from the container, the authenticated caller, client details."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer

from usermgmt.application import commands
from usermgmt.application.errors import InvalidAccessToken
from usermgmt.application.handlers.authenticate import AuthenticateHandler
from usermgmt.application.handlers.change_password import ChangePasswordHandler
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.email_address import (
    ConfirmEmailChangeHandler,
    RequestEmailChangeHandler,
    ResendVerificationHandler,
    VerifyEmailHandler,
)
from usermgmt.application.handlers.federation import (
    FinishProviderSignInHandler,
    ListIdentitiesHandler,
    ListProvidersHandler,
    RedeemLoginCodeHandler,
    StartIdentityLinkHandler,
    StartProviderSignInHandler,
    UnlinkIdentityHandler,
)
from usermgmt.application.handlers.introspect import IntrospectTokenHandler
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.logout import LogoutHandler
from usermgmt.application.handlers.mfa import (
    ConfirmTotpEnrolmentHandler,
    DisableTotpHandler,
    GetMfaStatusHandler,
    LoginMfaHandler,
    RegenerateRecoveryCodesHandler,
    StartTotpEnrolmentHandler,
)
from usermgmt.application.handlers.password_reset import ForgotPasswordHandler, ResetPasswordHandler
from usermgmt.application.handlers.privacy import ExportDataHandler, RestoreAccountHandler
from usermgmt.application.handlers.refresh_session import RefreshSessionHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.application.handlers.sessions import ListEventsHandler, ListSessionsHandler, RevokeSessionHandler
from usermgmt.application.handlers.update_profile import UpdateProfileHandler
from usermgmt.application.results import Principal
from usermgmt.entrypoints.http.client_ip import client_ip, forwarded_for
from usermgmt.entrypoints.logging import request_id_var

LOGIN_PATH = "/api/v1/auth/login"
USER_AGENT_MAX = 512


def provided(name: str) -> Any:
    """``Depends`` on the container provider ``name`` of the app serving the request (no global wiring)."""

    async def dependency(request: Request) -> Any:  # async: a plain def would cost a thread hop per request
        return getattr(request.app.state.container, name)()

    dependency.__name__ = f"provide_{name}"
    return Depends(dependency)


RegisterUser = Annotated[RegisterUserHandler, provided("register_user")]
Login = Annotated[LoginHandler, provided("login")]
RefreshSession = Annotated[RefreshSessionHandler, provided("refresh_session")]
Logout = Annotated[LogoutHandler, provided("logout")]
UpdateProfile = Annotated[UpdateProfileHandler, provided("update_profile")]
ChangePassword = Annotated[ChangePasswordHandler, provided("change_password")]
DeleteAccount = Annotated[DeleteAccountHandler, provided("delete_account")]
ListSessions = Annotated[ListSessionsHandler, provided("list_sessions")]
RevokeSession = Annotated[RevokeSessionHandler, provided("revoke_session")]
ListEvents = Annotated[ListEventsHandler, provided("list_events")]
VerifyEmail = Annotated[VerifyEmailHandler, provided("verify_email")]
ResendVerification = Annotated[ResendVerificationHandler, provided("resend_verification")]
RequestEmailChange = Annotated[RequestEmailChangeHandler, provided("request_email_change")]
ConfirmEmailChange = Annotated[ConfirmEmailChangeHandler, provided("confirm_email_change")]
ForgotPassword = Annotated[ForgotPasswordHandler, provided("forgot_password")]
ResetPassword = Annotated[ResetPasswordHandler, provided("reset_password")]
GetMfaStatus = Annotated[GetMfaStatusHandler, provided("get_mfa_status")]
StartTotp = Annotated[StartTotpEnrolmentHandler, provided("start_totp")]
ConfirmTotp = Annotated[ConfirmTotpEnrolmentHandler, provided("confirm_totp")]
DisableTotp = Annotated[DisableTotpHandler, provided("disable_totp")]
RegenerateRecoveryCodes = Annotated[RegenerateRecoveryCodesHandler, provided("regenerate_recovery_codes")]
LoginMfa = Annotated[LoginMfaHandler, provided("login_mfa")]
ExportData = Annotated[ExportDataHandler, provided("export_data")]
RestoreAccount = Annotated[RestoreAccountHandler, provided("restore_account")]
Introspect = Annotated[IntrospectTokenHandler, provided("introspect")]
StartProviderSignIn = Annotated[StartProviderSignInHandler, provided("start_provider_sign_in")]
FinishProviderSignIn = Annotated[FinishProviderSignInHandler, provided("finish_provider_sign_in")]
RedeemLoginCode = Annotated[RedeemLoginCodeHandler, provided("redeem_login_code")]
StartIdentityLink = Annotated[StartIdentityLinkHandler, provided("start_identity_link")]
ListIdentities = Annotated[ListIdentitiesHandler, provided("list_identities")]
ListProviders = Annotated[ListProvidersHandler, provided("list_providers")]
UnlinkIdentity = Annotated[UnlinkIdentityHandler, provided("unlink_identity")]


class BearerPrincipal(OAuth2PasswordBearer):
    """The caller, from ``Authorization: Bearer``. One dependency that is also the OpenAPI security scheme (so the
    /docs Authorize button works): the hot path of every protected route resolves nothing else."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        token = await super().__call__(request)
        if not token:
            raise InvalidAccessToken("Authentication required: send 'Authorization: Bearer <access token>'.")
        authenticate: AuthenticateHandler = request.app.state.container.authenticate()
        return await authenticate(commands.Authenticate(access_token=token))


current_principal = BearerPrincipal(tokenUrl=LOGIN_PATH, scheme_name="OAuth2PasswordBearer", auto_error=False)
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def client_info(request: Request) -> commands.ClientInfo:
    user_agent = request.headers.get("user-agent")
    peer = request.client.host if request.client else None
    return commands.ClientInfo(
        user_agent=user_agent[:USER_AGENT_MAX].replace("\x00", "") if user_agent else None,
        ip=client_ip(
            peer, forwarded_for(request.headers.getlist("x-forwarded-for")), request.app.state.trusted_proxies
        ),
        request_id=request_id_var.get(),
    )


Client = Annotated[commands.ClientInfo, Depends(client_info)]


def password_for(principal: Principal, password: str | None) -> str | None:
    """The password a re-authenticating route was sent: only an account without one may send none (it proves a
    recent sign-in instead); for any other, a missing password is the 422 a required field always was."""
    if password is None and principal.has_password:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body", "password"), "msg": "Field required", "input": None}]
        )
    return password
