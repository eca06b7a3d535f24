"""Transactions: whatever a handler did before it failed is rolled back, and the committed store is untouched."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from tests.unit.application._support import (
    ALICE_EMAIL,
    ALICE_PASSWORD,
    NOW,
    RecordingUnitOfWork,
    SignIn,
    login_cmd,
    make_guard,
    snapshot,
)
from usermgmt.adapters.memory import (
    FakeAccessTokenService,
    FakePasswordHasher,
    FrozenClock,
    InMemoryUnitOfWork,
    MemoryStore,
    SequentialIdGenerator,
)
from usermgmt.adapters.refresh_tokens import SecretsRefreshTokenFactory
from usermgmt.application.commands import (
    ChangePassword,
    DeleteAccount,
    Logout,
    RefreshSession,
    RegisterUser,
    RevokeSession,
    UpdateProfile,
)
from usermgmt.application.errors import ServiceUnavailable
from usermgmt.application.handlers.change_password import ChangePasswordHandler
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.logout import LogoutHandler
from usermgmt.application.handlers.refresh_session import RefreshSessionHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.handlers.sessions import RevokeSessionHandler
from usermgmt.application.handlers.update_profile import UpdateProfileHandler
from usermgmt.application.ports import EventDispatcher, UnitOfWork
from usermgmt.application.results import TokenPair
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.events import EventType, SecurityEvent
from usermgmt.domain.model import User
from usermgmt.domain.password_policy import PasswordPolicy
from usermgmt.domain.value_objects import Email, FullName, PasswordHash


class FlakyUnitOfWork(RecordingUnitOfWork):
    """Commits normally until ``broken`` is set; then every commit fails after the handler has done its writes."""

    broken = False

    async def commit(self) -> None:
        if self.broken:
            raise ServiceUnavailable()
        await super().commit()


@pytest.fixture
def uow() -> FlakyUnitOfWork:  # overrides the conftest fixture: every handler below shares this one
    return FlakyUnitOfWork()


@pytest.fixture
async def pair(login: SignIn, alice: User) -> TokenPair:
    return await login(login_cmd())


def make_user() -> User:
    return User.register(
        id=SequentialIdGenerator().new_user_id(), email=Email(ALICE_EMAIL), password_hash=PasswordHash("h"), now=NOW
    )


# --- the fake itself -------------------------------------------------------------------------------------------


async def test_leaving_without_commit_discards_changes() -> None:
    uow = InMemoryUnitOfWork()
    user = make_user()

    async with uow:
        await uow.users.add(user)
        assert await uow.users.get(user.id) is not None
    assert uow.store.users == {}

    async with uow:
        await uow.users.add(user)
        await uow.commit()
    assert list(uow.store.users) == [user.id]
    assert uow.commits == 1


async def test_an_exception_inside_the_block_rolls_back() -> None:
    uow = InMemoryUnitOfWork()
    user = make_user()

    async def add_then_fail() -> None:
        async with uow:
            await uow.users.add(user)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await add_then_fail()

    assert uow.store.users == {}


async def test_commit_outside_the_block_is_refused() -> None:
    with pytest.raises(RuntimeError):
        await InMemoryUnitOfWork().commit()


def an_event() -> SecurityEvent:
    return SecurityEvent(type=EventType.REGISTERED, at=NOW, user_id=make_user().id, ip="192.0.2.1")


async def test_committed_events_are_kept_in_the_store() -> None:
    uow = InMemoryUnitOfWork()
    event = an_event()

    async with uow:
        await uow.users.add(make_user())  # an event naming no stored user would be kept without them
        await uow.events.add(event)
        await uow.commit()

    assert [stored.event for stored in uow.store.events] == [event]
    async with uow:
        assert [stored.event for stored in await uow.events.list_for_user(event.user_id, limit=10)] == [event]


async def test_committed_events_are_logged() -> None:
    uow = InMemoryUnitOfWork()
    event = an_event()

    async with uow:
        await uow.record(event)
        await uow.commit()

    assert uow.logged == [event]


async def test_rolled_back_events_are_neither_kept_nor_logged() -> None:
    uow = InMemoryUnitOfWork()

    async with uow:
        await uow.record(an_event())

    assert uow.store.events == []
    assert uow.logged == []


# --- handlers whose commit fails -------------------------------------------------------------------------------


async def test_failed_register_leaves_no_user(register: RegisterUserHandler, uow: FlakyUnitOfWork) -> None:
    uow.broken = True

    with pytest.raises(ServiceUnavailable):
        await register(RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD))

    assert uow.store.users == {}
    assert uow.recorded == []  # the REGISTERED event went down with its transaction


async def test_failed_login_leaves_no_session_and_no_rehash(uow: FlakyUnitOfWork, clock: FrozenClock) -> None:
    register = RegisterUserHandler(
        uow=uow,
        hasher=FakePasswordHasher("fake1"),
        screen=PasswordScreen(PasswordPolicy()),
        clock=clock,
        ids=SequentialIdGenerator(),
        guard=make_guard(uow, clock),
    )
    await register(RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD))

    issuer = SessionIssuer(
        uow=uow,
        access_tokens=FakeAccessTokenService(clock),
        refresh_tokens=SecretsRefreshTokenFactory(),
        clock=clock,
        ids=SequentialIdGenerator(),
        session_lifetime=timedelta(days=1),
    )
    login = LoginHandler(
        uow=uow, hasher=FakePasswordHasher("fake2"), issuer=issuer, clock=clock, guard=make_guard(uow, clock)
    )
    before = snapshot(uow.store)
    uow.broken = True

    with pytest.raises(ServiceUnavailable):
        await login(login_cmd())

    assert snapshot(uow.store) == before


async def test_failed_refresh_keeps_the_old_token_valid(
    refresh: RefreshSessionHandler, uow: FlakyUnitOfWork, clock: FrozenClock, pair: TokenPair
) -> None:
    before = snapshot(uow.store)
    clock.advance(timedelta(days=1))
    uow.broken = True

    with pytest.raises(ServiceUnavailable):
        await refresh(RefreshSession(refresh_token=pair.refresh_token))

    assert snapshot(uow.store) == before
    uow.broken = False
    assert (await refresh(RefreshSession(refresh_token=pair.refresh_token))).session_id == pair.session_id


async def test_failed_update_profile_changes_nothing(
    update_profile: UpdateProfileHandler, uow: FlakyUnitOfWork, alice: User
) -> None:
    before = snapshot(uow.store)
    uow.broken = True

    with pytest.raises(ServiceUnavailable):
        await update_profile(UpdateProfile(user_id=alice.id, username="newname", full_name="New Name"))

    assert snapshot(uow.store) == before
    assert uow.store.users[alice.id].full_name == FullName("Alice Liddell")


async def test_failed_change_password_keeps_password_and_sessions(
    change_password: ChangePasswordHandler, login: SignIn, uow: FlakyUnitOfWork, alice: User, pair: TokenPair
) -> None:
    await login(login_cmd())
    before = snapshot(uow.store)
    uow.broken = True

    with pytest.raises(ServiceUnavailable):
        await change_password(
            ChangePassword(
                user_id=alice.id,
                session_id=pair.session_id,
                current_password=ALICE_PASSWORD,
                new_password="a brand new passphrase",
            )
        )

    assert snapshot(uow.store) == before
    assert len(uow.store.sessions) == 2


async def test_failed_delete_account_keeps_everything(
    delete_account: DeleteAccountHandler, uow: FlakyUnitOfWork, alice: User, pair: TokenPair
) -> None:
    before = snapshot(uow.store)
    uow.broken = True

    with pytest.raises(ServiceUnavailable):
        await delete_account(DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD))

    assert snapshot(uow.store) == before
    assert alice.id in uow.store.users
    assert EventType.ACCOUNT_DELETED not in uow.kinds()


async def test_failed_logout_and_revoke_keep_the_session(
    logout: LogoutHandler, revoke_session: RevokeSessionHandler, uow: FlakyUnitOfWork, alice: User, pair: TokenPair
) -> None:
    uow.broken = True

    with pytest.raises(ServiceUnavailable):
        await logout(Logout(user_id=alice.id, session_id=pair.session_id))
    with pytest.raises(ServiceUnavailable):
        await revoke_session(RevokeSession(user_id=alice.id, session_id=pair.session_id))

    assert pair.session_id in uow.store.sessions


# --- the event dispatcher: before and after commit -------------------------------------------------------------


async def test_dispatcher_runs_in_the_transaction_then_after_the_commit_in_order() -> None:
    seen: list[tuple[str, list[EventType], int]] = []
    store = MemoryStore()

    async def before(uow: UnitOfWork, events: Sequence[SecurityEvent]) -> None:
        seen.append(("before", [e.type for e in events], len(store.events)))

    async def after(events: Sequence[SecurityEvent]) -> None:
        seen.append(("after", [e.type for e in events], len(store.events)))

    uow = InMemoryUnitOfWork(store, dispatcher=EventDispatcher(before_commit=[before], after_commit=[after]))
    async with uow:
        await uow.record(an_event())
        await uow.commit()

    assert seen == [("before", [EventType.REGISTERED], 0), ("after", [EventType.REGISTERED], 1)]


async def test_a_failing_before_commit_handler_commits_nothing() -> None:
    async def refuse(uow: UnitOfWork, events: Sequence[SecurityEvent]) -> None:
        raise RuntimeError("outbox unavailable")

    uow = InMemoryUnitOfWork(dispatcher=EventDispatcher(before_commit=[refuse]))
    async with uow:
        await uow.record(an_event())
        with pytest.raises(RuntimeError):
            await uow.commit()

    assert uow.store.events == []


async def test_a_failing_after_commit_handler_neither_undoes_the_change_nor_stops_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    delivered: list[SecurityEvent] = []

    async def broken(events: Sequence[SecurityEvent]) -> None:
        raise RuntimeError("log sink down")

    async def working(events: Sequence[SecurityEvent]) -> None:
        delivered.extend(events)

    uow = InMemoryUnitOfWork(dispatcher=EventDispatcher(after_commit=[broken, working]))
    event = an_event()
    async with uow:
        await uow.users.add(make_user())  # the user the event names: stored with them
        await uow.record(event)
        await uow.commit()

    assert [stored.event for stored in uow.store.events] == [event]
    assert delivered == [event]
    assert "after-commit handler" in caplog.text


async def test_nothing_is_dispatched_for_a_rolled_back_unit_of_work() -> None:
    dispatched: list[SecurityEvent] = []

    async def after(events: Sequence[SecurityEvent]) -> None:
        dispatched.extend(events)

    uow = InMemoryUnitOfWork(dispatcher=EventDispatcher(after_commit=[after]))
    async with uow:
        await uow.record(an_event())
    async with uow:  # a later commit does not carry the rolled-back event along
        await uow.commit()

    assert dispatched == []
