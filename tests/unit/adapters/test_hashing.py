"""PasslibPasswordHasher with real bcrypt at the lowest cost (rounds=4), so it stays fast."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import bcrypt
import pytest

from usermgmt.adapters.hashing import PasslibPasswordHasher
from usermgmt.domain.value_objects import PasswordHash, PlainPassword

PASSWORD = PlainPassword("correct horse battery staple")


@pytest.fixture(scope="module")
def hasher() -> Iterator[PasslibPasswordHasher]:
    hasher = PasslibPasswordHasher(rounds=4, workers=2)
    yield hasher
    hasher.close()


def legacy_bcrypt(password: str, rounds: int = 4) -> PasswordHash:
    """A plain ``$2b$`` hash, as an older deployment (or another system) would have stored."""
    return PasswordHash(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode())


async def test_hash_then_verify(hasher: PasslibPasswordHasher) -> None:
    hashed = await hasher.hash(PASSWORD)

    assert hashed.value.startswith("$bcrypt-sha256$")
    assert "r=4" in hashed.value
    assert PASSWORD.value not in hashed.value
    assert await hasher.verify_and_update(PASSWORD, hashed) == (True, None)
    assert await hasher.verify_and_update(PlainPassword("correct horse battery stapler"), hashed) == (False, None)
    assert await hasher.verify_and_update(PlainPassword(""), hashed) == (False, None)


async def test_hashes_are_salted(hasher: PasslibPasswordHasher) -> None:
    first, second = await hasher.hash(PASSWORD), await hasher.hash(PASSWORD)

    assert first != second
    assert (await hasher.verify_and_update(PASSWORD, first))[0]
    assert (await hasher.verify_and_update(PASSWORD, second))[0]


async def test_unicode_password(hasher: PasslibPasswordHasher) -> None:
    password = PlainPassword("пароль-密码-🔑-ﬀ")
    hashed = await hasher.hash(password)

    assert (await hasher.verify_and_update(PlainPassword("пароль-密码-🔑-ff"), hashed))[0]  # same after NFKC
    assert not (await hasher.verify_and_update(PlainPassword("пароль-密码-🔑-f"), hashed))[0]


async def test_passwords_differing_only_after_byte_72_are_distinguished(hasher: PasslibPasswordHasher) -> None:
    prefix = "a" * 72
    first, second = PlainPassword(prefix + "-first"), PlainPassword(prefix + "-second")
    hashed = await hasher.hash(first)

    assert (await hasher.verify_and_update(first, hashed))[0]
    assert not (await hasher.verify_and_update(second, hashed))[0]
    assert not (await hasher.verify_and_update(PlainPassword(prefix), hashed))[0]


async def test_multibyte_passwords_differing_after_byte_72_are_distinguished(hasher: PasslibPasswordHasher) -> None:
    prefix = "é" * 36  # 72 UTF-8 bytes, only 36 characters
    hashed = await hasher.hash(PlainPassword(prefix + "x"))

    assert not (await hasher.verify_and_update(PlainPassword(prefix + "y"), hashed))[0]


async def test_plain_bcrypt_hash_verifies_and_is_upgraded(hasher: PasslibPasswordHasher) -> None:
    legacy = legacy_bcrypt(PASSWORD.value)
    assert legacy.value.startswith("$2b$04$")

    matches, upgraded = await hasher.verify_and_update(PASSWORD, legacy)

    assert matches is True
    assert upgraded is not None
    assert upgraded.value.startswith("$bcrypt-sha256$")
    assert await hasher.verify_and_update(PASSWORD, upgraded) == (True, None)


async def test_plain_bcrypt_hash_with_wrong_password_is_not_upgraded(hasher: PasslibPasswordHasher) -> None:
    assert await hasher.verify_and_update(PlainPassword("wrong"), legacy_bcrypt(PASSWORD.value)) == (False, None)


async def test_plain_bcrypt_hash_of_a_password_over_72_bytes_still_verifies(hasher: PasslibPasswordHasher) -> None:
    long_password = "correct horse battery staple " * 4  # 116 bytes
    # What bcrypt < 5 stored for it: only the first 72 bytes counted.
    legacy = legacy_bcrypt(long_password[:72])

    # Regression: bcrypt >= 5 refuses secrets over 72 bytes, and that ValueError used to read as "no match".
    matches, upgraded = await hasher.verify_and_update(PlainPassword(long_password), legacy)

    assert matches is True
    assert upgraded is not None
    assert upgraded.value.startswith("$bcrypt-sha256$")
    # From now on the whole password counts.
    assert await hasher.verify_and_update(PlainPassword(long_password), upgraded) == (True, None)
    assert not (await hasher.verify_and_update(PlainPassword(long_password[:72] + "different tail"), upgraded))[0]


async def test_plain_bcrypt_hash_rejects_a_long_password_with_another_start(hasher: PasslibPasswordHasher) -> None:
    legacy = legacy_bcrypt(("correct horse battery staple " * 4)[:72])

    assert await hasher.verify_and_update(PlainPassword("x" + "correct horse battery staple " * 4), legacy) == (
        False,
        None,
    )


async def test_lower_round_bcrypt_sha256_hash_is_upgraded() -> None:
    weak, strong = PasslibPasswordHasher(rounds=4, workers=1), PasslibPasswordHasher(rounds=5, workers=1)
    try:
        old = await weak.hash(PASSWORD)

        matches, upgraded = await strong.verify_and_update(PASSWORD, old)

        assert matches is True
        assert upgraded is not None
        assert "r=5" in upgraded.value
        assert await strong.verify_and_update(PASSWORD, upgraded) == (True, None)
        assert (await weak.verify_and_update(PASSWORD, upgraded))[0] is True
    finally:
        weak.close()
        strong.close()


@pytest.mark.parametrize(
    "corrupt",
    [
        "",
        "garbage",
        "$2b$04$tooshort",
        "$bcrypt-sha256$v=2,t=2b,r=4$broken",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",  # a scheme we do not know
        "plaintext-password",
    ],
)
async def test_corrupt_or_unknown_hash_never_verifies(hasher: PasslibPasswordHasher, corrupt: str) -> None:
    assert await hasher.verify_and_update(PASSWORD, PasswordHash(corrupt)) == (False, None)


async def test_plaintext_stored_as_hash_does_not_verify(hasher: PasslibPasswordHasher) -> None:
    assert await hasher.verify_and_update(PASSWORD, PasswordHash(PASSWORD.value)) == (False, None)


@pytest.mark.parametrize("password", ["", "password", "correct horse battery staple", "dummy", "x" * 128])
async def test_dummy_hash_verifies_no_ordinary_password(hasher: PasslibPasswordHasher, password: str) -> None:
    dummy = hasher.dummy_hash

    assert dummy.value.startswith("$bcrypt-sha256$")
    assert "r=4" in dummy.value  # same cost as a real hash, so it takes as long
    assert await hasher.verify_and_update(PlainPassword(password), dummy) == (False, None)


def test_dummy_hash_is_stable_per_instance(hasher: PasslibPasswordHasher) -> None:
    assert hasher.dummy_hash == hasher.dummy_hash


@pytest.mark.parametrize("rounds", [3, 0, -1])
def test_rounds_below_four_are_refused(rounds: int) -> None:
    with pytest.raises(ValueError, match="at least 4"):
        PasslibPasswordHasher(rounds=rounds, workers=1)


async def test_hashing_does_not_block_the_event_loop() -> None:
    """While a cost-12 hash runs, a ticker sleeping 10 ms at a time keeps ticking.

    Robust, not timing-dependent: the ticker records whether it ever ran while the hash was still pending, and
    the hash is awaited only after the ticker has been seen running mid-hash (or the hash finished).
    """
    hasher = PasslibPasswordHasher(rounds=12, workers=1)
    try:
        hashing = asyncio.ensure_future(hasher.hash(PASSWORD))
        ticks_while_hashing = 0

        async def ticker() -> None:
            nonlocal ticks_while_hashing
            while not hashing.done():
                await asyncio.sleep(0.01)
                if not hashing.done():
                    ticks_while_hashing += 1

        await asyncio.gather(ticker(), hashing)

        assert hashing.result().value.startswith("$bcrypt-sha256$v=2,t=2b,r=12$")
        # A cost-12 bcrypt takes well over 50 ms on any hardware; a blocked loop would tick zero times.
        assert ticks_while_hashing >= 2
    finally:
        hasher.close()


async def test_hashing_threads_run_at_a_lower_priority_than_the_event_loop() -> None:
    """Under a login storm the event loop must preempt the hashes (Linux: niceness is per thread)."""
    import asyncio
    import os

    from usermgmt.adapters.hashing import HASH_THREAD_NICENESS

    hasher = PasslibPasswordHasher(rounds=4, workers=1)
    try:
        loop_priority = os.getpriority(os.PRIO_PROCESS, 0)
        thread_priority = await asyncio.get_running_loop().run_in_executor(
            hasher._executor,
            lambda: os.getpriority(os.PRIO_PROCESS, 0),
        )
    finally:
        hasher.close()
    assert os.getpriority(os.PRIO_PROCESS, 0) == loop_priority  # the loop's own thread is untouched
    assert thread_priority == min(19, loop_priority + HASH_THREAD_NICENESS)


async def test_the_hashing_threads_niceness_is_a_setting() -> None:
    import os

    hasher = PasslibPasswordHasher(rounds=4, workers=1, niceness=7)
    try:
        loop_priority = os.getpriority(os.PRIO_PROCESS, 0)
        thread_priority = await asyncio.get_running_loop().run_in_executor(
            hasher._executor, lambda: os.getpriority(os.PRIO_PROCESS, 0)
        )
    finally:
        hasher.close()
    assert thread_priority == min(19, loop_priority + 7)


async def test_a_sign_in_that_would_wait_too_long_for_a_thread_is_shed_at_once() -> None:
    """Cost 12 (tens of milliseconds a hash), at most 1 ms of wait allowed, two threads: two sign-ins hold the two
    places (taken when they start, before either submits its hash), so a third would wait about half a hash's time
    and is shed; once one finishes, the next is admitted."""
    from usermgmt.application.errors import ServiceBusy

    hasher = PasslibPasswordHasher(rounds=12, workers=2, max_wait=0.001)
    try:
        with hasher.admission(), hasher.admission():
            with pytest.raises(ServiceBusy) as shed, hasher.admission():
                pass
            assert shed.value.code == "service_busy"
            assert shed.value.retry_after >= 1
        with hasher.admission():
            pass
    finally:
        hasher.close()


async def test_hashes_outside_sign_ins_count_and_a_sign_ins_own_hash_counts_once() -> None:
    from usermgmt.application.errors import ServiceBusy

    hasher = PasslibPasswordHasher(rounds=12, workers=2, max_wait=0.001)
    try:
        with hasher.admission():  # one sign-in, hashing: its hash is its place, not a second one
            own = asyncio.ensure_future(hasher.hash(PASSWORD))
            await asyncio.sleep(0)
            with hasher.admission():
                pass
            await own
        registrations = [asyncio.ensure_future(hasher.hash(PASSWORD)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(ServiceBusy), hasher.admission():  # two hashes of other use cases hold both threads
            pass
        await asyncio.gather(*registrations)
    finally:
        hasher.close()


async def test_without_a_wait_limit_nothing_is_shed() -> None:
    hasher = PasslibPasswordHasher(rounds=12, workers=1)
    try:
        pending = [asyncio.ensure_future(hasher.hash(PASSWORD)) for _ in range(3)]
        await asyncio.sleep(0)
        with hasher.admission(), hasher.admission():
            pass
        await asyncio.gather(*pending)
    finally:
        hasher.close()
