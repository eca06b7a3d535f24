from __future__ import annotations

from uuid import UUID

import pytest

from tests.unit.application._support import ALICE_EMAIL, ALICE_PASSWORD, NOW, RecordingUnitOfWork, client, snapshot
from usermgmt.adapters.memory import FakePasswordHasher, FrozenClock, SequentialIdGenerator
from usermgmt.application.abuse import Guard
from usermgmt.application.commands import RegisterUser
from usermgmt.application.errors import EmailTaken, RateLimited, UsernameTaken
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import InvalidEmail, InvalidFullName, InvalidUsername, WeakPassword
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.password_policy import PasswordPolicy
from usermgmt.domain.value_objects import Email, FullName, PlainPassword, Username


async def test_register_creates_an_active_unverified_user(
    register: RegisterUserHandler, uow: RecordingUnitOfWork, hasher: FakePasswordHasher
) -> None:
    user = await register(
        RegisterUser(email="Alice@Example.com", password=ALICE_PASSWORD, username="Alice", full_name="  Alice L. ")
    )

    assert user.id == UUID(int=1)
    assert user.email == Email("Alice@example.com")
    assert user.username == Username("Alice")
    assert user.full_name == FullName("Alice L.")
    assert user.is_active is True
    assert user.email_verified is False
    assert user.created_at == user.updated_at == user.password_changed_at == NOW

    stored = uow.store.users[user.id]
    assert stored.email == user.email
    assert stored.password_hash == hasher.hash_sync(ALICE_PASSWORD)
    assert stored.password_hash.value != ALICE_PASSWORD
    assert uow.commits == 1


async def test_register_hashes_the_nfkc_normalised_password(
    register: RegisterUserHandler, uow: RecordingUnitOfWork, hasher: FakePasswordHasher
) -> None:
    user = await register(RegisterUser(email=ALICE_EMAIL, password="ｐａｓｓｗｏｒｄ１２"))

    assert uow.store.users[user.id].password_hash == await hasher.hash(PlainPassword("password12"))


async def test_register_without_optional_fields(register: RegisterUserHandler, uow: RecordingUnitOfWork) -> None:
    user = await register(RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD))

    assert user.username is None
    assert user.full_name is None
    assert list(uow.store.users) == [user.id]


async def test_each_user_gets_a_new_id(register: RegisterUserHandler, uow: RecordingUnitOfWork) -> None:
    first = await register(RegisterUser(email="a@example.com", password=ALICE_PASSWORD))
    second = await register(RegisterUser(email="b@example.com", password=ALICE_PASSWORD))

    assert first.id != second.id
    assert set(uow.store.users) == {first.id, second.id}


@pytest.mark.parametrize(
    "email", ["alice@example.com", "ALICE@EXAMPLE.COM", " Alice@example.com ", "ａlice@example.com"]
)
async def test_duplicate_email_is_rejected_case_insensitively(
    register: RegisterUserHandler, uow: RecordingUnitOfWork, alice: User, email: str
) -> None:
    before = snapshot(uow.store)

    with pytest.raises(EmailTaken) as excinfo:
        await register(RegisterUser(email=email, password="another long password"))

    assert excinfo.value.code == "email_taken"
    assert snapshot(uow.store) == before


@pytest.mark.parametrize("username", ["alice", "ALICE", "Alice"])
async def test_duplicate_username_is_rejected_case_insensitively(
    register: RegisterUserHandler, uow: RecordingUnitOfWork, alice: User, username: str
) -> None:
    before = snapshot(uow.store)

    with pytest.raises(UsernameTaken) as excinfo:
        await register(RegisterUser(email="other@example.com", password="another long password", username=username))

    assert excinfo.value.code == "username_taken"
    assert snapshot(uow.store) == before


async def test_dotless_i_email_is_a_different_account(register: RegisterUserHandler, uow: RecordingUnitOfWork) -> None:
    mike = await register(RegisterUser(email="mike@example.com", password=ALICE_PASSWORD))
    dotless = await register(RegisterUser(email="mıke@example.com", password=ALICE_PASSWORD))

    assert mike.id != dotless.id
    assert len(uow.store.users) == 2


async def test_ligature_email_is_the_same_account(register: RegisterUserHandler) -> None:
    await register(RegisterUser(email="office@example.com", password=ALICE_PASSWORD))

    with pytest.raises(EmailTaken):
        await register(RegisterUser(email="oﬀice@example.com", password=ALICE_PASSWORD))


@pytest.mark.parametrize(
    ("password", "username"),
    [
        ("short", None),
        ("x" * 129, None),
        (ALICE_EMAIL.upper(), None),
        ("Alice.Smith", "alice.smith"),
    ],
)
async def test_weak_password_is_rejected(
    register: RegisterUserHandler,
    uow: RecordingUnitOfWork,
    password: str,
    username: str | None,
) -> None:
    with pytest.raises(WeakPassword) as excinfo:
        await register(RegisterUser(email=ALICE_EMAIL, password=password, username=username))

    assert excinfo.value.code == "weak_password"
    assert uow.store.users == {}
    assert uow.commits == 0


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"email": "not-an-email"}, InvalidEmail),
        ({"username": "no spaces allowed"}, InvalidUsername),
        ({"username": "ab"}, InvalidUsername),
        ({"full_name": "   "}, InvalidFullName),
        ({"full_name": "Evil\x00Name"}, InvalidFullName),
    ],
)
async def test_invalid_fields_are_rejected(
    register: RegisterUserHandler, uow: RecordingUnitOfWork, fields: dict[str, str], error: type[Exception]
) -> None:
    values = {"email": ALICE_EMAIL, "password": ALICE_PASSWORD} | fields

    with pytest.raises(error):
        await register(RegisterUser(**values))

    assert uow.store.users == {}


async def test_register_command_repr_hides_the_password() -> None:
    assert ALICE_PASSWORD not in repr(RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD))


async def test_registration_is_recorded(register: RegisterUserHandler, uow: RecordingUnitOfWork) -> None:
    user = await register(RegisterUser(email=ALICE_EMAIL, password=ALICE_PASSWORD, client=client(ip="198.51.100.5")))

    assert uow.kinds() == [EventType.REGISTERED]
    event = uow.recorded[0]
    assert (event.user_id, event.ip, event.user_agent, event.request_id) == (user.id, "198.51.100.5", "pytest", "req-1")
    assert event.at == NOW


async def test_rejected_registration_records_nothing(
    register: RegisterUserHandler, uow: RecordingUnitOfWork, alice: User
) -> None:
    recorded = list(uow.recorded)

    with pytest.raises(EmailTaken):
        await register(RegisterUser(email=ALICE_EMAIL, password="another long password"))

    assert uow.recorded == recorded


@pytest.mark.parametrize(
    ("password", "fields"),
    [
        ("alice2025!", {}),  # the email's local part plus decoration
        ("Liddell!!!", {"full_name": "Alice Liddell"}),
        ("wonder1234", {"username": "wonder"}),
    ],
)
async def test_password_built_from_the_new_accounts_identifiers_is_rejected(
    register: RegisterUserHandler, uow: RecordingUnitOfWork, password: str, fields: dict[str, str]
) -> None:
    with pytest.raises(WeakPassword):
        await register(RegisterUser(email=ALICE_EMAIL, password=password, **fields))

    assert uow.store.users == {}


async def test_common_password_is_rejected_when_the_policy_has_a_list(
    uow: RecordingUnitOfWork, clock: FrozenClock, guard: Guard
) -> None:
    register = RegisterUserHandler(
        uow=uow,
        hasher=FakePasswordHasher(),
        screen=PasswordScreen(PasswordPolicy(common=frozenset({"sunshine", "iloveyou"}))),
        clock=clock,
        ids=SequentialIdGenerator(),
        guard=guard,
    )

    with pytest.raises(WeakPassword) as excinfo:
        await register(RegisterUser(email=ALICE_EMAIL, password="Sunshine2024!"))

    assert "common" in excinfo.value.detail
    assert uow.store.users == {}


async def test_registrations_are_rate_limited_per_ip(
    register: RegisterUserHandler, uow: RecordingUnitOfWork, hasher: FakePasswordHasher
) -> None:
    for n in range(30):  # the default: thirty per hour from one IP
        await register(RegisterUser(email=f"user{n}@example.com", password=ALICE_PASSWORD, client=client()))

    with pytest.raises(RateLimited) as excinfo:
        await register(RegisterUser(email="one-more@example.com", password=ALICE_PASSWORD, client=client()))

    assert excinfo.value.rule == "registrations_per_ip"
    assert len(uow.store.users) == 30
    assert uow.kinds().count(EventType.RATE_LIMITED) == 1
    other_ip = await register(
        RegisterUser(email="elsewhere@example.com", password=ALICE_PASSWORD, client=client(ip="198.51.100.200"))
    )
    assert other_ip.id in uow.store.users
