"""Results of the core -> response bodies."""

from __future__ import annotations

from usermgmt.application.results import DeletionReceipt, SessionView, TokenPair
from usermgmt.domain.model import User
from usermgmt.entrypoints.http.schemas import DeletionReceiptOut, ErasedOut, SessionOut, TokenPairOut, UserOut


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
