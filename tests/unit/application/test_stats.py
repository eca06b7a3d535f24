"""The KPIs on the in-memory fakes under a frozen clock: each figure of a scripted history (tests/support/
kpi_history.py) exactly, the period's rules, the permission, and the details the sign-in and deletion use cases now
record for them (``duration_ms``, ``lag_seconds``), through the real handlers: a rate-limited request counts as no
attempt, a sign-in with a second factor counts once."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, date, datetime, timedelta, timezone

import pyotp
import pytest

from tests.support import kpi_history
from tests.support.kpi_history import DAY, FROM, HOUR, MINUTE, NOW, TO, account, at, event, write_history
from tests.unit.application._support import ALICE_PASSWORD, RecordingUnitOfWork, client, login_cmd, make_guard
from usermgmt.adapters.crypto import AesGcmSecretBox
from usermgmt.adapters.memory import FakePasswordHasher, FrozenClock
from usermgmt.adapters.totp import PyotpAuthenticator, SegnoQrCodes
from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateLimitPolicy, RateRule
from usermgmt.application.commands import Actor
from usermgmt.application.email import Postman
from usermgmt.application.errors import InsufficientPermission, InvalidCredentials, InvalidPeriod, RateLimited
from usermgmt.application.handlers.admin import AdminGate
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.mfa import ConfirmTotpEnrolmentHandler, LoginMfaHandler, StartTotpEnrolmentHandler
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.handlers.stats import StatsHandler
from usermgmt.application.maintenance import MaintenanceHandler
from usermgmt.application.mfa import Codes, MfaPolicy, TotpSecondFactor
from usermgmt.application.ports import Rate
from usermgmt.application.results import FurtherStepRequired, SignedIn, Stats
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.roles import ALL_PERMISSIONS, Permission


@pytest.fixture
def stats(uow: RecordingUnitOfWork, clock: FrozenClock, guard: Guard) -> StatsHandler:
    return StatsHandler(uow, clock, AdminGate(guard))


def figures(stats: Stats) -> dict[str, object]:
    return {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}


def operator() -> Actor:
    return Actor.operator()


def set_time(clock: FrozenClock, when: datetime) -> None:
    clock.advance(when - clock.now())


# --- every figure of the scripted history -------------------------------------------------------------------------


async def test_every_figure_of_the_scripted_history(
    uow: RecordingUnitOfWork, clock: FrozenClock, stats: StatsHandler
) -> None:
    set_time(clock, NOW)
    await write_history(uow)

    computed = await stats.compute(FROM, TO)

    expected = {k: pytest.approx(v) if isinstance(v, float) else v for k, v in kpi_history.EXPECTED.items()}
    assert figures(computed) == expected
    assert set(kpi_history.EXPECTED) == {f.name for f in dataclasses.fields(Stats)}  # the script covers them all


async def test_an_empty_period_has_counts_of_zero_and_no_rates(clock: FrozenClock, stats: StatsHandler) -> None:
    computed = await stats.compute(FROM, TO)

    assert (computed.registrations, computed.registrations_per_day, computed.sign_in_attempts) == (0, 0.0, 0)
    assert computed.registrations_by_day == tuple((date(2026, 3, d), 0) for d in range(1, 11))
    for name in (
        "login_success_rate",
        "authentication_latency_ms",
        "mfa_adoption",
        "retention_7d",
        "password_reset_median_seconds",
        "deletions_within_24h_rate",
    ):
        assert getattr(computed, name) is None, name


async def test_the_retention_cohort_is_empty_when_the_period_is_not_longer_than_7_days(
    uow: RecordingUnitOfWork, clock: FrozenClock, stats: StatsHandler
) -> None:
    set_time(clock, NOW)
    await write_history(uow)

    computed = await stats.compute(at(1), at(8))

    assert (computed.retention_cohort, computed.retained_7d, computed.retention_7d) == (0, 0, None)
    assert computed.registrations == 5  # the other figures are unaffected


async def test_the_reset_median_of_an_even_count_is_the_mean_of_the_middle_two(
    uow: RecordingUnitOfWork, stats: StatsHandler
) -> None:
    users = [account(n, at(1)) for n in (1, 2, 3, 4)]
    async with uow:
        for user in users:
            await uow.users.add(user)
        await uow.commit()
    async with uow:
        for user, wait in zip(users, (30, 90, 150, 600), strict=True):
            await uow.record(event(EventType.PASSWORD_RESET_REQUESTED, at(2), user))
            await uow.record(event(EventType.PASSWORD_RESET, at(2) + timedelta(seconds=wait), user))
        await uow.commit()

    computed = await stats.compute(FROM, TO)

    assert (computed.password_resets, computed.password_reset_median_seconds) == (4, 120.0)


async def test_an_overdue_erasure_counts_once_its_24_hours_are_over_within_the_period(
    uow: RecordingUnitOfWork, clock: FrozenClock, stats: StatsHandler
) -> None:
    async with uow:
        await uow.users.add(account(1, at(1), erasure_at=at(5, 12)))
        await uow.commit()

    set_time(clock, at(6, 12))  # exactly 24 h after its due time: an erasure now would still be in time
    assert (await stats.compute(FROM, TO)).deletions_overdue == 0
    set_time(clock, at(6, 12, 0, 1))
    late = await stats.compute(FROM, TO)
    assert (late.deletions, late.deletions_overdue, late.deletions_within_24h_rate) == (0, 1, 0.0)
    assert (await stats.compute(at(7), TO)).deletions_overdue == 0  # its deadline fell in the period before


# --- the period ---------------------------------------------------------------------------------------------------


async def test_the_default_period_is_the_30_days_ending_now(clock: FrozenClock, stats: StatsHandler) -> None:
    computed = await stats.compute()

    assert (computed.from_, computed.to) == (clock.now() - 30 * DAY, clock.now())
    assert len(computed.registrations_by_day) == 31  # 12:00 to 12:00 touches 31 dates
    only_to = await stats.compute(to=TO)
    assert (only_to.from_, only_to.to) == (TO - 30 * DAY, TO)


async def test_times_are_read_in_utc_and_a_time_without_offset_is_utc(stats: StatsHandler) -> None:
    paris = timezone(timedelta(hours=1))
    computed = await stats.compute(datetime(2026, 3, 1, 1, 0, tzinfo=paris), datetime(2026, 3, 11))

    assert (computed.from_, computed.to) == (FROM, TO)
    assert computed.to.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (TO, FROM),  # backwards
        (FROM, FROM),  # empty
        (FROM, FROM + timedelta(days=366, seconds=1)),  # too long
        (datetime(1969, 12, 31, tzinfo=UTC), datetime(1970, 1, 2, tzinfo=UTC)),  # before 1970
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), FROM),  # out of range in UTC
        (datetime(9999, 12, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)),
    ],
)
async def test_an_invalid_period_is_refused(stats: StatsHandler, start: datetime, end: datetime) -> None:
    with pytest.raises(InvalidPeriod):
        await stats.compute(start, end)


async def test_a_period_of_366_days_is_allowed(stats: StatsHandler) -> None:
    computed = await stats.compute(FROM, FROM + timedelta(days=366))

    assert len(computed.registrations_by_day) == 366


# --- the permission -----------------------------------------------------------------------------------------------


async def test_the_stats_need_events_read(stats: StatsHandler, alice: User) -> None:
    refused = Actor(user_id=alice.id, permissions=frozenset({Permission.USERS_READ}), client=client())
    with pytest.raises(InsufficientPermission) as raised:
        await stats(commands.GetStats(actor=refused, from_=FROM, to=TO))
    assert raised.value.members == {"permission": "events:read"}

    allowed = Actor(user_id=alice.id, permissions=frozenset({Permission.EVENTS_READ}), client=client())
    assert (await stats(commands.GetStats(actor=allowed))).users_total == 1
    assert (await stats(commands.GetStats(actor=operator(), from_=FROM, to=TO))).from_ == FROM


async def test_the_permission_is_checked_before_the_period(stats: StatsHandler, alice: User) -> None:
    refused = Actor(user_id=alice.id, permissions=frozenset(), client=client())
    with pytest.raises(InsufficientPermission):
        await stats(commands.GetStats(actor=refused, from_=TO, to=FROM))
    with pytest.raises(InvalidPeriod):
        await stats(commands.GetStats(actor=Actor(user_id=alice.id, permissions=ALL_PERMISSIONS), from_=TO, to=FROM))


# --- what the use cases record for the figures, through the real handlers -----------------------------------------


async def test_sign_ins_carry_their_duration_and_a_rate_limited_request_is_no_attempt(
    uow: RecordingUnitOfWork, clock: FrozenClock, hasher: FakePasswordHasher, issuer: SessionIssuer, alice: User
) -> None:
    tight = RateLimitPolicy(rates={RateRule.LOGIN_PER_IP: Rate(2, timedelta(minutes=1))})
    guard = make_guard(uow, clock, tight)
    login = LoginHandler(uow=uow, hasher=hasher, issuer=issuer, clock=clock, guard=guard)
    stats = StatsHandler(uow, clock, AdminGate(guard))
    start = clock.now()

    assert isinstance(await login(login_cmd()), SignedIn)
    with pytest.raises(InvalidCredentials):
        await login(login_cmd(password="not the password at all"))
    with pytest.raises(RateLimited):  # refused before any password check: no login_failed
        await login(login_cmd())
    clock.advance(MINUTE)

    outcomes = [e for e in uow.recorded if e.type in {EventType.LOGIN_SUCCEEDED, EventType.LOGIN_FAILED}]
    assert [e.type for e in outcomes] == [EventType.LOGIN_SUCCEEDED, EventType.LOGIN_FAILED]
    assert all(0 <= e.details["duration_ms"] < 10_000 for e in outcomes)
    assert EventType.RATE_LIMITED in uow.kinds()
    computed = await stats.compute(start, clock.now())
    assert (computed.sign_in_attempts, computed.sign_ins_succeeded, computed.login_success_rate) == (2, 1, 0.5)
    mean = sum(e.details["duration_ms"] for e in outcomes) / 2
    assert computed.authentication_latency_ms == pytest.approx(mean)


async def test_a_sign_in_with_a_second_factor_counts_once_when_it_completes(
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    hasher: FakePasswordHasher,
    issuer: SessionIssuer,
    guard: Guard,
    postman: Postman,
    alice: User,
) -> None:
    codes = Codes(MfaPolicy(), AesGcmSecretBox([os.urandom(32)]), PyotpAuthenticator(), SegnoQrCodes())
    start = StartTotpEnrolmentHandler(uow=uow, hasher=hasher, clock=clock, guard=guard, codes=codes)
    enrolment = await start(commands.StartTotpEnrolment(user_id=alice.id, password=ALICE_PASSWORD))
    confirm = ConfirmTotpEnrolmentHandler(uow=uow, clock=clock, guard=guard, codes=codes, postman=postman)
    await confirm(commands.ConfirmTotpEnrolment(user_id=alice.id, code=pyotp.TOTP(enrolment.secret).at(clock.now())))
    issuer._second_factors = TotpSecondFactor(MfaPolicy())
    login = LoginHandler(uow=uow, hasher=hasher, issuer=issuer, clock=clock, guard=guard)
    second = LoginMfaHandler(uow=uow, clock=clock, guard=guard, codes=codes, issuer=issuer, postman=postman)
    stats = StatsHandler(uow, clock, AdminGate(guard))
    clock.advance(MINUTE)
    began = clock.now()

    first = await login(login_cmd())
    assert isinstance(first, FurtherStepRequired)
    code = pyotp.TOTP(enrolment.secret).at(clock.now())
    assert isinstance(await second(commands.LoginMfa(mfa_token=first.token, code=code, client=client())), SignedIn)
    clock.advance(MINUTE)

    computed = await stats.compute(began, clock.now())
    assert (computed.sign_in_attempts, computed.sign_ins_succeeded) == (1, 1)
    assert (computed.users_total, computed.users_with_mfa, computed.mfa_adoption) == (1, 1, 1.0)
    [succeeded] = [e for e in uow.recorded if e.type is EventType.LOGIN_SUCCEEDED and e.at >= began]
    assert succeeded.details["amr"] == ["pwd", "otp"] and succeeded.details["duration_ms"] >= 0


async def test_deletions_record_how_late_they_are(
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    hasher: FakePasswordHasher,
    guard: Guard,
    postman: Postman,
    alice: User,
) -> None:
    delete = DeleteAccountHandler(uow=uow, hasher=hasher, clock=clock, guard=guard, postman=postman)
    maintenance = MaintenanceHandler(uow, clock, postman, anonymous_event_retention=timedelta(days=400))
    stats = StatsHandler(uow, clock, AdminGate(guard))
    began = clock.now()
    late = account(100, clock.now(), erasure_at=clock.now() + HOUR)
    async with uow:
        await uow.users.add(late)
        await uow.commit()

    await delete(commands.DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD, client=client()))
    clock.advance(HOUR + 25 * HOUR + timedelta(seconds=0.5))  # the maintenance ran 25 h 0.5 s after the due time
    assert (await maintenance()).erased_accounts == 1

    marks = [s.event for s in uow.store.events if s.event.type is EventType.ACCOUNT_DELETED]
    assert [dict(m.details) for m in marks] == [{"lag_seconds": 0}, {"lag_seconds": 25 * 3600 + 1}]
    computed = await stats.compute(began, clock.now() + MINUTE)
    assert (computed.deletions, computed.deletions_within_24h, computed.deletions_within_24h_rate) == (2, 1, 0.5)
