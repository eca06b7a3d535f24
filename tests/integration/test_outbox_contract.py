"""The delivery side of the Outbox contract (claim, lease, mark sent, reschedule, give up), run against the in-memory
fake, PostgreSQL and SQLite alike; then the worker on the real databases: retries, give-up and restart with a clock,
and two workers on PostgreSQL that never send one row twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW, new_user
from usermgmt.adapters.mail.memory import EchoRenderer, InMemoryMailer
from usermgmt.adapters.memory import FrozenClock, InMemoryUnitOfWork
from usermgmt.adapters.sqlalchemy.tables import email_outbox
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.outbox import OutboxWorker
from usermgmt.application.ports import DeliveryFailed, OutgoingEmail, QueuedEmail, UnitOfWork

LEASE = timedelta(minutes=2)


def outgoing(n: int = 0, **context: object) -> OutgoingEmail:
    return OutgoingEmail(to=f"user{n}@example.com", template="test_email", context={"n": n, **context})


async def queue(make_uow: Callable[[], UnitOfWork], *messages: OutgoingEmail) -> None:
    async with make_uow() as uow:
        for message in messages:
            await uow.outbox.add(message, now=NOW)
        await uow.commit()


async def claim(make_uow: Callable[[], UnitOfWork], *, now: datetime = NOW, limit: int = 10) -> list[QueuedEmail]:
    async with make_uow() as uow:
        claimed = await uow.outbox.claim(now=now, lease=LEASE, limit=limit)
        await uow.commit()
    return list(claimed)


async def test_a_claim_returns_due_rows_once_until_the_lease_ends(make_uow: Callable[[], UnitOfWork]) -> None:
    await queue(make_uow, outgoing(1, link="http://localhost:3000/verify-email?token=t1"), outgoing(2))

    first = await claim(make_uow)

    assert [(e.message.to, e.attempts) for e in first] == [("user1@example.com", 0), ("user2@example.com", 0)]
    assert first[0].message.context == {"n": 1, "link": "http://localhost:3000/verify-email?token=t1"}
    assert first[0].message.template == "test_email"
    assert first[0].created_at == NOW
    assert all(e.claimed_until == NOW + LEASE for e in first)
    assert len({e.message_id for e in first}) == 2
    assert await claim(make_uow, now=NOW + LEASE - timedelta(microseconds=1)) == []
    again = await claim(make_uow, now=NOW + LEASE)  # a crashed worker's rows come back after the lease
    assert [e.message_id for e in again] == [e.message_id for e in first]


async def test_a_claim_takes_at_most_its_limit_oldest_due_first(make_uow: Callable[[], UnitOfWork]) -> None:
    for n in range(3):
        await queue(make_uow, outgoing(n))

    first = await claim(make_uow, limit=2)
    second = await claim(make_uow, limit=2)

    assert [e.message.to for e in first] == ["user0@example.com", "user1@example.com"]
    assert [e.message.to for e in second] == ["user2@example.com"]


async def test_rows_not_due_yet_are_not_claimed(make_uow: Callable[[], UnitOfWork]) -> None:
    await queue(make_uow, outgoing())

    assert await claim(make_uow, now=NOW - timedelta(seconds=1)) == []
    assert len(await claim(make_uow, now=NOW)) == 1


async def test_a_sent_row_is_gone(make_uow: Callable[[], UnitOfWork]) -> None:
    await queue(make_uow, outgoing(link="http://localhost:3000/verify-email?token=secret"))
    [email] = await claim(make_uow)

    async with make_uow() as uow:
        assert await uow.outbox.mark_sent(email) is True
        await uow.commit()

    assert await claim(make_uow, now=NOW + timedelta(days=2)) == []


async def test_a_rescheduled_row_comes_back_at_its_time_with_its_message_id(
    make_uow: Callable[[], UnitOfWork],
) -> None:
    await queue(make_uow, outgoing())
    [email] = await claim(make_uow)

    async with make_uow() as uow:
        assert await uow.outbox.reschedule(email, at=NOW + timedelta(seconds=30), error="421 try later " * 100)
        await uow.commit()

    assert await claim(make_uow, now=NOW + timedelta(seconds=29)) == []
    [again] = await claim(make_uow, now=NOW + timedelta(seconds=30))
    assert (again.message_id, again.attempts, again.created_at) == (email.message_id, 1, NOW)


async def test_a_given_up_row_is_gone(make_uow: Callable[[], UnitOfWork]) -> None:
    await queue(make_uow, outgoing())
    [email] = await claim(make_uow)

    async with make_uow() as uow:
        assert await uow.outbox.give_up(email) is True
        await uow.commit()

    assert await claim(make_uow, now=NOW + timedelta(days=2)) == []


async def test_a_worker_whose_lease_ended_cannot_mark_a_row_claimed_again(make_uow: Callable[[], UnitOfWork]) -> None:
    await queue(make_uow, outgoing())
    [stale] = await claim(make_uow)
    [current] = await claim(make_uow, now=NOW + LEASE)  # another worker, after the first one's lease

    async with make_uow() as uow:
        assert await uow.outbox.mark_sent(stale) is False
        assert await uow.outbox.reschedule(stale, at=NOW, error="late") is False
        assert await uow.outbox.give_up(stale) is False
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.outbox.mark_sent(current) is True
        await uow.commit()


async def test_a_rolled_back_transaction_queues_nothing(make_uow: Callable[[], UnitOfWork]) -> None:
    async with make_uow() as uow:
        await uow.outbox.add(outgoing(), now=NOW)  # no commit

    assert await claim(make_uow) == []


async def test_a_row_of_an_erased_account_goes_with_it(make_uow: Callable[[], UnitOfWork]) -> None:
    user = new_user()
    async with make_uow() as uow:
        await uow.users.add(user)
        await uow.outbox.add(OutgoingEmail(to="alice@example.com", template="verify_email", user_id=user.id), now=NOW)
        await uow.outbox.add(OutgoingEmail(to="alice@example.com", template="account_deleted"), now=NOW)
        await uow.commit()

    async with make_uow() as uow:
        erased = await uow.users.erase(user.id)
        await uow.commit()

    assert erased["email_outbox"] == 1
    assert [e.message.template for e in await claim(make_uow)] == ["account_deleted"]


async def test_a_commit_that_queued_mail_rings_once(
    uow: UnitOfWork, sql_engine: AsyncEngine | None, make_uow: Callable[[], UnitOfWork]
) -> None:
    rings: list[int] = []
    if sql_engine is None:
        assert isinstance(uow, InMemoryUnitOfWork)
        store = uow.store
        ringing: UnitOfWork = InMemoryUnitOfWork(store, on_mail_queued=lambda: rings.append(1))
    else:
        ringing = SqlAlchemyUnitOfWork(sql_engine, on_mail_queued=lambda: rings.append(1))

    async with ringing:
        await ringing.outbox.add(outgoing(1), now=NOW)
        await ringing.outbox.add(outgoing(2), now=NOW)
        await ringing.commit()
        assert rings == [1]
        await ringing.outbox.claim(now=NOW, lease=LEASE, limit=1)
        await ringing.commit()  # nothing queued by this one
    async with ringing:
        await ringing.outbox.add(outgoing(3), now=NOW)  # rolled back
    assert rings == [1]


# --- the worker on the real databases --------------------------------------------------------------------------


def worker_on(
    make_uow: Callable[[], UnitOfWork], mailer: InMemoryMailer, clock: FrozenClock, **options: object
) -> OutboxWorker:
    return OutboxWorker(
        uow=make_uow,
        mailer=mailer,
        renderer=EchoRenderer(),
        clock=clock,
        sender="usermgmt <no-reply@example.com>",
        jitter=lambda: 1.0,  # the longest wait of each step
        **options,  # type: ignore[arg-type]
    )


async def due_at(uow: UnitOfWork, sql_engine: AsyncEngine | None) -> datetime:
    """When the one queued row is due next, as stored."""
    if sql_engine is None:
        assert isinstance(uow, InMemoryUnitOfWork)
        [row] = uow.store.outbox
        assert row.next_attempt_at is not None
        return row.next_attempt_at
    async with sql_engine.connect() as connection:
        due: datetime = (await connection.execute(select(email_outbox.c.next_attempt_at))).scalar_one()
    return due


async def test_the_worker_retries_on_schedule_then_delivers(
    uow: UnitOfWork, sql_engine: AsyncEngine | None, make_uow: Callable[[], UnitOfWork]
) -> None:
    clock, mailer = FrozenClock(NOW), InMemoryMailer()
    worker = worker_on(make_uow, mailer, clock)
    await queue(make_uow, outgoing())
    mailer.down = True

    waits = []
    for _ in range(4):
        assert await worker.drain_once() == 1
        assert await worker.drain_once() == 0  # not due before its time
        due = await due_at(uow, sql_engine)
        waits.append(due - clock.now())
        clock.advance(due - clock.now())
    mailer.down = False
    assert await worker.drain_once() == 1

    assert waits == [timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=8)]
    assert [m.to for m in mailer.sent] == ["user0@example.com"]
    assert await claim(make_uow, now=NOW + timedelta(days=2)) == []


async def test_the_worker_gives_up_a_day_after_the_message_was_queued(
    make_uow: Callable[[], UnitOfWork], caplog: pytest.LogCaptureFixture
) -> None:
    clock, mailer = FrozenClock(NOW), InMemoryMailer()
    worker = worker_on(make_uow, mailer, clock)
    await queue(make_uow, outgoing(link="http://localhost:3000/verify-email?token=SECRET"))
    mailer.down = True
    await worker.drain_once()

    clock.advance(timedelta(hours=23, minutes=59, seconds=59))
    assert await worker.drain_once() == 1  # still retried, the next time at 24 h rather than 2 s later
    assert await claim(make_uow, now=NOW + timedelta(hours=24) - timedelta(microseconds=1)) == []
    clock.advance(timedelta(seconds=1))
    with caplog.at_level("ERROR", logger="usermgmt.application.outbox"):
        assert await worker.drain_once() == 1  # the last attempt, at 24 h

    assert await claim(make_uow, now=NOW + timedelta(days=3)) == []
    [line] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "gave up" in line.getMessage() and "test_email" in line.getMessage()
    assert "SECRET" not in caplog.text and "user0@example.com" not in caplog.text


async def test_a_claim_whose_worker_died_is_delivered_by_a_new_worker_after_the_lease(
    make_uow: Callable[[], UnitOfWork],
) -> None:
    clock, mailer = FrozenClock(NOW), InMemoryMailer()
    await queue(make_uow, outgoing())
    [abandoned] = await claim(make_uow, now=NOW)  # a worker claimed it, then its process died

    restarted = worker_on(make_uow, mailer, clock, lease=LEASE)
    assert await restarted.drain_once() == 0
    clock.advance(LEASE)
    assert await restarted.drain_once() == 1

    assert [m.message_id for m in mailer.sent] == [abandoned.message_id]


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_workers_on_postgresql_never_send_one_row_twice(make_uow: Callable[[], UnitOfWork]) -> None:
    await queue(make_uow, *(outgoing(n) for n in range(60)))
    clock, mailer = FrozenClock(NOW), InMemoryMailer()
    workers = [worker_on(make_uow, mailer, clock, batch_size=7) for _ in range(3)]

    async def drain(worker: OutboxWorker) -> None:
        for _ in range(60):
            if not await worker.drain_once():
                return

    await asyncio.gather(*(drain(worker) for worker in workers))

    sent = [m.message_id for m in mailer.sent]
    assert len(sent) == 60
    assert len(set(sent)) == 60


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_concurrent_claims_on_postgresql_skip_each_others_rows(
    make_uow: Callable[[], UnitOfWork], sql_engine: AsyncEngine
) -> None:
    await queue(make_uow, *(outgoing(n) for n in range(4)))

    async with make_uow() as first, make_uow() as second:
        mine = await first.outbox.claim(now=NOW, lease=LEASE, limit=2)  # locked until the commit
        async with asyncio.timeout(10):  # a claim that waited for the locks would never return here
            theirs = await second.outbox.claim(now=NOW, lease=LEASE, limit=10)  # skips them instead
        await first.commit()
        await second.commit()

    assert len(mine) == 2 and len(theirs) == 2
    assert not {e.id for e in mine} & {e.id for e in theirs}
    async with sql_engine.connect() as connection:
        leases = (await connection.execute(select(email_outbox.c.claimed_until))).scalars().all()
    assert leases == [NOW + LEASE] * 4


async def test_a_permanent_failure_is_given_up_at_once(make_uow: Callable[[], UnitOfWork]) -> None:
    clock, mailer = FrozenClock(NOW), InMemoryMailer()
    worker = worker_on(make_uow, mailer, clock)
    await queue(make_uow, outgoing())
    mailer.fail_next(DeliveryFailed("SMTP recipient refused (550)", permanent=True))

    assert await worker.drain_once() == 1

    assert await claim(make_uow, now=NOW + timedelta(days=2)) == []
    assert mailer.sent == []
