"""Password hashing with libpass (the maintained passlib fork): bcrypt over SHA-256, in a bounded thread pool."""

from __future__ import annotations

import asyncio
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from passlib.context import CryptContext

from usermgmt.adapters.metrics import Metrics
from usermgmt.adapters.tracing import span
from usermgmt.domain.value_objects import PasswordHash, PlainPassword

T = TypeVar("T")

MIN_ROUNDS = 4
BCRYPT_MAX_BYTES = 72  # bcrypt's own floor; production settings refuse anything under 10


HASH_THREAD_NICENESS = 10


def _lower_thread_priority() -> None:
    """Run hashing threads at a lower CPU priority than the event loop (Linux: niceness is per thread).

    Under a login storm the cores are busy hashing; at equal priority the event loop gets a fraction of a core
    and every other request waits behind bcrypt. At nice 10 the loop preempts the hashes, so reads stay fast
    and logins take the remaining CPU.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, min(19, os.getpriority(os.PRIO_PROCESS, 0) + HASH_THREAD_NICENESS))


class PasslibPasswordHasher:
    """bcrypt_sha256 (no 72-byte truncation); plain bcrypt hashes still verify and are upgraded on login.

    Hashing is deliberately slow and releases the GIL, so it runs in a pool of ``workers`` threads (one per core):
    the event loop never waits on it, and a storm of logins queues there instead of starving other requests.
    """

    def __init__(self, *, rounds: int, workers: int, metrics: Metrics | None = None) -> None:
        if rounds < MIN_ROUNDS:
            raise ValueError(f"bcrypt rounds must be at least {MIN_ROUNDS}")
        self._context = CryptContext(
            schemes=["bcrypt_sha256", "bcrypt"],
            deprecated=["bcrypt"],
            bcrypt_sha256__rounds=rounds,
        )
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="password-hash", initializer=_lower_thread_priority
        )
        self._metrics = metrics
        self._dummy = PasswordHash(self._context.hash("usermgmt dummy password, never anyone's"))

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
        if self._metrics is None:
            return await loop.run_in_executor(self._executor, call)
        timing = self._metrics.hashing(operation)
        try:
            return await loop.run_in_executor(self._executor, partial(timing.run, call))
        finally:
            timing.abandon()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
