"""Security events as structured log lines (logger ``usermgmt.audit``), emitted once their transaction commits."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from usermgmt.domain.events import SecurityEvent

audit_logger = logging.getLogger("usermgmt.audit")


def event_fields(event: SecurityEvent) -> dict[str, Any]:
    return {
        "event": event.type.value,
        "at": event.at.isoformat(),
        "user_id": str(event.user_id) if event.user_id else None,
        "session_id": str(event.session_id) if event.session_id else None,
        "client_ip": event.ip,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "details": dict(event.details),
        "actor_id": str(event.actor_id) if event.actor_id else None,
    }


async def log_committed(events: Sequence[SecurityEvent]) -> None:
    """An after-commit handler: each committed event as a line on ``usermgmt.audit``."""
    log_events(events)


def log_events(events: Sequence[SecurityEvent]) -> None:
    for event in events:
        audit_logger.info("security event %s", event.type.value, extra={"audit": event_fields(event)})
