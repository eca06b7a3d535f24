"""Building security events from a use case's context."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

from usermgmt.application.commands import ClientInfo
from usermgmt.domain.events import EventType, SecurityEvent
from usermgmt.domain.model import User
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


def sign_in_duration(started: float | None) -> dict[str, Any]:
    """The ``duration_ms`` detail of a sign-in attempt's outcome: the milliseconds since ``started`` (the
    ``time.perf_counter()`` its use case read first; not the ``Clock``, which tests freeze), to the hundredth.
    Nothing without a start."""
    if started is None:
        return {}
    return {"duration_ms": round((time.perf_counter() - started) * 1000, 2)}


def erasure_lag_seconds(user: User | None, now: datetime) -> int:
    """The ``lag_seconds`` detail of an ``account_deleted`` mark: the whole seconds (rounded up) by which erasing
    ``user`` at ``now`` is late for its ``erasure_at``; 0 for a deletion done at once, or ahead of its time."""
    return math.ceil(user.erasure_lag(now).total_seconds()) if user is not None else 0
