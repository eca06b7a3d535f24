"""/api/v1/users/me/mfa: two-factor authentication of the caller's account (TOTP and recovery codes)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from usermgmt.application import commands
from usermgmt.application.handlers.mfa import (
    ConfirmTotpEnrolmentHandler,
    DisableTotpHandler,
    GetMfaStatusHandler,
    RegenerateRecoveryCodesHandler,
    StartTotpEnrolmentHandler,
)
from usermgmt.entrypoints.http import dependencies as deps
from usermgmt.entrypoints.http.errors import problem_responses
from usermgmt.entrypoints.http.routing import StrictJsonRoute
from usermgmt.entrypoints.http.schemas import (
    MfaCodeIn,
    MfaStatusOut,
    PasswordAndCodeIn,
    ReauthIn,
    RecoveryCodesOut,
    TotpEnrolmentOut,
)

router = APIRouter(prefix="/api/v1/users/me/mfa", tags=["mfa"], route_class=StrictJsonRoute)
NO_STORE = {"Cache-Control": "no-store"}  # secrets and recovery codes must not linger in caches


@router.get(
    "",
    operation_id="users_me_mfa_get",
    response_model=MfaStatusOut,
    responses=problem_responses(GetMfaStatusHandler, bearer=True),
)
async def get_mfa(principal: deps.CurrentPrincipal, handler: deps.GetMfaStatus) -> MfaStatusOut:
    """Whether TOTP is on, since when, and how many recovery codes are left."""
    found = await handler(commands.GetMfaStatus(user_id=principal.user_id))
    return MfaStatusOut(
        totp_enabled=found.totp_enabled, enabled_at=found.enabled_at, recovery_codes_left=found.recovery_codes_left
    )


@router.post(
    "/totp",
    operation_id="users_me_mfa_totp_start",
    response_model=TotpEnrolmentOut,
    responses=problem_responses(StartTotpEnrolmentHandler, body=True, bearer=True),
)
async def start_totp(
    body: ReauthIn, response: Response, principal: deps.CurrentPrincipal, handler: deps.StartTotp, client: deps.Client
) -> TotpEnrolmentOut:
    """Start enrolling an authenticator app (the password first). TOTP stays off until ``/totp/confirm``; starting
    again replaces a pending secret."""
    enrolment = await handler(
        commands.StartTotpEnrolment(
            user_id=principal.user_id,
            password=deps.password_for(principal, body.password),
            session_id=principal.session_id,
            client=client,
        )
    )
    response.headers.update(NO_STORE)
    return TotpEnrolmentOut(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri, qr_svg=enrolment.qr_svg)


@router.post(
    "/totp/confirm",
    operation_id="users_me_mfa_totp_confirm",
    response_model=RecoveryCodesOut,
    responses=problem_responses(ConfirmTotpEnrolmentHandler, body=True, bearer=True),
)
async def confirm_totp(
    body: MfaCodeIn,
    response: Response,
    principal: deps.CurrentPrincipal,
    handler: deps.ConfirmTotp,
    client: deps.Client,
) -> RecoveryCodesOut:
    """Turn TOTP on with a current code of the enrolled app. The answer holds the recovery codes, shown only now;
    every other session of the account ends."""
    codes = await handler(
        commands.ConfirmTotpEnrolment(
            user_id=principal.user_id, code=body.code, session_id=principal.session_id, client=client
        )
    )
    response.headers.update(NO_STORE)
    return RecoveryCodesOut(recovery_codes=list(codes.codes))


@router.delete(
    "/totp",
    operation_id="users_me_mfa_totp_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(DisableTotpHandler, body=True, bearer=True),
)
async def disable_totp(
    body: PasswordAndCodeIn, principal: deps.CurrentPrincipal, handler: deps.DisableTotp, client: deps.Client
) -> Response:
    """Turn TOTP off, with the password and a current code (or a recovery code); the recovery codes go too."""
    await handler(
        commands.DisableTotp(
            user_id=principal.user_id,
            password=deps.password_for(principal, body.password),
            code=body.code,
            session_id=principal.session_id,
            client=client,
        )
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/recovery-codes",
    operation_id="users_me_mfa_recovery_codes",
    response_model=RecoveryCodesOut,
    responses=problem_responses(RegenerateRecoveryCodesHandler, body=True, bearer=True),
)
async def regenerate_recovery_codes(
    body: PasswordAndCodeIn,
    response: Response,
    principal: deps.CurrentPrincipal,
    handler: deps.RegenerateRecoveryCodes,
    client: deps.Client,
) -> RecoveryCodesOut:
    """A new set of recovery codes, with the password and a current code; the old set stops working."""
    codes = await handler(
        commands.RegenerateRecoveryCodes(
            user_id=principal.user_id,
            password=deps.password_for(principal, body.password),
            code=body.code,
            session_id=principal.session_id,
            client=client,
        )
    )
    response.headers.update(NO_STORE)
    return RecoveryCodesOut(recovery_codes=list(codes.codes))
