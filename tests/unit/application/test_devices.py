"""Known devices and the new-device notice: what counts as one device, and when a sign-in is from a new one."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest

from tests.unit.application._mail import queued
from tests.unit.application._support import (
    ALICE_EMAIL,
    ALICE_PASSWORD,
    SESSION_LIFETIME,
    RecordingUnitOfWork,
    SignIn,
    client,
    login_cmd,
)
from usermgmt.adapters.memory import FakeAccessTokenService, FrozenClock, SequentialIdGenerator
from usermgmt.adapters.refresh_tokens import SecretsRefreshTokenFactory
from usermgmt.application.commands import RegisterUser
from usermgmt.application.devices import REMEMBERED_FOR, KnownDevices
from usermgmt.application.email import EmailPolicy, Postman
from usermgmt.application.errors import InvalidCredentials
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.application.handlers.session_issuer import ProvenFactor, SessionIssuer
from usermgmt.application.ports import FurtherStep, UnitOfWork
from usermgmt.application.results import FurtherStepRequired
from usermgmt.domain.errors import UserInactive
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import AuthMethod

NEW_DEVICE = "new_device"


def devices(ipv6_prefix: int = 64, *, notify: bool = True) -> KnownDevices:
    return KnownDevices(
        Postman(EmailPolicy(frontend_url="https://app.example.com")), notify=notify, ipv6_prefix=ipv6_prefix
    )


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("192.0.2.10", "192.0.2.0/24"),
        ("192.0.2.254", "192.0.2.0/24"),
        ("::ffff:192.0.2.10", "192.0.2.0/24"),  # an IPv4 client seen through a dual-stack socket
        ("2001:db8:1:2::5", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        (None, "unknown"),
        ("testclient", "testclient"),
    ],
)
def test_a_device_counts_by_its_ip_network(ip: str | None, network: str) -> None:
    assert devices().network(ip) == network


def test_ipv6_networks_follow_the_rate_limit_prefix() -> None:
    assert devices(48).network("2001:db8:1:2::5") == devices(48).network("2001:db8:1:ffff::1") == "2001:db8:1::/48"
    assert devices(64).network("2001:db8:1:2::5") != devices(64).network("2001:db8:1:3::5")


def test_the_key_is_a_digest_of_the_user_agent_and_the_network_only() -> None:
    watch = devices()
    key = watch.key(client(ip="192.0.2.10", user_agent="Firefox"))

    assert key == hashlib.sha256(b"Firefox\n192.0.2.0/24").hexdigest()
    assert key == watch.key(client(ip="192.0.2.99", user_agent="Firefox"))
    assert key != watch.key(client(ip="192.0.3.10", user_agent="Firefox"))
    assert key != watch.key(client(ip="192.0.2.10", user_agent="Chrome"))
    assert "192.0.2" not in key
    assert "Firefox" not in key


def test_the_ipv6_prefix_is_checked() -> None:
    with pytest.raises(ValueError, match="IPv6 prefix"):
        devices(0)


async def test_the_browser_that_signed_up_is_no_new_device(
    register: RegisterUserHandler, login: SignIn, uow: RecordingUnitOfWork
) -> None:
    browser = client(ip="192.0.2.10", user_agent="Firefox")
    user = await register(RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD, client=browser))
    assert list(uow.store.known_devices) == [(user.id, devices().key(browser))]

    await login(login_cmd(ip="192.0.2.10", user_agent="Firefox"))

    assert queued(uow.store, NEW_DEVICE) == []


async def test_a_sign_in_from_a_new_device_queues_the_notice_once(
    login: SignIn, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    await login(login_cmd(ip="198.51.100.20", user_agent="Safari"))

    (notice,) = queued(uow.store, NEW_DEVICE)
    assert (notice.to, notice.user_id) == (ALICE_EMAIL, alice.id)
    assert notice.context == {
        "at": clock.now().isoformat(timespec="seconds"),
        "ip": "198.51.100.20",
        "user_agent": "Safari",
    }
    clock.advance(timedelta(days=3))
    await login(login_cmd(ip="198.51.100.77", user_agent="Safari"))  # the same /24: the same device
    assert len(queued(uow.store, NEW_DEVICE)) == 1

    await login(login_cmd(ip="198.51.100.20", user_agent="Chrome"))  # another browser
    await login(login_cmd(ip="203.0.113.5", user_agent="Safari"))  # another network
    assert [m.context["user_agent"] for m in queued(uow.store, NEW_DEVICE)] == ["Safari", "Chrome", "Safari"]


async def test_a_device_not_seen_for_90_days_is_new_again(
    login: SignIn, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    await login(login_cmd())
    clock.advance(REMEMBERED_FOR - timedelta(seconds=1))
    await login(login_cmd())  # still known, and seen again now
    assert len(queued(uow.store, NEW_DEVICE)) == 1

    clock.advance(REMEMBERED_FOR - timedelta(seconds=1))
    await login(login_cmd())
    assert len(queued(uow.store, NEW_DEVICE)) == 1

    clock.advance(REMEMBERED_FOR)
    await login(login_cmd())
    assert len(queued(uow.store, NEW_DEVICE)) == 2
    assert timedelta(days=90) == REMEMBERED_FOR


async def test_with_notices_off_nothing_is_recorded_or_sent(
    uow: RecordingUnitOfWork,
    access_tokens: FakeAccessTokenService,
    refresh_tokens: SecretsRefreshTokenFactory,
    clock: FrozenClock,
    ids: SequentialIdGenerator,
    login_handler: LoginHandler,
    alice: User,
) -> None:
    quiet = SessionIssuer(
        uow=uow,
        access_tokens=access_tokens,
        refresh_tokens=refresh_tokens,
        clock=clock,
        ids=ids,
        session_lifetime=SESSION_LIFETIME,
        devices=devices(notify=False),
    )
    at_registration = dict(uow.store.known_devices)

    await quiet.sign_in(ProvenFactor(user_id=alice.id, method=AuthMethod.PASSWORD), login_cmd().client)

    assert uow.store.known_devices == at_registration
    assert queued(uow.store, NEW_DEVICE) == []


async def test_refused_sign_ins_remember_no_device(
    login: SignIn, uow: RecordingUnitOfWork, issuer: SessionIssuer, alice: User
) -> None:
    at_registration = dict(uow.store.known_devices)
    with pytest.raises(InvalidCredentials):
        await login(login_cmd(password="not my password"))
    uow.store.users[alice.id].is_active = False
    with pytest.raises(UserInactive):
        await issuer.sign_in(ProvenFactor(user_id=alice.id, method=AuthMethod.PASSWORD), login_cmd().client)

    assert uow.store.known_devices == at_registration
    assert queued(uow.store, NEW_DEVICE) == []


class RequireOtp:
    async def further_step(
        self, uow: UnitOfWork, user: User, factor: ProvenFactor, now: datetime
    ) -> FurtherStep | None:
        return None if AuthMethod.OTP in factor.amr else FurtherStep(methods=("totp",), token="step", expires_in=300)


async def test_a_sign_in_waiting_for_a_further_step_is_from_no_device_yet(
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
        devices=devices(),
    )
    at_registration = dict(uow.store.known_devices)

    result = await gated.sign_in(ProvenFactor(user_id=alice.id, method=AuthMethod.PASSWORD), login_cmd().client)

    assert isinstance(result, FurtherStepRequired)
    assert uow.store.known_devices == at_registration
    await gated.sign_in(ProvenFactor(user_id=alice.id, method=AuthMethod.OTP), login_cmd().client)
    assert len(queued(uow.store, NEW_DEVICE)) == 1
