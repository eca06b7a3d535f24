"""OutboxWorker on the in-memory fakes: what it sends, how it retries and gives up, how it is woken, and that it
outlives database outages and stops when asked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.unit.application._support import NOW
from usermgmt.adapters.mail.memory import EchoRenderer, InMemoryMailer
from usermgmt.adapters.memory import FrozenClock, InMemoryUnitOfWork, MemoryStore, OutboxRow
from usermgmt.application.errors import ServiceUnavailable
from usermgmt.application.outbox import Doorbell, OutboxWorker, RetryPolicy
from usermgmt.application.ports import DeliveryFailed, EmailMessage, OutgoingEmail, UnitOfWork

SECRET_LINK = "http://localhost:3000/verify-email?token=SECRET-TOKEN"
SENDER = "usermgmt <no-reply@example.com>"


class Harness:
    def __init__(self, **options: object) -> None:
        self.store = MemoryStore()
        self.clock = FrozenClock(NOW)
        self.mailer = InMemoryMailer()
        self.doorbell = Doorbell()
        self.outages = 0  # units of work still to fail as an unreachable database
        self.worker = OutboxWorker(
            uow=self.uow,
            mailer=self.mailer,
            renderer=EchoRenderer(broken=frozenset({"broken"})),
            clock=self.clock,
            sender=SENDER,
            doorbell=self.doorbell,
            jitter=lambda: 0.5,
            **options,  # type: ignore[arg-type]
        )

    def uow(self) -> UnitOfWork:
        if self.outages:
            self.outages -= 1
            return UnreachableUnitOfWork(self.store)
        return InMemoryUnitOfWork(self.store, on_mail_queued=self.doorbell.ring)

    async def queue(self, template: str = "verify_email", to: str = "ada@example.com", **context: object) -> None:
        async with self.uow() as uow:
            await uow.outbox.add(OutgoingEmail(to=to, template=template, context=context), now=self.clock.now())
            await uow.commit()

    @property
    def rows(self) -> list[OutboxRow]:
        return self.store.outbox


class UnreachableUnitOfWork(InMemoryUnitOfWork):
    async def _begin(self) -> None:
        raise ServiceUnavailable()


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for ``condition`` (a bound, not a measurement: a test that needs it longer fails)."""
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"not so within {seconds} s")


async def test_a_queued_message_is_rendered_sent_with_its_message_id_and_removed() -> None:
    harness = Harness()
    await harness.queue("verify_email", link=SECRET_LINK)
    message_id = harness.rows[0].message_id

    assert await harness.worker.drain_once() == 1

    [sent] = harness.mailer.sent
    assert sent == EmailMessage(
        message_id=message_id,
        sender=SENDER,
        to="ada@example.com",
        subject="verify_email",
        text=f"link: {SECRET_LINK}\nto: ada@example.com\n",
        html=sent.html,
        template="verify_email",
    )
    assert harness.rows == []
    assert await harness.worker.drain_once() == 0


async def test_a_temporary_failure_is_retried_with_the_same_message_id() -> None:
    harness = Harness()
    await harness.queue()
    message_id = harness.rows[0].message_id
    harness.mailer.fail_next(DeliveryFailed("SMTP reply 451", permanent=False, detail="451 4.7.1 greylisted"))

    await harness.worker.drain_once()

    [row] = harness.rows
    assert (row.attempts, row.last_error, row.claimed_until) == (1, "451 4.7.1 greylisted", None)
    assert row.next_attempt_at == NOW + timedelta(seconds=0.75)  # equal jitter: half of 1 s, plus half of it * 0.5
    harness.clock.advance(timedelta(seconds=0.75))
    await harness.worker.drain_once()
    assert [m.message_id for m in harness.mailer.sent] == [message_id]
    assert harness.rows == []


def test_the_backoff_starts_near_a_second_doubles_and_stops_at_five_minutes() -> None:
    policy = RetryPolicy()

    assert policy.delay(1, 0.0) == timedelta(seconds=0.5)
    assert policy.delay(1, 0.999) < timedelta(seconds=1)
    assert [policy.delay(n, 1.0).total_seconds() for n in range(1, 11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert policy.delay(200, 1.0) == timedelta(minutes=5)
    assert timedelta(minutes=2.5) <= policy.delay(200, 0.0)


@pytest.mark.parametrize(
    "failure",
    [
        DeliveryFailed("SMTP recipient refused (550)", permanent=True, detail="550 5.1.1 <ada@example.com> unknown"),
        None,  # the template does not render
    ],
)
async def test_a_permanent_failure_is_given_up_at_once_and_logged_without_the_link_or_recipient(
    failure: DeliveryFailed | None, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness()
    if failure is None:
        await harness.queue("broken", link=SECRET_LINK)
    else:
        await harness.queue("verify_email", link=SECRET_LINK)
        harness.mailer.fail_next(failure)
    message_id = harness.rows[0].message_id

    with caplog.at_level(logging.DEBUG):
        await harness.worker.drain_once()

    assert harness.rows == []
    assert harness.mailer.sent == []
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.name == "usermgmt.application.outbox"
    assert message_id in error.getMessage() and ("broken" if failure is None else "verify_email") in error.getMessage()
    assert "SECRET-TOKEN" not in caplog.text and "ada@example.com" not in caplog.text


async def test_a_send_that_hangs_counts_as_a_temporary_failure() -> None:
    class HangingMailer(InMemoryMailer):
        async def send(self, message: EmailMessage) -> str:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    harness = Harness(send_timeout=0.05)
    harness.worker._mailer = HangingMailer()
    await harness.queue()

    await harness.worker.drain_once()

    [row] = harness.rows
    assert row.attempts == 1 and row.last_error == "no answer within 0.05 s"


async def test_the_outcome_that_cannot_be_recorded_leaves_the_row_to_its_lease(
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = Harness()
    await harness.queue()

    class DatabaseDiesAfterTheClaim(InMemoryMailer):
        async def send(self, message: EmailMessage) -> str:
            if not self.sent:
                harness.outages = 1  # the next unit of work, recording the outcome, cannot reach the database
            return await super().send(message)

    harness.worker._mailer = mailer = DatabaseDiesAfterTheClaim()
    await harness.worker.drain_once()

    assert len(mailer.sent) == 1
    [row] = harness.rows
    assert row.claimed_until == NOW + harness.worker.lease  # still claimed: it comes back when the lease ends
    assert "tried again after its lease" in caplog.text
    harness.clock.advance(harness.worker.lease)
    await harness.worker.drain_once()
    assert [m.message_id for m in mailer.sent] == [row.message_id] * 2  # at least once, one Message-ID
    assert harness.rows == []


async def test_run_delivers_at_once_when_a_commit_queued_mail() -> None:
    harness = Harness(poll_interval=3600)  # only the doorbell can wake it in time
    harness.worker.start()
    try:
        await asyncio.sleep(0)  # let it start and go to sleep
        await harness.queue("new_device")
        await eventually(lambda: len(harness.mailer.sent) == 1)
    finally:
        await harness.worker.aclose()


async def test_run_outlives_a_database_outage(caplog: pytest.LogCaptureFixture) -> None:
    harness = Harness(poll_interval=0.01)
    await harness.queue()
    harness.outages = 5
    with caplog.at_level(logging.INFO, logger="usermgmt.application.outbox"):
        harness.worker.start()
        try:
            await eventually(lambda: len(harness.mailer.sent) == 1)
        finally:
            await harness.worker.aclose()

    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("email delivery paused: the database is unavailable; retrying") == 1
    assert "email delivery resumed" in messages


async def test_run_outlives_an_unexpected_error() -> None:
    harness = Harness(poll_interval=0.01)
    await harness.queue()
    calls = 0
    real = harness.uow

    def sometimes_broken() -> UnitOfWork:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return real()

    harness.worker._uow = sometimes_broken
    harness.worker.start()
    try:
        await eventually(lambda: len(harness.mailer.sent) == 1)
    finally:
        await harness.worker.aclose()


async def test_aclose_abandons_a_send_in_flight_after_the_grace_period() -> None:
    started = asyncio.Event()

    class StuckMailer(InMemoryMailer):
        async def send(self, message: EmailMessage) -> str:
            started.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    harness = Harness(poll_interval=0.01)
    harness.worker._mailer = StuckMailer()
    await harness.queue()
    harness.worker.start()
    async with asyncio.timeout(5):
        await started.wait()

    await harness.worker.aclose(grace=0.05)

    [row] = harness.rows
    assert row.claimed_until == NOW + harness.worker.lease and row.attempts == 0  # back after the lease


async def test_a_cancelled_aclose_does_not_leave_the_worker_running() -> None:
    """A shutdown that runs out of time cancels aclose(); the worker must not go on polling on its own."""
    started = asyncio.Event()

    class StuckMailer(InMemoryMailer):
        async def send(self, message: EmailMessage) -> str:
            started.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    harness = Harness(poll_interval=0.01)
    harness.worker._mailer = StuckMailer()
    await harness.queue()
    harness.worker.start()
    task = harness.worker._task
    assert task is not None
    async with asyncio.timeout(5):
        await started.wait()

    closing = asyncio.create_task(harness.worker.aclose(grace=3600))
    await asyncio.sleep(0.01)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    async with asyncio.timeout(5):  # a worker left running would be stuck in its send for good
        with contextlib.suppress(asyncio.CancelledError):
            await task

    assert task.cancelled()


async def test_aclose_lets_an_idle_worker_stop_and_is_harmless_twice() -> None:
    harness = Harness(poll_interval=3600)
    harness.worker.start()
    await asyncio.sleep(0)

    await harness.worker.aclose(grace=5)
    await harness.worker.aclose(grace=5)
    await Harness().worker.aclose()  # never started


async def test_the_doorbell_remembers_a_ring_until_the_next_wait() -> None:
    doorbell = Doorbell()

    assert await doorbell.wait(0.001) is False
    doorbell.ring()
    doorbell.ring()
    assert await doorbell.wait(3600) is True
    assert await doorbell.wait(0.001) is False


def test_the_lease_must_outlast_a_send() -> None:
    with pytest.raises(ValueError, match="lease"):
        Harness(send_timeout=60, lease=timedelta(seconds=30))
