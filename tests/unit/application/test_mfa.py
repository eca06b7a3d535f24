"""Two-factor authentication on the in-memory fakes with a frozen clock: the TOTP window, replay, pending versus
active, recovery codes used once, the mfa_token's lifetime and attempt limit, and the login's second step."""

from __future__ import annotations

import os
from datetime import timedelta

import pyotp
import pytest

from tests.unit.application._support import ALICE_PASSWORD, NOW, RecordingUnitOfWork, login_cmd
from usermgmt.adapters.crypto import AesGcmSecretBox
from usermgmt.adapters.memory import FakePasswordHasher, FrozenClock
from usermgmt.adapters.totp import PyotpAuthenticator, SegnoQrCodes
from usermgmt.application import commands
from usermgmt.application.abuse import Guard
from usermgmt.application.email import Postman
from usermgmt.application.errors import (
    InvalidCredentials,
    InvalidMfaCode,
    InvalidMfaToken,
    InvalidPassword,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    NoPendingEnrolment,
)
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.mfa import (
    ConfirmTotpEnrolmentHandler,
    DisableTotpHandler,
    GetMfaStatusHandler,
    LoginMfaHandler,
    RegenerateRecoveryCodesHandler,
    StartTotpEnrolmentHandler,
)
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.mfa import Codes, MfaPolicy, TotpSecondFactor
from usermgmt.application.results import FurtherStepRequired, SignedIn
from usermgmt.domain.events import EventType
from usermgmt.domain.mfa import TotpCredential, format_recovery_code, normalise_recovery_code
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import AuthMethod, UserId

STEP = timedelta(seconds=30)


@pytest.fixture
def codes() -> Codes:
    return Codes(MfaPolicy(), AesGcmSecretBox([os.urandom(32)]), PyotpAuthenticator(), SegnoQrCodes())


@pytest.fixture
def mfa_issuer(issuer: SessionIssuer) -> SessionIssuer:
    issuer._second_factors = TotpSecondFactor(MfaPolicy())
    return issuer


@pytest.fixture
def mfa_login(
    uow: RecordingUnitOfWork, hasher: FakePasswordHasher, mfa_issuer: SessionIssuer, clock: FrozenClock, guard: Guard
) -> LoginHandler:
    return LoginHandler(uow=uow, hasher=hasher, issuer=mfa_issuer, clock=clock, guard=guard)


@pytest.fixture
def second_step(
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    guard: Guard,
    codes: Codes,
    mfa_issuer: SessionIssuer,
    postman: Postman,
) -> LoginMfaHandler:
    return LoginMfaHandler(uow=uow, clock=clock, guard=guard, codes=codes, issuer=mfa_issuer, postman=postman)


class Enrolled:
    def __init__(self, secret: str, recovery: tuple[str, ...]) -> None:
        self.secret, self.recovery = secret, recovery

    def code(self, clock: FrozenClock, steps: int = 0) -> str:
        return pyotp.TOTP(self.secret).at(clock.now() + steps * STEP)


@pytest.fixture
async def enrolled(
    alice: User,
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    clock: FrozenClock,
    guard: Guard,
    codes: Codes,
    postman: Postman,
) -> Enrolled:
    start = StartTotpEnrolmentHandler(uow=uow, hasher=hasher, clock=clock, guard=guard, codes=codes)
    enrolment = await start(commands.StartTotpEnrolment(user_id=alice.id, password=ALICE_PASSWORD))
    confirm = ConfirmTotpEnrolmentHandler(uow=uow, clock=clock, guard=guard, codes=codes, postman=postman)
    code = pyotp.TOTP(enrolment.secret).at(clock.now())
    recovery = await confirm(commands.ConfirmTotpEnrolment(user_id=alice.id, code=code))
    return Enrolled(enrolment.secret, recovery.codes)


async def first_step(mfa_login: LoginHandler) -> FurtherStepRequired:
    result = await mfa_login(login_cmd())
    assert isinstance(result, FurtherStepRequired)
    return result


# --- the domain ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["abcde-fghjk", "ABCDEFGHJK", " abcde fghjk ", "ABCDE-fghjk"])
def test_a_recovery_code_is_read_in_any_case_with_or_without_its_dash(typed: str) -> None:
    assert normalise_recovery_code(typed) == "abcdefghjk"


def test_ambiguous_letters_read_as_the_digits_they_look_like() -> None:
    assert normalise_recovery_code("Ol1ab-cdefg") == "011abcdefg"


@pytest.mark.parametrize("typed", ["", "abcd-efgh", "abcde-fghjkm", "abcde-fghj!", "abcde-fghju"])
def test_what_cannot_be_a_recovery_code_is_none(typed: str) -> None:
    assert normalise_recovery_code(typed) is None


def test_a_recovery_code_is_shown_in_two_halves() -> None:
    assert format_recovery_code("abcdefghjk") == "abcde-fghjk"


def test_a_credential_accepts_only_newer_steps() -> None:
    credential = TotpCredential(user_id=UserId(os.urandom(16).hex()), sealed_secret="x", created_at=NOW)  # type: ignore[arg-type]
    assert credential.accepts_step(5) and not credential.enabled
    credential.confirm(5, now=NOW)
    assert credential.enabled
    assert not credential.accepts_step(5) and not credential.accepts_step(4) and credential.accepts_step(6)
    with pytest.raises(ValueError, match="already used"):
        credential.use_step(5)


# --- enrolment ------------------------------------------------------------------------------------------------------


async def test_enrolment_is_pending_until_confirmed(
    alice: User, uow: RecordingUnitOfWork, hasher: FakePasswordHasher, clock: FrozenClock, guard: Guard, codes: Codes
) -> None:
    start = StartTotpEnrolmentHandler(uow=uow, hasher=hasher, clock=clock, guard=guard, codes=codes)
    with pytest.raises(InvalidPassword):
        await start(commands.StartTotpEnrolment(user_id=alice.id, password="wrong password"))
    first = await start(commands.StartTotpEnrolment(user_id=alice.id, password=ALICE_PASSWORD))
    second = await start(commands.StartTotpEnrolment(user_id=alice.id, password=ALICE_PASSWORD))

    assert first.secret != second.secret  # starting again replaced the pending secret
    assert first.otpauth_uri.startswith("otpauth://totp/usermgmt:alice%40example.com?")
    status = await GetMfaStatusHandler(uow)(commands.GetMfaStatus(user_id=alice.id))
    assert (status.totp_enabled, status.recovery_codes_left) == (False, 0)
    stored = uow.store.totp[alice.id]
    assert second.secret not in stored.sealed_secret and not stored.enabled


async def test_confirmation_needs_a_code_of_the_pending_secret(
    alice: User,
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    clock: FrozenClock,
    guard: Guard,
    codes: Codes,
    postman: Postman,
) -> None:
    confirm = ConfirmTotpEnrolmentHandler(uow=uow, clock=clock, guard=guard, codes=codes, postman=postman)
    with pytest.raises(NoPendingEnrolment):
        await confirm(commands.ConfirmTotpEnrolment(user_id=alice.id, code="123456"))
    start = StartTotpEnrolmentHandler(uow=uow, hasher=hasher, clock=clock, guard=guard, codes=codes)
    secret = (await start(commands.StartTotpEnrolment(user_id=alice.id, password=ALICE_PASSWORD))).secret
    too_old = pyotp.TOTP(secret).at(clock.now() - 2 * STEP)
    with pytest.raises(InvalidMfaCode):
        await confirm(commands.ConfirmTotpEnrolment(user_id=alice.id, code=too_old))

    recovery = await confirm(commands.ConfirmTotpEnrolment(user_id=alice.id, code=pyotp.TOTP(secret).at(clock.now())))

    assert len(recovery.codes) == 10 and len(set(recovery.codes)) == 10
    assert uow.store.totp[alice.id].enabled
    assert EventType.MFA_ENABLED in uow.kinds()
    with pytest.raises(MfaAlreadyEnabled):
        await start(commands.StartTotpEnrolment(user_id=alice.id, password=ALICE_PASSWORD))


# --- the second step of a sign-in -----------------------------------------------------------------------------------


async def test_a_password_alone_opens_a_challenge_and_no_session(
    enrolled: Enrolled, mfa_login: LoginHandler, uow: RecordingUnitOfWork
) -> None:
    sessions_before = dict(uow.store.sessions)
    step = await first_step(mfa_login)
    assert step.methods == ("totp", "recovery_code") and step.expires_in == 300
    assert uow.store.sessions == sessions_before
    assert len(uow.store.challenges) == 1


@pytest.mark.parametrize("steps", [-1, 1])
async def test_one_step_either_side_is_accepted(
    steps: int, enrolled: Enrolled, mfa_login: LoginHandler, second_step: LoginMfaHandler, clock: FrozenClock
) -> None:
    clock.advance(STEP * 3)  # away from the step the confirmation used
    step = await first_step(mfa_login)
    result = await second_step(commands.LoginMfa(mfa_token=step.token, code=enrolled.code(clock, steps)))
    assert isinstance(result, SignedIn)


async def test_two_steps_away_is_refused(
    enrolled: Enrolled, mfa_login: LoginHandler, second_step: LoginMfaHandler, clock: FrozenClock
) -> None:
    clock.advance(STEP * 3)
    step = await first_step(mfa_login)
    for steps in (-2, 2):
        with pytest.raises(InvalidMfaCode):
            await second_step(commands.LoginMfa(mfa_token=step.token, code=enrolled.code(clock, steps)))


async def test_a_code_is_accepted_once_and_older_steps_never_after(
    enrolled: Enrolled, mfa_login: LoginHandler, second_step: LoginMfaHandler, clock: FrozenClock
) -> None:
    clock.advance(STEP * 3)
    code = enrolled.code(clock)
    assert isinstance(
        await second_step(commands.LoginMfa(mfa_token=(await first_step(mfa_login)).token, code=code)), SignedIn
    )
    for replay in (code, enrolled.code(clock, -1)):
        with pytest.raises(InvalidMfaCode):
            await second_step(commands.LoginMfa(mfa_token=(await first_step(mfa_login)).token, code=replay))


async def test_the_session_carries_pwd_and_otp(
    enrolled: Enrolled,
    mfa_login: LoginHandler,
    second_step: LoginMfaHandler,
    clock: FrozenClock,
    uow: RecordingUnitOfWork,
) -> None:
    clock.advance(STEP)
    result = await second_step(
        commands.LoginMfa(mfa_token=(await first_step(mfa_login)).token, code=enrolled.code(clock))
    )
    session = uow.store.sessions[result.tokens.session_id]
    assert session.amr == (AuthMethod.PASSWORD, AuthMethod.OTP)


async def test_the_mfa_token_expires_after_five_minutes(
    enrolled: Enrolled, mfa_login: LoginHandler, second_step: LoginMfaHandler, clock: FrozenClock
) -> None:
    step = await first_step(mfa_login)
    clock.advance(timedelta(minutes=5))
    with pytest.raises(InvalidMfaToken):
        await second_step(commands.LoginMfa(mfa_token=step.token, code=enrolled.code(clock)))


async def test_five_wrong_codes_end_the_mfa_token(
    enrolled: Enrolled,
    mfa_login: LoginHandler,
    second_step: LoginMfaHandler,
    clock: FrozenClock,
    uow: RecordingUnitOfWork,
) -> None:
    clock.advance(STEP)
    step = await first_step(mfa_login)
    for _ in range(5):
        with pytest.raises(InvalidMfaCode):
            await second_step(commands.LoginMfa(mfa_token=step.token, code="000000"))
    assert uow.store.challenges == {}
    with pytest.raises(InvalidMfaToken):
        await second_step(commands.LoginMfa(mfa_token=step.token, code=enrolled.code(clock)))
    failures = [e for e in uow.recorded if e.type is EventType.LOGIN_FAILED]
    assert [e.details["reason"] for e in failures[-5:]] == ["invalid_mfa_code"] * 5


async def test_a_recovery_code_works_once(
    enrolled: Enrolled,
    mfa_login: LoginHandler,
    second_step: LoginMfaHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    code = enrolled.recovery[3]
    result = await second_step(commands.LoginMfa(mfa_token=(await first_step(mfa_login)).token, code=code))
    assert isinstance(result, SignedIn)
    with pytest.raises(InvalidMfaCode):
        await second_step(commands.LoginMfa(mfa_token=(await first_step(mfa_login)).token, code=code))
    used = [e for e in uow.recorded if e.type is EventType.RECOVERY_CODE_USED]
    assert [e.details["codes_left"] for e in used] == [9]
    assert len(uow.store.recovery_codes[alice.id]) == 9


async def test_a_password_change_after_the_first_step_voids_it(
    enrolled: Enrolled,
    mfa_login: LoginHandler,
    second_step: LoginMfaHandler,
    clock: FrozenClock,
    uow: RecordingUnitOfWork,
    alice: User,
    hasher: FakePasswordHasher,
) -> None:
    step = await first_step(mfa_login)
    async with uow:
        user = await uow.users.get(alice.id, for_update=True)
        assert user is not None
        clock.advance(STEP)
        user.change_password(hasher.hash_sync("a different password"), now=clock.now())
        await uow.users.update(user)
        await uow.commit()
    with pytest.raises(InvalidCredentials):
        await second_step(commands.LoginMfa(mfa_token=step.token, code=enrolled.code(clock)))


# --- turning it off, new codes ---------------------------------------------------------------------------------------


async def test_disable_and_regenerate_need_the_password_and_a_code(
    enrolled: Enrolled,
    alice: User,
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    clock: FrozenClock,
    guard: Guard,
    codes: Codes,
    postman: Postman,
) -> None:
    wiring = {"uow": uow, "hasher": hasher, "clock": clock, "guard": guard, "codes": codes, "postman": postman}
    regenerate, disable = RegenerateRecoveryCodesHandler(**wiring), DisableTotpHandler(**wiring)  # type: ignore[arg-type]
    clock.advance(STEP)
    with pytest.raises(InvalidPassword):
        await regenerate(commands.RegenerateRecoveryCodes(user_id=alice.id, password="nope", code=enrolled.code(clock)))
    with pytest.raises(InvalidMfaCode):
        await regenerate(commands.RegenerateRecoveryCodes(user_id=alice.id, password=ALICE_PASSWORD, code="000000"))

    fresh = await regenerate(
        commands.RegenerateRecoveryCodes(user_id=alice.id, password=ALICE_PASSWORD, code=enrolled.code(clock))
    )
    assert not set(fresh.codes) & set(enrolled.recovery)
    with pytest.raises(InvalidMfaCode):  # the old set is dead
        await disable(commands.DisableTotp(user_id=alice.id, password=ALICE_PASSWORD, code=enrolled.recovery[0]))

    await disable(commands.DisableTotp(user_id=alice.id, password=ALICE_PASSWORD, code=fresh.codes[0]))
    assert alice.id not in uow.store.totp and not uow.store.recovery_codes.get(alice.id)
    assert {EventType.RECOVERY_CODES_REGENERATED, EventType.MFA_DISABLED} <= set(uow.kinds())
    with pytest.raises(MfaNotEnabled):
        await disable(commands.DisableTotp(user_id=alice.id, password=ALICE_PASSWORD, code=fresh.codes[1]))


async def test_without_totp_the_password_is_enough(alice: User, mfa_login: LoginHandler) -> None:
    assert isinstance(await mfa_login(login_cmd()), SignedIn)


async def test_a_sealed_secret_opens_only_for_its_owner() -> None:
    key = os.urandom(32)
    box = AesGcmSecretBox([key])
    sealed = box.seal(b"JBSWY3DPEHPK3PXP", context="user-1")
    assert box.open(sealed, context="user-1") == b"JBSWY3DPEHPK3PXP"
    with pytest.raises(ValueError, match="does not open"):
        box.open(sealed, context="user-2")
    rotated = AesGcmSecretBox([os.urandom(32), key])
    assert rotated.open(sealed, context="user-1") == b"JBSWY3DPEHPK3PXP"
    assert box.fingerprints("abc")[0] in rotated.fingerprints("abc")
    with pytest.raises(ValueError, match="unknown key"):
        AesGcmSecretBox([os.urandom(32)]).open(sealed, context="user-1")
