"""Results of the core -> response bodies."""

from __future__ import annotations

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
    return UserOut(
        id=user.id,
        email=user.email.value,
        username=user.username.value if user.username else None,
        full_name=user.full_name.value if user.full_name else None,
        email_verified=user.email_verified,
        is_active=user.is_active,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


def principal_out(principal: Principal) -> UserOut:
    return UserOut(
        id=principal.user_id,
        email=principal.email.value,
        username=principal.username.value if principal.username else None,
        full_name=principal.full_name.value if principal.full_name else None,
        email_verified=principal.email_verified,
        is_active=principal.is_active,
        created_at=principal.created_at,
        updated_at=principal.updated_at,
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
