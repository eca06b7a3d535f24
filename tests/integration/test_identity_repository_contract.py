"""The IdentityRepository and FederationRepository contracts, run against the in-memory fake, PostgreSQL and SQLite
alike: an identity (provider, subject) belongs to one account; a trip to a provider and a login code are taken once,
even by two transactions at the same moment; all of it goes with the account."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW, user_fields
from tests.integration.builders import new_user as password_user
from usermgmt.adapters.sqlalchemy.tables import identities, login_codes, oauth_authorizations
from usermgmt.application.errors import ConcurrentUpdate, IdentityInUse
from usermgmt.application.ports import FlowPurpose, LoginCode, PendingAuthorization, UnitOfWork
from usermgmt.domain.identities import Identity, IdentityId
from usermgmt.domain.mfa import MfaChallenge
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import AuthMethod, Email, UserId

LATER = NOW + timedelta(minutes=5)


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def identity(
    user: User, provider: str = "google", subject: str | None = None, *, email: str | None = None, now: datetime = NOW
) -> Identity:
    return Identity.link(
        id=IdentityId(uuid4()),
        user_id=user.id,
        provider=provider,
        subject=subject or uuid4().hex,
        email=Email(email) if email is not None else None,
        now=now,
    )


def authorization(
    user: User | None = None, *, label: str | None = None, now: datetime = NOW, ttl: timedelta = timedelta(minutes=10)
) -> PendingAuthorization:
    """A sign-in bound to a browser, or (with ``user``) a link started from that user's settings."""
    label = label or uuid4().hex
    return PendingAuthorization(
        state_digest=digest(f"state-{label}"),
        provider="google",
        purpose=FlowPurpose.LINK if user is not None else FlowPurpose.SIGN_IN,
        user_id=user.id if user is not None else None,
        browser_digest=None if user is not None else digest(f"browser-{label}"),
        redirect_uri="https://app.example.com/auth/callback?from=%2Fsettings",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        nonce=f"nonce-{label}",
        code_verifier=f"verifier-{label}-" + "x" * 43,
        created_at=now,
        expires_at=now + ttl,
    )


def login_code(
    user: User, *, label: str | None = None, now: datetime = NOW, ttl: timedelta = timedelta(seconds=60)
) -> LoginCode:
    return LoginCode(
        digest=digest(f"code-{label or uuid4().hex}"),
        user_id=user.id,
        provider="facebook",
        redirect_uri="https://app.example.com/auth/callback",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        created_at=now,
        expires_at=now + ttl,
    )


def fields(found: Identity | None) -> dict[str, Any] | None:
    """Every field: ``Identity.__eq__`` compares ids only, a round trip must keep everything."""
    return dict(vars(found)) if found is not None else None


async def given(uow: UnitOfWork, *users: User, linked: tuple[Identity, ...] = ()) -> None:
    async with uow:
        for user in users:
            await uow.users.add(user)
        for one in linked:
            await uow.identities.add(one)
        await uow.commit()


async def take_authorization(uow: UnitOfWork, state_digest: str) -> PendingAuthorization | None:
    async with uow:
        found = await uow.federation.take_authorization(state_digest)
        await uow.commit()
    return found


async def take_login_code(uow: UnitOfWork, code_digest: str) -> LoginCode | None:
    async with uow:
        found = await uow.federation.take_login_code(code_digest)
        await uow.commit()
    return found


# --- accounts made through a provider --------------------------------------------------------------------------


async def test_an_account_without_a_password_round_trips(uow: UnitOfWork) -> None:
    user = User.register_federated(id=UserId(uuid4()), email=Email("ada@example.com"), email_verified=True, now=NOW)
    await given(uow, user)

    async with uow:
        loaded = await uow.users.get(user.id)
        assert loaded is not None
        assert user_fields(loaded) == user_fields(user)
        assert loaded.password_hash is None and not loaded.has_password
        await uow.users.update(loaded)  # written back without a password too
        await uow.commit()

    async with uow:
        again = await uow.users.get(user.id)
    assert again is not None and again.password_hash is None


async def test_a_challenge_remembers_the_provider_of_its_first_factor(uow: UnitOfWork) -> None:
    user = password_user()
    challenge = MfaChallenge.open(
        digest=digest("challenge"),
        user_id=user.id,
        amr=(AuthMethod.PASSWORD,),
        password_changed_at=None,
        throttle_key=None,
        now=NOW,
        lifetime=timedelta(minutes=5),
    )
    challenge.provider = "google"
    await given(uow, user)
    async with uow:
        await uow.mfa.add_challenge(challenge)
        await uow.commit()

    async with uow:
        loaded = await uow.mfa.get_challenge(challenge.digest)

    assert loaded is not None
    assert vars(loaded) == vars(challenge)


# --- identities ------------------------------------------------------------------------------------------------


async def test_an_identity_comes_back_with_every_field(uow: UnitOfWork) -> None:
    alice = password_user("alice@example.com")
    with_email = identity(alice, "google", "108234", email="Alice@Gmail.com")
    without_email = identity(alice, "facebook", "10159", now=LATER)
    await given(uow, alice, linked=(with_email, without_email))

    async with uow:
        found = await uow.identities.get("google", "108234")
        bare = await uow.identities.get("facebook", "10159")
        assert await uow.identities.get("google", "10159") is None
        assert await uow.identities.get("facebook", "108234") is None

    assert fields(found) == fields(with_email)
    assert fields(bare) == fields(without_email)
    assert found is not None and found.email == Email("Alice@gmail.com")
    for instant in (found.created_at, found.last_used_at):
        assert instant.utcoffset() == timedelta(0)


async def test_get_for_user_finds_only_the_owners(uow: UnitOfWork) -> None:
    alice, mallory = password_user("alice@example.com"), password_user("mallory@example.com")
    alices = identity(alice)
    await given(uow, alice, mallory, linked=(alices,))

    async with uow:
        assert fields(await uow.identities.get_for_user(alices.id, alice.id)) == fields(alices)
        assert await uow.identities.get_for_user(alices.id, mallory.id) is None
        assert await uow.identities.get_for_user(IdentityId(uuid4()), alice.id) is None


async def test_list_for_user_is_oldest_first_and_only_theirs(uow: UnitOfWork) -> None:
    alice, bob = password_user("alice@example.com"), password_user("bob@example.com")
    newest = identity(alice, "facebook", now=NOW + timedelta(days=2))
    oldest = identity(alice, "google", now=NOW)
    middle = identity(alice, "oidc", now=NOW + timedelta(days=1))
    await given(uow, alice, bob, linked=(newest, oldest, middle, identity(bob)))

    async with uow:
        listed = await uow.identities.list_for_user(alice.id)
        assert await uow.identities.list_for_user(UserId(uuid4())) == []

    assert [fields(i) for i in listed] == [fields(oldest), fields(middle), fields(newest)]


async def test_update_stores_the_last_use_and_the_address(uow: UnitOfWork) -> None:
    alice = password_user("alice@example.com")
    linked = identity(alice, email="old@example.com")
    await given(uow, alice, linked=(linked,))

    async with uow:
        found = await uow.identities.get(linked.provider, linked.subject)
        assert found is not None
        found.used(now=LATER, email=Email("new@example.com"))
        await uow.identities.update(found)
        await uow.commit()
    async with uow:
        after = await uow.identities.get(linked.provider, linked.subject)

    assert after is not None
    assert (after.last_used_at, after.email, after.created_at) == (LATER, Email("new@example.com"), NOW)
    assert (after.id, after.user_id, after.provider, after.subject) == (
        linked.id,
        alice.id,
        linked.provider,
        linked.subject,
    )


async def test_delete_takes_only_the_owners_identity(uow: UnitOfWork) -> None:
    alice, mallory = password_user("alice@example.com"), password_user("mallory@example.com")
    alices = identity(alice)
    await given(uow, alice, mallory, linked=(alices,))

    async with uow:
        assert await uow.identities.delete(alices.id, mallory.id) is False
        await uow.commit()
    async with uow:
        assert await uow.identities.get_for_user(alices.id, alice.id) is not None
        assert await uow.identities.delete(alices.id, alice.id) is True
        assert await uow.identities.delete(alices.id, alice.id) is False
        await uow.commit()

    async with uow:
        assert await uow.identities.get(alices.provider, alices.subject) is None
        assert await uow.identities.list_for_user(alice.id) == []


async def test_a_provider_and_subject_belong_to_one_account(uow: UnitOfWork) -> None:
    alice, bob = password_user("alice@example.com"), password_user("bob@example.com")
    await given(uow, alice, bob, linked=(identity(alice, "google", "108234"),))

    for owner in (bob, alice):
        async with uow:
            with pytest.raises(IdentityInUse):
                await uow.identities.add(identity(owner, "google", "108234"))

    # another subject at the same provider, and the same subject at another provider, are other identities
    await given(uow, linked=(identity(alice, "google", "999"), identity(bob, "facebook", "108234")))
    async with uow:
        assert len(await uow.identities.list_for_user(alice.id)) == 2
        found = await uow.identities.get("google", "108234")
    assert found is not None and found.user_id == alice.id


async def test_an_identity_for_an_account_that_is_gone_is_refused_as_a_concurrent_update(uow: UnitOfWork) -> None:
    ghost = password_user("ghost@example.com")

    async with uow:
        with pytest.raises(ConcurrentUpdate):
            await uow.identities.add(identity(ghost))


async def test_two_transactions_linking_one_identity_at_once_one_wins(
    uow: UnitOfWork, make_uow: Callable[[], UnitOfWork], backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has one writer at a time: the second insert waits for a commit this one task cannot make")
    alice, bob = password_user("alice@example.com"), password_user("bob@example.com")
    await given(uow, alice, bob)

    async def attempt(unit: UnitOfWork, owner: User) -> Identity:
        linked = identity(owner, "google", "108234")
        async with unit:
            await unit.identities.add(linked)
            await asyncio.sleep(0)  # the other one adds now (PostgreSQL: it waits on the index entry until we commit)
            await unit.commit()
        return linked

    results = await asyncio.gather(attempt(make_uow(), alice), attempt(make_uow(), bob), return_exceptions=True)

    winners = [r for r in results if isinstance(r, Identity)]
    assert len(winners) == 1 and [type(r) for r in results if r not in winners] == [IdentityInUse], results
    async with uow:
        found = await uow.identities.get("google", "108234")
    assert found is not None and found.id == winners[0].id


# --- trips to a provider and login codes -----------------------------------------------------------------------


async def test_an_authorization_is_taken_once_with_everything_it_was_stored_with(uow: UnitOfWork) -> None:
    alice = password_user("alice@example.com")
    sign_in, link = authorization(label="sign-in"), authorization(alice, label="link")
    await given(uow, alice)
    async with uow:
        await uow.federation.add_authorization(sign_in)
        await uow.federation.add_authorization(link)
        await uow.commit()

    assert await take_authorization(uow, sign_in.state_digest) == sign_in
    assert await take_authorization(uow, sign_in.state_digest) is None
    assert await take_authorization(uow, link.state_digest) == link
    assert await take_authorization(uow, link.state_digest) is None
    assert await take_authorization(uow, digest("never stored")) is None


async def test_a_login_code_is_taken_once_with_everything_it_was_stored_with(uow: UnitOfWork) -> None:
    alice = password_user("alice@example.com")
    code = login_code(alice)
    await given(uow, alice)
    async with uow:
        await uow.federation.add_login_code(code)
        await uow.commit()

    assert await take_login_code(uow, code.digest) == code
    assert await take_login_code(uow, code.digest) is None
    assert await take_login_code(uow, digest("never stored")) is None


async def test_a_take_that_rolls_back_leaves_the_row(uow: UnitOfWork) -> None:
    alice = password_user("alice@example.com")
    pending, code = authorization(), login_code(alice)
    await given(uow, alice)
    async with uow:
        await uow.federation.add_authorization(pending)
        await uow.federation.add_login_code(code)
        await uow.commit()
    async with uow:
        assert await uow.federation.take_authorization(pending.state_digest) == pending
        assert await uow.federation.take_login_code(code.digest) == code
        # no commit

    assert await take_authorization(uow, pending.state_digest) == pending
    assert await take_login_code(uow, code.digest) == code


async def test_expired_rows_are_still_handed_over_for_the_caller_to_judge(uow: UnitOfWork) -> None:
    alice = password_user("alice@example.com")
    old = NOW - timedelta(days=1)
    pending, code = authorization(now=old), login_code(alice, now=old)
    await given(uow, alice)
    async with uow:
        await uow.federation.add_authorization(pending)
        await uow.federation.add_login_code(code)
        await uow.commit()

    assert await take_authorization(uow, pending.state_digest) == pending
    assert await take_login_code(uow, code.digest) == code


async def test_delete_expired_drops_the_rows_past_their_time_and_keeps_the_others(uow: UnitOfWork) -> None:
    alice = password_user("alice@example.com")
    now = NOW + timedelta(minutes=10)  # the authorizations of NOW expire exactly now: gone
    expired_authorizations = [authorization(now=NOW), authorization(alice, now=NOW)]
    expired_code = login_code(alice, now=NOW)
    live_authorization, live_code = authorization(now=now), login_code(alice, now=now)
    await given(uow, alice)
    async with uow:
        for pending in (*expired_authorizations, live_authorization):
            await uow.federation.add_authorization(pending)
        for code in (expired_code, live_code):
            await uow.federation.add_login_code(code)
        await uow.commit()

    async with uow:
        assert await uow.federation.delete_expired(now) == 3
        await uow.commit()
    async with uow:
        assert await uow.federation.delete_expired(now) == 0

    for pending in expired_authorizations:
        assert await take_authorization(uow, pending.state_digest) is None
    assert await take_login_code(uow, expired_code.digest) is None
    assert await take_authorization(uow, live_authorization.state_digest) == live_authorization
    assert await take_login_code(uow, live_code.digest) == live_code


async def test_rows_for_an_account_that_is_gone_are_refused_as_a_concurrent_update(uow: UnitOfWork) -> None:
    ghost = password_user("ghost@example.com")

    async with uow:
        with pytest.raises(ConcurrentUpdate):
            await uow.federation.add_login_code(login_code(ghost))
    async with uow:
        with pytest.raises(ConcurrentUpdate):
            await uow.federation.add_authorization(authorization(ghost))


@pytest.mark.parametrize("kind", ["authorization", "login_code"])
async def test_two_transactions_taking_one_row_at_once_one_wins(
    uow: UnitOfWork, make_uow: Callable[[], UnitOfWork], backend: str, sql_engine: AsyncEngine | None, kind: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has one writer at a time: the second take waits for a commit this one task cannot make")
    alice = password_user("alice@example.com")
    pending, code = authorization(), login_code(alice)
    await given(uow, alice)
    async with uow:
        await uow.federation.add_authorization(pending)
        await uow.federation.add_login_code(code)
        await uow.commit()

    async def attempt(unit: UnitOfWork) -> object:
        async with unit:
            if kind == "authorization":
                found: object = await unit.federation.take_authorization(pending.state_digest)
            else:
                found = await unit.federation.take_login_code(code.digest)
            await asyncio.sleep(0)  # the other one takes now (PostgreSQL: it waits on the row until we commit)
            await unit.commit()
        return found

    results = await asyncio.gather(attempt(make_uow()), attempt(make_uow()), return_exceptions=True)

    winners = [r for r in results if isinstance(r, PendingAuthorization | LoginCode)]
    losers = [r for r in results if r is None or isinstance(r, ConcurrentUpdate)]
    assert len(winners) == 1 and len(losers) == 1, results
    if sql_engine is not None:
        table = oauth_authorizations if kind == "authorization" else login_codes
        async with sql_engine.connect() as connection:
            assert (await connection.execute(select(func.count()).select_from(table))).scalar_one() == 0


# --- erasure ---------------------------------------------------------------------------------------------------


async def test_an_erased_account_takes_its_identities_authorizations_and_login_codes_along(
    uow: UnitOfWork, sql_engine: AsyncEngine | None
) -> None:
    alice, bob = password_user("alice@example.com"), password_user("bob@example.com")
    alices = [identity(alice, "google"), identity(alice, "facebook")]
    bobs = identity(bob, "google")
    alices_link, bobs_link, anonymous = authorization(alice), authorization(bob), authorization()
    alices_code, bobs_code = login_code(alice), login_code(bob)
    await given(uow, alice, bob, linked=(*alices, bobs))
    async with uow:
        for pending in (alices_link, bobs_link, anonymous):
            await uow.federation.add_authorization(pending)
        for code in (alices_code, bobs_code):
            await uow.federation.add_login_code(code)
        await uow.commit()

    async with uow:
        receipt = await uow.users.erase(alice.id)
        await uow.commit()

    assert {k: receipt[k] for k in ("identities", "oauth_authorizations", "login_codes")} == {
        "identities": 2,
        "oauth_authorizations": 1,
        "login_codes": 1,
    }
    async with uow:
        assert await uow.identities.list_for_user(alice.id) == []
        for one in alices:
            assert await uow.identities.get(one.provider, one.subject) is None
        assert [fields(i) for i in await uow.identities.list_for_user(bob.id)] == [fields(bobs)]
    assert await take_authorization(uow, alices_link.state_digest) is None
    assert await take_login_code(uow, alices_code.digest) is None
    assert await take_authorization(uow, bobs_link.state_digest) == bobs_link
    assert await take_authorization(uow, anonymous.state_digest) == anonymous  # a sign-in names no account yet
    assert await take_login_code(uow, bobs_code.digest) == bobs_code
    if sql_engine is not None:
        async with sql_engine.connect() as connection:
            for table in (identities, oauth_authorizations, login_codes):
                count = select(func.count()).select_from(table).where(table.c.user_id == alice.id)
                assert (await connection.execute(count)).scalar_one() == 0
