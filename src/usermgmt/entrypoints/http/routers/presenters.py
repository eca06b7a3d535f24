"""Results of the core -> response bodies."""

from __future__ import annotations

from uuid import UUID

from usermgmt.application.results import (
    AdminUserView,
    DataExport,
    DeletionReceipt,
    EventPage,
    MfaStatus,
    Principal,
    SessionView,
    Stats,
    TokenPair,
    UserPage,
)
from usermgmt.domain.events import StoredEvent
from usermgmt.domain.identities import Identity
from usermgmt.domain.model import User
from usermgmt.domain.roles import Role
from usermgmt.entrypoints.http.schemas import (
    AdminEventOut,
    AdminEventPageOut,
    AdminUserDetailOut,
    AdminUserOut,
    DayCountOut,
    DeletionReceiptOut,
    ErasedOut,
    EventOut,
    EventPageOut,
    ExportOut,
    ExportProfileOut,
    ExportSessionOut,
    IdentityOut,
    MfaStatusOut,
    RoleOut,
    SessionOut,
    StatsOut,
    TokenPairOut,
    UserOut,
    UserPageOut,
)


def user_out(user: User) -> UserOut:
    return _profile_out(user.id, user)


def principal_out(principal: Principal) -> UserOut:
    """The caller's profile as the hot path read it (the same body as ``user_out``)."""
    return _profile_out(principal.user_id, principal)


def _profile_out(user_id: UUID, profile: User | Principal) -> UserOut:
    return UserOut(
        id=user_id,
        email=profile.email.value,
        username=profile.username.value if profile.username else None,
        full_name=profile.full_name.value if profile.full_name else None,
        email_verified=profile.email_verified,
        is_active=profile.is_active,
        created_at=profile.created_at,
        updated_at=profile.updated_at,
        pending_email=profile.pending_email.value if profile.pending_email else None,
        has_password=profile.has_password,
    )


def token_pair_out(pair: TokenPair) -> TokenPairOut:
    return TokenPairOut(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
    )


def session_out(view: SessionView) -> SessionOut:
    s = view.session
    return SessionOut(
        id=s.id,
        amr=[method.value for method in s.amr],
        authenticated_at=s.authenticated_at,
        created_at=s.created_at,
        last_used_at=s.last_used_at,
        user_agent=s.user_agent,
        ip=s.ip,
        current=view.current,
        sign_in_method=s.sign_in_method,
    )


def receipt_out(receipt: DeletionReceipt) -> DeletionReceiptOut:
    return DeletionReceiptOut(
        user_id=receipt.user_id,
        deleted_at=receipt.deleted_at,
        erased=[ErasedOut(what=e.what, count=e.count) for e in receipt.erased],
    )


def event_out(stored: StoredEvent) -> EventOut:
    """An event as its account's owner sees it."""
    return EventOut(
        id=str(stored.id),
        type=stored.event.type.value,
        at=stored.event.at,
        ip=stored.event.ip,
        user_agent=stored.event.user_agent,
        session_id=stored.event.session_id,
        details=stored.event.public_details(),
    )


def event_page_out(page: EventPage) -> EventPageOut:
    return EventPageOut(
        items=[event_out(stored) for stored in page.items],
        next_cursor=str(page.next_before) if page.next_before is not None else None,
    )


def mfa_status_out(status: MfaStatus) -> MfaStatusOut:
    return MfaStatusOut(
        totp_enabled=status.totp_enabled, enabled_at=status.enabled_at, recovery_codes_left=status.recovery_codes_left
    )


def admin_user_out(view: AdminUserView) -> AdminUserOut:
    return AdminUserOut(**user_out(view.user).model_dump(), roles=list(view.roles))


def admin_user_detail_out(view: AdminUserView) -> AdminUserDetailOut:
    if view.mfa is None:
        raise ValueError("a user's detail view carries their second-factor status")
    return AdminUserDetailOut(
        **admin_user_out(view).model_dump(), last_sign_in_at=view.last_sign_in_at, mfa=mfa_status_out(view.mfa)
    )


def user_page_out(page: UserPage) -> UserPageOut:
    return UserPageOut(items=[admin_user_out(view) for view in page.items], next_cursor=page.next_cursor)


def role_out(role: Role) -> RoleOut:
    return RoleOut(
        name=role.name,
        description=role.description,
        permissions=sorted(role.permissions),
        builtin=role.is_builtin,
        created_at=role.created_at,
        updated_at=role.updated_at,
    )


def admin_event_page_out(page: EventPage) -> AdminEventPageOut:
    """Events as the audit trail shows them: every detail, the account, the actor, the request."""
    return AdminEventPageOut(
        items=[
            AdminEventOut(
                id=str(stored.id),
                type=stored.event.type.value,
                at=stored.event.at,
                ip=stored.event.ip,
                user_agent=stored.event.user_agent,
                session_id=stored.event.session_id,
                details=dict(stored.event.details),
                user_id=stored.event.user_id,
                actor_id=stored.event.actor_id,
                request_id=stored.event.request_id,
            )
            for stored in page.items
        ],
        next_cursor=str(page.next_before) if page.next_before is not None else None,
    )


def export_out(export: DataExport) -> ExportOut:
    user = export.user
    return ExportOut(
        exported_at=export.exported_at,
        profile=ExportProfileOut(
            **user_out(user).model_dump(exclude={"pending_email"}),
            password_changed_at=user.password_changed_at,
            pending_email=user.pending_email.value if user.pending_email else None,
        ),
        roles=list(export.roles),
        two_factor=mfa_status_out(export.mfa),
        sessions=[
            ExportSessionOut(
                id=s.id,
                amr=[method.value for method in s.amr],
                authenticated_at=s.authenticated_at,
                created_at=s.created_at,
                last_used_at=s.last_used_at,
                expires_at=s.expires_at,
                user_agent=s.user_agent,
                ip=s.ip,
                sign_in_method=s.sign_in_method,
            )
            for s in export.sessions
        ],
        identities=[identity_out(identity) for identity in export.identities],
        security_events=[event_out(stored) for stored in export.events],
    )


def stats_out(stats: Stats) -> StatsOut:
    return StatsOut(
        from_=stats.from_,
        to=stats.to,
        registrations=stats.registrations,
        registrations_per_day=stats.registrations_per_day,
        registrations_by_day=[DayCountOut(day=day, registrations=n) for day, n in stats.registrations_by_day],
        sign_in_attempts=stats.sign_in_attempts,
        sign_ins_succeeded=stats.sign_ins_succeeded,
        login_success_rate=stats.login_success_rate,
        authentication_latency_ms=stats.authentication_latency_ms,
        users_total=stats.users_total,
        users_with_mfa=stats.users_with_mfa,
        mfa_adoption=stats.mfa_adoption,
        retention_cohort=stats.retention_cohort,
        retained_7d=stats.retained_7d,
        retention_7d=stats.retention_7d,
        password_resets=stats.password_resets,
        password_reset_median_seconds=stats.password_reset_median_seconds,
        deletions=stats.deletions,
        deletions_within_24h=stats.deletions_within_24h,
        deletions_overdue=stats.deletions_overdue,
        deletions_within_24h_rate=stats.deletions_within_24h_rate,
    )


def identity_out(identity: Identity) -> IdentityOut:
    return IdentityOut(
        id=identity.id,
        provider=identity.provider,
        email=identity.email.value if identity.email else None,
        created_at=identity.created_at,
        last_used_at=identity.last_used_at,
    )
