"""The EventRepository contract (the audit trail), run against the in-memory fake, PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import NOW, new_session, new_user
from usermgmt.adapters.memory import InMemoryUnitOfWork
from usermgmt.adapters.sqlalchemy.tables import security_events
from usermgmt.application.ports import UnitOfWork
from usermgmt.domain.events import EventType, SecurityEvent
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import SessionId, UserId


def event(
    user: User | None, kind: EventType = EventType.LOGIN_SUCCEEDED, *, minutes: int = 0, **details: object
) -> SecurityEvent:
    return SecurityEvent(
        type=kind,
        at=NOW + timedelta(minutes=minutes),
        user_id=user.id if user else None,
        session_id=SessionId(uuid4()),
        ip="203.0.113.9",
        user_agent="pytest/1.0 ✓",
        request_id=f"req-{uuid4().hex[:8]}",
        details=details,
    )


async def given_users(uow: UnitOfWork, *users: User) -> None:
    async with uow:
        for user in users:
            await uow.users.add(user)
        await uow.commit()


async def test_events_read_back_newest_first_with_every_field(uow: UnitOfWork) -> None:
    """Within one unit of work, so the fake's commit does not matter here."""
    user = new_user()
    await given_users(uow, user)
    first = event(user, EventType.REGISTERED, minutes=0)
    second = event(user, EventType.LOGIN_FAILED, minutes=1, reason="bad_password", attempts=3, nested={"a": [1, 2]})
    third = event(user, EventType.LOGIN_SUCCEEDED, minutes=2)

    async with uow:
        for e in (first, second, third):
            await uow.events.add(e)
        stored = await uow.events.list_for_user(user.id, limit=10)

    assert [s.event.type for s in stored] == [EventType.LOGIN_SUCCEEDED, EventType.LOGIN_FAILED, EventType.REGISTERED]
    assert stored[0].id > stored[1].id > stored[2].id
    read = stored[1].event
    assert read.type == second.type
    assert read.at == second.at
    assert read.at.utcoffset() == timedelta(0)
    assert (read.user_id, read.session_id) == (second.user_id, second.session_id)
    assert (read.ip, read.user_agent, read.request_id) == (second.ip, second.user_agent, second.request_id)
    assert dict(read.details) == {"reason": "bad_password", "attempts": 3, "nested": {"a": [1, 2]}}


async def test_events_are_listed_per_user_in_pages(uow: UnitOfWork) -> None:
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    await given_users(uow, alice, bob)

    async with uow:
        for n in range(5):
            await uow.events.add(event(alice, minutes=n, n=n))
            await uow.events.add(event(bob, minutes=n, n=n))
        page_one = await uow.events.list_for_user(alice.id, limit=2)
        page_two = await uow.events.list_for_user(alice.id, limit=2, before=page_one[-1].id)
        page_three = await uow.events.list_for_user(alice.id, limit=2, before=page_two[-1].id)
        nobodys = await uow.events.list_for_user(UserId(uuid4()), limit=10)

    assert [s.event.details["n"] for s in (*page_one, *page_two, *page_three)] == [4, 3, 2, 1, 0]
    assert all(s.event.user_id == alice.id for s in (*page_one, *page_two, *page_three))
    assert nobodys == []


async def test_events_without_commit_are_rolled_back(uow: UnitOfWork) -> None:
    user = new_user()
    await given_users(uow, user)

    async with uow:
        await uow.events.add(event(user))

    async with uow:
        assert await uow.events.list_for_user(user.id, limit=10) == []


async def test_committed_events_are_kept(uow: UnitOfWork, request: pytest.FixtureRequest) -> None:
    user = new_user()
    await given_users(uow, user)

    async with uow:
        await uow.events.add(event(user, EventType.REGISTERED))
        await uow.commit()

    async with uow:
        stored = await uow.events.list_for_user(user.id, limit=10)
    assert [s.event.type for s in stored] == [EventType.REGISTERED]


async def test_erase_removes_the_users_events_only(uow: UnitOfWork, request: pytest.FixtureRequest) -> None:
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    await given_users(uow, alice, bob)
    async with uow:
        await uow.sessions.add(new_session(alice))
        for n in range(3):
            await uow.events.add(event(alice, minutes=n))
        await uow.events.add(event(bob))
        await uow.commit()

    async with uow:
        counts = await uow.users.erase(alice.id)
        await uow.commit()

    assert counts["security_events"] == 3
    assert counts["sessions"] == 1
    async with uow:
        assert await uow.events.list_for_user(alice.id, limit=10) == []
        assert len(await uow.events.list_for_user(bob.id, limit=10)) == 1


async def every_stored_event(uow: UnitOfWork, sql_engine: AsyncEngine | None) -> list[SecurityEvent]:
    """Every committed event, also those that name no one (which the port does not read back), oldest first."""
    if isinstance(uow, InMemoryUnitOfWork):
        return [stored.event for stored in uow.store.events]
    assert sql_engine is not None
    async with sql_engine.connect() as connection:
        rows = (await connection.execute(select(security_events).order_by(security_events.c.id))).all()
    return [
        SecurityEvent(
            type=EventType(row.type),
            at=row.at,
            user_id=row.user_id,
            session_id=row.session_id,
            ip=row.ip,
            user_agent=row.user_agent,
            request_id=row.request_id,
            details=row.details,
        )
        for row in rows
    ]


async def test_account_deletion_is_stored_as_an_anonymous_mark(uow: UnitOfWork, sql_engine: AsyncEngine | None) -> None:
    """The row kept for counting deletions names no one (stored_form strips it)."""
    user = new_user()
    await given_users(uow, user)

    async with uow:
        await uow.users.erase(user.id)
        await uow.events.add(event(user, EventType.ACCOUNT_DELETED, reason="user_request"))
        await uow.commit()

    assert await every_stored_event(uow, sql_engine) == [SecurityEvent(type=EventType.ACCOUNT_DELETED, at=NOW)]


async def test_an_event_naming_a_deleted_user_is_stored_without_them(
    uow: UnitOfWork, make_uow: Callable[[], UnitOfWork], sql_engine: AsyncEngine | None
) -> None:
    """A wrong password for an account deleted meanwhile: the failed login is kept, as one for an unknown name."""
    user = new_user()
    await given_users(uow, user)
    async with make_uow() as deleting:
        await deleting.users.erase(user.id)
        await deleting.commit()
    failed = event(user, EventType.LOGIN_FAILED, reason="wrong_password")

    async with uow:
        await uow.events.add(failed)
        await uow.commit()

    assert await every_stored_event(uow, sql_engine) == [replace(failed, user_id=None)]
    async with uow:
        assert await uow.events.list_for_user(user.id, limit=10) == []
        assert await uow.users.get(user.id) is None  # and the event did not bring the user back


async def test_a_user_deleted_after_this_unit_of_work_read_them_is_left_out_of_its_event(
    uow: UnitOfWork, make_uow: Callable[[], UnitOfWork], sql_engine: AsyncEngine | None
) -> None:
    """The login handler's interleaving: the user is read, the account is deleted (and committed) by another
    request while the password is verified, then the failed login is recorded."""
    user, bystander = new_user("gone@example.com"), new_user("stays@example.com")
    await given_users(uow, user, bystander)
    failed = event(user, EventType.LOGIN_FAILED, reason="wrong_password")
    theirs = event(bystander, EventType.LOGIN_FAILED, reason="wrong_password")

    async with uow:
        assert await uow.users.get(user.id) is not None
        async with make_uow() as deleting:
            await deleting.users.erase(user.id)
            await deleting.commit()
        await uow.events.add(failed)
        await uow.events.add(theirs)
        await uow.commit()

    assert await every_stored_event(uow, sql_engine) == [replace(failed, user_id=None), theirs]


async def test_an_event_added_before_the_erasure_in_the_same_unit_of_work_goes_with_the_account(
    uow: UnitOfWork, sql_engine: AsyncEngine | None
) -> None:
    user = new_user()
    await given_users(uow, user)

    async with uow:
        await uow.events.add(event(user, EventType.LOGIN_SUCCEEDED))
        receipt = await uow.users.erase(user.id)
        await uow.commit()

    assert receipt["security_events"] == 1
    assert await every_stored_event(uow, sql_engine) == []


async def test_failed_sign_ins_are_read_newest_first_since_a_time_and_from_an_address(uow: UnitOfWork) -> None:
    """What the account limits count while the rate-limit store is down (Guard._recorded_failures)."""
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    await given_users(uow, alice, bob)
    failures = [replace(event(alice, EventType.LOGIN_FAILED, minutes=m), ip=ip) for m, ip in
                [(0, "203.0.113.9"), (1, "198.51.100.7"), (2, "203.0.113.9"), (3, "203.0.113.9")]]  # fmt: skip
    others = [event(alice, EventType.LOGIN_SUCCEEDED, minutes=4), event(bob, EventType.LOGIN_FAILED, minutes=5)]
    async with uow:
        for e in [*failures, *others]:
            await uow.events.add(e)
        await uow.commit()

    async with uow:
        events = uow.events
        assert await events.failed_sign_ins(alice.id, since=NOW, limit=10) == [
            NOW + timedelta(minutes=m) for m in (3, 2, 1, 0)
        ]
        assert await events.failed_sign_ins(alice.id, since=NOW + timedelta(minutes=1), limit=2) == [
            NOW + timedelta(minutes=3),
            NOW + timedelta(minutes=2),
        ]
        assert await events.failed_sign_ins(alice.id, since=NOW, limit=10, ip="198.51.100.7") == [
            NOW + timedelta(minutes=1)
        ]
        assert await events.last_at(alice.id, EventType.LOGIN_SUCCEEDED, ip="203.0.113.9") == NOW + timedelta(minutes=4)
        assert await events.last_at(alice.id, EventType.LOGIN_SUCCEEDED, ip="198.51.100.7") is None
