"""The UserRepository / UnitOfWork contract, run against the in-memory fake, PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from uuid import uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW, email_token, new_session, new_user, token_hash, user_fields
from usermgmt.adapters.sqlalchemy.tables import PERSONAL_DATA
from usermgmt.application.errors import ConcurrentUpdate, EmailTaken, UsernameTaken
from usermgmt.application.ports import FlowPurpose, LoginCode, OutgoingEmail, PendingAuthorization, UnitOfWork
from usermgmt.domain.events import EventType, SecurityEvent
from usermgmt.domain.identities import Identity, IdentityId
from usermgmt.domain.mfa import MfaChallenge, TotpCredential
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import AuthMethod, Email, FullName, PasswordHash, UserId, Username


async def add_committed(uow: UnitOfWork, *users: User) -> None:
    async with uow:
        for user in users:
            await uow.users.add(user)
        await uow.commit()


async def test_added_user_comes_back_with_every_field(uow: UnitOfWork) -> None:
    user = new_user("Alice.Liddell@Example.COM", username="Alice_L", full_name="Alice Liddell")
    user.email_verified = True
    user.password_changed_at = NOW - timedelta(days=3, microseconds=1)
    await add_committed(uow, user)

    async with uow:
        loaded = await uow.users.get(user.id)

    assert loaded is not None
    assert loaded is not user
    assert user_fields(loaded) == user_fields(user)
    assert loaded.email == Email("Alice.Liddell@example.com")  # email-validator lower-cases the domain only
    assert loaded.username == Username("Alice_L")
    assert loaded.full_name == FullName("Alice Liddell")
    assert loaded.password_hash == user.password_hash
    for instant in (loaded.created_at, loaded.updated_at, loaded.password_changed_at):
        assert instant.tzinfo is not None
        assert instant.utcoffset() == timedelta(0)
    assert loaded.created_at == NOW
    assert loaded.password_changed_at == NOW - timedelta(days=3, microseconds=1)


async def test_optional_fields_round_trip_as_none(uow: UnitOfWork) -> None:
    user = new_user("bob@example.com")
    await add_committed(uow, user)

    async with uow:
        loaded = await uow.users.get(user.id)

    assert loaded is not None
    assert loaded.username is None
    assert loaded.full_name is None
    assert user_fields(loaded) == user_fields(user)


async def test_unknown_user_is_none(uow: UnitOfWork) -> None:
    async with uow:
        assert await uow.users.get(new_user().id) is None
        assert await uow.users.get_by_email(Email("nobody@example.com")) is None
        assert await uow.users.get_by_username(Username("nobody")) is None


@pytest.mark.parametrize("lookup", ["alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.Com"])
async def test_get_by_email_ignores_case(uow: UnitOfWork, lookup: str) -> None:
    user = new_user("Alice@example.com", username="alice")
    await add_committed(uow, user, new_user("bob@example.com"))

    async with uow:
        found = await uow.users.get_by_email(Email(lookup))

    assert found is not None
    assert found.id == user.id
    assert found.email.value == "Alice@example.com"  # stored as given; only the comparison folds case


@pytest.mark.parametrize("lookup", ["Alice_L", "alice_l", "ALICE_L"])
async def test_get_by_username_ignores_case(uow: UnitOfWork, lookup: str) -> None:
    user = new_user("alice@example.com", username="Alice_L")
    await add_committed(uow, user, new_user("bob@example.com", username="bob"))

    async with uow:
        found = await uow.users.get_by_username(Username(lookup))

    assert found is not None
    assert found.id == user.id
    assert found.username == Username("Alice_L")


@pytest.mark.parametrize("duplicate", ["alice@example.com", "ALICE@example.com", "aLiCe@EXAMPLE.com"])
async def test_duplicate_email_is_refused_case_insensitively(uow: UnitOfWork, duplicate: str) -> None:
    await add_committed(uow, new_user("Alice@example.com", username="alice"))

    async with uow:
        with pytest.raises(EmailTaken):
            await uow.users.add(new_user(duplicate, username="alice2"))

    async with uow:
        assert await uow.users.get_by_username(Username("alice2")) is None


async def test_duplicate_email_within_one_unit_of_work_is_refused(uow: UnitOfWork) -> None:
    async with uow:
        await uow.users.add(new_user("carol@example.com"))
        with pytest.raises(EmailTaken):
            await uow.users.add(new_user("CAROL@example.com"))

    async with uow:
        assert await uow.users.get_by_email(Email("carol@example.com")) is None


@pytest.mark.parametrize("duplicate", ["alice", "ALICE", "Alice"])
async def test_duplicate_username_is_refused_case_insensitively(uow: UnitOfWork, duplicate: str) -> None:
    await add_committed(uow, new_user("alice@example.com", username="alice"))

    async with uow:
        with pytest.raises(UsernameTaken):
            await uow.users.add(new_user("other@example.com", username=duplicate))

    async with uow:
        assert await uow.users.get_by_email(Email("other@example.com")) is None


async def test_many_users_without_username_may_coexist(uow: UnitOfWork) -> None:
    await add_committed(uow, new_user("a@example.com"), new_user("b@example.com"), new_user("c@example.com"))

    async with uow:
        assert await uow.users.get_by_email(Email("c@example.com")) is not None


async def test_update_writes_back_changes(uow: UnitOfWork) -> None:
    user = new_user("alice@example.com", username="alice")
    await add_committed(uow, user)
    later = NOW + timedelta(hours=1)

    async with uow:
        loaded = await uow.users.get(user.id)
        assert loaded is not None
        loaded.change_email(Email("alice@example.org"), now=later)
        loaded.update_profile(now=later, full_name=FullName("Alice"))
        loaded.change_password(PasswordHash("$2b$12$new"), now=later)
        await uow.users.update(loaded)
        await uow.commit()

    async with uow:
        reloaded = await uow.users.get(user.id)
        assert await uow.users.get_by_email(Email("alice@example.com")) is None
    assert reloaded is not None
    assert user_fields(reloaded) == user_fields(loaded)
    assert reloaded.email == Email("alice@example.org")
    assert reloaded.updated_at == later


async def test_user_can_be_updated_twice_in_one_unit_of_work(uow: UnitOfWork) -> None:
    """Each update bumps the version the repository remembers, so the next update of the same object works."""
    user = new_user("alice@example.com")
    await add_committed(uow, user)

    async with uow:
        loaded = await uow.users.get(user.id)
        assert loaded is not None
        loaded.update_profile(now=NOW, full_name=FullName("First"))
        await uow.users.update(loaded)
        loaded.update_profile(now=NOW, full_name=FullName("Second"))
        await uow.users.update(loaded)
        await uow.commit()

    async with uow:
        reloaded = await uow.users.get(user.id)
    assert reloaded is not None
    assert reloaded.full_name == FullName("Second")


async def test_user_added_then_updated_in_one_unit_of_work(uow: UnitOfWork) -> None:
    user = new_user("alice@example.com")
    async with uow:
        await uow.users.add(user)
        user.update_profile(now=NOW, username=Username("alice"))
        await uow.users.update(user)
        await uow.commit()

    async with uow:
        assert await uow.users.get_by_username(Username("alice")) is not None


async def test_update_to_a_taken_email_is_refused(uow: UnitOfWork) -> None:
    alice, bob = new_user("alice@example.com", username="alice"), new_user("bob@example.com", username="bob")
    await add_committed(uow, alice, bob)

    async with uow:
        loaded = await uow.users.get(bob.id)
        assert loaded is not None
        loaded.change_email(Email("ALICE@example.com"), now=NOW)
        with pytest.raises(EmailTaken):
            await uow.users.update(loaded)

    async with uow:
        loaded = await uow.users.get(bob.id)
        assert loaded is not None
        loaded.update_profile(now=NOW, username=Username("Alice"))
        with pytest.raises(UsernameTaken):
            await uow.users.update(loaded)

    async with uow:
        unchanged = await uow.users.get(bob.id)
    assert unchanged is not None
    assert user_fields(unchanged) == user_fields(bob)


async def test_changing_only_the_case_of_ones_own_email_is_allowed(uow: UnitOfWork) -> None:
    user = new_user("alice@example.com")
    await add_committed(uow, user)

    async with uow:
        loaded = await uow.users.get(user.id)
        assert loaded is not None
        loaded.change_email(Email("ALICE@example.com"), now=NOW)
        await uow.users.update(loaded)
        await uow.commit()

    async with uow:
        reloaded = await uow.users.get_by_email(Email("alice@example.com"))
    assert reloaded is not None
    assert reloaded.email.value == "ALICE@example.com"


async def test_second_of_two_concurrent_updates_is_refused(
    uow: UnitOfWork, make_uow: Callable[[], UnitOfWork], request: pytest.FixtureRequest
) -> None:
    """Optimistic locking: two requests load version 1; the first writes version 2; the second must not."""
    user = new_user("alice@example.com")
    await add_committed(uow, user)
    first, second = make_uow(), make_uow()

    async with first, second:
        mine = await first.users.get(user.id)
        theirs = await second.users.get(user.id)
        assert mine is not None
        assert theirs is not None

        mine.update_profile(now=NOW, full_name=FullName("First Writer"))
        await first.users.update(mine)
        await first.commit()

        theirs.update_profile(now=NOW, full_name=FullName("Second Writer"))
        with pytest.raises(ConcurrentUpdate):
            await second.users.update(theirs)

    async with uow:
        reloaded = await uow.users.get(user.id)
    assert reloaded is not None
    assert reloaded.full_name == FullName("First Writer")


async def test_without_commit_nothing_is_persisted(uow: UnitOfWork, make_uow: Callable[[], UnitOfWork]) -> None:
    kept = new_user("kept@example.com")
    await add_committed(uow, kept)
    dropped = new_user("dropped@example.com", username="dropped")

    async with uow:
        await uow.users.add(dropped)
        await uow.sessions.add(new_session(kept, label="uncommitted"))
        loaded = await uow.users.get(kept.id)
        assert loaded is not None
        loaded.update_profile(now=NOW, full_name=FullName("Changed"))
        await uow.users.update(loaded)
        assert await uow.users.get(dropped.id) is not None  # visible inside its own transaction

    async with make_uow() as other:
        assert await other.users.get(dropped.id) is None
        assert await other.users.get_by_username(Username("dropped")) is None
        assert await other.sessions.get_by_refresh_token(token_hash("uncommitted")) is None
        reloaded = await other.users.get(kept.id)
    assert reloaded is not None
    assert reloaded.full_name is None


async def test_exception_rolls_back(uow: UnitOfWork) -> None:
    user = new_user("alice@example.com")

    class Boom(Exception):
        pass

    async def add_then_fail() -> None:
        async with uow:
            await uow.users.add(user)
            raise Boom

    with pytest.raises(Boom):
        await add_then_fail()

    async with uow:
        assert await uow.users.get(user.id) is None


async def test_unit_of_work_can_be_entered_again(uow: UnitOfWork) -> None:
    first, second = new_user("first@example.com"), new_user("second@example.com")
    await add_committed(uow, first)
    await add_committed(uow, second)

    async with uow:
        assert await uow.users.get(first.id) is not None
        assert await uow.users.get(second.id) is not None


async def test_uncommitted_writes_are_invisible_to_others(uow: UnitOfWork, make_uow: Callable[[], UnitOfWork]) -> None:
    user = new_user("alice@example.com")
    async with uow:
        await uow.users.add(user)
        async with make_uow() as other:
            assert await other.users.get(user.id) is None
        await uow.commit()

    async with make_uow() as other:
        assert await other.users.get(user.id) is not None


async def test_erase_removes_the_user_and_all_their_rows_only(uow: UnitOfWork) -> None:
    alice, bob = new_user("alice@example.com", username="alice"), new_user("bob@example.com", username="bob")
    await add_committed(uow, alice, bob)
    alice_one = new_session(alice, label="alice-1", now=NOW)
    alice_two = new_session(alice, label="alice-2", now=NOW)
    bob_one = new_session(bob, label="bob-1", now=NOW)
    async with uow:
        for session in (alice_one, alice_two, bob_one):
            await uow.sessions.add(session)
        # two rotations of alice's first session, one of her second, one of bob's: four retired tokens
        for session, new_label in ((alice_one, "alice-1b"), (alice_one, "alice-1c"), (alice_two, "alice-2b")):
            retired = session.rotate(
                token_hash(new_label),
                now=NOW + timedelta(minutes=1),
                lifetime=timedelta(days=1),
                user_agent=None,
                ip=None,
            )
            await uow.sessions.save_rotation(session, retired)
        retired_bob = bob_one.rotate(
            token_hash("bob-1b"), now=NOW + timedelta(minutes=1), lifetime=timedelta(days=1), user_agent=None, ip=None
        )
        await uow.sessions.save_rotation(bob_one, retired_bob)
        await uow.commit()

    async with uow:
        counts = await uow.users.erase(alice.id)
        await uow.commit()

    assert dict(counts) == {
        "user": 1,
        "sessions": 2,
        "retired_refresh_tokens": 3,
        "security_events": 0,
        "email_tokens": 0,
        "email_outbox": 0,
        "known_devices": 0,
        "totp_credentials": 0,
        "recovery_codes": 0,
        "mfa_challenges": 0,
        "user_roles": 0,
        "identities": 0,
        "oauth_authorizations": 0,
        "login_codes": 0,
    }
    async with uow:
        assert await uow.users.get(alice.id) is None
        assert await uow.users.get_by_email(Email("alice@example.com")) is None
        assert await uow.sessions.list_for_user(alice.id) == []
        for label in ("alice-1", "alice-1b", "alice-2"):
            assert await uow.sessions.find_by_retired_token(token_hash(label)) is None
        assert await uow.users.get(bob.id) is not None
        assert [s.id for s in await uow.sessions.list_for_user(bob.id)] == [bob_one.id]
        assert await uow.sessions.find_by_retired_token(token_hash("bob-1")) == bob_one.id


async def rows_in_each_registered_place(engine: AsyncEngine, user_id: UserId) -> dict[str, int]:
    async with engine.connect() as connection:
        return {
            entry.name: int(
                (
                    await connection.execute(
                        select(func.count()).select_from(entry.table).where(entry.owned_by(user_id))
                    )
                ).scalar_one()
            )
            for entry in PERSONAL_DATA
        }


async def test_erase_empties_every_registered_place_and_the_receipt_is_the_registry(
    uow: UnitOfWork, sql_engine: AsyncEngine | None
) -> None:
    """The receipt has one entry per place of ``PERSONAL_DATA``, in its order, and (on a database, read back with
    the registry's own selection) what it counts is exactly what was there, and now is not."""
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    await add_committed(uow, alice, bob)
    alices, bobs = new_session(alice, label="alice"), new_session(bob, label="bob")
    async with uow:
        for user, session in ((alice, alices), (bob, bobs)):
            await uow.sessions.add(session)
            retired = session.rotate(
                token_hash(f"{session.id}-b"), now=NOW, lifetime=timedelta(days=1), user_agent=None, ip=None
            )
            await uow.sessions.save_rotation(session, retired)
            await uow.events.add(SecurityEvent(type=EventType.LOGIN_SUCCEEDED, at=NOW, user_id=user.id))
            await uow.email_tokens.add(email_token(user))
            await uow.outbox.add(OutgoingEmail(to=str(user.email), template="verify_email", user_id=user.id), now=NOW)
            await uow.mfa.save_totp(TotpCredential(user_id=user.id, sealed_secret="v1.x.y", created_at=NOW))
            await uow.mfa.replace_recovery_codes(user.id, [f"{user.id}-a", f"{user.id}-b"], NOW)
            await uow.mfa.add_challenge(
                MfaChallenge.open(
                    digest=f"{user.id}-challenge",
                    user_id=user.id,
                    amr=(AuthMethod.PASSWORD,),
                    password_changed_at=NOW,
                    throttle_key=None,
                    now=NOW,
                    lifetime=timedelta(minutes=5),
                )
            )
            await uow.roles.set_roles(user.id, ["admin"], NOW)
            await uow.identities.add(
                Identity.link(
                    id=IdentityId(uuid4()),
                    user_id=user.id,
                    provider="google",
                    subject=str(user.id),
                    email=user.email,
                    now=NOW,
                )
            )
            await uow.federation.add_authorization(
                PendingAuthorization(
                    state_digest=f"{user.id}-state",
                    provider="google",
                    purpose=FlowPurpose.LINK,
                    user_id=user.id,
                    browser_digest=None,
                    redirect_uri="https://app.example.com/callback",
                    code_challenge="challenge",
                    nonce="nonce",
                    code_verifier="verifier",
                    created_at=NOW,
                    expires_at=NOW + timedelta(minutes=10),
                )
            )
            await uow.federation.add_login_code(
                LoginCode(
                    digest=f"{user.id}-code",
                    user_id=user.id,
                    provider="google",
                    redirect_uri="https://app.example.com/callback",
                    code_challenge="challenge",
                    created_at=NOW,
                    expires_at=NOW + timedelta(seconds=60),
                )
            )
        await uow.commit()
    before = await rows_in_each_registered_place(sql_engine, alice.id) if sql_engine is not None else None
    bobs_before = await rows_in_each_registered_place(sql_engine, bob.id) if sql_engine is not None else None

    async with uow:
        receipt = await uow.users.erase(alice.id)
        await uow.commit()

    assert list(receipt) == [entry.name for entry in PERSONAL_DATA]
    assert dict(receipt) == {
        "user": 1,
        "sessions": 1,
        "retired_refresh_tokens": 1,
        "security_events": 1,
        "email_tokens": 1,
        "email_outbox": 1,
        "known_devices": 0,  # written by sign-in's device check (tests/integration/test_known_devices*.py)
        "totp_credentials": 1,
        "recovery_codes": 2,
        "mfa_challenges": 1,
        "user_roles": 1,
        "identities": 1,
        "oauth_authorizations": 1,
        "login_codes": 1,
    }
    if sql_engine is not None:
        assert before == dict(receipt)
        assert set((await rows_in_each_registered_place(sql_engine, alice.id)).values()) == {0}
        assert await rows_in_each_registered_place(sql_engine, bob.id) == bobs_before


async def test_erased_email_and_username_can_be_registered_again(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com", username="alice")
    await add_committed(uow, alice)
    async with uow:
        await uow.users.erase(alice.id)
        await uow.commit()

    await add_committed(uow, new_user("ALICE@example.com", username="Alice"))


async def test_erase_of_an_unknown_user_counts_nothing(uow: UnitOfWork) -> None:
    await add_committed(uow, new_user("alice@example.com"))

    async with uow:
        counts = await uow.users.erase(UserId(uuid4()))
        await uow.commit()

    assert set(counts.values()) == {0}
    assert list(counts) == [entry.name for entry in PERSONAL_DATA]


async def test_erase_without_commit_is_rolled_back(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com")
    await add_committed(uow, alice)
    async with uow:
        await uow.sessions.add(new_session(alice, label="s"))
        await uow.commit()

    async with uow:
        assert (await uow.users.erase(alice.id))["user"] == 1

    async with uow:
        assert await uow.users.get(alice.id) is not None
        assert len(await uow.sessions.list_for_user(alice.id)) == 1


async def test_interleaved_units_of_work_keep_each_others_commits(
    uow: UnitOfWork, make_uow: Callable[[], UnitOfWork], backend: str
) -> None:
    """Two requests registering different people at the same time: both accounts must exist afterwards."""
    if backend == "sqlite":
        pytest.skip("SQLite has one writer at a time: the second insert waits for a commit this one task cannot make")
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    first, second = make_uow(), make_uow()

    async with first, second:
        await first.users.add(alice)
        await second.users.add(bob)
        await first.commit()
        await second.commit()

    async with uow:
        assert await uow.users.get(alice.id) is not None
        assert await uow.users.get(bob.id) is not None
