"""/api/v1/admin: accounts, their sessions and roles, and the audit trail. Each use case checks its own permission:
this adapter only passes the caller (``Actor``) along."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import BeforeValidator

from usermgmt.application import commands
from usermgmt.application.handlers import admin as handlers
from usermgmt.application.handlers.stats import StatsHandler
from usermgmt.application.results import Principal
from usermgmt.domain.errors import InvalidEmail, InvalidFullName, InvalidUsername
from usermgmt.domain.events import EventType
from usermgmt.domain.roles import InvalidRoleName, UnknownPermission
from usermgmt.domain.value_objects import UserId
from usermgmt.entrypoints.http import dependencies as deps
from usermgmt.entrypoints.http.errors import field_errors, problem_responses
from usermgmt.entrypoints.http.routers.presenters import (
    admin_event_page_out,
    admin_user_detail_out,
    receipt_out,
    role_out,
    session_out,
    stats_out,
    user_page_out,
)
from usermgmt.entrypoints.http.routing import StrictJsonRoute
from usermgmt.entrypoints.http.schemas import (
    AdminEventPageOut,
    AdminUserDetailOut,
    AdminUserPatch,
    DeletionReceiptOut,
    EmailSentOut,
    RoleIn,
    RoleOut,
    RolePatch,
    RolesIn,
    SessionOut,
    StatsOut,
    UserPageOut,
    UserRolesOut,
)

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], route_class=StrictJsonRoute)


async def admin_actor(principal: deps.CurrentPrincipal, client: deps.Client) -> commands.Actor:
    return actor_of(principal, client)


def actor_of(principal: Principal, client: commands.ClientInfo) -> commands.Actor:
    return commands.Actor(user_id=principal.user_id, permissions=principal.permissions, client=client)


AdminActor = Annotated[commands.Actor, Depends(admin_actor)]
TargetId = Annotated[UUID, Path(description="The user's id.")]
RoleName = Annotated[str, Path(max_length=64, description="The role's name.")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")]
EventCursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]


def _target(actor: commands.Actor, user_id: UUID) -> commands.TargetUser:
    return commands.TargetUser(actor=actor, user_id=UserId(user_id))


# --- users ---------------------------------------------------------------------------------------------------------


@router.get(
    "/users",
    operation_id="admin_users_list",
    response_model=UserPageOut,
    responses=problem_responses(handlers.ListUsersHandler, parameters=True, bearer=True),
)
async def list_users(
    actor: AdminActor,
    handler: Annotated[handlers.ListUsersHandler, deps.provided("admin_list_users")],
    query: Annotated[str | None, Query(max_length=254, description="Email or username prefix, any case.")] = None,
    role: Annotated[str | None, Query(max_length=64, description="Only holders of this role.")] = None,
    status_: Annotated[Literal["active", "disabled"] | None, Query(alias="status")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> UserPageOut:
    """Users, newest first (permission `users:read`)."""
    active = None if status_ is None else status_ == "active"
    page = await handler(
        commands.ListUsers(actor=actor, query=query, role=role, active=active, limit=limit, cursor=cursor)
    )
    return user_page_out(page)


@router.get(
    "/users/{user_id}",
    operation_id="admin_user_get",
    response_model=AdminUserDetailOut,
    responses=problem_responses(handlers.GetUserHandler, parameters=True, bearer=True),
)
async def get_user(
    user_id: TargetId,
    actor: AdminActor,
    handler: Annotated[handlers.GetUserHandler, deps.provided("admin_get_user")],
) -> AdminUserDetailOut:
    """A user with their roles, last sign-in and second-factor status (permission `users:read`)."""
    return admin_user_detail_out(await handler(_target(actor, user_id)))


@router.patch(
    "/users/{user_id}",
    operation_id="admin_user_update",
    response_model=AdminUserDetailOut,
    responses=problem_responses(handlers.AdministerUserHandler, body=True, parameters=True, bearer=True),
)
@field_errors(username=InvalidUsername, full_name=InvalidFullName, email=InvalidEmail)
async def update_user(
    user_id: TargetId,
    body: AdminUserPatch,
    actor: AdminActor,
    handler: Annotated[handlers.AdministerUserHandler, deps.provided("admin_update_user")],
) -> AdminUserDetailOut:
    """Change username, full name, address (set as verified; the old address is told) or the verified flag
    (permission `users:write`). `null` removes the username or full name."""
    given = body.model_fields_set
    view = await handler(
        commands.AdministerUser(
            actor=actor,
            user_id=UserId(user_id),
            username=body.username,
            full_name=body.full_name,
            email=body.email,
            email_verified=body.email_verified,
            clear=frozenset(f for f in ("username", "full_name") if f in given and getattr(body, f) is None),
        )
    )
    return admin_user_detail_out(view)


@router.post(
    "/users/{user_id}/disable",
    operation_id="admin_user_disable",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(handlers.DisableUserHandler, parameters=True, bearer=True),
)
async def disable_user(
    user_id: TargetId,
    actor: AdminActor,
    handler: Annotated[handlers.DisableUserHandler, deps.provided("admin_disable_user")],
) -> Response:
    """Disable sign-in and end every session at once (permission `users:disable`)."""
    await handler(_target(actor, user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{user_id}/enable",
    operation_id="admin_user_enable",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(handlers.EnableUserHandler, parameters=True, bearer=True),
)
async def enable_user(
    user_id: TargetId,
    actor: AdminActor,
    handler: Annotated[handlers.EnableUserHandler, deps.provided("admin_enable_user")],
) -> Response:
    """Allow sign-in again (permission `users:disable`)."""
    await handler(_target(actor, user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/users/{user_id}",
    operation_id="admin_user_delete",
    response_model=DeletionReceiptOut,
    responses=problem_responses(handlers.DeleteUserHandler, parameters=True, bearer=True),
)
async def delete_user(
    user_id: TargetId,
    actor: AdminActor,
    handler: Annotated[handlers.DeleteUserHandler, deps.provided("admin_delete_user")],
) -> DeletionReceiptOut:
    """Erase the account, as its owner's deletion does (permission `users:delete`)."""
    return receipt_out(await handler(_target(actor, user_id)))


@router.get(
    "/users/{user_id}/sessions",
    operation_id="admin_user_sessions_list",
    response_model=list[SessionOut],
    responses=problem_responses(handlers.ListUserSessionsHandler, parameters=True, bearer=True),
)
async def list_user_sessions(
    user_id: TargetId,
    actor: AdminActor,
    handler: Annotated[handlers.ListUserSessionsHandler, deps.provided("admin_list_user_sessions")],
) -> list[SessionOut]:
    """The user's live sessions, most recently used first (permission `users:read`)."""
    return [session_out(view) for view in await handler(_target(actor, user_id))]


@router.delete(
    "/users/{user_id}/sessions",
    operation_id="admin_user_sessions_revoke",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(handlers.RevokeUserSessionsHandler, parameters=True, bearer=True),
)
async def revoke_user_sessions(
    user_id: TargetId,
    actor: AdminActor,
    handler: Annotated[handlers.RevokeUserSessionsHandler, deps.provided("admin_revoke_user_sessions")],
) -> Response:
    """Sign the user out everywhere (permission `sessions:revoke`)."""
    await handler(_target(actor, user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/users/{user_id}/events",
    operation_id="admin_user_events_list",
    response_model=AdminEventPageOut,
    responses=problem_responses(handlers.ListUserEventsHandler, parameters=True, bearer=True),
)
async def list_user_events(
    user_id: TargetId,
    actor: AdminActor,
    handler: Annotated[handlers.ListUserEventsHandler, deps.provided("admin_list_user_events")],
    limit: Limit = 20,
    cursor: EventCursor = None,
) -> AdminEventPageOut:
    """The user's security history with its internal details (permission `events:read`)."""
    page = await handler(
        commands.ListUserEvents(
            actor=actor, user_id=UserId(user_id), limit=limit, before=int(cursor) if cursor else None
        )
    )
    return admin_event_page_out(page)


@router.put(
    "/users/{user_id}/roles",
    operation_id="admin_user_roles_set",
    response_model=UserRolesOut,
    responses=problem_responses(handlers.SetUserRolesHandler, body=True, parameters=True, bearer=True),
)
async def set_user_roles(
    user_id: TargetId,
    body: RolesIn,
    actor: AdminActor,
    handler: Annotated[handlers.SetUserRolesHandler, deps.provided("admin_set_user_roles")],
) -> UserRolesOut:
    """Make these the user's roles (permission `roles:manage`)."""
    roles = await handler(commands.SetUserRoles(actor=actor, user_id=UserId(user_id), roles=tuple(body.roles)))
    return UserRolesOut(roles=list(roles))


@router.post(
    "/users/{user_id}/mfa/reset",
    operation_id="admin_user_mfa_reset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(handlers.ResetUserMfaHandler, parameters=True, bearer=True),
)
async def reset_user_mfa(
    user_id: TargetId,
    actor: AdminActor,
    handler: Annotated[handlers.ResetUserMfaHandler, deps.provided("admin_reset_user_mfa")],
) -> Response:
    """Turn the user's two-factor authentication off, recovery codes included; the owner is told (permission
    `users:write`)."""
    await handler(_target(actor, user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{user_id}/password-reset",
    operation_id="admin_user_password_reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EmailSentOut,
    responses=problem_responses(handlers.SendPasswordResetHandler, parameters=True, bearer=True),
)
async def send_password_reset(
    user_id: TargetId,
    actor: AdminActor,
    handler: Annotated[handlers.SendPasswordResetHandler, deps.provided("admin_send_password_reset")],
) -> EmailSentOut:
    """Send the user a password-reset link (permission `users:write`)."""
    await handler(_target(actor, user_id))
    return EmailSentOut(detail="A password reset link has been sent to the user's address.")


# --- roles ---------------------------------------------------------------------------------------------------------


@router.get(
    "/roles",
    operation_id="admin_roles_list",
    response_model=list[RoleOut],
    responses=problem_responses(handlers.ListRolesHandler, bearer=True),
)
async def list_roles(
    actor: AdminActor, handler: Annotated[handlers.ListRolesHandler, deps.provided("admin_list_roles")]
) -> list[RoleOut]:
    """Every role, by name (permission `roles:manage`)."""
    return [role_out(role) for role in await handler(commands.ListRoles(actor=actor))]


@router.post(
    "/roles",
    operation_id="admin_role_create",
    status_code=status.HTTP_201_CREATED,
    response_model=RoleOut,
    responses=problem_responses(handlers.CreateRoleHandler, body=True, bearer=True),
)
@field_errors(name=InvalidRoleName, permissions=UnknownPermission)
async def create_role(
    body: RoleIn,
    actor: AdminActor,
    handler: Annotated[handlers.CreateRoleHandler, deps.provided("admin_create_role")],
) -> RoleOut:
    """Create a role (permission `roles:manage`)."""
    role = await handler(
        commands.CreateRole(
            actor=actor, name=body.name, permissions=tuple(body.permissions), description=body.description
        )
    )
    return role_out(role)


@router.patch(
    "/roles/{name}",
    operation_id="admin_role_update",
    response_model=RoleOut,
    responses=problem_responses(handlers.UpdateRoleHandler, body=True, parameters=True, bearer=True),
)
@field_errors(permissions=UnknownPermission)
async def update_role(
    name: RoleName,
    body: RolePatch,
    actor: AdminActor,
    handler: Annotated[handlers.UpdateRoleHandler, deps.provided("admin_update_role")],
) -> RoleOut:
    """Change a custom role's permissions or description (permission `roles:manage`); its holders see the change
    at their next request."""
    role = await handler(
        commands.UpdateRole(
            actor=actor,
            name=name,
            permissions=tuple(body.permissions) if body.permissions is not None else None,
            description=body.description,
        )
    )
    return role_out(role)


@router.delete(
    "/roles/{name}",
    operation_id="admin_role_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(handlers.DeleteRoleHandler, parameters=True, bearer=True),
)
async def delete_role(
    name: RoleName,
    actor: AdminActor,
    handler: Annotated[handlers.DeleteRoleHandler, deps.provided("admin_delete_role")],
) -> Response:
    """Delete a custom role, taking it from everyone who held it (permission `roles:manage`)."""
    await handler(commands.DeleteRole(actor=actor, name=name))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- the audit trail -----------------------------------------------------------------------------------------------


@router.get(
    "/events",
    operation_id="admin_events_list",
    response_model=AdminEventPageOut,
    responses=problem_responses(handlers.ListAuditTrailHandler, parameters=True, bearer=True),
)
async def list_events(
    actor: AdminActor,
    handler: Annotated[handlers.ListAuditTrailHandler, deps.provided("admin_list_events")],
    type_: Annotated[EventType | None, Query(alias="type", description="Only events of this type.")] = None,
    actor_id: Annotated[UUID | None, Query(alias="actor", description="Only this administrator's actions.")] = None,
    user: Annotated[UUID | None, Query(description="Only this account's events.")] = None,
    limit: Limit = 20,
    cursor: EventCursor = None,
) -> AdminEventPageOut:
    """Every account's security events, administrators' actions included, newest first (permission
    `events:read`)."""
    page = await handler(
        commands.ListAuditTrail(
            actor=actor,
            type=type_,
            actor_id=UserId(actor_id) if actor_id else None,
            user_id=UserId(user) if user else None,
            limit=limit,
            before=int(cursor) if cursor else None,
        )
    )
    return admin_event_page_out(page)


# --- the KPIs ------------------------------------------------------------------------------------------------------

_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_date_time(value: object) -> object:
    """Only an ISO 8601 date and time: pydantic would also take a bare number (seconds since 1970) or a date."""
    if isinstance(value, str) and not _ISO_DATE_TIME.match(value):
        raise ValueError("an ISO 8601 date and time, such as 2026-12-01T00:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_date_time)]


@router.get(
    "/stats",
    operation_id="admin_stats_get",
    response_model=StatsOut,
    responses=problem_responses(StatsHandler, parameters=True, bearer=True),
)
async def get_stats(
    actor: AdminActor,
    handler: Annotated[StatsHandler, deps.provided("admin_stats")],
    from_: Annotated[
        IsoDateTime | None,
        Query(alias="from", description="The period's start (ISO 8601; no offset: UTC). Default: 30 days before to."),
    ] = None,
    to: Annotated[IsoDateTime | None, Query(description="The period's end, excluded (ISO 8601). Default: now.")] = None,
) -> StatsOut:
    """The service's KPIs over [from, to), at most 366 days, computed from the audit trail (permission
    `events:read`): registrations, sign-in success rate and latency, 2FA adoption, 7-day retention, password-reset
    time, deletions processed within 24 hours. docs/operations.md defines each figure."""
    return stats_out(await handler(commands.GetStats(actor=actor, from_=from_, to=to)))
