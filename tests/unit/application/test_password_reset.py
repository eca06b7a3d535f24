"""Forgot password and reset, on the in-memory fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.application._mail import CallLog, CountingHasher, queued, token_of
from tests.unit.application._support import (
    ALICE_EMAIL,
    ALICE_PASSWORD,
    BOB_EMAIL,
    FRONTEND_URL,
    RecordingUnitOfWork,
    SignIn,
    client,
    login_cmd,
    make_guard,
)
from usermgmt.adapters.memory import FakePasswordHasher, FrozenClock
from usermgmt.application.abuse import RateLimitPolicy, RateRule
from usermgmt.application.commands import ChangePassword, ForgotPassword, RefreshSession, ResetPassword
from usermgmt.application.email import Postman, Template, token_digest
from usermgmt.application.errors import InvalidCredentials, InvalidEmailToken, InvalidRefreshToken, RateLimited
from usermgmt.application.handlers.change_password import ChangePasswordHandler
from usermgmt.application.handlers.password_reset import ForgotPasswordHandler, ResetPasswordHandler
from usermgmt.application.handlers.refresh_session import RefreshSessionHandler
from usermgmt.application.ports import Rate
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import InvalidEmail, WeakPassword
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.password_policy import PasswordPolicy
from usermgmt.domain.value_objects import EmailTokenPurpose, PasswordHash, PlainPassword

NEW_PASSWORD = "a brand new passphrase"
RESET = "reset_password"


def forgot(email: str = ALICE_EMAIL, ip: str = "198.51.100.9") -> ForgotPassword:
    return ForgotPassword(email=email, client=client(ip=ip))


def reset(token: str, new_password: str = NEW_PASSWORD) -> ResetPassword:
    return ResetPassword(token=token, new_password=new_password, client=client(ip="198.51.100.9", user_agent="phone"))


async def reset_link(forgot_password: ForgotPasswordHandler, uow: RecordingUnitOfWork, email: str = ALICE_EMAIL) -> str:
    """Ask for a reset of ``email``'s account; the token of the link that was queued."""
    await forgot_password(forgot(email))
    return token_of(queued(uow.store, RESET)[-1])


# --- forgot ---------------------------------------------------------------------------------------------------------


async def test_forgot_queues_a_reset_link_to_the_stored_address(
    forgot_password: ForgotPasswordHandler, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    await forgot_password(forgot("ALICE@example.com"))

    (message,) = queued(uow.store, RESET)
    assert message.to == ALICE_EMAIL  # the account's spelling, not the typed one
    assert message.user_id == alice.id
    token = token_of(message)
    assert message.context["link"].startswith(f"{FRONTEND_URL}/reset-password?token=")
    assert message.context["expires_at"] == (clock.now() + timedelta(minutes=30)).isoformat(timespec="seconds")
    (stored,) = uow.store.email_tokens.values()
    assert (stored.digest, stored.user_id, stored.purpose) == (token_digest(token), alice.id, EmailTokenPurpose.RESET)
    assert token not in repr(uow.store.email_tokens)
    event = uow.recorded[-1]
    assert (event.type, event.user_id, event.ip, event.details) == (
        EventType.PASSWORD_RESET_REQUESTED,
        alice.id,
        "198.51.100.9",
        {},
    )


async def test_unknown_address_sends_nothing_and_is_recorded_without_an_account(
    forgot_password: ForgotPasswordHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    await forgot_password(forgot("nobody@example.com"))

    assert queued(uow.store) == []
    assert uow.store.email_tokens == {}
    event = uow.recorded[-1]
    assert (event.type, event.user_id, event.details) == (
        EventType.PASSWORD_RESET_REQUESTED,
        None,
        {"reason": "unknown_email"},
    )


async def test_known_and_unknown_addresses_do_the_same_work_but_the_token_and_outbox_rows(
    clock: FrozenClock, postman: Postman, uow: RecordingUnitOfWork, alice: User
) -> None:
    """No enumeration by timing: the same reads, the same event write, the same commit; no hash for anyone."""
    calls = {}
    for address in (ALICE_EMAIL, "nobody@example.com"):
        log = CallLog(uow.store)
        handler = ForgotPasswordHandler(uow=log, clock=clock, guard=make_guard(log, clock), postman=postman)
        await handler(forgot(address))
        calls[address] = log.calls

    assert calls[ALICE_EMAIL] == [
        "users.get_by_email",
        "email_tokens.add",
        "outbox.add",
        "events.add",
        "commit",
    ]
    extra = {"email_tokens.add", "outbox.add"}
    assert [call for call in calls[ALICE_EMAIL] if call not in extra] == calls["nobody@example.com"]


async def test_a_disabled_account_gets_no_link(
    forgot_password: ForgotPasswordHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    uow.store.users[alice.id].is_active = False

    await forgot_password(forgot())

    assert queued(uow.store) == []
    assert uow.store.email_tokens == {}
    assert uow.recorded[-1].details == {"reason": "account_disabled"}
    assert uow.recorded[-1].user_id == alice.id


async def test_a_malformed_address_is_refused(forgot_password: ForgotPasswordHandler, uow: RecordingUnitOfWork) -> None:
    with pytest.raises(InvalidEmail):
        await forgot_password(forgot("not an address"))
    assert queued(uow.store) == []


async def test_requests_are_limited_per_client_ip(
    forgot_password: ForgotPasswordHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    for n in range(10):
        await forgot_password(forgot(f"someone{n}@example.com", ip="203.0.113.50"))

    with pytest.raises(RateLimited) as excinfo:
        await forgot_password(forgot(ip="203.0.113.50"))

    assert excinfo.value.rule == RateRule.PASSWORD_FORGOT_PER_IP
    assert queued(uow.store) == []  # the refused request sent nothing
    await forgot_password(forgot(ip="203.0.113.51"))  # another client is unaffected
    assert len(queued(uow.store, RESET)) == 1


async def test_emails_per_account_are_limited_silently(
    forgot_password: ForgotPasswordHandler, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    for spelling in (ALICE_EMAIL, "Alice@Example.com", ALICE_EMAIL):
        await forgot_password(forgot(spelling))
    assert len(queued(uow.store, RESET)) == 3

    await forgot_password(forgot("ALICE@EXAMPLE.COM"))  # no error: the answer does not change

    assert len(queued(uow.store, RESET)) == 3
    assert len(uow.store.email_tokens) == 3
    assert uow.recorded[-1].details == {"reason": "rate_limited"}
    assert EventType.RATE_LIMITED not in uow.kinds()  # nothing that an attacker could tell apart, not even here
    clock.advance(timedelta(hours=1))
    await forgot_password(forgot())
    assert len(queued(uow.store, RESET)) == 4


async def test_no_limit_applies_when_rate_limits_are_off(
    uow: RecordingUnitOfWork, clock: FrozenClock, postman: Postman, alice: User
) -> None:
    handler = ForgotPasswordHandler(
        uow=uow, clock=clock, guard=make_guard(uow, clock, RateLimitPolicy(enabled=False)), postman=postman
    )
    for _ in range(12):
        await handler(forgot())
    assert len(queued(uow.store, RESET)) == 12


async def test_the_per_account_limit_is_the_configured_one(
    uow: RecordingUnitOfWork, clock: FrozenClock, postman: Postman, alice: User
) -> None:
    policy = RateLimitPolicy(rates={RateRule.PASSWORD_RESET_EMAILS_PER_ACCOUNT: Rate(1, timedelta(hours=1))})
    handler = ForgotPasswordHandler(uow=uow, clock=clock, guard=make_guard(uow, clock, policy), postman=postman)
    await handler(forgot())
    await handler(forgot())
    assert len(queued(uow.store, RESET)) == 1


# --- reset ----------------------------------------------------------------------------------------------------------


async def test_reset_sets_the_password_ends_every_session_and_signs_nobody_in(
    forgot_password: ForgotPasswordHandler,
    reset_password: ResetPasswordHandler,
    login: SignIn,
    refresh: RefreshSessionHandler,
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    clock: FrozenClock,
    alice: User,
) -> None:
    pairs = [await login(login_cmd()) for _ in range(2)]
    token = await reset_link(forgot_password, uow)
    clock.advance(timedelta(minutes=10))

    assert await reset_password(reset(token)) is None

    stored = uow.store.users[alice.id]
    assert stored.password_hash == hasher.hash_sync(NEW_PASSWORD)
    assert stored.password_changed_at == clock.now()
    assert stored.email_verified is True  # the mailbox was proven
    assert uow.store.sessions == {}
    for pair in pairs:
        with pytest.raises(InvalidRefreshToken):
            await refresh(RefreshSession(refresh_token=pair.refresh_token))
    event = next(e for e in reversed(uow.recorded) if e.type is EventType.PASSWORD_RESET)
    assert (event.user_id, event.ip, event.details) == (alice.id, "198.51.100.9", {"revoked_sessions": 2})
    (notice,) = queued(uow.store, "password_changed")
    assert (notice.to, notice.user_id) == (ALICE_EMAIL, alice.id)
    assert notice.context == {
        "reset": True,
        "at": clock.now().isoformat(timespec="seconds"),
        "ip": "198.51.100.9",
        "user_agent": "phone",
    }
    await login(login_cmd(password=NEW_PASSWORD))
    with pytest.raises(InvalidCredentials):
        await login(login_cmd(password=ALICE_PASSWORD))


async def test_a_reset_link_works_once(
    forgot_password: ForgotPasswordHandler, reset_password: ResetPasswordHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    token = await reset_link(forgot_password, uow)
    await reset_password(reset(token))

    with pytest.raises(InvalidEmailToken):
        await reset_password(reset(token, "yet another passphrase"))


async def test_a_reset_kills_every_other_reset_link_but_no_other_kind(
    forgot_password: ForgotPasswordHandler,
    reset_password: ResetPasswordHandler,
    postman: Postman,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    alice: User,
) -> None:
    first = await reset_link(forgot_password, uow)
    second = await reset_link(forgot_password, uow)
    async with uow:
        await postman.send_link(
            uow,
            user_id=alice.id,
            to=alice.email,
            purpose=EmailTokenPurpose.VERIFY,
            template=Template.VERIFY_EMAIL,
            now=clock.now(),
        )
        await uow.commit()

    await reset_password(reset(second))

    assert [t.purpose for t in uow.store.email_tokens.values()] == [EmailTokenPurpose.VERIFY]
    with pytest.raises(InvalidEmailToken):
        await reset_password(reset(first))


async def test_an_expired_link_is_refused_and_changes_nothing(
    forgot_password: ForgotPasswordHandler,
    reset_password: ResetPasswordHandler,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    alice: User,
) -> None:
    token = await reset_link(forgot_password, uow)
    clock.advance(timedelta(minutes=30))
    before = uow.store.users[alice.id].password_hash

    with pytest.raises(InvalidEmailToken):
        await reset_password(reset(token))

    assert uow.store.users[alice.id].password_hash == before


async def test_a_token_of_another_purpose_is_refused_and_stays_usable_for_its_own(
    reset_password: ResetPasswordHandler, postman: Postman, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    async with uow:
        await postman.send_link(
            uow,
            user_id=alice.id,
            to=alice.email,
            purpose=EmailTokenPurpose.VERIFY,
            template=Template.VERIFY_EMAIL,
            now=clock.now(),
        )
        await uow.commit()
    token = token_of(queued(uow.store, "verify_email")[-1])

    with pytest.raises(InvalidEmailToken):
        await reset_password(reset(token))

    async with uow:
        assert (await postman.redeem(uow, token, EmailTokenPurpose.VERIFY, clock.now())).user_id == alice.id


@pytest.mark.parametrize("token", ["", "x", "a" * 300, "not-a-token-at-all"])
async def test_unknown_tokens_are_refused_alike(reset_password: ResetPasswordHandler, token: str) -> None:
    with pytest.raises(InvalidEmailToken) as excinfo:
        await reset_password(reset(token))
    assert excinfo.value.code == "invalid_email_token"


async def test_a_dead_link_costs_no_hash_and_is_refused_before_the_password_is_judged(
    uow: RecordingUnitOfWork, screen: PasswordScreen, clock: FrozenClock, postman: Postman, alice: User
) -> None:
    hasher = CountingHasher(FakePasswordHasher())
    handler = ResetPasswordHandler(uow=uow, hasher=hasher, screen=screen, clock=clock, postman=postman)

    with pytest.raises(InvalidEmailToken):
        await handler(reset("unknown", new_password="short"))

    assert hasher.hashes == 0


async def test_a_weak_new_password_is_refused_and_the_link_still_works(
    forgot_password: ForgotPasswordHandler,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    postman: Postman,
    alice: User,
) -> None:
    hasher = CountingHasher(FakePasswordHasher())
    handler = ResetPasswordHandler(
        uow=uow,
        hasher=hasher,
        screen=PasswordScreen(PasswordPolicy(common=frozenset({"sunshine"}))),
        clock=clock,
        postman=postman,
    )
    token = await reset_link(forgot_password, uow)

    for weak in ("short", "x" * 129, "Sunshine2024!", "alice@example.com", "AliceLiddell2025"):
        with pytest.raises(WeakPassword):
            await handler(reset(token, weak))

    assert hasher.hashes == 0
    await handler(reset(token))
    assert hasher.hashes == 1


async def test_a_password_change_kills_the_reset_links(
    forgot_password: ForgotPasswordHandler,
    reset_password: ResetPasswordHandler,
    change_password: ChangePasswordHandler,
    login: SignIn,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    token = await reset_link(forgot_password, uow)
    pair = await login(login_cmd())
    await change_password(
        ChangePassword(
            user_id=alice.id, session_id=pair.session_id, current_password=ALICE_PASSWORD, new_password=NEW_PASSWORD
        )
    )

    with pytest.raises(InvalidEmailToken):
        await reset_password(reset(token, "the attacker's password"))

    await login(login_cmd(password=NEW_PASSWORD))


class PasswordChangedWhileHashing(FakePasswordHasher):
    """While the reset's new hash is computed, the account's password changes by some other way that leaves the
    reset link in place (the guard must not rely on every other way deleting it)."""

    def __init__(self, uow: RecordingUnitOfWork, clock: FrozenClock) -> None:
        super().__init__()
        self._uow, self._clock = uow, clock

    async def hash(self, password: PlainPassword) -> PasswordHash:
        for user in self._uow.store.users.values():
            user.password_hash = PasswordHash("fake2$changed-by-someone-else")
            user.password_changed_at = self._clock.now() + timedelta(seconds=1)
        return await super().hash(password)


async def test_a_link_older_than_a_password_changed_meanwhile_does_not_win(
    forgot_password: ForgotPasswordHandler,
    uow: RecordingUnitOfWork,
    screen: PasswordScreen,
    clock: FrozenClock,
    postman: Postman,
    alice: User,
) -> None:
    token = await reset_link(forgot_password, uow)
    handler = ResetPasswordHandler(
        uow=uow, hasher=PasswordChangedWhileHashing(uow, clock), screen=screen, clock=clock, postman=postman
    )

    with pytest.raises(InvalidEmailToken):
        await handler(reset(token))

    assert uow.store.users[alice.id].password_hash == PasswordHash("fake2$changed-by-someone-else")
    assert queued(uow.store, "password_changed") == []


async def test_a_disabled_account_cannot_be_reset(
    forgot_password: ForgotPasswordHandler, reset_password: ResetPasswordHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    token = await reset_link(forgot_password, uow)
    uow.store.users[alice.id].is_active = False
    before = uow.store.users[alice.id].password_hash

    with pytest.raises(InvalidEmailToken):
        await reset_password(reset(token))

    assert uow.store.users[alice.id].password_hash == before


async def test_the_address_is_verified_only_if_the_link_went_to_it(
    forgot_password: ForgotPasswordHandler,
    reset_password: ResetPasswordHandler,
    uow: RecordingUnitOfWork,
    bob: User,
    alice: User,
) -> None:
    token = await reset_link(forgot_password, uow)
    (stored,) = uow.store.email_tokens.values()
    uow.store.email_tokens[stored.digest] = type(stored)(
        digest=stored.digest,
        user_id=stored.user_id,
        purpose=stored.purpose,
        email=bob.email,  # as if the address had changed since the link went out
        created_at=stored.created_at,
        expires_at=stored.expires_at,
    )

    await reset_password(reset(token))

    assert uow.store.users[alice.id].email_verified is False
    assert uow.store.users[alice.id].password_hash == FakePasswordHasher().hash_sync(NEW_PASSWORD)
    assert uow.store.users[bob.id].email_verified is False
    assert BOB_EMAIL not in [m.to for m in queued(uow.store, "password_changed")]


async def test_commands_hide_their_secrets() -> None:
    text = repr(reset("the-token", "the-password")) + repr(forgot())
    assert "the-token" not in text
    assert "the-password" not in text


async def test_a_reset_is_no_sign_in_from_a_device(
    forgot_password: ForgotPasswordHandler,
    reset_password: ResetPasswordHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    """A reset is no sign-in: nothing about devices is recorded."""
    token = await reset_link(forgot_password, uow)
    devices_before = dict(uow.store.known_devices)

    await reset_password(reset(token))

    assert uow.store.known_devices == devices_before
    assert queued(uow.store, "new_device") == []
