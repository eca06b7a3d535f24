"""Security events: what the owner may see, and what the store keeps of a deleted account."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from usermgmt.domain.events import INTERNAL_DETAILS, EventType, SecurityEvent
from usermgmt.domain.value_objects import SessionId, UserId

AT = datetime(2025, 1, 1, tzinfo=UTC)


def make(kind: EventType, **details: object) -> SecurityEvent:
    return SecurityEvent(
        type=kind,
        at=AT,
        user_id=UserId(UUID(int=1)),
        session_id=SessionId(UUID(int=2)),
        ip="192.0.2.1",
        user_agent="curl/8",
        request_id="req-1",
        details=details,
    )


def test_public_details_hide_internal_reasons() -> None:
    event = make(EventType.LOGIN_FAILED, reason="wrong_password", attempts=3)

    assert "reason" in INTERNAL_DETAILS
    assert event.public_details() == {"attempts": 3}
    assert dict(event.details) == {"reason": "wrong_password", "attempts": 3}


def test_stored_form_of_a_deletion_names_no_one() -> None:
    stored = make(EventType.ACCOUNT_DELETED, reason="user_request").stored_form()

    assert stored == SecurityEvent(type=EventType.ACCOUNT_DELETED, at=AT)
    assert (stored.user_id, stored.session_id, stored.ip, stored.user_agent, stored.request_id) == (None,) * 5
    assert dict(stored.details) == {}


def test_stored_form_of_a_deletion_keeps_how_late_it_was_and_nothing_else() -> None:
    stored = make(EventType.ACCOUNT_DELETED, lag_seconds=3600, reason="user_request").stored_form()

    assert stored == SecurityEvent(type=EventType.ACCOUNT_DELETED, at=AT, details={"lag_seconds": 3600})


def test_the_duration_of_a_sign_in_is_for_operators_only() -> None:
    event = make(EventType.LOGIN_SUCCEEDED, amr=["pwd"], duration_ms=42.5)

    assert event.public_details() == {"amr": ["pwd"]}


def test_stored_form_of_other_events_is_the_event_itself() -> None:
    for kind in EventType:
        if kind is EventType.ACCOUNT_DELETED:
            continue
        event = make(kind, fields=["email"])
        assert event.stored_form() == event


def test_event_types_are_stable_strings() -> None:
    assert EventType.LOGIN_FAILED == "login_failed"
    assert EventType("refresh_reuse_detected") is EventType.REFRESH_REUSE_DETECTED
