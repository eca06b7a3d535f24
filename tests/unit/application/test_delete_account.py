from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from tests.unit.application._mail import queued
from tests.unit.application._support import (
    ALICE_EMAIL,
    ALICE_PASSWORD,
    BOB_PASSWORD,
    RecordingUnitOfWork,
    SignIn,
    client,
    login_cmd,
    snapshot,
)
from usermgmt.adapters.memory import FakePasswordHasher, FrozenClock
from usermgmt.adapters.sqlalchemy.tables import PERSONAL_DATA
from usermgmt.application.commands import DeleteAccount, ForgotPassword, RefreshSession, RegisterUser
from usermgmt.application.errors import InvalidAccessToken, InvalidCredentials, InvalidPassword, RateLimited
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.password_reset import ForgotPasswordHandler
from usermgmt.application.handlers.refresh_session import RefreshSessionHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import UserId


async def test_delete_erases_user_sessions_and_retired_tokens(
    delete_account: DeleteAccountHandler,
    login: SignIn,
    refresh: RefreshSessionHandler,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    alice: User,
    bob: User,
) -> None:
    first = await login(login_cmd())
    second = await login(login_cmd())
    rotated = await refresh(RefreshSession(refresh_token=first.refresh_token))
    await refresh(RefreshSession(refresh_token=rotated.refresh_token))
    bobs = await login(login_cmd(login="bob", password=BOB_PASSWORD))
    await refresh(RefreshSession(refresh_token=bobs.refresh_token))
    assert len(uow.store.retired) == 3
    clock.advance(timedelta(minutes=5))

    receipt = await delete_account(DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD))

    assert receipt.user_id == alice.id
    assert receipt.deleted_at == clock.now()
    counts = {e.what: e.count for e in receipt.erased}
    assert {k: counts[k] for k in ("user", "sessions", "retired_refresh_tokens")} == {
        "user": 1,
        "sessions": 2,
        "retired_refresh_tokens": 2,
    }
    assert list(counts) == [entry.name for entry in PERSONAL_DATA]
    assert alice.id not in uow.store.users
    assert alice.id not in uow.store.versions
    assert set(uow.store.sessions) == {bobs.session_id}  # bob is untouched
    assert list(uow.store.retired.values()) == [bobs.session_id]
    assert second.session_id not in uow.store.sessions


async def test_deleted_user_cannot_log_in_and_the_email_is_free_again(
    delete_account: DeleteAccountHandler,
    login: SignIn,
    register: RegisterUserHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    await delete_account(DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD))

    with pytest.raises(InvalidCredentials):
        await login(login_cmd())
    again = await register(RegisterUser(email=ALICE_EMAIL.upper(), password="a different password", username="alice"))
    assert again.id != alice.id
    assert list(uow.store.users) == [again.id]


async def test_wrong_password_deletes_nothing(
    delete_account: DeleteAccountHandler,
    login: SignIn,
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    alice: User,
) -> None:
    await login(login_cmd())
    before = snapshot(uow.store)
    verifications = hasher.verifications

    with pytest.raises(InvalidPassword) as excinfo:
        await delete_account(DeleteAccount(user_id=alice.id, password="not my password"))

    assert excinfo.value.code == "invalid_password"
    assert hasher.verifications == verifications + 1
    assert snapshot(uow.store) == before


async def test_unknown_user_is_an_invalid_token(delete_account: DeleteAccountHandler, alice: User) -> None:
    with pytest.raises(InvalidAccessToken):
        await delete_account(DeleteAccount(user_id=UserId(UUID(int=999)), password=ALICE_PASSWORD))


async def test_delete_without_sessions_counts_zero(
    delete_account: DeleteAccountHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    receipt = await delete_account(DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD))

    counts = {e.what: e.count for e in receipt.erased}
    assert (counts["user"], counts["sessions"], counts["retired_refresh_tokens"]) == (1, 0, 0)
    assert uow.store.users == {}


async def test_deletion_is_recorded_without_naming_the_account_in_the_store(
    delete_account: DeleteAccountHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    await delete_account(DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD, client=client(ip="198.51.100.3")))

    logged = uow.recorded[-1]
    assert logged.type is EventType.ACCOUNT_DELETED
    assert (logged.user_id, logged.ip) == (alice.id, "198.51.100.3")  # the operator's log line names it
    marks = [e.event for e in uow.store.events if e.event.type is EventType.ACCOUNT_DELETED]
    assert len(marks) == 1
    assert (marks[0].user_id, marks[0].ip, marks[0].user_agent, marks[0].request_id) == (None, None, None, None)
    assert dict(marks[0].details) == {"lag_seconds": 0}  # erased at once: not late
    assert all(e.event.user_id != alice.id for e in uow.store.events)


async def test_receipt_counts_the_erased_security_events(
    delete_account: DeleteAccountHandler, login: SignIn, uow: RecordingUnitOfWork, alice: User, bob: User
) -> None:
    await login(login_cmd())
    own = sum(1 for e in uow.recorded if e.user_id == alice.id)
    assert own == 2  # registered, login_succeeded

    receipt = await delete_account(DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD))

    assert {e.what: e.count for e in receipt.erased}["security_events"] == own
    assert all(e.event.user_id != alice.id for e in uow.store.events)
    assert any(e.event.user_id == bob.id for e in uow.store.events)


async def test_deletions_are_rate_limited_per_user(
    delete_account: DeleteAccountHandler, hasher: FakePasswordHasher, uow: RecordingUnitOfWork, alice: User
) -> None:
    for _ in range(5):
        with pytest.raises(InvalidPassword):
            await delete_account(DeleteAccount(user_id=alice.id, password="not my password"))
    spent = hasher.verifications

    with pytest.raises(RateLimited) as excinfo:
        await delete_account(DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD))

    assert excinfo.value.rule == "deletions_per_user"
    assert hasher.verifications == spent
    assert alice.id in uow.store.users


async def test_the_deleted_notice_survives_the_erasure_of_the_accounts_queued_mail(
    delete_account: DeleteAccountHandler,
    forgot_password: ForgotPasswordHandler,
    login: SignIn,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    alice: User,
    bob: User,
) -> None:
    await login(login_cmd())  # a new device: alice's new_device notice is queued
    await forgot_password(ForgotPassword(email=ALICE_EMAIL))
    await forgot_password(ForgotPassword(email=bob.email.value))
    assert {m.template for m in queued(uow.store, to=ALICE_EMAIL)} == {"new_device", "reset_password"}
    clock.advance(timedelta(minutes=1))

    receipt = await delete_account(
        DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD, client=client(ip="198.51.100.3", user_agent="tablet"))
    )

    assert {e.what: e.count for e in receipt.erased}["email_outbox"] == 2
    (notice,) = queued(uow.store, to=ALICE_EMAIL)
    assert (notice.template, notice.user_id) == ("account_deleted", None)
    assert notice.context == {
        "deleted_at": receipt.deleted_at.isoformat(),
        "at": clock.now().isoformat(timespec="seconds"),
        "ip": "198.51.100.3",
        "user_agent": "tablet",
    }
    assert [m.template for m in queued(uow.store, to=bob.email.value)] == ["reset_password"]


async def test_a_refused_deletion_sends_no_notice(
    delete_account: DeleteAccountHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    with pytest.raises(InvalidPassword):
        await delete_account(DeleteAccount(user_id=alice.id, password="not my password"))
    assert queued(uow.store, "account_deleted") == []
