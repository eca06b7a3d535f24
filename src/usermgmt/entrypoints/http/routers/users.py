"""/api/v1/users/me: the caller's profile, password, sessions and account."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse

from usermgmt.application import commands
from usermgmt.application.handlers.change_password import ChangePasswordHandler
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.email_address import RequestEmailChangeHandler, ResendVerificationHandler
from usermgmt.application.handlers.privacy import ExportDataHandler
from usermgmt.application.handlers.sessions import ListEventsHandler, ListSessionsHandler, RevokeSessionHandler
from usermgmt.application.handlers.update_profile import UpdateProfileHandler
from usermgmt.application.results import ErasureScheduled
from usermgmt.domain.errors import InvalidEmail, InvalidFullName, InvalidUsername, WeakPassword
from usermgmt.domain.value_objects import SessionId
from usermgmt.entrypoints.http import dependencies as deps
from usermgmt.entrypoints.http.errors import field_errors, problem_responses
from usermgmt.entrypoints.http.routers.presenters import (
    event_page_out,
    export_out,
    principal_out,
    receipt_out,
    session_out,
    user_out,
)
from usermgmt.entrypoints.http.routing import StrictJsonRoute
from usermgmt.entrypoints.http.schemas import (
    ChangePasswordIn,
    DeleteAccountIn,
    DeletionReceiptOut,
    EmailChangeIn,
    EmailSentOut,
    ErasureScheduledOut,
    EventPageOut,
    ExportOut,
    PasswordIn,
    ProfilePatch,
    SessionOut,
    UserOut,
)

router = APIRouter(prefix="/api/v1/users/me", tags=["users"], route_class=StrictJsonRoute)


@router.get("", operation_id="users_me_get", response_model=UserOut, responses=problem_responses(bearer=True))
async def get_me(principal: deps.CurrentPrincipal) -> UserOut:
    """The caller's profile."""
    return principal_out(principal)


@router.patch(
    "",
    operation_id="users_me_update",
    response_model=UserOut,
    responses=problem_responses(UpdateProfileHandler, body=True, bearer=True),
)
@field_errors(username=InvalidUsername, full_name=InvalidFullName)
async def update_me(
    body: ProfilePatch, principal: deps.CurrentPrincipal, handler: deps.UpdateProfile, client: deps.Client
) -> UserOut:
    """Change username or full name; ``null`` removes either. The email address is not accepted here (422): it
    changes through ``POST /users/me/email`` and the link sent to the new address."""
    given = body.model_fields_set
    user = await handler(
        commands.UpdateProfile(
            user_id=principal.user_id,
            username=body.username,
            full_name=body.full_name,
            clear=frozenset(f for f in ("username", "full_name") if f in given and getattr(body, f) is None),
            client=client,
        )
    )
    return user_out(user)


@router.post(
    "/email/verification",
    operation_id="users_me_email_verification_send",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EmailSentOut,
    responses=problem_responses(ResendVerificationHandler, bearer=True),
)
async def resend_verification(
    principal: deps.CurrentPrincipal, handler: deps.ResendVerification, client: deps.Client
) -> EmailSentOut:
    """Send a fresh verification link to the caller's address (older links stop working)."""
    await handler(commands.ResendVerification(user_id=principal.user_id, client=client))
    return EmailSentOut(detail="A new verification link has been sent to your email address.")


@router.post(
    "/email",
    operation_id="users_me_email_change",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EmailSentOut,
    responses=problem_responses(RequestEmailChangeHandler, body=True, bearer=True),
)
@field_errors(new_email=InvalidEmail)
async def request_email_change(
    body: EmailChangeIn, principal: deps.CurrentPrincipal, handler: deps.RequestEmailChange, client: deps.Client
) -> EmailSentOut:
    """Ask to move the account to ``new_email``, with the current password. The address stays the current one
    (shown as ``pending_email`` meanwhile) until the link sent to the new address is followed; the current address
    is told at once."""
    await handler(
        commands.RequestEmailChange(
            user_id=principal.user_id,
            new_email=body.new_email,
            password=deps.password_for(principal, body.password),
            session_id=principal.session_id,
            client=client,
        )
    )
    return EmailSentOut(detail="A link to confirm the change has been sent to the new address.")


@router.post(
    "/password",
    operation_id="users_me_password_change",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(ChangePasswordHandler, body=True, bearer=True),
)
@field_errors(new_password=WeakPassword)
async def change_password(
    body: ChangePasswordIn, principal: deps.CurrentPrincipal, handler: deps.ChangePassword, client: deps.Client
) -> Response:
    """Change the password; every other session of the user is revoked, this one stays."""
    await handler(
        commands.ChangePassword(
            user_id=principal.user_id,
            session_id=principal.session_id,
            current_password=body.current_password,
            new_password=body.new_password,
            client=client,
        )
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "",
    operation_id="users_me_delete",
    response_model=DeletionReceiptOut,
    responses={
        status.HTTP_202_ACCEPTED: {
            "model": ErasureScheduledOut,
            "description": "With USERMGMT_DELETION_GRACE_PERIOD: disabled now, erased at erasure_at.",
        },
        **problem_responses(DeleteAccountHandler, body=True, bearer=True),
    },
)
async def delete_me(
    principal: deps.CurrentPrincipal,
    handler: deps.DeleteAccount,
    client: deps.Client,
    body: DeleteAccountIn | None = None,
) -> DeletionReceiptOut | JSONResponse:
    """Erase the account and everything that names it; the answer (200) is a receipt of what was erased.

    With a deletion grace period configured, the account is disabled and signed out everywhere at once, and erased
    at the end of the period (202 ``{erasure_at}``) unless the link sent to its address restores it first."""
    password = deps.password_for(principal, body.password if body is not None else None)
    result = await handler(
        commands.DeleteAccount(
            user_id=principal.user_id,
            session_id=principal.session_id,
            password=password,
            client=client,
        )
    )
    if isinstance(result, ErasureScheduled):
        scheduled = ErasureScheduledOut(erasure_at=result.erasure_at)
        return JSONResponse(scheduled.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    return receipt_out(result)


EXPORT_DISPOSITION = 'attachment; filename="usermgmt-export.json"'


@router.get(
    "/export",
    operation_id="users_me_export",
    response_model=ExportOut,
    responses=problem_responses(ExportDataHandler, bearer=True),
)
async def export_me(
    response: Response, principal: deps.CurrentPrincipal, handler: deps.ExportData, client: deps.Client
) -> ExportOut:
    """Everything the service holds about the caller, as a download (docs/schemas/export-v1.schema.json). Needs a
    sign-in of this session within the last 10 minutes (403 ``recent_sign_in_required`` otherwise: sign in again,
    or use the POST variant with the password). 3 an hour."""
    export = await handler(
        commands.ExportData(user_id=principal.user_id, session_id=principal.session_id, client=client)
    )
    response.headers["Content-Disposition"] = EXPORT_DISPOSITION
    return export_out(export)


@router.post(
    "/export",
    operation_id="users_me_export_with_password",
    response_model=ExportOut,
    responses=problem_responses(ExportDataHandler, body=True, bearer=True),
)
async def export_me_with_password(
    body: PasswordIn,
    response: Response,
    principal: deps.CurrentPrincipal,
    handler: deps.ExportData,
    client: deps.Client,
) -> ExportOut:
    """The export, with the current password instead of a recent sign-in (403 ``invalid_password`` when wrong)."""
    export = await handler(
        commands.ExportData(
            user_id=principal.user_id, session_id=principal.session_id, password=body.password, client=client
        )
    )
    response.headers["Content-Disposition"] = EXPORT_DISPOSITION
    return export_out(export)


@router.get(
    "/sessions",
    operation_id="users_me_sessions_list",
    response_model=list[SessionOut],
    responses=problem_responses(ListSessionsHandler, bearer=True),
)
async def list_sessions(principal: deps.CurrentPrincipal, handler: deps.ListSessions) -> list[SessionOut]:
    """The caller's live sessions, most recently used first."""
    views = await handler(commands.ListSessions(user_id=principal.user_id, current_session_id=principal.session_id))
    return [session_out(view) for view in views]


@router.delete(
    "/sessions/{session_id}",
    operation_id="users_me_session_revoke",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(RevokeSessionHandler, parameters=True, bearer=True),
)
async def revoke_session(
    session_id: UUID, principal: deps.CurrentPrincipal, handler: deps.RevokeSession, client: deps.Client
) -> Response:
    """End one of the caller's sessions."""
    await handler(commands.RevokeSession(user_id=principal.user_id, session_id=SessionId(session_id), client=client))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/events",
    operation_id="users_me_events_list",
    response_model=EventPageOut,
    responses=problem_responses(ListEventsHandler, parameters=True, bearer=True),
)
async def list_events(
    principal: deps.CurrentPrincipal,
    handler: deps.ListEvents,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page.")
    ] = None,
) -> EventPageOut:
    """The caller's security history, newest first: where and when the account was used and changed."""
    page = await handler(
        commands.ListEvents(user_id=principal.user_id, limit=limit, before=int(cursor) if cursor else None)
    )
    return event_page_out(page)
