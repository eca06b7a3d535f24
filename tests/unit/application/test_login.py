from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.application._support import (
    ACCESS_TTL,
    ALICE_EMAIL,
    ALICE_PASSWORD,
    IP,
    NOW,
    SESSION_LIFETIME,
    RecordingUnitOfWork,
    SignIn,
    login_cmd,
    make_guard,
    snapshot,
    untimed,
)
from usermgmt.adapters.memory import (
    FakeAccessTokenService,
    FakePasswordHasher,
    FrozenClock,
    InMemoryRateLimiter,
    SequentialIdGenerator,
)
from usermgmt.adapters.refresh_tokens import SecretsRefreshTokenFactory
from usermgmt.application.abuse import Guard, RateLimitPolicy, RateRule, Throttle
from usermgmt.application.commands import RegisterUser
from usermgmt.application.errors import InvalidCredentials, RateLimited
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.ports import Rate
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import UserInactive
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.password_policy import PasswordPolicy
from usermgmt.domain.value_objects import PasswordHash, PlainPassword


def make_issuer(uow: RecordingUnitOfWork, clock: FrozenClock) -> SessionIssuer:
    return SessionIssuer(
        uow=uow,
        access_tokens=FakeAccessTokenService(clock),
        refresh_tokens=SecretsRefreshTokenFactory(),
        clock=clock,
        ids=SequentialIdGenerator(),
        session_lifetime=SESSION_LIFETIME,
    )


def make_login(
    uow: RecordingUnitOfWork, hasher: FakePasswordHasher, clock: FrozenClock, policy: RateLimitPolicy | None = None
) -> SignIn:
    guard = make_guard(uow, clock, policy)
    return SignIn(LoginHandler(uow=uow, hasher=hasher, issuer=make_issuer(uow, clock), clock=clock, guard=guard))


async def register_with(hasher: FakePasswordHasher, uow: RecordingUnitOfWork, clock: FrozenClock) -> User:
    register = RegisterUserHandler(
        uow=uow,
        hasher=hasher,
        screen=PasswordScreen(PasswordPolicy()),
        clock=clock,
        ids=SequentialIdGenerator(),
        guard=make_guard(uow, clock),
    )
    return await register(RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD))


async def test_login_starts_a_session_and_returns_a_token_pair(
    login: SignIn,
    uow: RecordingUnitOfWork,
    alice: User,
    access_tokens: FakeAccessTokenService,
    refresh_tokens: SecretsRefreshTokenFactory,
) -> None:
    pair = await login(login_cmd(user_agent="curl/8", ip="192.0.2.7"))

    assert pair.expires_in == int(ACCESS_TTL.total_seconds())
    assert pair.refresh_expires_in == int(SESSION_LIFETIME.total_seconds())
    claims = access_tokens.verify(pair.access_token)
    assert claims.user_id == alice.id
    assert claims.session_id == pair.session_id

    session = uow.store.sessions[pair.session_id]
    assert session.user_id == alice.id
    assert session.refresh_token_hash == refresh_tokens.digest(pair.refresh_token)
    assert session.refresh_token_hash.value != pair.refresh_token  # only the digest is stored
    assert session.created_at == session.last_used_at == NOW
    assert session.expires_at == NOW + SESSION_LIFETIME
    assert (session.user_agent, session.ip) == ("curl/8", "192.0.2.7")


async def test_login_records_a_success_event(login: SignIn, uow: RecordingUnitOfWork, alice: User) -> None:
    pair = await login(login_cmd(ip="192.0.2.7", user_agent="curl/8"))

    event = uow.recorded[-1]
    assert event.type is EventType.LOGIN_SUCCEEDED
    assert (event.user_id, event.session_id) == (alice.id, pair.session_id)
    assert (event.ip, event.user_agent, event.request_id) == ("192.0.2.7", "curl/8", "req-1")
    assert event.at == NOW


async def test_each_login_is_a_new_session(login: SignIn, uow: RecordingUnitOfWork, alice: User) -> None:
    first = await login(login_cmd())
    second = await login(login_cmd())

    assert first.session_id != second.session_id
    assert first.refresh_token != second.refresh_token
    assert set(uow.store.sessions) == {first.session_id, second.session_id}


@pytest.mark.parametrize(
    "identifier",
    ["alice@example.com", "ALICE@EXAMPLE.COM", "  Alice@Example.com  ", "alice", "ALICE", " Alice\t"],
)
async def test_login_by_email_or_username_case_insensitively(
    login: SignIn, uow: RecordingUnitOfWork, alice: User, identifier: str
) -> None:
    pair = await login(login_cmd(login=identifier))

    assert uow.store.sessions[pair.session_id].user_id == alice.id


async def test_login_password_is_nfkc_normalised(
    login: SignIn, register: RegisterUserHandler, uow: RecordingUnitOfWork
) -> None:
    await register(RegisterUser(email="carol@example.com", password="ｔｏｐａｚ-ｍｏｏｎｌｉｇｈｔ"))

    pair = await login(login_cmd(login="carol@example.com", password="topaz-moonlight"))

    assert pair.session_id in uow.store.sessions


async def test_wrong_password_is_invalid_credentials(
    login: SignIn, uow: RecordingUnitOfWork, hasher: FakePasswordHasher, alice: User
) -> None:
    before = snapshot(uow.store)

    with pytest.raises(InvalidCredentials) as excinfo:
        await login(login_cmd(password="wrong password!"))

    assert excinfo.value.code == "invalid_credentials"
    assert hasher.verifications == 1
    assert snapshot(uow.store) == before
    failure = uow.recorded[-1]
    assert failure.type is EventType.LOGIN_FAILED
    assert failure.user_id == alice.id
    assert failure.session_id is None
    assert untimed(failure.details) == {"reason": "wrong_password"}


@pytest.mark.parametrize(
    "identifier",
    [
        "nobody@example.com",
        "nobody",
        "ab",  # not even a valid username
        "not an email@",  # not even a valid email
        "",
        "alice@example.org",
        "mıke@example.com",
    ],
)
async def test_unknown_user_spends_one_verification_and_fails_like_a_wrong_password(
    login: SignIn, uow: RecordingUnitOfWork, hasher: FakePasswordHasher, alice: User, identifier: str
) -> None:
    with pytest.raises(InvalidCredentials) as wrong_password:
        await login(login_cmd(password="wrong password!"))
    assert hasher.verifications == 1
    before = snapshot(uow.store)

    with pytest.raises(InvalidCredentials) as unknown_user:
        await login(login_cmd(login=identifier, password=ALICE_PASSWORD))

    assert hasher.verifications == 2
    assert type(unknown_user.value) is type(wrong_password.value)
    assert unknown_user.value.code == wrong_password.value.code
    assert unknown_user.value.detail == wrong_password.value.detail
    assert snapshot(uow.store) == before
    failure = uow.recorded[-1]
    assert (failure.type, failure.user_id, untimed(failure.details)) == (
        EventType.LOGIN_FAILED,
        None,
        {"reason": "unknown_login"},
    )


async def test_disabled_user_cannot_log_in(
    login: SignIn, uow: RecordingUnitOfWork, hasher: FakePasswordHasher, alice: User
) -> None:
    uow.store.users[alice.id].is_active = False

    with pytest.raises(UserInactive) as excinfo:
        await login(login_cmd())

    assert excinfo.value.code == "account_disabled"
    assert hasher.verifications == 1
    assert uow.store.sessions == {}
    assert uow.recorded[-1].type is EventType.LOGIN_FAILED
    assert untimed(uow.recorded[-1].details) == {"reason": "account_disabled"}


async def test_disabled_user_with_wrong_password_gets_invalid_credentials(
    login: SignIn, uow: RecordingUnitOfWork, alice: User
) -> None:
    uow.store.users[alice.id].is_active = False

    with pytest.raises(InvalidCredentials):
        await login(login_cmd(password="wrong password!"))


async def test_login_upgrades_an_outdated_hash(uow: RecordingUnitOfWork, clock: FrozenClock) -> None:
    new_hasher = FakePasswordHasher("fake2")
    user = await register_with(FakePasswordHasher("fake1"), uow, clock)
    assert uow.store.users[user.id].password_hash.value.startswith("fake1$")
    clock.advance(timedelta(days=1))

    await make_login(uow, new_hasher, clock)(login_cmd())

    stored = uow.store.users[user.id]
    assert stored.password_hash == new_hasher.hash_sync(ALICE_PASSWORD)
    assert stored.password_hash.value.startswith("fake2$")
    assert stored.password_changed_at == user.password_changed_at  # a rehash is not a password change
    # The upgraded hash still verifies, and needs no further upgrade.
    assert await new_hasher.verify_and_update(PlainPassword(ALICE_PASSWORD), stored.password_hash) == (True, None)


async def test_login_with_current_hash_does_not_rewrite_it(
    login: SignIn, uow: RecordingUnitOfWork, alice: User
) -> None:
    before = uow.store.users[alice.id].password_hash
    versions = dict(uow.store.versions)

    await login(login_cmd())

    assert uow.store.users[alice.id].password_hash == before
    assert uow.store.versions == versions  # the user row was not written


async def test_failed_login_does_not_upgrade_an_outdated_hash(uow: RecordingUnitOfWork, clock: FrozenClock) -> None:
    user = await register_with(FakePasswordHasher("fake1"), uow, clock)
    old_hash = uow.store.users[user.id].password_hash

    with pytest.raises(InvalidCredentials):
        await make_login(uow, FakePasswordHasher("fake2"), clock)(login_cmd(password="wrong password!"))

    assert uow.store.users[user.id].password_hash == old_hash


class RehashingMeanwhileHasher(FakePasswordHasher):
    """Verifies like the fake, then lets another sign-in store an upgraded hash of the same password first."""

    def __init__(self, scheme: str, uow: RecordingUnitOfWork, new_hash: PasswordHash) -> None:
        super().__init__(scheme)
        self._uow, self._new_hash = uow, new_hash

    async def verify_and_update(
        self, password: PlainPassword, password_hash: PasswordHash
    ) -> tuple[bool, PasswordHash | None]:
        result = await super().verify_and_update(password, password_hash)
        for user in self._uow.store.users.values():
            user.rehash_password(self._new_hash)
        return result


async def test_rehash_never_overwrites_a_hash_stored_meanwhile(uow: RecordingUnitOfWork, clock: FrozenClock) -> None:
    user = await register_with(FakePasswordHasher("fake1"), uow, clock)
    stored_meanwhile = PasswordHash("fake2$another-login-upgraded-it")

    await make_login(uow, RehashingMeanwhileHasher("fake2", uow, stored_meanwhile), clock)(login_cmd())

    assert uow.store.users[user.id].password_hash == stored_meanwhile


async def test_login_command_repr_hides_the_password() -> None:
    assert ALICE_PASSWORD not in repr(login_cmd())


# --- throttling ------------------------------------------------------------------------------------------------


def strict_limits() -> RateLimitPolicy:
    return RateLimitPolicy(
        rates={
            RateRule.LOGIN_PER_IP: Rate(6, timedelta(minutes=1)),
            RateRule.LOGIN_FAILURES_PER_ACCOUNT_IP: Rate(3, timedelta(minutes=15)),
            RateRule.LOGIN_FAILURES_PER_ACCOUNT: Rate(5, timedelta(minutes=15)),
        }
    )


@pytest.fixture
def rate_limits() -> RateLimitPolicy:  # overrides conftest: small numbers keep these tests short
    return strict_limits()


async def fail(login: SignIn, times: int, *, ip: str = IP, identifier: str = ALICE_EMAIL) -> None:
    for _ in range(times):
        with pytest.raises(InvalidCredentials):
            await login(login_cmd(login=identifier, password="wrong password!", ip=ip))


async def test_failures_per_account_and_ip_are_limited_before_any_hash_is_spent(
    login: SignIn, uow: RecordingUnitOfWork, hasher: FakePasswordHasher, alice: User
) -> None:
    await fail(login, 3)
    spent = hasher.verifications

    with pytest.raises(RateLimited) as excinfo:
        await login(login_cmd())  # even the right password is refused now

    assert excinfo.value.code == "rate_limited"
    assert excinfo.value.rule == "login_failures_per_account_ip"
    assert excinfo.value.limit == 3
    assert 1 <= excinfo.value.retry_after <= 15 * 60
    assert hasher.verifications == spent
    assert uow.store.sessions == {}
    assert uow.recorded[-1].type is EventType.RATE_LIMITED
    assert uow.recorded[-1].details == {"rule": "login_failures_per_account_ip"}


async def test_the_account_ip_limit_does_not_affect_other_ips(login: SignIn, alice: User) -> None:
    await fail(login, 3, ip="198.51.100.1")

    pair = await login(login_cmd(ip="198.51.100.2"))

    assert pair.session_id


async def test_the_account_ip_window_expires(login: SignIn, clock: FrozenClock, alice: User) -> None:
    await fail(login, 3)
    clock.advance(timedelta(minutes=15, seconds=1))

    assert (await login(login_cmd())).session_id


async def test_success_clears_the_account_ip_failures(login: SignIn, alice: User) -> None:
    await fail(login, 2)
    await login(login_cmd())

    await fail(login, 2)  # would be the 4th and 5th failure without the reset
    assert (await login(login_cmd())).session_id


async def test_account_wide_ceiling_spares_ips_with_a_live_session(
    login: SignIn, clock: FrozenClock, alice: User
) -> None:
    home = "203.0.113.50"
    await login(login_cmd(ip=home))  # the owner's device: a password check too, the first of the window
    for attacker in ("198.51.100.1", "198.51.100.2"):
        await fail(login, 2, ip=attacker)  # five checks across IPs: the account-wide ceiling is reached

    with pytest.raises(RateLimited) as excinfo:
        await login(login_cmd(ip="198.51.100.4"))
    assert excinfo.value.rule == "login_failures_per_account"

    assert (await login(login_cmd(ip=home))).session_id  # the owner is not locked out


async def test_every_attempt_counts_against_the_client_ip(
    login: SignIn, hasher: FakePasswordHasher, alice: User
) -> None:
    for n in range(6):
        identifier = f"nobody{n}@example.com"
        with pytest.raises(InvalidCredentials):
            await login(login_cmd(login=identifier, password="whatever password"))
    spent = hasher.verifications

    with pytest.raises(RateLimited) as excinfo:
        await login(login_cmd())

    assert excinfo.value.rule == "login_per_ip"
    assert hasher.verifications == spent
    assert (await login(login_cmd(ip="198.51.100.99"))).session_id


async def test_a_flood_of_rejections_is_recorded_once_per_window(
    login: SignIn, uow: RecordingUnitOfWork, alice: User
) -> None:
    await fail(login, 3)
    for _ in range(2):
        with pytest.raises(RateLimited):
            await login(login_cmd())

    assert uow.kinds().count(EventType.RATE_LIMITED) == 1


async def test_disabled_limits_never_refuse(uow: RecordingUnitOfWork, clock: FrozenClock, alice: User) -> None:
    handler = make_login(uow, FakePasswordHasher(), clock, RateLimitPolicy(enabled=False))
    await fail(handler, 20)

    assert (await handler(login_cmd())).session_id


# --- the shared rate-limit store down: the account limits counted from the recorded failures ----------------------


class Process:
    """One server process: its own rate-limit memory (the shared store failing), the shared database."""

    def __init__(
        self, uow: RecordingUnitOfWork, hasher: FakePasswordHasher, issuer: SessionIssuer, clock: FrozenClock
    ) -> None:
        self.limiter = InMemoryRateLimiter(clock)
        self.limiter.failing = True
        guard = Guard(
            Throttle(self.limiter, strict_limits()), RecordingUnitOfWork(uow.store, recorded=uow.recorded), clock
        )
        self.login = SignIn(LoginHandler(uow=uow, hasher=hasher, issuer=issuer, clock=clock, guard=guard))


@pytest.fixture
def processes(
    uow: RecordingUnitOfWork, hasher: FakePasswordHasher, issuer: SessionIssuer, clock: FrozenClock
) -> tuple[Process, Process]:
    return Process(uow, hasher, issuer, clock), Process(uow, hasher, issuer, clock)


async def test_with_the_store_down_two_processes_share_the_account_ip_limit(
    processes: tuple[Process, Process], alice: User, clock: FrozenClock
) -> None:
    first, second = processes
    for process in (first, second, first):  # each process's memory holds one or two: under its own limit of 3
        await fail(process.login, 1)
    clock.advance(timedelta(minutes=5))

    with pytest.raises(RateLimited) as excinfo:
        await second.login(login_cmd())  # the database holds three failures from this address

    assert excinfo.value.rule == "login_failures_per_account_ip"
    assert excinfo.value.retry_after == 10 * 60  # when the oldest of the three leaves the 15-minute window
    clock.advance(timedelta(minutes=10, seconds=1))
    assert (await second.login(login_cmd())).session_id


async def test_with_the_store_down_a_success_from_the_address_starts_the_count_again(
    processes: tuple[Process, Process], alice: User, clock: FrozenClock
) -> None:
    first, second = processes
    await fail(first.login, 2)
    clock.advance(timedelta(seconds=1))
    await second.login(login_cmd())
    clock.advance(timedelta(seconds=1))
    await fail(second.login, 1)
    await fail(first.login, 1)  # four failures in the window, two of them since the success

    assert (await second.login(login_cmd())).session_id  # (first's own memory still holds its three)


async def test_with_the_store_down_the_account_wide_ceiling_is_shared_and_spares_the_owner(
    processes: tuple[Process, Process], alice: User, clock: FrozenClock
) -> None:
    first, second = processes
    home = "203.0.113.50"
    await first.login(login_cmd(ip=home))  # the owner's live session
    for n, attacker in enumerate(("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5")):
        await fail((first, second)[n % 2].login, 1, ip=attacker)

    with pytest.raises(RateLimited) as excinfo:
        await second.login(login_cmd(ip="198.51.100.6"))
    assert excinfo.value.rule == "login_failures_per_account"
    assert (await second.login(login_cmd(ip=home))).session_id


async def test_with_the_store_up_the_recorded_failures_are_not_read(
    login: SignIn, throttle: Throttle, uow: RecordingUnitOfWork, alice: User
) -> None:
    """The store shared by every process counts alone: no extra read of the trail on the login path."""
    assert not throttle.degraded()
    await fail(login, 2)
    assert (await login(login_cmd())).session_id


async def test_a_login_shed_under_load_spends_no_attempt_and_records_nothing(
    uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    from usermgmt.application.errors import ServiceBusy

    hasher = FakePasswordHasher()
    policy = RateLimitPolicy(rates={RateRule.LOGIN_PER_IP: Rate(1, timedelta(minutes=1))})
    login = make_login(uow, hasher, clock, policy)
    hasher.busy_for = 0.4
    events_before = len(uow.recorded)

    with pytest.raises(ServiceBusy) as shed:
        await login(login_cmd())

    assert shed.value.retry_after == 1
    assert hasher.verifications == 0
    assert len(uow.recorded) == events_before
    hasher.busy_for = None
    assert (await login(login_cmd())).access_token  # the one attempt a minute was not spent by the shed one
