"""Delivery of the outbox: the background loop that turns queued rows into sent messages.

Use cases only ever queue messages (``Postman``, in their own transaction). ``OutboxWorker`` runs in every server
process: it claims due rows (a lease, so that no other worker takes them meanwhile), renders and sends each one, and
records the outcome: a sent row is deleted (nothing of its link survives), a failed one is tried again later with
exponential backoff and jitter, and given up (deleted, logged as an error) when the failure is permanent or the
message is a day old. Delivery is at least once: a worker that dies between sending and recording leaves its rows to
come back when their lease ends, and they are sent again under the same Message-ID.

Nothing here talks to a database or a mail server directly: the worker uses the ports (``UnitOfWork.outbox``,
``EmailRenderer``, ``Mailer``, ``Clock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from usermgmt.application.errors import ServiceUnavailable
from usermgmt.application.ports import (
    Clock,
    DeliveryFailed,
    EmailMessage,
    EmailRenderer,
    Mailer,
    QueuedEmail,
    UnitOfWork,
)

logger = logging.getLogger(__name__)


class Doorbell:
    """Wakes a sleeping worker. ``ring`` (from the event loop's thread: a commit that queued mail) makes the current
    or the next ``wait`` return at once; rings while nobody waits count as one."""

    def __init__(self) -> None:
        self._rung = False
        self._event: asyncio.Event | None = None

    def ring(self) -> None:
        self._rung = True
        if self._event is not None:
            self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Return when rung (True) or after ``seconds`` (False)."""
        if not self._rung:
            event = self._event = asyncio.Event()  # made here, so it belongs to the loop that waits
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(seconds):
                        await event.wait()
            finally:
                self._event = None
        rung, self._rung = self._rung, False
        return rung


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When a message that failed is tried again: exponential backoff with equal jitter (half of each step fixed,
    half random), from ``first`` (the first retry comes after ``first / 2`` to ``first``) doubling up to ``cap``;
    no attempt after ``give_up_after`` from the message's creation (the last one happens then)."""

    first: timedelta = timedelta(seconds=1)
    cap: timedelta = timedelta(minutes=5)
    give_up_after: timedelta = timedelta(hours=24)

    def delay(self, failures: int, jitter: float) -> timedelta:
        """The wait after the ``failures``-th failure (1 for the first), ``jitter`` in [0, 1)."""
        step = min(self.cap, self.first * (1 << min(max(failures - 1, 0), 32)))
        return step / 2 + step / 2 * jitter


def _system_jitter() -> float:
    return secrets.randbelow(1 << 30) / (1 << 30)


class OutboxWorker:
    """Delivers the outbox: ``run()`` until cancelled or ``aclose()``; ``drain_once()`` for one batch (tests).

    Guarantees:
    - each claimed message is tried once per claim, within ``send_timeout`` seconds, and its outcome recorded in a
      unit of work of its own; a message whose outcome could not be recorded (the database went away) comes back
      when its lease (``lease``) ends, and is sent again with the same Message-ID (at least once);
    - a permanent failure (``DeliveryFailed.permanent``, or a template that does not render) is given up at once;
      a temporary one is retried on ``retry``'s schedule and given up after ``retry.give_up_after``. A give-up is
      one ERROR log line naming the Message-ID and the template, never the recipient or the link;
    - a database outage never ends the loop: it is logged when it starts and ends, and waited out with backoff;
    - ``wake()`` starts a drain at once (a commit that queued mail rings it); otherwise the worker polls every
      ``poll_interval`` seconds, which is how it finds what other processes queued.
    """

    def __init__(
        self,
        *,
        uow: Callable[[], UnitOfWork],
        mailer: Mailer,
        renderer: EmailRenderer,
        clock: Clock,
        sender: str,
        doorbell: Doorbell | None = None,
        retry: RetryPolicy | None = None,
        poll_interval: float = 1.0,
        batch_size: int = 10,
        send_timeout: float = 60.0,
        lease: timedelta | None = None,
        jitter: Callable[[], float] = _system_jitter,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        if poll_interval <= 0 or batch_size < 1 or send_timeout <= 0:
            raise ValueError("the worker needs poll_interval > 0, batch_size >= 1 and send_timeout > 0")
        self._uow, self._mailer, self._renderer, self._clock = uow, mailer, renderer, clock
        self._sender = sender
        self.doorbell = doorbell or Doorbell()
        self.retry = retry or RetryPolicy()
        self.poll_interval, self.batch_size, self.send_timeout = poll_interval, batch_size, send_timeout
        # A batch is sent concurrently: the lease outlasts one send's deadline, with room for the bookkeeping.
        self.lease = lease or timedelta(seconds=send_timeout * 2 + 30)
        if self.lease.total_seconds() <= send_timeout:
            raise ValueError("the lease must outlast a send (lease > send_timeout)")
        self._jitter = jitter
        self._on_outcome = on_outcome  # told "sent", "retried" or "given_up" after each attempt (the metrics)
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Deliver now rather than at the next poll."""
        self.doorbell.ring()

    async def drain_once(self) -> int:
        """Claim one batch of due messages and try each once (concurrently); return how many were claimed.

        Raises: ServiceUnavailable (the claim could not reach the database; nothing was claimed)."""
        async with self._uow() as uow:
            batch = await uow.outbox.claim(now=self._clock.now(), lease=self.lease, limit=self.batch_size)
            await uow.commit()
        if batch:
            await asyncio.gather(*(self._deliver(email) for email in batch))
        return len(batch)

    async def run(self) -> None:
        """Deliver until cancelled or ``aclose()``: drain while batches come back full, then wait to be woken or
        for the poll interval."""
        failures = 0
        while not self._stopping:
            try:
                claimed = await self.drain_once()
            except ServiceUnavailable:
                failures += 1
                if failures == 1:
                    logger.warning("email delivery paused: the database is unavailable; retrying")
                await self.doorbell.wait(self._backoff(failures))
                continue
            except Exception:
                failures += 1
                logger.exception("email delivery failed unexpectedly; retrying")
                await self.doorbell.wait(self._backoff(failures))
                continue
            if failures:
                logger.info("email delivery resumed")
                failures = 0
            if claimed < self.batch_size and not self._stopping:
                await self.doorbell.wait(self.poll_interval)

    def _backoff(self, failures: int) -> float:
        return min(30.0, self.poll_interval * (1 << min(failures, 16)))

    def start(self) -> None:
        """Run in a background task of the running event loop (once)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self.run(), name="usermgmt-outbox")

    async def aclose(self, grace: float = 3.0) -> None:
        """Stop: let the batch in flight finish for up to ``grace`` seconds, then abandon it (its rows come back when
        their lease ends). Does nothing if the worker was never started. Cancelled itself (a shutdown that ran out
        of time), it cancels the worker too: the worker never outlives its ``aclose``."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self.doorbell.ring()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            logger.warning("email delivery stopped with messages in flight; they are retried after their lease")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        except Exception:  # run() does not raise; should it, the shutdown goes on
            logger.exception("email delivery ended with an error")

    async def _deliver(self, email: QueuedEmail) -> None:
        failure = await self._attempt(email)
        try:
            await self._record(email, failure)
        except Exception as error:  # ServiceUnavailable, mostly: the lease brings the row back
            logger.warning(
                "the outcome of email %s (%s) was not recorded (%s); it is tried again after its lease",
                email.message_id,
                email.message.template,
                type(error).__name__,
            )

    async def _attempt(self, email: QueuedEmail) -> DeliveryFailed | None:
        try:
            message = self.build(email)
        except Exception as error:  # a missing template or a context it does not accept: no retry can help
            return DeliveryFailed(f"cannot render the template ({type(error).__name__})", permanent=True)
        try:
            async with asyncio.timeout(self.send_timeout):
                await self._mailer.send(message)
        except DeliveryFailed as failed:
            return failed
        except TimeoutError:
            return DeliveryFailed(f"no answer within {self.send_timeout:g} s", permanent=False)
        except Exception as error:
            logger.exception("the mailer failed unexpectedly on email %s", email.message_id)
            return DeliveryFailed(type(error).__name__, permanent=False)
        return None

    def build(self, email: QueuedEmail) -> EmailMessage:
        """The message of a queued row. Raises ``ValueError`` when its template does not render."""
        outgoing = email.message
        rendered = self._renderer.render(outgoing.template, {**outgoing.context, "to": outgoing.to})
        return EmailMessage(
            message_id=email.message_id,
            sender=self._sender,
            to=outgoing.to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            template=outgoing.template,
        )

    async def _record(self, email: QueuedEmail, failure: DeliveryFailed | None) -> None:
        now = self._clock.now()
        template, attempt = email.message.template, email.attempts + 1
        deadline = email.created_at + self.retry.give_up_after
        giving_up = failure is not None and (failure.permanent or now >= deadline)
        retry_at = min(now + self.retry.delay(attempt, self._jitter()), deadline)
        async with self._uow() as uow:
            if failure is None:
                kept = await uow.outbox.mark_sent(email)
            elif giving_up:
                kept = await uow.outbox.give_up(email)
            else:
                kept = await uow.outbox.reschedule(email, at=retry_at, error=failure.detail)
            await uow.commit()
        if self._on_outcome is not None:
            self._on_outcome("sent" if failure is None else "given_up" if giving_up else "retried")
        if not kept:
            logger.warning(
                "the claim on email %s (%s) ended before its outcome was recorded; it may be sent twice",
                email.message_id,
                template,
            )
        elif failure is None:
            logger.debug("email %s (%s) sent, attempt %d", email.message_id, template, attempt)
        elif giving_up:
            why = (
                failure.reason
                if failure.permanent
                else f"{failure.reason}, {self.retry.give_up_after} after it was queued"
            )
            logger.error(
                "gave up on email %s (%s) after %d attempt(s): %s",
                email.message_id,
                template,
                attempt,
                why,
                extra={"message_id": email.message_id, "template": template, "attempts": attempt},
            )
        else:
            logger.warning(
                "email %s (%s) not delivered, attempt %d, tried again in %.1f s: %s",
                email.message_id,
                template,
                attempt,
                (retry_at - now).total_seconds(),
                failure.reason,
            )
