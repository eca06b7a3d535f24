"""Email verification, an address change, and REQUIRE_VERIFIED_EMAIL at sign-in, on the in-memory fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.application._mail import queued, token_of
from tests.unit.application._support import (
    ACCESS_TTL,
    ALICE_EMAIL,
    ALICE_PASSWORD,
    BOB_EMAIL,
    FRONTEND_URL,
    SESSION_LIFETIME,
    RecordingUnitOfWork,
    SignIn,
    client,
    login_cmd,
    untimed,
)
from usermgmt.adapters.memory import FakeAccessTokenService, FakePasswordHasher, FrozenClock, SequentialIdGenerator
from usermgmt.adapters.refresh_tokens import SecretsRefreshTokenFactory
from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateLimitPolicy, RateRule
from usermgmt.application.devices import KnownDevices
from usermgmt.application.email import EmailPolicy, Postman, Template, token_digest
from usermgmt.application.errors import (
    EmailAlreadyVerified,
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidEmailToken,
    InvalidPassword,
    RateLimited,
)
from usermgmt.application.handlers.email_address import (
    ConfirmEmailChangeHandler,
    RequestEmailChangeHandler,
    ResendVerificationHandler,
    VerifyEmailHandler,
)
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.ports import Rate
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import InvalidEmail, SameEmail
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import Email, EmailTokenPurpose

NEW_EMAIL = "alice@new.example.com"


@pytest.fixture
def register_verifying(
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    screen: PasswordScreen,
    clock: FrozenClock,
    ids: SequentialIdGenerator,
    guard: Guard,
    devices: KnownDevices,
    postman: Postman,
) -> RegisterUserHandler:
    """Registration as the container wires it: with the verification email."""
    return RegisterUserHandler(
        uow=uow, hasher=hasher, screen=screen, clock=clock, ids=ids, guard=guard, devices=devices, postman=postman
    )


@pytest.fixture
async def carol(register_verifying: RegisterUserHandler) -> User:
    return await register_verifying(commands.RegisterUser(email="carol@example.com", password=ALICE_PASSWORD))


def verify(token: str) -> commands.VerifyEmail:
    return commands.VerifyEmail(token=token, client=client())


def change(user: User, new_email: str = NEW_EMAIL, password: str = ALICE_PASSWORD) -> commands.RequestEmailChange:
    return commands.RequestEmailChange(
        user_id=user.id, new_email=new_email, password=password, client=client(ip="198.51.100.7")
    )


def confirm(token: str) -> commands.ConfirmEmailChange:
    return commands.ConfirmEmailChange(token=token, client=client(ip="198.51.100.8"))


# --- registration and verification -----------------------------------------------------------------------------------


async def test_registration_queues_a_verification_link_with_the_account(
    uow: RecordingUnitOfWork, clock: FrozenClock, carol: User
) -> None:
    (message,) = queued(uow.store, Template.VERIFY_EMAIL)
    assert (message.to, message.user_id) == ("carol@example.com", carol.id)
    token = token_of(message)
    assert message.context["link"] == f"{FRONTEND_URL}/verify-email?token={token}"
    assert message.context["expires_at"] == (clock.now() + timedelta(hours=24)).isoformat(timespec="seconds")
    (stored,) = uow.store.email_tokens.values()
    assert (stored.digest, stored.purpose, stored.email) == (
        token_digest(token),
        EmailTokenPurpose.VERIFY,
        Email("carol@example.com"),
    )
    assert EventType.EMAIL_VERIFICATION_SENT in uow.kinds()


async def test_following_the_link_verifies_the_address_once(
    verify_email: VerifyEmailHandler, uow: RecordingUnitOfWork, carol: User
) -> None:
    token = token_of(queued(uow.store, Template.VERIFY_EMAIL)[-1])

    await verify_email(verify(token))

    assert uow.store.users[carol.id].email_verified is True
    assert uow.kinds()[-1] is EventType.EMAIL_VERIFIED
    assert uow.store.email_tokens == {}
    with pytest.raises(InvalidEmailToken):  # single use
        await verify_email(verify(token))


async def test_an_expired_link_is_refused(
    verify_email: VerifyEmailHandler, uow: RecordingUnitOfWork, clock: FrozenClock, carol: User
) -> None:
    token = token_of(queued(uow.store, Template.VERIFY_EMAIL)[-1])
    clock.advance(timedelta(hours=24))

    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(token))
    assert uow.store.users[carol.id].email_verified is False


@pytest.mark.parametrize("token", ["", "x", "not-a-token-we-sent", "a" * 300])
async def test_unknown_tokens_get_the_one_answer(verify_email: VerifyEmailHandler, carol: User, token: str) -> None:
    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(token))


async def test_a_token_of_another_purpose_is_refused_and_left_alone(
    verify_email: VerifyEmailHandler,
    request_email_change: RequestEmailChangeHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    await request_email_change(change(alice))
    change_token = token_of(queued(uow.store, Template.CONFIRM_EMAIL_CHANGE)[-1])

    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(change_token))
    assert token_digest(change_token) in uow.store.email_tokens


async def test_a_link_to_an_address_the_account_left_is_dead(
    verify_email: VerifyEmailHandler,
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    uow: RecordingUnitOfWork,
    carol: User,
) -> None:
    old_link = token_of(queued(uow.store, Template.VERIFY_EMAIL)[-1])
    await request_email_change(change(carol, "carol@new.example.com"))
    await confirm_email_change(confirm(token_of(queued(uow.store, Template.CONFIRM_EMAIL_CHANGE)[-1])))

    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(old_link))


async def test_a_disabled_account_cannot_verify(
    verify_email: VerifyEmailHandler, uow: RecordingUnitOfWork, clock: FrozenClock, carol: User
) -> None:
    token = token_of(queued(uow.store, Template.VERIFY_EMAIL)[-1])
    uow.store.users[carol.id].deactivate(now=clock.now())

    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(token))


async def test_resend_replaces_the_older_links(
    resend_verification: ResendVerificationHandler,
    verify_email: VerifyEmailHandler,
    uow: RecordingUnitOfWork,
    carol: User,
) -> None:
    first = token_of(queued(uow.store, Template.VERIFY_EMAIL)[-1])

    await resend_verification(commands.ResendVerification(user_id=carol.id, client=client()))

    second = token_of(queued(uow.store, Template.VERIFY_EMAIL)[-1])
    assert first != second
    assert list(uow.store.email_tokens) == [token_digest(second)]
    assert uow.recorded[-1].details == {"reason": "requested"}
    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(first))
    await verify_email(verify(second))


async def test_resend_to_a_verified_address_is_a_conflict(
    resend_verification: ResendVerificationHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    uow.store.users[alice.id].email_verified = True

    with pytest.raises(EmailAlreadyVerified):
        await resend_verification(commands.ResendVerification(user_id=alice.id, client=client()))
    assert queued(uow.store, Template.VERIFY_EMAIL) == []


async def test_resends_are_limited_per_user(
    resend_verification: ResendVerificationHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    limit = RateLimitPolicy().rate(RateRule.VERIFICATION_EMAILS_PER_USER).limit
    for _ in range(limit):
        await resend_verification(commands.ResendVerification(user_id=alice.id, client=client()))

    with pytest.raises(RateLimited):
        await resend_verification(commands.ResendVerification(user_id=alice.id, client=client()))
    assert len(queued(uow.store, Template.VERIFY_EMAIL)) == limit


# --- email change ----------------------------------------------------------------------------------------------------


async def test_a_change_keeps_the_address_and_writes_to_both(
    request_email_change: RequestEmailChangeHandler, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    uow.store.users[alice.id].email_verified = True

    await request_email_change(change(alice))

    stored = uow.store.users[alice.id]
    assert (stored.email, stored.email_verified, stored.pending_email) == (
        Email(ALICE_EMAIL),
        True,
        Email(NEW_EMAIL),
    )
    (link,) = queued(uow.store, Template.CONFIRM_EMAIL_CHANGE)
    assert link.to == NEW_EMAIL
    assert link.context["link"].startswith(f"{FRONTEND_URL}/confirm-email?token=")
    assert link.context["new_email"] == NEW_EMAIL
    (notice,) = queued(uow.store, Template.EMAIL_CHANGE_REQUESTED)
    assert notice.to == ALICE_EMAIL
    assert notice.context == {
        "new_email": NEW_EMAIL,
        "at": clock.now().isoformat(timespec="seconds"),
        "ip": "198.51.100.7",
        "user_agent": "pytest",
    }
    event = uow.recorded[-1]
    assert (event.type, event.details) == (EventType.EMAIL_CHANGE_REQUESTED, {"new_email": NEW_EMAIL})


async def test_a_change_needs_the_current_password(
    request_email_change: RequestEmailChangeHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    with pytest.raises(InvalidPassword):
        await request_email_change(change(alice, password="not the password"))

    assert uow.store.users[alice.id].pending_email is None
    assert queued(uow.store) == []
    assert uow.recorded[-1].type is EventType.PASSWORD_CONFIRMATION_FAILED


@pytest.mark.parametrize("taken", [BOB_EMAIL, "BOB@example.com"])
async def test_an_address_of_another_account_is_taken(
    request_email_change: RequestEmailChangeHandler, uow: RecordingUnitOfWork, alice: User, bob: User, taken: str
) -> None:
    with pytest.raises(EmailTaken):
        await request_email_change(change(alice, taken))
    assert queued(uow.store) == []


@pytest.mark.parametrize(("new_email", "error"), [("nope", InvalidEmail), ("ALICE@example.com", SameEmail)])
async def test_a_bad_new_address_is_refused(
    request_email_change: RequestEmailChangeHandler,
    uow: RecordingUnitOfWork,
    alice: User,
    new_email: str,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await request_email_change(change(alice, new_email))
    assert uow.store.users[alice.id].pending_email is None


async def test_changes_are_limited_per_user(request_email_change: RequestEmailChangeHandler, alice: User) -> None:
    limit = RateLimitPolicy().rate(RateRule.EMAIL_CHANGES_PER_USER).limit
    for i in range(limit):
        await request_email_change(change(alice, f"alice{i}@new.example.com"))

    with pytest.raises(RateLimited):
        await request_email_change(change(alice))


async def test_confirming_moves_the_account_verified_and_tells_the_old_address(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    await request_email_change(change(alice))
    token = token_of(queued(uow.store, Template.CONFIRM_EMAIL_CHANGE)[-1])

    await confirm_email_change(confirm(token))

    stored = uow.store.users[alice.id]
    assert (stored.email, stored.email_verified, stored.pending_email) == (Email(NEW_EMAIL), True, None)
    (notice,) = queued(uow.store, Template.EMAIL_CHANGED)
    assert (notice.to, notice.context["new_email"], notice.context["ip"]) == (ALICE_EMAIL, NEW_EMAIL, "198.51.100.8")
    event = uow.recorded[-1]
    assert (event.type, event.details) == (
        EventType.EMAIL_CHANGED,
        {"old_email": ALICE_EMAIL, "new_email": NEW_EMAIL},
    )
    with pytest.raises(InvalidEmailToken):
        await confirm_email_change(confirm(token))


async def test_a_newer_request_supersedes_the_older_link(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    await request_email_change(change(alice, "first@example.com"))
    first = token_of(queued(uow.store, Template.CONFIRM_EMAIL_CHANGE)[-1])
    await request_email_change(change(alice, "second@example.com"))

    with pytest.raises(InvalidEmailToken):
        await confirm_email_change(confirm(first))
    assert uow.store.users[alice.id].pending_email == Email("second@example.com")


async def test_an_address_taken_meanwhile_is_a_conflict_and_changes_nothing(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    register: RegisterUserHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    await request_email_change(change(alice))
    token = token_of(queued(uow.store, Template.CONFIRM_EMAIL_CHANGE)[-1])
    await register(commands.RegisterUser(email=NEW_EMAIL, password="someone else's password"))

    with pytest.raises(EmailTaken):
        await confirm_email_change(confirm(token))

    stored = uow.store.users[alice.id]
    assert (stored.email, stored.pending_email) == (Email(ALICE_EMAIL), Email(NEW_EMAIL))
    assert queued(uow.store, Template.EMAIL_CHANGED) == []


async def test_confirming_kills_the_reset_and_verification_links(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    postman: Postman,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    alice: User,
) -> None:
    async with uow:
        for purpose in (EmailTokenPurpose.RESET, EmailTokenPurpose.VERIFY):
            await postman.send_link(
                uow,
                user_id=alice.id,
                to=alice.email,
                purpose=purpose,
                template=Template.RESET_PASSWORD,
                now=clock.now(),
            )
        await uow.commit()
    await request_email_change(change(alice))

    await confirm_email_change(confirm(token_of(queued(uow.store, Template.CONFIRM_EMAIL_CHANGE)[-1])))

    assert [t for t in uow.store.email_tokens.values() if t.user_id == alice.id] == []


# --- REQUIRE_VERIFIED_EMAIL ------------------------------------------------------------------------------------------


@pytest.fixture
def strict_login(
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    clock: FrozenClock,
    guard: Guard,
    access_tokens: FakeAccessTokenService,
    refresh_tokens: SecretsRefreshTokenFactory,
    ids: SequentialIdGenerator,
) -> SignIn:
    postman = Postman(EmailPolicy(frontend_url=FRONTEND_URL, require_verified_email=True))
    issuer = SessionIssuer(
        uow=uow,
        access_tokens=access_tokens,
        refresh_tokens=refresh_tokens,
        clock=clock,
        ids=ids,
        session_lifetime=SESSION_LIFETIME,
        postman=postman,
    )
    return SignIn(LoginHandler(uow=uow, hasher=hasher, issuer=issuer, clock=clock, guard=guard))


async def test_strict_sign_in_refuses_an_unverified_address_and_sends_a_link_at_most_every_15_minutes(
    strict_login: SignIn, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    with pytest.raises(EmailNotVerified):
        await strict_login(login_cmd(ALICE_EMAIL, ALICE_PASSWORD))
    assert uow.store.sessions == {}
    assert len(queued(uow.store, Template.VERIFY_EMAIL)) == 1
    assert untimed(uow.recorded[-1].details) == {"reason": "email_not_verified"}

    clock.advance(timedelta(minutes=14))
    with pytest.raises(EmailNotVerified):
        await strict_login(login_cmd(ALICE_EMAIL, ALICE_PASSWORD))
    assert len(queued(uow.store, Template.VERIFY_EMAIL)) == 1

    clock.advance(timedelta(minutes=1))
    with pytest.raises(EmailNotVerified):
        await strict_login(login_cmd(ALICE_EMAIL, ALICE_PASSWORD))
    assert len(queued(uow.store, Template.VERIFY_EMAIL)) == 2


async def test_strict_sign_in_checks_the_password_first(
    strict_login: SignIn, uow: RecordingUnitOfWork, alice: User
) -> None:
    with pytest.raises(InvalidCredentials):
        await strict_login(login_cmd(ALICE_EMAIL, "wrong password"))
    assert queued(uow.store) == []


async def test_strict_sign_in_lets_a_verified_address_in(
    strict_login: SignIn, uow: RecordingUnitOfWork, alice: User
) -> None:
    uow.store.users[alice.id].email_verified = True

    pair = await strict_login(login_cmd(ALICE_EMAIL, ALICE_PASSWORD))

    assert pair.expires_in == int(ACCESS_TTL.total_seconds())
    assert queued(uow.store, Template.VERIFY_EMAIL) == []


def test_the_rate_rules_exist() -> None:
    assert RateLimitPolicy().rate(RateRule.EMAIL_CHANGES_PER_USER) == Rate(5, timedelta(hours=1))
