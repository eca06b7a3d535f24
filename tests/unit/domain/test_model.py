"""The ``User`` and ``Session`` aggregates: invariants kept by their methods, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from usermgmt.domain.errors import SameEmail, SessionExpired, UserInactive
from usermgmt.domain.model import Session, User
from usermgmt.domain.value_objects import (
    AuthMethod,
    Email,
    FullName,
    PasswordHash,
    RefreshTokenHash,
    SessionId,
    UserId,
    Username,
)

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
LIFETIME = timedelta(days=30)


def make_user(**overrides: object) -> User:
    fields: dict[str, object] = {
        "id": UserId(UUID(int=1)),
        "email": Email("alice@example.com"),
        "password_hash": PasswordHash("hash-1"),
        "now": NOW,
        "username": Username("alice"),
        "full_name": FullName("Alice Liddell"),
    }
    fields.update(overrides)
    return User.register(**fields)  # type: ignore[arg-type]


def make_session(**overrides: object) -> Session:
    fields: dict[str, object] = {
        "id": SessionId(UUID(int=100)),
        "user_id": UserId(UUID(int=1)),
        "refresh_token_hash": RefreshTokenHash("rt-1"),
        "amr": (AuthMethod.PASSWORD,),
        "now": NOW,
        "lifetime": LIFETIME,
        "user_agent": "curl/8",
        "ip": "192.0.2.1",
    }
    fields.update(overrides)
    return Session.start(**fields)  # type: ignore[arg-type]


# --- User.register ---------------------------------------------------------------------------------------------


def test_register_sets_defaults() -> None:
    user = make_user()

    assert user.id == UUID(int=1)
    assert user.email == Email("alice@example.com")
    assert user.username == Username("alice")
    assert user.full_name == FullName("Alice Liddell")
    assert user.password_hash == PasswordHash("hash-1")
    assert user.email_verified is False
    assert user.is_active is True
    assert user.created_at == user.updated_at == user.password_changed_at == NOW


def test_register_without_optional_fields() -> None:
    user = User.register(
        id=UserId(UUID(int=2)), email=Email("bob@example.com"), password_hash=PasswordHash("h"), now=NOW
    )
    assert user.username is None
    assert user.full_name is None


def test_users_are_equal_by_identity() -> None:
    a = make_user()
    b = make_user(email=Email("other@example.com"))
    c = make_user(id=UserId(UUID(int=2)))

    assert a == b
    assert hash(a) == hash(b)
    assert a != c
    assert a != "not a user"


def test_ensure_active() -> None:
    user = make_user()
    user.ensure_active()
    user.is_active = False
    with pytest.raises(UserInactive) as excinfo:
        user.ensure_active()
    assert excinfo.value.code == "account_disabled"


# --- User.update_profile ---------------------------------------------------------------------------------------


def test_update_profile_returns_changed_fields_and_touches_updated_at() -> None:
    user = make_user()

    changed = user.update_profile(now=LATER, username=Username("alice2"), full_name=FullName("Alice L."))

    assert changed == ["username", "full_name"]
    assert user.email == Email("alice@example.com")
    assert user.username == Username("alice2")
    assert user.full_name == FullName("Alice L.")
    assert user.updated_at == LATER
    assert user.created_at == NOW
    assert user.password_changed_at == NOW


def test_update_profile_with_the_same_values_changes_nothing() -> None:
    user = make_user()

    changed = user.update_profile(now=LATER, username=Username("alice"), full_name=FullName("Alice Liddell"))

    assert changed == []
    assert user.updated_at == NOW


def test_update_profile_with_nothing_changes_nothing() -> None:
    user = make_user()
    assert user.update_profile(now=LATER) == []
    assert user.updated_at == NOW


def test_email_change_request_keeps_the_address_until_confirmed() -> None:
    user = make_user()
    user.email_verified = True

    user.request_email_change(Email("new@example.com"), now=LATER)

    assert (user.email, user.email_verified, user.pending_email) == (
        Email("alice@example.com"),
        True,
        Email("new@example.com"),
    )
    assert user.updated_at == LATER


def test_a_change_to_the_same_address_in_any_case_is_refused() -> None:
    user = make_user()

    with pytest.raises(SameEmail):
        user.request_email_change(Email("ALICE@Example.com"), now=LATER)
    assert user.pending_email is None


def test_change_email_moves_to_the_proven_address_verified() -> None:
    user = make_user()
    user.request_email_change(Email("new@example.com"), now=NOW)

    old = user.change_email(Email("new@example.com"), now=LATER)

    assert old == Email("alice@example.com")
    assert (user.email, user.email_verified, user.pending_email) == (Email("new@example.com"), True, None)
    assert user.updated_at == LATER


def test_verify_email_needs_the_current_address() -> None:
    user = make_user()

    assert user.verify_email(Email("other@example.com"), now=LATER) is False
    assert user.email_verified is False
    assert user.verify_email(Email("ALICE@example.com"), now=LATER) is True
    assert (user.email_verified, user.updated_at) == (True, LATER)


def test_a_disabled_account_cannot_ask_for_an_address_change() -> None:
    user = make_user()
    user.deactivate(now=NOW)

    with pytest.raises(UserInactive):
        user.request_email_change(Email("new@example.com"), now=LATER)


def test_username_change_in_case_only_is_a_change() -> None:
    user = make_user()
    assert user.update_profile(now=LATER, username=Username("Alice")) == ["username"]
    assert user.username == Username("Alice")


def test_clearing_username_and_full_name() -> None:
    user = make_user()

    changed = user.update_profile(now=LATER, clear_username=True, clear_full_name=True)

    assert changed == ["username", "full_name"]
    assert user.username is None
    assert user.full_name is None
    assert user.updated_at == LATER


def test_clearing_absent_fields_is_no_change() -> None:
    user = make_user(username=None, full_name=None)
    assert user.update_profile(now=LATER, clear_username=True, clear_full_name=True) == []
    assert user.updated_at == NOW


def test_clear_wins_over_a_new_value() -> None:
    user = make_user()
    changed = user.update_profile(now=LATER, username=Username("bob"), clear_username=True)
    assert changed == ["username"]
    assert user.username is None


def test_inactive_user_cannot_update_profile() -> None:
    user = make_user()
    user.is_active = False

    with pytest.raises(UserInactive):
        user.update_profile(now=LATER, full_name=FullName("Someone Else"))
    assert user.full_name == FullName("Alice Liddell")
    assert user.updated_at == NOW


# --- passwords -------------------------------------------------------------------------------------------------


def test_change_password_sets_timestamps() -> None:
    user = make_user()

    user.change_password(PasswordHash("hash-2"), now=LATER)

    assert user.password_hash == PasswordHash("hash-2")
    assert user.password_changed_at == LATER
    assert user.updated_at == LATER
    assert user.created_at == NOW


def test_inactive_user_cannot_change_password() -> None:
    user = make_user()
    user.is_active = False

    with pytest.raises(UserInactive):
        user.change_password(PasswordHash("hash-2"), now=LATER)
    assert user.password_hash == PasswordHash("hash-1")
    assert user.password_changed_at == NOW


def test_rehash_is_not_a_password_change() -> None:
    user = make_user()

    user.rehash_password(PasswordHash("hash-1-stronger"))

    assert user.password_hash == PasswordHash("hash-1-stronger")
    assert user.password_changed_at == NOW
    assert user.updated_at == NOW


# --- Session ---------------------------------------------------------------------------------------------------


def test_session_start() -> None:
    session = make_session()

    assert session.id == UUID(int=100)
    assert session.user_id == UUID(int=1)
    assert session.refresh_token_hash == RefreshTokenHash("rt-1")
    assert session.created_at == session.last_used_at == NOW
    assert session.expires_at == NOW + LIFETIME
    assert (session.user_agent, session.ip) == ("curl/8", "192.0.2.1")


def test_session_expiry_boundary() -> None:
    session = make_session()

    assert not session.is_expired(NOW)
    assert not session.is_expired(NOW + LIFETIME - timedelta(microseconds=1))
    assert session.is_expired(NOW + LIFETIME)
    assert session.is_expired(NOW + LIFETIME + timedelta(days=1))


def test_rotate_returns_retired_hash_and_slides_expiry() -> None:
    session = make_session()
    later = NOW + timedelta(days=10)

    retired = session.rotate(RefreshTokenHash("rt-2"), now=later, lifetime=LIFETIME, user_agent="firefox", ip=None)

    assert retired == RefreshTokenHash("rt-1")
    assert session.refresh_token_hash == RefreshTokenHash("rt-2")
    assert session.last_used_at == later
    assert session.expires_at == later + LIFETIME
    assert session.created_at == NOW
    assert session.user_agent == "firefox"
    assert session.ip == "192.0.2.1"  # None keeps the old value


def test_rotate_refuses_when_expired() -> None:
    session = make_session()

    with pytest.raises(SessionExpired) as excinfo:
        session.rotate(RefreshTokenHash("rt-2"), now=NOW + LIFETIME, lifetime=LIFETIME, user_agent=None, ip=None)

    assert excinfo.value.code == "session_expired"
    assert session.refresh_token_hash == RefreshTokenHash("rt-1")
    assert session.expires_at == NOW + LIFETIME


def test_sessions_are_equal_by_identity() -> None:
    a = make_session()
    b = make_session(refresh_token_hash=RefreshTokenHash("other"))
    c = make_session(id=SessionId(UUID(int=101)))
    assert a == b
    assert hash(a) == hash(b)
    assert a != c


def test_session_remembers_how_it_began() -> None:
    session = make_session(amr=[AuthMethod.PASSWORD, AuthMethod.OTP, AuthMethod.PASSWORD])
    assert session.authenticated_at == NOW
    assert session.amr == (AuthMethod.PASSWORD, AuthMethod.OTP)  # ordered, without repeats

    session.rotate(RefreshTokenHash("rt-2"), now=NOW + LIFETIME / 2, lifetime=LIFETIME, user_agent=None, ip=None)
    assert session.authenticated_at == NOW  # a refresh is not a new sign-in


def test_session_needs_a_method() -> None:
    with pytest.raises(ValueError, match="method"):
        make_session(amr=())


def test_deactivate_and_reactivate_say_whether_they_changed_anything() -> None:
    user = make_user()
    later = NOW + LIFETIME
    assert user.deactivate(now=later) is True
    assert (user.is_active, user.updated_at) == (False, later)
    with pytest.raises(UserInactive):
        user.ensure_active()
    assert user.deactivate(now=later) is False
    assert user.reactivate(now=later) is True
    user.ensure_active()
    assert user.reactivate(now=later) is False
