"""The real clock and identifier source."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import uuid_utils

from usermgmt.domain.identities import IdentityId
from usermgmt.domain.value_objects import SessionId, UserId


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def _uuid7() -> UUID:
    return UUID(bytes=uuid_utils.uuid7().bytes)


class UuidV7Generator:
    """Time-ordered UUIDs (RFC 9562 v7): index-friendly, and random enough not to be guessed."""

    def new_user_id(self) -> UserId:
        return UserId(_uuid7())

    def new_session_id(self) -> SessionId:
        return SessionId(_uuid7())

    def new_identity_id(self) -> IdentityId:
        return IdentityId(_uuid7())
