"""Email change on the in-memory fakes: asked for with the password, done from the new mailbox."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.application._mail import queued, token_of
from tests.unit.application._support import (
    ALICE_EMAIL,
    ALICE_PASSWORD,
    BOB_EMAIL,
    FRONTEND_URL,
    RecordingUnitOfWork,
    SignIn,
    client,
    login_cmd,
    snapshot,
)
from usermgmt.adapters.memory import FakePasswordHasher, FrozenClock
from usermgmt.application.abuse import Guard
from usermgmt.application.commands import (
    ConfirmEmailChange,
    DeleteAccount,
    ForgotPassword,
    RegisterUser,
    RequestEmailChange,
    VerifyEmail,
)
from usermgmt.application.email import Postman, token_digest
from usermgmt.application.errors import (
    ConcurrentUpdate,
    EmailTaken,
    InvalidEmailToken,
    InvalidPassword,
    RateLimited,
)
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.email_change import ConfirmEmailChangeHandler, RequestEmailChangeHandler
from usermgmt.application.handlers.email_verification import VerifyEmailHandler
from usermgmt.application.handlers.password_reset import ForgotPasswordHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.domain.errors import InvalidEmail
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import Email, EmailTokenPurpose, PasswordHash, PlainPassword

NEW_EMAIL = "alice@new.example.com"
CONFIRM = "confirm_email_change"


def change(
    user: User, new_email: str = NEW_EMAIL, password: str = ALICE_PASSWORD, **client_info: str
) -> RequestEmailChange:
    return RequestEmailChange(
        user_id=user.id, new_email=new_email, password=password, client=client(**client_info or {"ip": "192.0.2.40"})
    )


def confirm(token: str) -> ConfirmEmailChange:
    return ConfirmEmailChange(token=token, client=client(ip="198.51.100.41", user_agent="phone"))


async def change_link(
    request_email_change: RequestEmailChangeHandler, uow: RecordingUnitOfWork, user: User, new_email: str = NEW_EMAIL
) -> str:
    """Ask for the change; the token of the link that went to ``new_email``."""
    await request_email_change(change(user, new_email))
    return token_of(queued(uow.store, CONFIRM, to=new_email)[-1])


# --- the request ----------------------------------------------------------------------------------------------------


async def test_a_request_sets_the_pending_address_and_mails_both_addresses(
    request_email_change: RequestEmailChangeHandler, uow: RecordingUnitOfWork, clock: FrozenClock, alice: User
) -> None:
    clock.advance(timedelta(minutes=5))

    user = await request_email_change(change(alice, "Alice@New.Example.com", ip="192.0.2.40", user_agent="laptop"))

    stored = uow.store.users[alice.id]
    for u in (user, stored):
        assert u.email == Email(ALICE_EMAIL)
        assert u.pending_email == Email("Alice@New.Example.com")
    (link,) = queued(uow.store, CONFIRM)
    assert (link.to, link.user_id) == ("Alice@new.example.com", alice.id)  # as email-validator normalises it
    assert link.context["link"].startswith(f"{FRONTEND_URL}/confirm-email?token=")
    assert link.context["expires_at"] == (clock.now() + timedelta(hours=24)).isoformat(timespec="seconds")
    assert link.context["new_email"] == "Alice@new.example.com"
    (token,) = [t for t in uow.store.email_tokens.values() if t.purpose is EmailTokenPurpose.CHANGE_EMAIL]
    assert (token.digest, token.email) == (token_digest(token_of(link)), Email("Alice@new.example.com"))
    (notice,) = queued(uow.store, "email_change_requested")
    assert (notice.to, notice.user_id) == (ALICE_EMAIL, alice.id)
    assert notice.context == {
        "new_email": "Alice@new.example.com",
        "at": clock.now().isoformat(timespec="seconds"),
        "ip": "192.0.2.40",
        "user_agent": "laptop",
    }
    event = uow.recorded[-1]
    assert (event.type, event.user_id, event.ip) == (EventType.EMAIL_CHANGE_REQUESTED, alice.id, "192.0.2.40")


async def test_a_wrong_password_is_refused_and_recorded(
    request_email_change: RequestEmailChangeHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    before = snapshot(uow.store)

    with pytest.raises(InvalidPassword):
        await request_email_change(change(alice, password="not my password"))

    after = snapshot(uow.store)
    assert after == before
    failed = uow.recorded[-1]
    assert (failed.type, failed.details) == (EventType.PASSWORD_CONFIRMATION_FAILED, {"purpose": "email_change"})


@pytest.mark.parametrize("taken", [BOB_EMAIL, "BOB@example.com", "Bob@Example.COM"])
async def test_an_address_another_account_has_is_refused(
    request_email_change: RequestEmailChangeHandler, uow: RecordingUnitOfWork, alice: User, bob: User, taken: str
) -> None:
    before = snapshot(uow.store)

    with pytest.raises(EmailTaken):
        await request_email_change(change(alice, taken))

    assert snapshot(uow.store) == before


@pytest.mark.parametrize("same", [ALICE_EMAIL, "ALICE@example.com"])
async def test_the_current_address_is_refused(
    request_email_change: RequestEmailChangeHandler, uow: RecordingUnitOfWork, alice: User, same: str
) -> None:
    before = snapshot(uow.store)

    with pytest.raises(InvalidEmail):
        await request_email_change(change(alice, same))

    assert snapshot(uow.store) == before


async def test_a_malformed_address_is_refused_before_the_password_is_checked(
    request_email_change: RequestEmailChangeHandler, hasher: FakePasswordHasher, alice: User
) -> None:
    spent = hasher.verifications

    with pytest.raises(InvalidEmail):
        await request_email_change(change(alice, "not an address"))

    assert hasher.verifications == spent


async def test_requests_are_limited_per_user(
    request_email_change: RequestEmailChangeHandler, hasher: FakePasswordHasher, uow: RecordingUnitOfWork, alice: User
) -> None:
    for n in range(5):
        await request_email_change(change(alice, f"alice{n}@example.org"))
    spent = hasher.verifications

    with pytest.raises(RateLimited) as excinfo:
        await request_email_change(change(alice, "alice9@example.org"))

    assert excinfo.value.rule == "email_changes_per_user"
    assert hasher.verifications == spent
    assert uow.store.users[alice.id].pending_email == Email("alice4@example.org")


class ChangingHasher(FakePasswordHasher):
    """Lets the password check pass, and changes the stored password just after it (another request did)."""

    def __init__(self, uow: RecordingUnitOfWork, user: User) -> None:
        super().__init__()
        self._uow, self._user = uow, user

    async def verify_and_update(
        self, password: PlainPassword, password_hash: PasswordHash
    ) -> tuple[bool, PasswordHash | None]:
        result = await super().verify_and_update(password, password_hash)
        async with self._uow:
            user = await self._uow.users.get(self._user.id)
            assert user is not None
            user.change_password(self.hash_sync("changed meanwhile"), now=user.updated_at)
            await self._uow.users.update(user)
            await self._uow.commit()
        return result


async def test_a_password_changed_since_the_check_wins(
    uow: RecordingUnitOfWork, clock: FrozenClock, guard: Guard, postman: Postman, alice: User
) -> None:
    handler = RequestEmailChangeHandler(
        uow=uow, hasher=ChangingHasher(RecordingUnitOfWork(uow.store), alice), clock=clock, guard=guard, postman=postman
    )

    with pytest.raises(ConcurrentUpdate):
        await handler(change(alice))

    assert uow.store.users[alice.id].pending_email is None
    assert queued(uow.store, CONFIRM) == []


async def test_a_newer_request_replaces_the_older_one(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    older = await change_link(request_email_change, uow, alice, "first@example.org")
    newer = await change_link(request_email_change, uow, alice, "second@example.org")

    assert uow.store.users[alice.id].pending_email == Email("second@example.org")
    with pytest.raises(InvalidEmailToken):
        await confirm_email_change(confirm(older))
    await confirm_email_change(confirm(newer))
    assert uow.store.users[alice.id].email == Email("second@example.org")


# --- the confirmation -----------------------------------------------------------------------------------------------


async def test_the_link_moves_the_account_to_the_new_address(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    forgot_password: ForgotPasswordHandler,
    login: SignIn,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    alice: User,
) -> None:
    await login(login_cmd())
    await forgot_password(ForgotPassword(email=ALICE_EMAIL))  # a reset link to the old address, outstanding
    token = await change_link(request_email_change, uow, alice)
    clock.advance(timedelta(hours=1))

    await confirm_email_change(confirm(token))

    stored = uow.store.users[alice.id]
    assert (stored.email, stored.email_verified, stored.pending_email) == (Email(NEW_EMAIL), True, None)
    assert stored.updated_at == clock.now()
    assert [t for t in uow.store.email_tokens.values() if t.user_id == alice.id] == []  # reset and verify links died
    assert len(uow.store.sessions) == 1  # sessions stay
    (notice,) = queued(uow.store, "email_changed")
    assert (notice.to, notice.user_id) == (ALICE_EMAIL, alice.id)
    assert notice.context == {
        "new_email": NEW_EMAIL,
        "at": clock.now().isoformat(timespec="seconds"),
        "ip": "198.51.100.41",
        "user_agent": "phone",
    }
    assert (uow.recorded[-1].type, uow.recorded[-1].user_id) == (EventType.EMAIL_CHANGED, alice.id)
    await login(login_cmd(NEW_EMAIL))  # the new address signs in


async def test_the_old_addresss_links_die_with_the_change(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    verify_email: VerifyEmailHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    old_verification = token_of(queued(uow.store, "verify_email", to=ALICE_EMAIL)[-1])
    await confirm_email_change(confirm(await change_link(request_email_change, uow, alice)))

    with pytest.raises(InvalidEmailToken):
        await verify_email(VerifyEmail(token=old_verification))


async def test_a_change_link_works_once(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    token = await change_link(request_email_change, uow, alice)
    await confirm_email_change(confirm(token))

    with pytest.raises(InvalidEmailToken):
        await confirm_email_change(confirm(token))
    assert len(queued(uow.store, "email_changed")) == 1


async def test_an_expired_change_link_changes_nothing(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    alice: User,
) -> None:
    token = await change_link(request_email_change, uow, alice)
    clock.advance(timedelta(hours=24))

    with pytest.raises(InvalidEmailToken):
        await confirm_email_change(confirm(token))

    assert uow.store.users[alice.id].email == Email(ALICE_EMAIL)


async def test_a_verification_link_confirms_no_change(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    await request_email_change(change(alice))
    verification = token_of(queued(uow.store, "verify_email")[-1])

    with pytest.raises(InvalidEmailToken):
        await confirm_email_change(confirm(verification))

    assert uow.store.users[alice.id].email == Email(ALICE_EMAIL)
    assert token_digest(verification) in uow.store.email_tokens


async def test_an_address_taken_meanwhile_is_refused_and_the_link_survives(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    register: RegisterUserHandler,
    delete_account: DeleteAccountHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    token = await change_link(request_email_change, uow, alice)
    rival = await register(RegisterUser(email=NEW_EMAIL.upper(), password="the rival's password"))
    before = snapshot(uow.store)

    with pytest.raises(EmailTaken):
        await confirm_email_change(confirm(token))

    assert snapshot(uow.store) == before  # nothing changed: still pending, the link still there
    await delete_account(DeleteAccount(user_id=rival.id, password="the rival's password"))
    await confirm_email_change(confirm(token))
    assert uow.store.users[alice.id].email == Email(NEW_EMAIL)


async def test_a_disabled_account_is_not_moved(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    uow: RecordingUnitOfWork,
    alice: User,
) -> None:
    token = await change_link(request_email_change, uow, alice)
    uow.store.users[alice.id].is_active = False

    with pytest.raises(InvalidEmailToken):
        await confirm_email_change(confirm(token))

    assert uow.store.users[alice.id].email == Email(ALICE_EMAIL)


async def test_two_accounts_confirming_one_address_end_with_one_owner(
    request_email_change: RequestEmailChangeHandler,
    confirm_email_change: ConfirmEmailChangeHandler,
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    postman: Postman,
    alice: User,
    bob: User,
) -> None:
    shared = "shared@example.org"
    alices = await change_link(request_email_change, uow, alice, shared)
    await request_email_change(
        RequestEmailChange(user_id=bob.id, new_email=shared, password="bob's long password", client=client())
    )
    bobs = token_of(queued(uow.store, CONFIRM, to=shared)[-1])

    await confirm_email_change(confirm(bobs))
    with pytest.raises(EmailTaken):
        await confirm_email_change(confirm(alices))

    owners = [u.id for u in uow.store.users.values() if u.email.canonical == shared]
    assert owners == [bob.id]
    assert uow.store.users[alice.id].pending_email == Email(shared)
