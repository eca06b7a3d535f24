"""Races that only a real database can referee: the unique constraints and the compare-and-set rotation.

Each race runs two units of work on two connections at once (``asyncio.gather``). A barrier makes both read
before either writes, so both pass any "is it free?" check and the database alone has to decide.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW, new_session, new_user, token_hash
from usermgmt.adapters.sqlalchemy.tables import retired_refresh_tokens, security_events, users
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.errors import ConcurrentUpdate, EmailTaken, UsernameTaken
from usermgmt.domain.errors import DomainError
from usermgmt.domain.events import EventType, SecurityEvent
from usermgmt.domain.model import User

ROUNDS = 5


async def register(engine: AsyncEngine, user: User, barrier: asyncio.Barrier) -> User:
    async with SqlAlchemyUnitOfWork(engine) as uow:
        # What the handler does first; both requests see a free address, so only the constraint can stop one.
        assert await uow.users.get_by_email(user.email) is None
        await barrier.wait()
        await uow.users.add(user)
        await uow.commit()
    return user


async def count_users(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(users))).scalar_one())


def split(results: list[object]) -> tuple[list[object], list[BaseException]]:
    successes = [r for r in results if not isinstance(r, BaseException)]
    failures = [r for r in results if isinstance(r, BaseException)]
    return successes, failures


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        pytest.param(("mike@example.com", "mike"), ("mike@example.com", "mike2"), EmailTaken, id="same-email"),
        pytest.param(("mike@example.com", "mike"), ("Mike@Example.COM", "mike2"), EmailTaken, id="email-case"),
        pytest.param(("a@example.com", "Mike"), ("b@example.com", "mIKE"), UsernameTaken, id="username-case"),
    ],
)
async def test_concurrent_registrations_of_one_identity_let_exactly_one_win(
    clean_database: AsyncEngine,
    first: tuple[str, str],
    second: tuple[str, str],
    expected: type[DomainError],
) -> None:
    for _ in range(ROUNDS):
        async with clean_database.begin() as connection:
            await connection.execute(users.delete())
        a, b = new_user(first[0], username=first[1]), new_user(second[0], username=second[1])
        barrier = asyncio.Barrier(2)

        results = await asyncio.wait_for(
            asyncio.gather(
                register(clean_database, a, barrier), register(clean_database, b, barrier), return_exceptions=True
            ),
            timeout=10,
        )

        successes, failures = split(results)
        assert len(successes) == 1, results
        assert len(failures) == 1, results
        assert type(failures[0]) is expected, repr(failures[0])
        assert await count_users(clean_database) == 1


async def lock_waits(engine: AsyncEngine) -> int:
    """How many backends of this database PostgreSQL reports as waiting for a lock right now."""
    async with engine.connect() as connection:  # a transaction of its own: pg_stat_activity is read once per one
        statement = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int((await connection.execute(statement)).scalar_one())


async def until_waiting_for_a_lock(engine: AsyncEngine, task: asyncio.Task[None]) -> None:
    """Return once PostgreSQL says a backend waits for a lock (and ``task`` is still pending): the interleaving
    a test needs, observed, rather than hoped for after a sleep. Fails after 5 seconds of no such report."""
    async with asyncio.timeout(5):
        while await lock_waits(engine) == 0:
            assert not task.done(), f"finished instead of waiting: {task}"
            await asyncio.sleep(0.005)  # a polling interval, not a proof: the proof is the database's answer
    assert not task.done(), f"finished instead of waiting: {task}"


@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-rolls-back"])
async def test_second_insert_waits_for_the_first_transaction_to_decide(
    clean_database: AsyncEngine, first_commits: bool
) -> None:
    """The deterministic version of the race: B inserts while A's insert of the same address is uncommitted.

    PostgreSQL makes B wait on A's index entry; A's commit turns B's insert into EmailTaken, A's rollback lets it in.
    """
    a, b = new_user("race@example.com"), new_user("RACE@example.com")

    async def insert_b() -> None:
        async with SqlAlchemyUnitOfWork(clean_database) as uow_b:
            await uow_b.users.add(b)
            await uow_b.commit()

    async with SqlAlchemyUnitOfWork(clean_database) as uow_a:
        await uow_a.users.add(a)
        pending = asyncio.create_task(insert_b())
        await until_waiting_for_a_lock(clean_database, pending)  # B waits on A's uncommitted index entry
        if first_commits:
            await uow_a.commit()

    if first_commits:
        with pytest.raises(EmailTaken):
            await asyncio.wait_for(pending, timeout=5)
    else:
        await asyncio.wait_for(pending, timeout=5)
    assert await lock_waits(clean_database) == 0
    async with SqlAlchemyUnitOfWork(clean_database) as uow:
        stored = await uow.users.get_by_email(a.email)
    assert stored is not None
    assert stored.id == (a.id if first_commits else b.id)


def failed_login(user: User) -> SecurityEvent:
    return SecurityEvent(
        type=EventType.LOGIN_FAILED, at=NOW, user_id=user.id, ip="203.0.113.9", details={"reason": "wrong_password"}
    )


async def stored_user_ids(engine: AsyncEngine) -> list[object]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(security_events.c.user_id).order_by(security_events.c.id))
        return list(rows.scalars())


async def test_an_event_for_a_user_whose_deletion_is_in_flight_waits_and_is_stored_without_them(
    clean_database: AsyncEngine,
) -> None:
    """The account's erasure has deleted the row but not committed when the failed login is recorded. A plain
    subquery would still see the row, and the foreign key would refuse the insert once the erasure commits. The
    event's insert waits for the erasure instead, then finds no user."""
    user = new_user()
    async with SqlAlchemyUnitOfWork(clean_database) as uow:
        await uow.users.add(user)
        await uow.commit()

    async def record_failed_login() -> None:
        async with SqlAlchemyUnitOfWork(clean_database) as uow:
            await uow.record(failed_login(user))
            await uow.commit()

    async with SqlAlchemyUnitOfWork(clean_database) as erasing:
        await erasing.users.erase(user.id)
        recording = asyncio.create_task(record_failed_login())
        await until_waiting_for_a_lock(clean_database, recording)
        await erasing.commit()

    await asyncio.wait_for(recording, timeout=5)
    assert await stored_user_ids(clean_database) == [None]


async def test_an_erasure_that_starts_after_the_event_waits_and_takes_the_event_along(
    clean_database: AsyncEngine,
) -> None:
    """The other order: the event's insert found the user (and holds the lock a foreign key takes). The erasure
    waits for it, and then nothing that names the user is left."""
    user = new_user()
    async with SqlAlchemyUnitOfWork(clean_database) as uow:
        await uow.users.add(user)
        await uow.commit()

    async def erase() -> None:
        async with SqlAlchemyUnitOfWork(clean_database) as erasing:
            await erasing.users.erase(user.id)
            await erasing.commit()

    async with SqlAlchemyUnitOfWork(clean_database) as recording:
        await recording.record(failed_login(user))
        erasure = asyncio.create_task(erase())
        await until_waiting_for_a_lock(clean_database, erasure)
        await recording.commit()

    await asyncio.wait_for(erasure, timeout=5)
    assert await stored_user_ids(clean_database) == []
    async with SqlAlchemyUnitOfWork(clean_database) as uow:
        assert await uow.users.get(user.id) is None


async def test_many_concurrent_registrations_of_one_email(clean_database: AsyncEngine) -> None:
    contenders = [new_user("Popular@Example.com" if n % 2 else "popular@example.com") for n in range(8)]
    barrier = asyncio.Barrier(len(contenders))

    results = await asyncio.wait_for(
        asyncio.gather(*(register(clean_database, u, barrier) for u in contenders), return_exceptions=True),
        timeout=15,
    )

    successes, failures = split(results)
    assert len(successes) == 1, results
    assert all(type(f) is EmailTaken for f in failures), results
    assert await count_users(clean_database) == 1


async def test_concurrent_registrations_of_different_people_both_succeed(clean_database: AsyncEngine) -> None:
    barrier = asyncio.Barrier(2)
    a, b = new_user("ann@example.com", username="ann"), new_user("ben@example.com", username="ben")

    results = await asyncio.wait_for(
        asyncio.gather(register(clean_database, a, barrier), register(clean_database, b, barrier)), timeout=10
    )

    assert results == [a, b]
    assert await count_users(clean_database) == 2


async def rotate_once(engine: AsyncEngine, presented_label: str, new_label: str, barrier: asyncio.Barrier) -> str:
    async with SqlAlchemyUnitOfWork(engine) as uow:
        session = await uow.sessions.get_by_refresh_token(token_hash(presented_label))
        assert session is not None
        await barrier.wait()  # both requests hold the same, still current, token
        retired = session.rotate(
            token_hash(new_label), now=NOW + timedelta(minutes=1), lifetime=timedelta(days=1), user_agent=None, ip=None
        )
        await uow.sessions.save_rotation(session, retired)
        await uow.commit()
    return new_label


async def test_concurrent_rotations_of_one_refresh_token_let_exactly_one_win(clean_database: AsyncEngine) -> None:
    user = new_user()
    session = new_session(user, label="gen-1")
    async with SqlAlchemyUnitOfWork(clean_database) as uow:
        await uow.users.add(user)
        await uow.sessions.add(session)
        await uow.commit()

    presented = "gen-1"
    for round_ in range(ROUNDS):
        barrier = asyncio.Barrier(2)
        results = await asyncio.wait_for(
            asyncio.gather(
                rotate_once(clean_database, presented, f"round-{round_}-left", barrier),
                rotate_once(clean_database, presented, f"round-{round_}-right", barrier),
                return_exceptions=True,
            ),
            timeout=10,
        )

        successes, failures = split(results)
        assert len(successes) == 1, results
        assert len(failures) == 1, results
        assert type(failures[0]) is ConcurrentUpdate, repr(failures[0])
        winner = str(successes[0])
        async with SqlAlchemyUnitOfWork(clean_database) as uow:
            current = await uow.sessions.get(session.id)
            assert await uow.sessions.find_by_retired_token(token_hash(presented)) == session.id
            assert await uow.sessions.find_by_retired_token(token_hash(winner)) is None
        assert current is not None
        assert current.refresh_token_hash == token_hash(winner)
        presented = winner  # the next round fights over the winner's token

    async with clean_database.connect() as connection:
        retired_count = (
            await connection.execute(select(func.count()).select_from(retired_refresh_tokens))
        ).scalar_one()
    assert retired_count == ROUNDS  # one retired token per round: the loser retired nothing
