"""Password hashing with libpass (the maintained passlib fork): bcrypt over SHA-256, in a bounded thread pool."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from functools import partial
from typing import TypeVar

from passlib.context import CryptContext

from usermgmt.adapters.metrics import Metrics
from usermgmt.adapters.tracing import span
from usermgmt.application.errors import ServiceBusy
from usermgmt.domain.value_objects import PasswordHash, PlainPassword

T = TypeVar("T")

MIN_ROUNDS = 4
BCRYPT_MAX_BYTES = 72  # bcrypt's own floor; production settings refuse anything under 10


HASH_THREAD_NICENESS = 2  # the default of USERMGMT_HASH_THREAD_NICENESS: docs/performance.md, issue 14
_SMOOTHING = 0.2  # weight of the newest hash in the running mean of hash times
# Set inside an admission: that task's hashes are already counted by it.
_ADMITTED: ContextVar[bool] = ContextVar("usermgmt_hash_admitted", default=False)


def _lower_thread_priority(niceness: int) -> Callable[[], None]:
    """Run hashing threads at a lower CPU priority than the event loop (Linux: niceness is per thread).

    At equal priority, a login storm takes the cores from the event loop and every other request waits behind
    bcrypt; at a high niceness (10) the loop preempts the hashes so completely that logins starve whenever reads
    fill the CPU. docs/performance.md has the measurements behind the default.
    """

    def lower() -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, 0, min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness))

    return lower


class PasslibPasswordHasher:
    """bcrypt_sha256 (no 72-byte truncation); plain bcrypt hashes still verify and are upgraded on login.

    Hashing is deliberately slow and releases the GIL, so it runs in a pool of ``workers`` threads (one per core):
    the event loop never waits on it, and a storm of logins queues there instead of starving other requests.

    Load shedding (``admission``): with ``max_wait`` seconds set, a sign-in that would wait longer than that for a
    thread is refused at once (ServiceBusy, 503 with Retry-After). The wait is estimated from the sign-ins and other
    hashes in flight and the running mean of the last hashes' times, which includes the CPU the threads are getting
    right now.
    """

    def __init__(
        self,
        *,
        rounds: int,
        workers: int,
        metrics: Metrics | None = None,
        niceness: int = HASH_THREAD_NICENESS,
        max_wait: float = 0.0,
    ) -> None:
        if rounds < MIN_ROUNDS:
            raise ValueError(f"bcrypt rounds must be at least {MIN_ROUNDS}")
        self._context = CryptContext(
            schemes=["bcrypt_sha256", "bcrypt"],
            deprecated=["bcrypt"],
            bcrypt_sha256__rounds=rounds,
        )
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="password-hash", initializer=_lower_thread_priority(niceness)
        )
        self._workers, self._max_wait = workers, max_wait
        # Changed on the event loop only: sign-ins holding a place, and other hashes submitted and not finished.
        self._admitted = self._in_flight = 0
        started = time.perf_counter()
        self._dummy = PasswordHash(self._context.hash("usermgmt dummy password, never anyone's"))
        self._mean = time.perf_counter() - started  # seconds per hash, a running mean; this first one unloaded
        self._metrics = metrics

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """Raises ServiceBusy when a hash asked for now would wait over ``max_wait`` for a thread; otherwise the
        caller holds a place until the block ends. Places are taken here, when the sign-in starts, not when its hash
        is submitted: sign-ins arriving together (clients coming back after the same Retry-After) would otherwise
        all pass the check before the first of them reached the pool."""
        # Every thread busy: a new hash starts once this many of those ahead of it have finished, and the threads
        # finish one every mean / workers seconds on average.
        finishing = self._admitted + self._in_flight - self._workers + 1
        if self._max_wait > 0 and finishing > 0:
            wait = finishing * self._mean / self._workers
            if wait > self._max_wait:
                raise ServiceBusy(retry_after=wait)
        self._admitted += 1
        token = _ADMITTED.set(True)
        try:
            yield
        finally:
            _ADMITTED.reset(token)
            self._admitted -= 1

    @property
    def dummy_hash(self) -> PasswordHash:
        return self._dummy

    async def hash(self, password: PlainPassword) -> PasswordHash:
        with span("password.hash"):
            digest = await self._run(partial(self._context.hash, password.value), "hash")
        return PasswordHash(digest)

    async def verify_and_update(
        self, password: PlainPassword, password_hash: PasswordHash
    ) -> tuple[bool, PasswordHash | None]:
        try:
            with span("password.verify"):
                call = partial(self._verify_and_update, password.value, password_hash.value)
                matches, new_hash = await self._run(call, "verify")
        except (ValueError, TypeError):  # an unrecognised or corrupt stored hash never verifies
            return False, None
        return bool(matches), PasswordHash(new_hash) if new_hash else None

    def _verify_and_update(self, secret: str, stored: str) -> tuple[bool, str | None]:
        encoded = secret.encode("utf-8")
        if len(encoded) > BCRYPT_MAX_BYTES and self._context.identify(stored) == "bcrypt":
            # A plain bcrypt hash from elsewhere only ever saw the first 72 bytes (bcrypt >= 5 refuses more).
            # Check what it saw; on success store the whole password under bcrypt_sha256 from now on.
            if not self._context.verify(encoded[:BCRYPT_MAX_BYTES], stored):
                return False, None
            return True, self._context.hash(secret)
        matches, new_hash = self._context.verify_and_update(secret, stored)
        return bool(matches), new_hash

    async def _run(self, call: partial[T], operation: str) -> T:
        loop = asyncio.get_running_loop()
        timed = partial(self._timed, call)
        counted = not _ADMITTED.get()  # an admitted sign-in's hash holds its place already
        self._in_flight += counted
        try:
            if self._metrics is None:
                return await loop.run_in_executor(self._executor, timed)
            timing = self._metrics.hashing(operation)
            try:
                return await loop.run_in_executor(self._executor, partial(timing.run, timed))
            finally:
                timing.abandon()
        finally:
            self._in_flight -= counted

    def _timed(self, call: Callable[[], T]) -> T:
        """On the hashing thread: ``call``, its time folded into the running mean (a float store: atomic)."""
        started = time.perf_counter()
        try:
            return call()
        finally:
            self._mean += _SMOOTHING * (time.perf_counter() - started - self._mean)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
