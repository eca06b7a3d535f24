"""The two-step sign-in: a first factor (the password), then ``SessionIssuer``; and the defects of issue 12 that
live there (a login racing a password change, throttling keys that revealed which accounts exist)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from tests.unit.application._support import (
    ALICE_PASSWORD,
    NOW,
    SESSION_LIFETIME,
    RecordingUnitOfWork,
    SignIn,
    login_cmd,
    untimed,
)
from usermgmt.adapters.memory import FakeAccessTokenService, FakePasswordHasher, FrozenClock, SequentialIdGenerator
from usermgmt.adapters.refresh_tokens import SecretsRefreshTokenFactory
from usermgmt.application.abuse import Guard, RateLimitPolicy, RateRule
from usermgmt.application.commands import ChangePassword, Login, RegisterUser
from usermgmt.application.email import Postman
from usermgmt.application.errors import InvalidCredentials, RateLimited
from usermgmt.application.handlers.change_password import ChangePasswordHandler
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.application.handlers.session_issuer import ProvenFactor, SessionIssuer
from usermgmt.application.ports import FurtherStep, Rate, UnitOfWork
from usermgmt.application.results import FurtherStepRequired, SignedIn
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import UserInactive
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import AuthMethod, PasswordHash, PlainPassword

NEW_PASSWORD = "an entirely different passphrase"


class GatedHasher(FakePasswordHasher):
    """Verifies like the fake, but the first verification of ``password`` waits at a gate: the test decides what
    happens while a login's password check is in flight."""

    def __init__(self, password: str) -> None:
        super().__init__()
        self._password = password
        self.checking = asyncio.Event()
        self.release = asyncio.Event()
        self._gated = False

    async def verify_and_update(
        self, password: PlainPassword, password_hash: PasswordHash
    ) -> tuple[bool, PasswordHash | None]:
        result = await super().verify_and_update(password, password_hash)
        if password.value == self._password and not self._gated:
            self._gated = True
            self.checking.set()
            await self.release.wait()
        return result


async def test_a_login_whose_check_began_before_a_password_change_gets_no_session(
    uow: RecordingUnitOfWork,
    issuer: SessionIssuer,
    guard: Guard,
    screen: PasswordScreen,
    clock: FrozenClock,
    postman: Postman,
    alice: User,
) -> None:
    """Defect 2 of issue 12: the login's session used to be committed after the change had revoked every session,
    and stayed live. The interleaving is forced: the change runs to completion while the login's hash check waits."""
    hasher = GatedHasher(ALICE_PASSWORD)
    login = LoginHandler(uow=uow, hasher=hasher, issuer=issuer, clock=clock, guard=guard)
    change = ChangePasswordHandler(
        uow=RecordingUnitOfWork(uow.store),
        hasher=FakePasswordHasher(),
        screen=screen,
        clock=clock,
        guard=guard,
        postman=postman,
    )
    phone = await SignIn(LoginHandler(uow=uow, hasher=FakePasswordHasher(), issuer=issuer, clock=clock, guard=guard))(
        login_cmd()
    )

    in_flight = asyncio.create_task(login(login_cmd(user_agent="attacker")))
    await hasher.checking.wait()  # the old password has just been verified...
    clock.advance(timedelta(seconds=1))
    revoked = await change(  # ...and the owner changes it
        ChangePassword(
            user_id=alice.id,
            session_id=phone.session_id,
            current_password=ALICE_PASSWORD,
            new_password=NEW_PASSWORD,
        )
    )
    hasher.release.set()

    with pytest.raises(InvalidCredentials):
        await in_flight
    assert revoked == 0
    assert [s.user_agent for s in uow.store.sessions.values()] == ["pytest"]  # only the owner's own session
    refused = [e for e in uow.recorded if e.type is EventType.LOGIN_FAILED]
    assert [e.details["reason"] for e in refused] == ["password_changed"]


async def test_a_password_change_after_the_session_was_issued_ends_it(
    uow: RecordingUnitOfWork, login: SignIn, change_password: ChangePasswordHandler, alice: User
) -> None:
    """The other order: the login committed first, so the change sees its session and ends it."""
    mine = await login(login_cmd())
    other = await login(login_cmd(user_agent="other"))

    await change_password(
        ChangePassword(
            user_id=alice.id, session_id=mine.session_id, current_password=ALICE_PASSWORD, new_password=NEW_PASSWORD
        )
    )

    assert set(uow.store.sessions) == {mine.session_id}
    assert other.session_id not in uow.store.sessions


async def test_the_session_remembers_the_password_sign_in(
    uow: RecordingUnitOfWork, login: SignIn, clock: FrozenClock, alice: User
) -> None:
    pair = await login(login_cmd())

    session = uow.store.sessions[pair.session_id]
    assert (session.amr, session.authenticated_at) == ((AuthMethod.PASSWORD,), NOW)
    succeeded = [e for e in uow.recorded if e.type is EventType.LOGIN_SUCCEEDED]
    assert untimed(succeeded[-1].details) == {"amr": ["pwd"]}


async def test_a_deactivated_account_gets_no_session_even_with_the_right_password(
    uow: RecordingUnitOfWork, issuer: SessionIssuer, alice: User
) -> None:
    uow.store.users[alice.id].deactivate(now=NOW)

    with pytest.raises(UserInactive):
        await issuer.sign_in(ProvenFactor(user_id=alice.id, method=AuthMethod.PASSWORD), login_cmd().client)

    assert uow.store.sessions == {}
    assert uow.recorded[-1].details == {"reason": "account_disabled"}


async def test_a_vanished_account_gets_no_session(uow: RecordingUnitOfWork, issuer: SessionIssuer, alice: User) -> None:
    del uow.store.users[alice.id]

    with pytest.raises(InvalidCredentials):
        await issuer.sign_in(ProvenFactor(user_id=alice.id, method=AuthMethod.PASSWORD), login_cmd().client)

    assert uow.store.sessions == {}


class RequireOtp:
    """A second-factor policy as the two-factor issue will plug in: every account needs a one-time code."""

    async def further_step(
        self, uow: UnitOfWork, user: User, factor: ProvenFactor, now: datetime
    ) -> FurtherStep | None:
        return (
            None
            if AuthMethod.OTP in factor.amr
            else FurtherStep(methods=("totp", "recovery_code"), token="step", expires_in=300)
        )


async def test_a_further_step_required_starts_no_session(
    uow: RecordingUnitOfWork,
    access_tokens: FakeAccessTokenService,
    refresh_tokens: SecretsRefreshTokenFactory,
    clock: FrozenClock,
    ids: SequentialIdGenerator,
    alice: User,
) -> None:
    gated = SessionIssuer(
        uow=uow,
        access_tokens=access_tokens,
        refresh_tokens=refresh_tokens,
        clock=clock,
        ids=ids,
        session_lifetime=SESSION_LIFETIME,
        second_factors=RequireOtp(),
    )
    user = alice

    result = await gated.sign_in(ProvenFactor(user_id=user.id, method=AuthMethod.PASSWORD), login_cmd().client)

    assert result == FurtherStepRequired(
        user_id=user.id, amr=(AuthMethod.PASSWORD,), methods=("totp", "recovery_code"), token="step", expires_in=300
    )
    assert uow.store.sessions == {}
    assert EventType.LOGIN_SUCCEEDED not in uow.kinds()


async def test_login_returns_signed_in(login_handler: LoginHandler, alice: User) -> None:
    assert isinstance(await login_handler(login_cmd()), SignedIn)


# --- throttling keys (defect 8 of issue 12) -----------------------------------------------------------------------


@pytest.fixture
def rate_limits() -> RateLimitPolicy:
    return RateLimitPolicy(rates={RateRule.LOGIN_FAILURES_PER_ACCOUNT_IP: Rate(3, timedelta(minutes=15))})


async def statuses(login: SignIn, spellings: Sequence[str], *, ip: str = "192.0.2.10") -> list[str]:
    """What each attempt with a wrong password from ``ip`` answers, in order."""
    answers = []
    for spelling in spellings:
        try:
            await login(Login(login=spelling, password="not the password", client=login_cmd(ip=ip).client))
        except InvalidCredentials:
            answers.append("401")
        except RateLimited:
            answers.append("429")
    return answers


@pytest.mark.parametrize(
    ("variant", "plain"),
    [
        ("ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "alice@example.com"),  # full-width
        ("Alice@Example.COM", "alice@example.com"),
        ("alice@xn--bcher-kva.example", "alice@bücher.example"),  # punycode vs its Unicode spelling
        ("ＡＬＩＣＥ", "alice"),  # a username, full-width
    ],
)
async def test_throttling_answers_alike_whether_or_not_the_account_exists(
    login: SignIn, register: RegisterUserHandler, variant: str, plain: str
) -> None:
    """An unknown login was counted under its folded text and a real one under its id: failures in one spelling
    followed by another gave 429 for an unknown address and 401 for a real one, telling them apart."""
    unknown = await statuses(login, [variant] * 3 + [plain], ip="198.51.100.1")

    await register(RegisterUser(email=_email_of(plain), password=ALICE_PASSWORD, username=_username_of(plain)))
    known = await statuses(login, [variant] * 3 + [plain], ip="198.51.100.2")

    assert unknown == known == ["401", "401", "401", "429"]


def _email_of(plain: str) -> str:
    return plain if "@" in plain else f"{plain}@example.org"


def _username_of(plain: str) -> str | None:
    return None if "@" in plain else plain


async def test_throttling_does_not_link_a_username_to_its_email_address(
    login: SignIn, register: RegisterUserHandler
) -> None:
    """Review of issue 12: with accounts keyed by user id, failures as ``victim`` made ``victim@example.com`` answer
    429 while another real address answered 401: a public username told which email address was its owner's."""
    await register(RegisterUser(email="victim@example.com", password=ALICE_PASSWORD, username="victim"))
    await register(RegisterUser(email="other@example.com", password=ALICE_PASSWORD, username="other"))

    assert await statuses(login, ["victim"] * 3) == ["401", "401", "401"]

    assert await statuses(login, ["victim@example.com", "other@example.com"]) == ["401", "401"]
    assert await statuses(login, ["VICTIM"]) == ["429"]  # the spelling that was guessed is throttled
