from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from tests.unit.application._mail import queued
from tests.unit.application._support import (
    ALICE_EMAIL,
    ALICE_PASSWORD,
    RecordingUnitOfWork,
    SignIn,
    client,
    login_cmd,
    snapshot,
)
from usermgmt.adapters.memory import FakePasswordHasher, FrozenClock
from usermgmt.application.abuse import Guard
from usermgmt.application.commands import ChangePassword, ClientInfo, RefreshSession
from usermgmt.application.email import Postman, Template
from usermgmt.application.errors import (
    ConcurrentUpdate,
    InvalidAccessToken,
    InvalidCredentials,
    InvalidPassword,
    InvalidRefreshToken,
    RateLimited,
)
from usermgmt.application.handlers.change_password import ChangePasswordHandler
from usermgmt.application.handlers.refresh_session import RefreshSessionHandler
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import UserInactive, WeakPassword
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.password_policy import PasswordPolicy
from usermgmt.domain.value_objects import EmailTokenPurpose, PasswordHash, PlainPassword, SessionId, UserId

NEW_PASSWORD = "a brand new passphrase"


def change(
    user: User,
    session_id: SessionId,
    current: str = ALICE_PASSWORD,
    new: str = NEW_PASSWORD,
    client: ClientInfo | None = None,
) -> ChangePassword:
    return ChangePassword(
        user_id=user.id,
        session_id=session_id,
        current_password=current,
        new_password=new,
        client=client or ClientInfo(),
    )


async def test_change_password_replaces_the_hash(
    change_password: ChangePasswordHandler,
    login: SignIn,
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    clock: FrozenClock,
    alice: User,
) -> None:
    pair = await login(login_cmd())
    clock.advance(timedelta(days=2))

    await change_password(change(alice, pair.session_id))

    stored = uow.store.users[alice.id]
    assert stored.password_hash == hasher.hash_sync(NEW_PASSWORD)
    assert stored.password_changed_at == stored.updated_at == clock.now()
    await login(login_cmd(password=NEW_PASSWORD))
    with pytest.raises(InvalidCredentials):
        await login(login_cmd(password=ALICE_PASSWORD))


async def test_change_password_revokes_all_other_sessions_but_keeps_the_current_one(
    change_password: ChangePasswordHandler,
    login: SignIn,
    refresh: RefreshSessionHandler,
    uow: RecordingUnitOfWork,
    alice: User,
    bob: User,
) -> None:
    current = await login(login_cmd())
    others = [await login(login_cmd()) for _ in range(3)]
    bobs = await login(login_cmd(login="bob", password="bob's long password"))

    revoked = await change_password(change(alice, current.session_id, client=client(ip="198.51.100.7")))

    assert revoked == 3
    event = uow.recorded[-1]
    assert event.type is EventType.PASSWORD_CHANGED
    assert (event.user_id, event.session_id, event.ip) == (alice.id, current.session_id, "198.51.100.7")
    assert event.details == {"revoked_sessions": 3}
    assert set(uow.store.sessions) == {current.session_id, bobs.session_id}
    for other in others:
        with pytest.raises(InvalidRefreshToken):
            await refresh(RefreshSession(refresh_token=other.refresh_token))
    await refresh(RefreshSession(refresh_token=current.refresh_token))


async def test_change_password_with_no_other_sessions_revokes_none(
    change_password: ChangePasswordHandler, login: SignIn, alice: User
) -> None:
    pair = await login(login_cmd())
    assert await change_password(change(alice, pair.session_id)) == 0


async def test_wrong_current_password_is_rejected(
    change_password: ChangePasswordHandler, login: SignIn, uow: RecordingUnitOfWork, alice: User
) -> None:
    pair = await login(login_cmd())
    await login(login_cmd())
    before = snapshot(uow.store)

    with pytest.raises(InvalidPassword) as excinfo:
        await change_password(change(alice, pair.session_id, current="not my password"))

    assert excinfo.value.code == "invalid_password"
    assert snapshot(uow.store) == before
    assert EventType.PASSWORD_CHANGED not in uow.kinds()


@pytest.mark.parametrize("new", ["short", "x" * 129, ALICE_EMAIL.upper(), "ALICE"])
async def test_policy_applies_to_the_new_password(
    change_password: ChangePasswordHandler, login: SignIn, uow: RecordingUnitOfWork, alice: User, new: str
) -> None:
    pair = await login(login_cmd())
    before = snapshot(uow.store)

    with pytest.raises(WeakPassword):
        await change_password(change(alice, pair.session_id, new=new))

    assert snapshot(uow.store) == before


async def test_policy_is_the_configured_one(
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    clock: FrozenClock,
    guard: Guard,
    postman: Postman,
    login: SignIn,
    alice: User,
) -> None:
    pair = await login(login_cmd())
    strict = ChangePasswordHandler(
        uow=uow,
        hasher=hasher,
        screen=PasswordScreen(PasswordPolicy(min_length=30)),
        clock=clock,
        guard=guard,
        postman=postman,
    )

    with pytest.raises(WeakPassword):
        await strict(change(alice, pair.session_id, new="x" * 29))
    await strict(change(alice, pair.session_id, new="x" * 30))


async def test_inactive_user_cannot_change_password(
    change_password: ChangePasswordHandler, login: SignIn, uow: RecordingUnitOfWork, alice: User
) -> None:
    pair = await login(login_cmd())
    uow.store.users[alice.id].is_active = False
    before = snapshot(uow.store)

    with pytest.raises(UserInactive):
        await change_password(change(alice, pair.session_id))

    assert snapshot(uow.store) == before


async def test_unknown_user_is_an_invalid_token(change_password: ChangePasswordHandler, alice: User) -> None:
    ghost = ChangePassword(
        user_id=UserId(UUID(int=999)),
        session_id=SessionId(UUID(int=998)),
        current_password=ALICE_PASSWORD,
        new_password=NEW_PASSWORD,
    )
    with pytest.raises(InvalidAccessToken):
        await change_password(ghost)


class ConcurrentChangeHasher(FakePasswordHasher):
    """While the new hash is computed, another request changes the same user's password."""

    def __init__(self, uow: RecordingUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    async def hash(self, password: PlainPassword) -> PasswordHash:
        for user in self._uow.store.users.values():
            user.password_hash = PasswordHash("fake2$changed-by-someone-else")
        return await super().hash(password)


async def test_password_changed_meanwhile_is_a_concurrent_update(
    uow: RecordingUnitOfWork, clock: FrozenClock, guard: Guard, postman: Postman, login: SignIn, alice: User
) -> None:
    pair = await login(login_cmd())
    handler = ChangePasswordHandler(
        uow=uow,
        hasher=ConcurrentChangeHasher(uow),
        screen=PasswordScreen(PasswordPolicy()),
        clock=clock,
        guard=guard,
        postman=postman,
    )

    with pytest.raises(ConcurrentUpdate):
        await handler(change(alice, pair.session_id))

    assert uow.store.users[alice.id].password_hash == PasswordHash("fake2$changed-by-someone-else")
    assert pair.session_id in uow.store.sessions


async def test_change_password_command_repr_hides_both_passwords(alice: User) -> None:
    text = repr(change(alice, SessionId(UUID(int=5))))
    assert ALICE_PASSWORD not in text
    assert NEW_PASSWORD not in text


@pytest.mark.parametrize(
    "new",
    ["Liddell2025!", "alice1234", "ALICE-alice", "aliceliddell!"],
)
async def test_new_password_built_from_own_identifiers_is_rejected(
    change_password: ChangePasswordHandler, login: SignIn, uow: RecordingUnitOfWork, alice: User, new: str
) -> None:
    pair = await login(login_cmd())
    before = snapshot(uow.store)

    with pytest.raises(WeakPassword) as excinfo:
        await change_password(change(alice, pair.session_id, new=new))

    assert new not in excinfo.value.detail
    assert snapshot(uow.store) == before


async def test_password_changes_are_rate_limited_per_user(
    change_password: ChangePasswordHandler, login: SignIn, hasher: FakePasswordHasher, alice: User
) -> None:
    pair = await login(login_cmd())
    for _ in range(5):  # the default: five per 15 minutes, whether they succeed or not
        with pytest.raises(InvalidPassword):
            await change_password(change(alice, pair.session_id, current="not my password"))
    spent = hasher.verifications

    with pytest.raises(RateLimited) as excinfo:
        await change_password(change(alice, pair.session_id))

    assert excinfo.value.rule == "password_changes_per_user"
    assert hasher.verifications == spent


async def test_change_password_sends_the_notice_and_kills_the_reset_links_only(
    change_password: ChangePasswordHandler,
    login: SignIn,
    postman: Postman,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    alice: User,
    bob: User,
) -> None:
    pair = await login(login_cmd())
    async with uow:
        for user, purpose in (
            (alice, EmailTokenPurpose.RESET),
            (alice, EmailTokenPurpose.VERIFY),
            (bob, EmailTokenPurpose.RESET),
        ):
            await postman.send_link(
                uow, user_id=user.id, to=user.email, purpose=purpose, template=Template.RESET_PASSWORD, now=clock.now()
            )
        await uow.commit()
    clock.advance(timedelta(minutes=3))

    await change_password(change(alice, pair.session_id, client=client(ip="198.51.100.7", user_agent="laptop")))

    assert sorted((t.user_id, t.purpose) for t in uow.store.email_tokens.values()) == sorted(
        [(alice.id, EmailTokenPurpose.VERIFY), (bob.id, EmailTokenPurpose.RESET)]
    )
    (notice,) = queued(uow.store, "password_changed")
    assert (notice.to, notice.user_id) == (ALICE_EMAIL, alice.id)
    assert notice.context == {
        "reset": False,
        "at": clock.now().isoformat(timespec="seconds"),
        "ip": "198.51.100.7",
        "user_agent": "laptop",
    }


async def test_a_refused_change_sends_no_notice(
    change_password: ChangePasswordHandler, login: SignIn, uow: RecordingUnitOfWork, alice: User
) -> None:
    pair = await login(login_cmd())
    with pytest.raises(InvalidPassword):
        await change_password(change(alice, pair.session_id, current="not my password"))
    with pytest.raises(WeakPassword):
        await change_password(change(alice, pair.session_id, new="short"))
    assert queued(uow.store, "password_changed") == []
