"""Privacy and integration on the in-memory fakes: the data export and its proof of presence, deletion with a grace
period (restore, the refused sign-in, the erasure by the maintenance run once the clock passes it), the
maintenance run's other clean-ups, and token introspection."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.application._mail import queued, token_of
from tests.unit.application._support import (
    ALICE_EMAIL,
    ALICE_PASSWORD,
    RecordingUnitOfWork,
    SignIn,
    client,
    login_cmd,
)
from usermgmt.adapters.memory import (
    FakeAccessTokenService,
    FakePasswordHasher,
    FrozenClock,
    InMemoryPrincipalReader,
)
from usermgmt.application import commands
from usermgmt.application.abuse import Guard
from usermgmt.application.email import EmailPolicy, Postman
from usermgmt.application.errors import (
    InvalidClient,
    InvalidCredentials,
    InvalidEmailToken,
    InvalidPassword,
    RateLimited,
    RecentSignInRequired,
)
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.introspect import IntrospectionClients, IntrospectTokenHandler
from usermgmt.application.handlers.logout import LogoutHandler
from usermgmt.application.handlers.privacy import ExportDataHandler, RestoreAccountHandler
from usermgmt.application.maintenance import MAINTENANCE_LOCK, MaintenanceHandler
from usermgmt.application.results import DeletionReceipt, ErasureScheduled
from usermgmt.domain.errors import AccountPendingDeletion
from usermgmt.domain.events import EventType, SecurityEvent
from usermgmt.domain.model import User

GRACE = timedelta(days=14)


@pytest.fixture
def export(uow: RecordingUnitOfWork, hasher: FakePasswordHasher, clock: FrozenClock, guard: Guard) -> ExportDataHandler:
    return ExportDataHandler(uow, hasher, clock, guard)


@pytest.fixture
def grace_postman() -> Postman:
    return Postman(EmailPolicy(frontend_url="https://app.example.com", deletion_grace_period=GRACE))


@pytest.fixture
def delete_later(
    uow: RecordingUnitOfWork, hasher: FakePasswordHasher, clock: FrozenClock, guard: Guard, grace_postman: Postman
) -> DeleteAccountHandler:
    return DeleteAccountHandler(uow, hasher, clock, guard, grace_postman, grace_period=GRACE)


@pytest.fixture
def restore(uow: RecordingUnitOfWork, clock: FrozenClock, grace_postman: Postman) -> RestoreAccountHandler:
    return RestoreAccountHandler(uow, clock, grace_postman)


@pytest.fixture
def maintenance(uow: RecordingUnitOfWork, clock: FrozenClock, grace_postman: Postman) -> MaintenanceHandler:
    return MaintenanceHandler(uow, clock, grace_postman, anonymous_event_retention=timedelta(days=90))


# --- the export ----------------------------------------------------------------------------------------------------


async def test_a_fresh_session_exports_everything_and_the_export_is_recorded(
    export: ExportDataHandler, login: SignIn, alice: User, uow: RecordingUnitOfWork, clock: FrozenClock
) -> None:
    tokens = await login(login_cmd())
    clock.advance(timedelta(minutes=9))

    data = await export(commands.ExportData(user_id=alice.id, session_id=tokens.session_id, client=client()))

    assert data.user.id == alice.id and data.user.email.value == ALICE_EMAIL
    assert [s.id for s in data.sessions] == [tokens.session_id]
    assert [s.event.type for s in data.events][:3] == [
        EventType.DATA_EXPORTED,
        EventType.LOGIN_SUCCEEDED,
        EventType.REGISTERED,
    ]
    assert data.mfa.totp_enabled is False and data.roles == ()
    assert uow.recorded[-1].type is EventType.DATA_EXPORTED
    assert uow.recorded[-1].details == {"method": "recent_sign_in"}


async def test_an_old_sign_in_needs_the_password_and_a_wrong_one_is_refused(
    export: ExportDataHandler, login: SignIn, alice: User, clock: FrozenClock, uow: RecordingUnitOfWork
) -> None:
    tokens = await login(login_cmd())
    clock.advance(timedelta(minutes=11))
    without = commands.ExportData(user_id=alice.id, session_id=tokens.session_id, client=client())

    with pytest.raises(RecentSignInRequired) as raised:
        await export(without)
    assert raised.value.members == {"max_age": 600}
    with pytest.raises(InvalidPassword):
        await export(commands.ExportData(user_id=alice.id, session_id=tokens.session_id, password="wrong"))
    assert uow.recorded[-1].type is EventType.PASSWORD_CONFIRMATION_FAILED

    data = await export(commands.ExportData(user_id=alice.id, session_id=tokens.session_id, password=ALICE_PASSWORD))
    assert data.user.id == alice.id
    assert uow.recorded[-1].details == {"method": "password"}


async def test_three_exports_an_hour(export: ExportDataHandler, login: SignIn, alice: User, clock: FrozenClock) -> None:
    tokens = await login(login_cmd())
    cmd = commands.ExportData(user_id=alice.id, session_id=tokens.session_id, client=client())
    for _ in range(3):
        await export(cmd)

    with pytest.raises(RateLimited) as raised:
        await export(cmd)
    assert raised.value.rule == "data_exports_per_user"


# --- deletion with a grace period ----------------------------------------------------------------------------------


async def test_a_deletion_with_a_grace_period_disables_signs_out_and_mails_a_restore_link(
    delete_later: DeleteAccountHandler,
    login: SignIn,
    alice: User,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
) -> None:
    tokens = await login(login_cmd())

    result = await delete_later(
        commands.DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD, session_id=tokens.session_id)
    )

    assert result == ErasureScheduled(user_id=alice.id, erasure_at=clock.now() + GRACE)
    kept = uow.store.users[alice.id]
    assert (kept.is_active, kept.erasure_at) == (False, clock.now() + GRACE)
    assert not uow.store.sessions
    (mail,) = queued(uow.store, "account_deletion_scheduled")
    assert mail.to == ALICE_EMAIL
    assert mail.context["link"].startswith("https://app.example.com/restore-account?token=")
    assert mail.context["erasure_at"] == (clock.now() + GRACE).isoformat()
    assert uow.recorded[-1].type is EventType.ACCOUNT_DELETION_SCHEDULED
    with pytest.raises(AccountPendingDeletion) as refused:
        await login(login_cmd())
    assert refused.value.erasure_at == clock.now() + GRACE
    assert refused.value.members["erasure_at"].endswith("Z")
    with pytest.raises(InvalidCredentials):  # a wrong password says nothing about the deletion
        await login(login_cmd(password="not the password"))


async def test_the_link_restores_the_account_once_and_not_after_the_period(
    delete_later: DeleteAccountHandler,
    restore: RestoreAccountHandler,
    login: SignIn,
    alice: User,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
) -> None:
    await delete_later(commands.DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD))
    token = token_of(queued(uow.store, "account_deletion_scheduled")[0])
    clock.advance(GRACE - timedelta(minutes=1))

    await restore(commands.RestoreAccount(token=token, client=client()))

    assert uow.store.users[alice.id].is_active and uow.store.users[alice.id].erasure_at is None
    assert uow.recorded[-1].type is EventType.ACCOUNT_RESTORED
    await login(login_cmd())
    with pytest.raises(InvalidEmailToken):
        await restore(commands.RestoreAccount(token=token))  # single use

    await delete_later(commands.DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD))
    second = token_of(queued(uow.store, "account_deletion_scheduled")[-1])
    clock.advance(GRACE)
    with pytest.raises(InvalidEmailToken):  # too late: the erasure is due
        await restore(commands.RestoreAccount(token=second))
    with pytest.raises(InvalidEmailToken):
        await restore(commands.RestoreAccount(token="not-a-token"))


async def test_the_maintenance_run_erases_accounts_whose_period_ended_with_the_notice(
    delete_later: DeleteAccountHandler,
    maintenance: MaintenanceHandler,
    alice: User,
    bob: User,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
) -> None:
    await delete_later(commands.DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD))

    early = await maintenance()
    assert (early.ran, early.erased_accounts) == (True, 0)
    assert alice.id in uow.store.users  # the address stays taken meanwhile

    clock.advance(GRACE)
    report = await maintenance()

    assert report.erased_accounts == 1
    assert alice.id not in uow.store.users and bob.id in uow.store.users
    marks = [s.event for s in uow.store.events if s.event.type is EventType.ACCOUNT_DELETED]
    assert [(m.user_id, m.ip) for m in marks] == [(None, None)]
    assert [m.to for m in queued(uow.store, "account_deleted")] == [ALICE_EMAIL]
    assert not [e for e in uow.store.email_tokens.values() if e.user_id == alice.id]


async def test_immediate_deletion_stays_the_default(
    delete_account: DeleteAccountHandler, alice: User, uow: RecordingUnitOfWork
) -> None:
    result = await delete_account(commands.DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD))

    assert isinstance(result, DeletionReceipt)
    assert alice.id not in uow.store.users


# --- the maintenance run's other work ------------------------------------------------------------------------------


async def test_maintenance_purges_expired_sessions_links_and_old_anonymous_events(
    maintenance: MaintenanceHandler,
    login: SignIn,
    alice: User,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    postman: Postman,
) -> None:
    await login(login_cmd())
    async with uow:
        await uow.record(SecurityEvent(type=EventType.LOGIN_FAILED, at=clock.now(), details={"reason": "x"}))
        await uow.commit()
    clock.advance(timedelta(days=31))  # sessions live 30 days; links a day at most
    async with uow:
        await uow.record(SecurityEvent(type=EventType.LOGIN_FAILED, at=clock.now()))  # a recent anonymous one
        await uow.commit()
    clock.advance(timedelta(days=60))

    report = await maintenance()

    assert report.counts() == {
        "sessions": 1,
        "mfa_challenges": 0,
        "email_tokens": 0,
        "erased_accounts": 0,
        "anonymous_events": 1,
    }
    assert not uow.store.sessions
    anonymous = [s for s in uow.store.events if s.event.user_id is None]
    assert len(anonymous) == 1  # the one within the 90 days
    assert any(s.event.user_id == alice.id for s in uow.store.events)  # an account's own history stays


async def test_a_run_that_does_not_get_the_lock_does_nothing(
    maintenance: MaintenanceHandler, uow: RecordingUnitOfWork, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    async def held(name: str) -> bool:
        asked.append(name)
        return False

    monkeypatch.setattr(uow, "try_lock", held)

    report = await maintenance()

    assert (report.ran, asked) == (False, [MAINTENANCE_LOCK])


# --- introspection -------------------------------------------------------------------------------------------------

SECRET = "a-long-secret-of-the-billing-service"


@pytest.fixture
def introspect(
    uow: RecordingUnitOfWork, access_tokens: FakeAccessTokenService, clock: FrozenClock
) -> IntrospectTokenHandler:
    return IntrospectTokenHandler(
        access_tokens,
        InMemoryPrincipalReader(uow.store),
        clock,
        IntrospectionClients({"billing": SECRET}),
        issuer="usermgmt",
        audience="usermgmt",
    )


def ask(token: str, client_id: str | None = "billing", secret: str | None = SECRET) -> commands.IntrospectToken:
    return commands.IntrospectToken(token=token, client_id=client_id, client_secret=secret)


async def test_an_active_token_is_described_and_a_revoked_one_is_not(
    introspect: IntrospectTokenHandler, login: SignIn, alice: User, logout: LogoutHandler, clock: FrozenClock
) -> None:
    tokens = await login(login_cmd())

    active = await introspect(ask(tokens.access_token))

    assert active.active and active.sub == str(alice.id) and active.sid == str(tokens.session_id)
    assert (active.iss, active.aud, active.amr, active.username) == ("usermgmt", "usermgmt", ("pwd",), "alice")
    assert active.exp == int((clock.now() + timedelta(minutes=15)).timestamp())
    await logout(commands.Logout(user_id=alice.id, session_id=tokens.session_id))
    revoked = await introspect(ask(tokens.access_token))
    assert revoked.active is False and revoked.sub is None
    for junk in ("", "x" * 5000, "not.a.token", tokens.refresh_token):
        assert (await introspect(ask(junk))).active is False


async def test_an_expired_token_is_inactive(
    introspect: IntrospectTokenHandler, login: SignIn, alice: User, clock: FrozenClock
) -> None:
    tokens = await login(login_cmd())
    clock.advance(timedelta(minutes=15))

    assert (await introspect(ask(tokens.access_token))).active is False


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [(None, None), ("billing", "wrong"), ("billing", None), ("nobody", SECRET), ("", ""), ("billing", SECRET + "x")],
)
async def test_callers_without_valid_credentials_are_refused(
    introspect: IntrospectTokenHandler, client_id: str | None, secret: str | None
) -> None:
    with pytest.raises(InvalidClient):
        await introspect(ask("anything", client_id, secret))


async def test_no_configured_client_refuses_everyone(
    uow: RecordingUnitOfWork, access_tokens: FakeAccessTokenService, clock: FrozenClock
) -> None:
    nobody = IntrospectionClients({})
    handler = IntrospectTokenHandler(access_tokens, InMemoryPrincipalReader(uow.store), clock, nobody, "i", "a")

    assert not nobody
    with pytest.raises(InvalidClient):
        await handler(ask("anything", "billing", SECRET))
