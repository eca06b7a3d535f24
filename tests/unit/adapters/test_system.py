"""The real clock and UUIDv7 identifiers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

from usermgmt.adapters.system import SystemClock, UuidV7Generator


def unix_ms(value: UUID) -> int:
    return value.int >> 80  # the top 48 bits of a v7 UUID


def test_system_clock_is_aware_utc_and_current() -> None:
    now = SystemClock().now()

    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_system_clock_advances() -> None:
    clock = SystemClock()
    first = clock.now()
    time.sleep(0.002)
    assert clock.now() > first


def test_ids_are_version_7_rfc_variant() -> None:
    ids = UuidV7Generator()
    for value in (ids.new_user_id(), ids.new_session_id()):
        assert isinstance(value, UUID)
        assert value.version == 7
        assert value.variant == "specified in RFC 4122"


def test_ids_carry_the_current_unix_time_in_milliseconds() -> None:
    before = int(time.time() * 1000)
    value = UuidV7Generator().new_user_id()
    after = int(time.time() * 1000)

    assert before - 5 <= unix_ms(value) <= after + 5


def test_ids_are_unique_and_time_ordered() -> None:
    ids = UuidV7Generator()
    values = [ids.new_user_id() if i % 2 else ids.new_session_id() for i in range(2000)]

    assert len(set(values)) == len(values)
    timestamps = [unix_ms(v) for v in values]
    assert timestamps == sorted(timestamps)  # never goes back in time
    assert values == sorted(values)  # and, within this process, strictly increasing


def test_ids_across_milliseconds_sort_by_creation() -> None:
    ids = UuidV7Generator()
    first = ids.new_user_id()
    time.sleep(0.003)
    second = ids.new_user_id()

    assert unix_ms(first) < unix_ms(second)
    assert first < second
