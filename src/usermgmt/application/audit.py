"""Building security events from a use case's context."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from usermgmt.application.commands import ClientInfo
from usermgmt.domain.events import EventType, SecurityEvent
from usermgmt.domain.value_objects import SessionId, UserId


def security_event(
    kind: EventType,
    *,
    at: datetime,
    client: ClientInfo,
    user_id: UserId | None = None,
    session_id: SessionId | None = None,
    actor_id: UserId | None = None,
    **details: Any,
) -> SecurityEvent:
    return SecurityEvent(
        type=kind,
        at=at,
        user_id=user_id,
        session_id=session_id,
        ip=client.ip,
        user_agent=client.user_agent,
        request_id=client.request_id,
        details=details,
        actor_id=actor_id,
    )
