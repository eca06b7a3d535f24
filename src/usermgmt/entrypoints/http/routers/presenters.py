"""Results of the core -> response bodies."""

from __future__ import annotations

from uuid import UUID

from usermgmt.application.results import DeletionReceipt, EventPage, Principal, SessionView, TokenPair
from usermgmt.domain.model import User
from usermgmt.entrypoints.http.schemas import (
    DeletionReceiptOut,
    ErasedOut,
    EventOut,
    EventPageOut,
    SessionOut,
    TokenPairOut,
    UserOut,
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
    )


def receipt_out(receipt: DeletionReceipt) -> DeletionReceiptOut:
    return DeletionReceiptOut(
        user_id=receipt.user_id,
        deleted_at=receipt.deleted_at,
        erased=[ErasedOut(what=e.what, count=e.count) for e in receipt.erased],
    )


def event_page_out(page: EventPage) -> EventPageOut:
    return EventPageOut(
        items=[
            EventOut(
                id=str(stored.id),
                type=stored.event.type.value,
                at=stored.event.at,
                ip=stored.event.ip,
                user_agent=stored.event.user_agent,
                session_id=stored.event.session_id,
                details=stored.event.public_details(),
            )
            for stored in page.items
        ],
        next_cursor=str(page.next_before) if page.next_before is not None else None,
    )
