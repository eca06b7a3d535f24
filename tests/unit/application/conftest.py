"""Handlers wired by hand to the in-memory fakes; one shared store per test."""

from __future__ import annotations

import pytest

from tests.unit.application._support import (
    ACCESS_TTL,
    ALICE_EMAIL,
    ALICE_PASSWORD,
    BOB_EMAIL,
    BOB_PASSWORD,
    FRONTEND_URL,
    NOW,
    SESSION_LIFETIME,
    RecordingUnitOfWork,
    SignIn,
)
from usermgmt.adapters.memory import (
    FakeAccessTokenService,
    FakePasswordHasher,
    FrozenClock,
    InMemoryPrincipalReader,
    InMemoryRateLimiter,
    SequentialIdGenerator,
)
from usermgmt.adapters.refresh_tokens import SecretsRefreshTokenFactory
from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateLimitPolicy, Throttle
from usermgmt.application.devices import KnownDevices
from usermgmt.application.email import EmailPolicy, Postman
from usermgmt.application.handlers.authenticate import AuthenticateHandler
from usermgmt.application.handlers.change_password import ChangePasswordHandler
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.email_address import (
    ConfirmEmailChangeHandler,
    RequestEmailChangeHandler,
    ResendVerificationHandler,
    VerifyEmailHandler,
)
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.logout import LogoutHandler
from usermgmt.application.handlers.password_reset import ForgotPasswordHandler, ResetPasswordHandler
from usermgmt.application.handlers.refresh_session import RefreshSessionHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.handlers.sessions import ListEventsHandler, ListSessionsHandler, RevokeSessionHandler
from usermgmt.application.handlers.update_profile import UpdateProfileHandler
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.model import User
from usermgmt.domain.password_policy import PasswordPolicy


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def uow() -> RecordingUnitOfWork:
    return RecordingUnitOfWork()


@pytest.fixture
def hasher() -> FakePasswordHasher:
    return FakePasswordHasher()


@pytest.fixture
def policy() -> PasswordPolicy:
    return PasswordPolicy()


@pytest.fixture
def screen(policy: PasswordPolicy) -> PasswordScreen:
    return PasswordScreen(policy)


@pytest.fixture
def ids() -> SequentialIdGenerator:
    return SequentialIdGenerator()


@pytest.fixture
def access_tokens(clock: FrozenClock) -> FakeAccessTokenService:
    return FakeAccessTokenService(clock, ttl=ACCESS_TTL)


@pytest.fixture
def refresh_tokens() -> SecretsRefreshTokenFactory:
    return SecretsRefreshTokenFactory()


@pytest.fixture
def rate_limits() -> RateLimitPolicy:
    return RateLimitPolicy()


@pytest.fixture
def throttle(clock: FrozenClock, rate_limits: RateLimitPolicy) -> Throttle:
    return Throttle(InMemoryRateLimiter(clock), rate_limits)


@pytest.fixture
def guard(throttle: Throttle, uow: RecordingUnitOfWork, clock: FrozenClock) -> Guard:
    # Its own unit of work on the same store (as the container builds it): the guard may write while a
    # handler's unit of work is open.
    return Guard(throttle, RecordingUnitOfWork(uow.store, recorded=uow.recorded), clock)


@pytest.fixture
def email_policy() -> EmailPolicy:
    return EmailPolicy(frontend_url=FRONTEND_URL)


@pytest.fixture
def postman(email_policy: EmailPolicy) -> Postman:
    return Postman(email_policy)


@pytest.fixture
def devices(postman: Postman, email_policy: EmailPolicy, rate_limits: RateLimitPolicy) -> KnownDevices:
    return KnownDevices(postman, notify=email_policy.notify_new_device, ipv6_prefix=rate_limits.ipv6_prefix)


@pytest.fixture
def register(
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    screen: PasswordScreen,
    clock: FrozenClock,
    ids: SequentialIdGenerator,
    guard: Guard,
    devices: KnownDevices,
) -> RegisterUserHandler:
    """Registration without the verification email (the flows that do not care about it stay quiet); see
    ``register_verifying`` in test_email_address.py for the container's wiring."""
    return RegisterUserHandler(
        uow=uow, hasher=hasher, screen=screen, clock=clock, ids=ids, guard=guard, devices=devices
    )


@pytest.fixture
def issuer(
    uow: RecordingUnitOfWork,
    access_tokens: FakeAccessTokenService,
    refresh_tokens: SecretsRefreshTokenFactory,
    clock: FrozenClock,
    ids: SequentialIdGenerator,
    devices: KnownDevices,
    postman: Postman,
) -> SessionIssuer:
    return SessionIssuer(
        uow=uow,
        access_tokens=access_tokens,
        refresh_tokens=refresh_tokens,
        clock=clock,
        ids=ids,
        session_lifetime=SESSION_LIFETIME,
        devices=devices,
        postman=postman,
    )


@pytest.fixture
def login_handler(
    uow: RecordingUnitOfWork, hasher: FakePasswordHasher, issuer: SessionIssuer, clock: FrozenClock, guard: Guard
) -> LoginHandler:
    return LoginHandler(uow=uow, hasher=hasher, issuer=issuer, clock=clock, guard=guard)


@pytest.fixture
def login(login_handler: LoginHandler) -> SignIn:
    return SignIn(login_handler)


@pytest.fixture
def refresh(
    uow: RecordingUnitOfWork,
    refresh_tokens: SecretsRefreshTokenFactory,
    issuer: SessionIssuer,
    clock: FrozenClock,
    guard: Guard,
) -> RefreshSessionHandler:
    return RefreshSessionHandler(
        uow=uow,
        refresh_tokens=refresh_tokens,
        issuer=issuer,
        clock=clock,
        guard=guard,
        session_lifetime=SESSION_LIFETIME,
    )


@pytest.fixture
def logout(uow: RecordingUnitOfWork, clock: FrozenClock) -> LogoutHandler:
    return LogoutHandler(uow=uow, clock=clock)


@pytest.fixture
def authenticate(
    uow: RecordingUnitOfWork, access_tokens: FakeAccessTokenService, clock: FrozenClock
) -> AuthenticateHandler:
    return AuthenticateHandler(access_tokens=access_tokens, principals=InMemoryPrincipalReader(uow.store), clock=clock)


@pytest.fixture
def update_profile(uow: RecordingUnitOfWork, clock: FrozenClock, guard: Guard) -> UpdateProfileHandler:
    return UpdateProfileHandler(uow=uow, clock=clock, guard=guard)


@pytest.fixture
def change_password(
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    screen: PasswordScreen,
    clock: FrozenClock,
    guard: Guard,
    postman: Postman,
) -> ChangePasswordHandler:
    return ChangePasswordHandler(uow=uow, hasher=hasher, screen=screen, clock=clock, guard=guard, postman=postman)


@pytest.fixture
def delete_account(
    uow: RecordingUnitOfWork, hasher: FakePasswordHasher, clock: FrozenClock, guard: Guard, postman: Postman
) -> DeleteAccountHandler:
    return DeleteAccountHandler(uow=uow, hasher=hasher, clock=clock, guard=guard, postman=postman)


@pytest.fixture
def forgot_password(
    uow: RecordingUnitOfWork, clock: FrozenClock, guard: Guard, postman: Postman
) -> ForgotPasswordHandler:
    return ForgotPasswordHandler(uow=uow, clock=clock, guard=guard, postman=postman)


@pytest.fixture
def reset_password(
    uow: RecordingUnitOfWork, hasher: FakePasswordHasher, screen: PasswordScreen, clock: FrozenClock, postman: Postman
) -> ResetPasswordHandler:
    return ResetPasswordHandler(uow=uow, hasher=hasher, screen=screen, clock=clock, postman=postman)


@pytest.fixture
def list_sessions(uow: RecordingUnitOfWork, clock: FrozenClock) -> ListSessionsHandler:
    return ListSessionsHandler(uow=uow, clock=clock)


@pytest.fixture
def revoke_session(uow: RecordingUnitOfWork, clock: FrozenClock) -> RevokeSessionHandler:
    return RevokeSessionHandler(uow=uow, clock=clock)


@pytest.fixture
def list_events(uow: RecordingUnitOfWork) -> ListEventsHandler:
    return ListEventsHandler(uow=uow)


@pytest.fixture
async def alice(register: RegisterUserHandler) -> User:
    """A registered user: alice@example.com / 'alice' / ALICE_PASSWORD."""
    return await register(
        commands.RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD, username="alice", full_name="Alice Liddell")
    )


@pytest.fixture
async def bob(register: RegisterUserHandler) -> User:
    return await register(commands.RegisterUser(email=BOB_EMAIL, password=BOB_PASSWORD, username="bob"))


@pytest.fixture
def verify_email(uow: RecordingUnitOfWork, clock: FrozenClock, postman: Postman) -> VerifyEmailHandler:
    return VerifyEmailHandler(uow=uow, clock=clock, postman=postman)


@pytest.fixture
def resend_verification(
    uow: RecordingUnitOfWork, clock: FrozenClock, guard: Guard, postman: Postman
) -> ResendVerificationHandler:
    return ResendVerificationHandler(uow=uow, clock=clock, guard=guard, postman=postman)


@pytest.fixture
def request_email_change(
    uow: RecordingUnitOfWork, hasher: FakePasswordHasher, clock: FrozenClock, guard: Guard, postman: Postman
) -> RequestEmailChangeHandler:
    return RequestEmailChangeHandler(uow=uow, hasher=hasher, clock=clock, guard=guard, postman=postman)


@pytest.fixture
def confirm_email_change(uow: RecordingUnitOfWork, clock: FrozenClock, postman: Postman) -> ConfirmEmailChangeHandler:
    return ConfirmEmailChangeHandler(uow=uow, clock=clock, postman=postman)
