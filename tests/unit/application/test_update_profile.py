from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from tests.unit.application._support import NOW, RecordingUnitOfWork, client, snapshot
from usermgmt.adapters.memory import FrozenClock
from usermgmt.application.commands import UpdateProfile
from usermgmt.application.errors import InvalidAccessToken, UsernameTaken
from usermgmt.application.handlers.update_profile import UpdateProfileHandler
from usermgmt.domain.errors import InvalidFullName, InvalidUsername, UserInactive
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import FullName, UserId, Username


@pytest.fixture(autouse=True)
def _later(clock: FrozenClock, alice: User) -> None:
    """Alice registered at NOW; the profile changes happen an hour later."""
    clock.advance(timedelta(hours=1))


async def test_update_all_fields(
    update_profile: UpdateProfileHandler, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    user = await update_profile(UpdateProfile(user_id=alice.id, username="alice2", full_name="Alice L."))

    stored = uow.store.users[alice.id]
    for u in (user, stored):
        assert u.email == alice.email
        assert u.username == Username("alice2")
        assert u.full_name == FullName("Alice L.")
        assert u.updated_at == clock.now()
        assert u.created_at == NOW


async def test_fields_left_none_are_kept(
    update_profile: UpdateProfileHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    await update_profile(UpdateProfile(user_id=alice.id, full_name="Alice L."))

    stored = uow.store.users[alice.id]
    assert stored.full_name == FullName("Alice L.")
    assert stored.email == alice.email
    assert stored.username == alice.username


async def test_clear_username_and_full_name(
    update_profile: UpdateProfileHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    await update_profile(UpdateProfile(user_id=alice.id, clear=frozenset({"username", "full_name"})))

    stored = uow.store.users[alice.id]
    assert stored.username is None
    assert stored.full_name is None


async def test_nothing_to_change_does_not_commit(
    update_profile: UpdateProfileHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    commits = uow.commits
    before = snapshot(uow.store)

    user = await update_profile(UpdateProfile(user_id=alice.id, full_name="Alice Liddell"))

    assert user.updated_at == NOW
    assert uow.commits == commits
    assert snapshot(uow.store) == before


@pytest.mark.parametrize("username", ["bob", "BOB", "Bob"])
async def test_taken_username_is_rejected(
    update_profile: UpdateProfileHandler, uow: RecordingUnitOfWork, alice: User, bob: User, username: str
) -> None:
    before = snapshot(uow.store)

    with pytest.raises(UsernameTaken):
        await update_profile(UpdateProfile(user_id=alice.id, username=username, full_name="Changed Too"))

    assert snapshot(uow.store) == before


async def test_own_username_in_other_case_is_allowed(
    update_profile: UpdateProfileHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    await update_profile(UpdateProfile(user_id=alice.id, username="ALICE"))

    assert uow.store.users[alice.id].username == Username("ALICE")


async def test_freed_username_can_be_taken(
    update_profile: UpdateProfileHandler, uow: RecordingUnitOfWork, alice: User, bob: User
) -> None:
    await update_profile(UpdateProfile(user_id=bob.id, clear=frozenset({"username"})))
    await update_profile(UpdateProfile(user_id=alice.id, username="bob"))

    assert uow.store.users[alice.id].username == Username("bob")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"username": "a b"}, InvalidUsername),
        ({"full_name": "\x00"}, InvalidFullName),
    ],
)
async def test_invalid_values_are_rejected(
    update_profile: UpdateProfileHandler,
    uow: RecordingUnitOfWork,
    alice: User,
    fields: dict[str, str],
    error: type[Exception],
) -> None:
    before = snapshot(uow.store)

    with pytest.raises(error):
        await update_profile(UpdateProfile(user_id=alice.id, **fields))

    assert snapshot(uow.store) == before


async def test_inactive_user_cannot_update(
    update_profile: UpdateProfileHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    uow.store.users[alice.id].is_active = False
    before = snapshot(uow.store)

    with pytest.raises(UserInactive):
        await update_profile(UpdateProfile(user_id=alice.id, full_name="New Name"))

    assert snapshot(uow.store) == before


async def test_unknown_user_is_an_invalid_token(update_profile: UpdateProfileHandler) -> None:
    with pytest.raises(InvalidAccessToken):
        await update_profile(UpdateProfile(user_id=UserId(UUID(int=999)), full_name="Ghost"))


async def test_profile_change_is_recorded_with_the_changed_fields(
    update_profile: UpdateProfileHandler, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    await update_profile(UpdateProfile(user_id=alice.id, username="alice2", full_name="Alice Liddell", client=client()))

    event = uow.recorded[-1]
    assert event.type is EventType.PROFILE_UPDATED
    assert event.user_id == alice.id
    assert event.at == clock.now()
    assert event.details == {"fields": ["username"]}  # the unchanged full name is not listed


async def test_no_change_records_nothing(
    update_profile: UpdateProfileHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    await update_profile(UpdateProfile(user_id=alice.id, username="alice"))

    assert EventType.PROFILE_UPDATED not in uow.kinds()
