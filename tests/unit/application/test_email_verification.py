"""Email verification on the in-memory fakes: the link sent at registration and on request, following it, and the
sign-in that requires a verified address."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from tests.unit.application._mail import CallLog, queued, token_of
from tests.unit.application._support import (
    ALICE_EMAIL,
    ALICE_PASSWORD,
    FRONTEND_URL,
    RecordingUnitOfWork,
    client,
    login_cmd,
    make_guard,
)
from usermgmt.adapters.memory import (
    FakeAccessTokenService,
    FakePasswordHasher,
    FrozenClock,
    SequentialIdGenerator,
)
from usermgmt.adapters.refresh_tokens import SecretsRefreshTokenFactory
from usermgmt.application.abuse import Guard
from usermgmt.application.commands import ForgotPassword, RegisterUser, ResendVerification, VerifyEmail
from usermgmt.application.email import Postman, Template, token_digest
from usermgmt.application.errors import (
    EmailAlreadyVerified,
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidEmailToken,
    RateLimited,
)
from usermgmt.application.handlers.email_verification import (
    REMIND_EVERY,
    EmailVerification,
    ResendVerificationHandler,
    VerifyEmailHandler,
)
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.password_reset import ForgotPasswordHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.password_policy import PasswordPolicy
from usermgmt.domain.value_objects import Email, EmailTokenPurpose, PasswordHash, PlainPassword, UserId

VERIFY = "verify_email"


def verify(token: str) -> VerifyEmail:
    return VerifyEmail(token=token, client=client(ip="198.51.100.20", user_agent="mail app"))


def verification_tokens(uow: RecordingUnitOfWork, user: User) -> list[str]:
    """The digests of ``user``'s outstanding verification tokens."""
    return [
        digest
        for digest, token in uow.store.email_tokens.items()
        if token.user_id == user.id and token.purpose is EmailTokenPurpose.VERIFY
    ]


def verified(uow: RecordingUnitOfWork, user: User) -> bool:
    return uow.store.users[user.id].email_verified


# --- at registration ------------------------------------------------------------------------------------------------


async def test_registration_queues_a_verification_link_to_the_new_address(
    register: RegisterUserHandler, uow: RecordingUnitOfWork, clock: FrozenClock
) -> None:
    user = await register(RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD, client=client()))

    (message,) = queued(uow.store)
    assert (message.to, message.template, message.user_id) == (ALICE_EMAIL, VERIFY, user.id)
    assert message.context["link"].startswith(f"{FRONTEND_URL}/verify-email?token=")
    assert message.context["expires_at"] == (clock.now() + timedelta(hours=24)).isoformat(timespec="seconds")
    token = token_of(message)
    (stored,) = uow.store.email_tokens.values()
    assert (stored.digest, stored.user_id, stored.purpose, stored.email) == (
        token_digest(token),
        user.id,
        EmailTokenPurpose.VERIFY,
        Email(ALICE_EMAIL),
    )
    assert token not in repr(uow.store)
    assert uow.kinds() == [EventType.REGISTERED, EventType.EMAIL_VERIFICATION_SENT]
    assert uow.store.users[user.id].email_verified is False


async def test_the_link_is_queued_in_the_accounts_own_transaction(
    hasher: FakePasswordHasher, clock: FrozenClock, postman: Postman
) -> None:
    log = CallLog()
    register = RegisterUserHandler(
        uow=log,
        hasher=hasher,
        screen=PasswordScreen(PasswordPolicy()),
        clock=clock,
        ids=SequentialIdGenerator(),
        guard=make_guard(log, clock),
        verification=EmailVerification(postman),
    )

    await register(RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD))

    writes = log.calls[log.calls.index("users.add") :]
    assert writes == ["users.add", "events.add", "email_tokens.add", "outbox.add", "events.add", "commit"]


class RacingHasher(FakePasswordHasher):
    """While the registration hashes (between its uniqueness check and its insert), another account takes the
    address."""

    def __init__(self, uow: RecordingUnitOfWork, rival: User) -> None:
        super().__init__()
        self._uow, self._rival = uow, rival

    async def hash(self, password: PlainPassword) -> PasswordHash:
        async with self._uow:
            await self._uow.users.add(self._rival)
            await self._uow.commit()
        return await super().hash(password)


async def test_a_registration_that_fails_at_its_insert_sends_nothing(
    uow: RecordingUnitOfWork, clock: FrozenClock, postman: Postman
) -> None:
    rival = User.register(
        id=UserId(UUID(int=99)),
        email=Email("ALICE@example.com"),
        password_hash=PasswordHash("fake2$rival"),
        now=clock.now(),
    )
    register = RegisterUserHandler(
        uow=uow,
        hasher=RacingHasher(RecordingUnitOfWork(uow.store), rival),
        screen=PasswordScreen(PasswordPolicy()),
        clock=clock,
        ids=SequentialIdGenerator(),
        guard=make_guard(uow, clock),
        verification=EmailVerification(postman),
    )

    with pytest.raises(EmailTaken):
        await register(RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD))

    assert queued(uow.store) == []
    assert uow.store.email_tokens == {}
    assert EventType.EMAIL_VERIFICATION_SENT not in uow.kinds()


# --- following the link ---------------------------------------------------------------------------------------------


async def test_the_link_verifies_the_address(
    verify_email: VerifyEmailHandler, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    token = token_of(queued(uow.store, VERIFY)[-1])
    clock.advance(timedelta(hours=2))

    await verify_email(verify(token))

    stored = uow.store.users[alice.id]
    assert (stored.email_verified, stored.updated_at) == (True, clock.now())
    assert verification_tokens(uow, alice) == []
    event = uow.recorded[-1]
    assert (event.type, event.user_id, event.ip, event.user_agent) == (
        EventType.EMAIL_VERIFIED,
        alice.id,
        "198.51.100.20",
        "mail app",
    )


async def test_a_link_works_once(verify_email: VerifyEmailHandler, uow: RecordingUnitOfWork, alice: User) -> None:
    token = token_of(queued(uow.store, VERIFY)[-1])
    await verify_email(verify(token))
    recorded = len(uow.recorded)

    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(token))

    assert len(uow.recorded) == recorded


async def test_an_expired_link_verifies_nothing(
    verify_email: VerifyEmailHandler, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    token = token_of(queued(uow.store, VERIFY)[-1])
    clock.advance(timedelta(hours=24))  # EmailPolicy.token_ttl

    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(token))

    assert verified(uow, alice) is False


@pytest.mark.parametrize("token", ["", "x", "A" * 43, "a" * 300])
async def test_unknown_tokens_are_refused(
    verify_email: VerifyEmailHandler, uow: RecordingUnitOfWork, alice: User, token: str
) -> None:
    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(token))
    assert verified(uow, alice) is False


async def test_a_reset_link_verifies_nothing_and_stays_usable(
    verify_email: VerifyEmailHandler,
    forgot_password: ForgotPasswordHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    await forgot_password(ForgotPassword(email=ALICE_EMAIL))
    reset_token = token_of(queued(uow.store, "reset_password")[-1])

    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(reset_token))

    assert verified(uow, alice) is False
    assert token_digest(reset_token) in uow.store.email_tokens  # a token of another purpose stays where it is


async def test_a_link_to_an_address_the_account_no_longer_has_is_refused(
    verify_email: VerifyEmailHandler, postman: Postman, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    async with uow:  # as if sent while the account still had another address
        await postman.send_link(
            uow,
            user_id=alice.id,
            to=Email("alice@old.example.com"),
            purpose=EmailTokenPurpose.VERIFY,
            template=Template.VERIFY_EMAIL,
            now=clock.now(),
        )
        await uow.commit()
    stale = token_of(queued(uow.store, VERIFY, to="alice@old.example.com")[-1])

    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(stale))

    assert verified(uow, alice) is False
    assert EventType.EMAIL_VERIFIED not in uow.kinds()


async def test_a_disabled_account_is_not_verified(
    verify_email: VerifyEmailHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    token = token_of(queued(uow.store, VERIFY)[-1])
    uow.store.users[alice.id].is_active = False

    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(token))

    assert verified(uow, alice) is False


async def test_a_link_to_a_verified_address_is_used_up_and_records_nothing_new(
    verify_email: VerifyEmailHandler, postman: Postman, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    token = token_of(queued(uow.store, VERIFY)[-1])
    uow.store.users[alice.id].email_verified = True  # e.g. by a password reset since

    await verify_email(verify(token))

    assert EventType.EMAIL_VERIFIED not in uow.kinds()
    assert verification_tokens(uow, alice) == []


# --- asking for a fresh link ----------------------------------------------------------------------------------------


async def test_a_fresh_link_replaces_the_older_ones(
    resend_verification: ResendVerificationHandler,
    verify_email: VerifyEmailHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    first = token_of(queued(uow.store, VERIFY)[-1])

    await resend_verification(ResendVerification(user_id=alice.id, client=client(ip="198.51.100.30")))

    messages = queued(uow.store, VERIFY, to=ALICE_EMAIL)
    assert len(messages) == 2
    fresh = token_of(messages[-1])
    assert len(verification_tokens(uow, alice)) == 1
    assert (uow.recorded[-1].type, uow.recorded[-1].ip) == (EventType.EMAIL_VERIFICATION_SENT, "198.51.100.30")
    with pytest.raises(InvalidEmailToken):
        await verify_email(verify(first))
    await verify_email(verify(fresh))
    assert verified(uow, alice) is True


async def test_a_verified_address_gets_no_link(
    resend_verification: ResendVerificationHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    uow.store.users[alice.id].email_verified = True

    with pytest.raises(EmailAlreadyVerified):
        await resend_verification(ResendVerification(user_id=alice.id))

    assert len(queued(uow.store, VERIFY)) == 1  # the registration's only


async def test_fresh_links_are_limited_per_user(
    resend_verification: ResendVerificationHandler, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    for _ in range(5):
        await resend_verification(ResendVerification(user_id=alice.id))

    with pytest.raises(RateLimited) as excinfo:
        await resend_verification(ResendVerification(user_id=alice.id))

    assert excinfo.value.rule == "verification_emails_per_user"
    assert len(queued(uow.store, VERIFY)) == 6  # the registration's and five more
    clock.advance(timedelta(hours=1))
    await resend_verification(ResendVerification(user_id=alice.id))
    assert len(queued(uow.store, VERIFY)) == 7


# --- USERMGMT_REQUIRE_VERIFIED_EMAIL --------------------------------------------------------------------------------


@pytest.fixture
def strict_login(
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    access_tokens: FakeAccessTokenService,
    clock: FrozenClock,
    guard: Guard,
    postman: Postman,
) -> LoginHandler:
    """Login, with a verified address required."""
    issuer = SessionIssuer(
        uow=uow,
        access_tokens=access_tokens,
        refresh_tokens=SecretsRefreshTokenFactory(),
        clock=clock,
        ids=SequentialIdGenerator(),
        session_lifetime=timedelta(days=1),
        verification=EmailVerification(postman, required=True),
    )
    return LoginHandler(uow=uow, hasher=hasher, issuer=issuer, clock=clock, guard=guard)


async def test_an_unverified_account_gets_no_session_and_no_token(
    strict_login: LoginHandler, uow: RecordingUnitOfWork, access_tokens: FakeAccessTokenService, alice: User
) -> None:
    with pytest.raises(EmailNotVerified) as excinfo:
        await strict_login(login_cmd())

    assert excinfo.value.code == "email_not_verified"
    assert uow.store.sessions == {}
    assert access_tokens.issued == 0
    refused = uow.recorded[-1]
    assert (refused.type, refused.user_id, refused.details) == (
        EventType.LOGIN_FAILED,
        alice.id,
        {"reason": "email_not_verified"},
    )
    assert EventType.LOGIN_SUCCEEDED not in uow.kinds()


async def test_a_refused_sign_in_sends_a_fresh_link_at_most_every_15_minutes(
    strict_login: LoginHandler,
    verify_email: VerifyEmailHandler,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    alice: User,
) -> None:
    with pytest.raises(EmailNotVerified):
        await strict_login(login_cmd())
    assert len(queued(uow.store, VERIFY)) == 1  # the registration's went out less than 15 minutes ago

    clock.advance(REMIND_EVERY)
    with pytest.raises(EmailNotVerified):
        await strict_login(login_cmd())
    assert len(queued(uow.store, VERIFY)) == 2
    assert uow.kinds()[-2:] == [EventType.EMAIL_VERIFICATION_SENT, EventType.LOGIN_FAILED]

    clock.advance(REMIND_EVERY - timedelta(seconds=1))
    for _ in range(3):
        with pytest.raises(EmailNotVerified):
            await strict_login(login_cmd())
    assert len(queued(uow.store, VERIFY)) == 2

    await verify_email(verify(token_of(queued(uow.store, VERIFY)[-1])))  # the fresh link works
    result = await strict_login(login_cmd())
    assert uow.store.sessions
    assert result is not None


async def test_a_wrong_password_on_an_unverified_account_stays_invalid_credentials(
    strict_login: LoginHandler, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    clock.advance(REMIND_EVERY)

    with pytest.raises(InvalidCredentials):
        await strict_login(login_cmd(password="not my password"))

    assert len(queued(uow.store, VERIFY)) == 1
    assert uow.recorded[-1].details == {"reason": "wrong_password"}


async def test_a_verified_account_signs_in(strict_login: LoginHandler, uow: RecordingUnitOfWork, alice: User) -> None:
    uow.store.users[alice.id].email_verified = True

    await strict_login(login_cmd())

    assert len(uow.store.sessions) == 1
    assert uow.recorded[-1].type is EventType.LOGIN_SUCCEEDED


async def test_a_verified_account_costs_the_sign_in_no_statement(
    hasher: FakePasswordHasher, access_tokens: FakeAccessTokenService, clock: FrozenClock, postman: Postman
) -> None:
    """The rule reads the flag of the row the sign-in locks anyway: a verified account's sign-in makes the same
    calls as with the rule off."""
    calls = {}
    for required in (False, True):
        log = CallLog()
        register = RegisterUserHandler(
            uow=log,
            hasher=hasher,
            screen=PasswordScreen(PasswordPolicy()),
            clock=clock,
            ids=SequentialIdGenerator(),
            guard=make_guard(log, clock),
            verification=EmailVerification(postman),
        )
        user = await register(RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD))
        log.store.users[user.id].email_verified = True
        issuer = SessionIssuer(
            uow=log,
            access_tokens=access_tokens,
            refresh_tokens=SecretsRefreshTokenFactory(),
            clock=clock,
            ids=SequentialIdGenerator(),
            session_lifetime=timedelta(days=1),
            verification=EmailVerification(postman, required=required),
        )
        login = LoginHandler(uow=log, hasher=hasher, issuer=issuer, clock=clock, guard=make_guard(log, clock))
        log.calls.clear()
        await login(login_cmd())
        calls[required] = log.calls

    assert calls[True] == calls[False]
