"""The RoleRepository contract, on the in-memory fake, PostgreSQL and SQLite alike: roles and grants, the user
search, the admin trail's queries, and the permissions the principal read finds in its one query."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from tests.integration.builders import NOW, new_session, new_user
from usermgmt.application.errors import ConcurrentUpdate, RoleExists
from usermgmt.application.ports import PrincipalReader, UnitOfWork
from usermgmt.domain.events import EventType, SecurityEvent
from usermgmt.domain.model import User
from usermgmt.domain.roles import ADMIN, ALL_PERMISSIONS, Permission, Role
from usermgmt.domain.value_objects import UserId


def support(now: datetime = NOW) -> Role:
    return Role.create(name="support", permissions=("users:read", "events:read"), description="Helpdesk", now=now)


async def add_users(uow: UnitOfWork, *users: User) -> None:
    async with uow:
        for user in users:
            await uow.users.add(user)
        await uow.commit()


async def test_the_builtin_admin_role_exists_with_every_permission(uow: UnitOfWork) -> None:
    async with uow:
        roles = await uow.roles.list()

    assert [(r.name, r.permissions, r.is_builtin) for r in roles] == [(ADMIN, ALL_PERMISSIONS, True)]


async def test_a_role_round_trips_and_a_second_with_its_name_is_refused(uow: UnitOfWork) -> None:
    async with uow:
        await uow.roles.add(support())
        await uow.commit()
    async with uow:
        found = await uow.roles.get("support")
        assert found is not None
        assert (found.description, found.permissions) == ("Helpdesk", {Permission.USERS_READ, Permission.EVENTS_READ})
        assert (found.created_at, found.updated_at) == (NOW, NOW)
        with pytest.raises(RoleExists):
            await uow.roles.add(support())

    async with uow:
        found = await uow.roles.get("support")
        assert found is not None
        found.change(now=NOW + timedelta(hours=1), permissions=("sessions:revoke",), description="Sign-outs")
        await uow.roles.update(found)
        await uow.commit()
    async with uow:
        changed = await uow.roles.get("support")
        assert changed is not None
        assert (changed.permissions, changed.description) == ({Permission.SESSIONS_REVOKE}, "Sign-outs")
        assert [r.name for r in await uow.roles.list()] == [ADMIN, "support"]


async def test_grants_are_set_read_and_go_with_the_role_or_the_user(uow: UnitOfWork) -> None:
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    await add_users(uow, alice, bob)
    async with uow:
        await uow.roles.add(support())
        await uow.roles.set_roles(alice.id, [ADMIN, "support"], NOW)
        await uow.roles.set_roles(bob.id, ["support"], NOW)
        await uow.commit()
    async with uow:
        assert await uow.roles.roles_of(alice.id) == (ADMIN, "support")
        assert await uow.roles.roles_of_many([alice.id, bob.id]) == {alice.id: (ADMIN, "support"), bob.id: ("support",)}
        assert await uow.roles.active_holders(ADMIN) == 1
        assert await uow.roles.active_holders("support") == 2
        await uow.roles.set_roles(alice.id, ["support"], NOW)
        assert await uow.roles.delete("support")
        assert not await uow.roles.delete("support")
        await uow.commit()
    async with uow:
        assert await uow.roles.roles_of_many([alice.id, bob.id]) == {}
        assert await uow.roles.get("support") is None
        await uow.roles.set_roles(alice.id, [ADMIN], NOW)
        erased = await uow.users.erase(alice.id)
        await uow.commit()
    assert erased["user_roles"] == 1
    async with uow:
        assert await uow.roles.active_holders(ADMIN) == 0


async def test_a_disabled_holder_is_not_an_active_one(uow: UnitOfWork) -> None:
    alice = new_user("alice@example.com")
    await add_users(uow, alice)
    async with uow:
        await uow.roles.set_roles(alice.id, [ADMIN], NOW)
        user = await uow.users.get(alice.id, for_update=True)
        assert user is not None
        user.deactivate(now=NOW)
        await uow.users.update(user)
        await uow.commit()
    async with uow:
        assert await uow.roles.active_holders(ADMIN) == 0
        assert await uow.roles.roles_of(alice.id) == (ADMIN,)


async def test_granting_a_role_deleted_meanwhile_fails(uow: UnitOfWork, make_uow: Callable[[], UnitOfWork]) -> None:
    alice = new_user("alice@example.com")
    await add_users(uow, alice)
    async with uow:
        await uow.roles.add(support())
        await uow.commit()
    async with make_uow() as other:
        await other.roles.delete("support")
        await other.commit()

    async with uow:
        with pytest.raises(ConcurrentUpdate):
            await uow.roles.set_roles(alice.id, ["support"], NOW)


async def test_the_user_search_pages_newest_first_by_prefix_role_and_status(uow: UnitOfWork) -> None:
    users = [
        new_user(f"user{n:02}@example.com", username=f"name{n:02}", now=NOW + timedelta(seconds=n // 2))
        for n in range(12)
    ]  # two by two at the same instant: the id breaks the tie
    await add_users(uow, *users)
    async with uow:
        await uow.roles.set_roles(users[3].id, [ADMIN], NOW)
        user = await uow.users.get(users[4].id, for_update=True)
        assert user is not None
        user.deactivate(now=NOW)
        await uow.users.update(user)
        await uow.commit()
    newest_first = sorted(users, key=lambda u: (u.created_at, u.id), reverse=True)

    async with uow:
        seen: list[UserId] = []
        after = None
        while True:
            page = await uow.roles.search_users(query=None, role=None, active=None, limit=5, after=after)
            seen += [u.id for u in page]
            if len(page) < 5:
                break
            after = (page[-1].created_at, page[-1].id)
        assert seen == [u.id for u in newest_first]

        by_email = await uow.roles.search_users(query="user1", role=None, active=None, limit=50, after=None)
        assert sorted(u.email.value for u in by_email) == ["user10@example.com", "user11@example.com"]
        by_name = await uow.roles.search_users(query="name0", role=None, active=None, limit=50, after=None)
        assert len(by_name) == 10
        literal = await uow.roles.search_users(query="user_", role=None, active=None, limit=50, after=None)
        assert literal == []  # "_" is no wildcard
        admins = await uow.roles.search_users(query=None, role=ADMIN, active=None, limit=50, after=None)
        assert [u.id for u in admins] == [users[3].id]
        disabled = await uow.roles.search_users(query=None, role=None, active=False, limit=50, after=None)
        assert [u.id for u in disabled] == [users[4].id]
        active = await uow.roles.search_users(query=None, role=None, active=True, limit=50, after=None)
        assert len(active) == 11


async def test_the_admin_trail_filters_by_type_actor_and_user_and_keeps_the_actor(uow: UnitOfWork) -> None:
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    await add_users(uow, alice, bob)
    async with uow:
        await uow.record(SecurityEvent(type=EventType.LOGIN_SUCCEEDED, at=NOW, user_id=bob.id))
        await uow.record(
            SecurityEvent(
                type=EventType.ACCOUNT_DISABLED, at=NOW + timedelta(seconds=1), user_id=bob.id, actor_id=alice.id
            )
        )
        await uow.record(SecurityEvent(type=EventType.ROLE_CREATED, at=NOW, actor_id=alice.id, details={"role": "x"}))
        await uow.record(SecurityEvent(type=EventType.LOGIN_SUCCEEDED, at=NOW + timedelta(seconds=5), user_id=bob.id))
        await uow.commit()
    async with uow:
        everything = await uow.events.list_all(limit=10)
        by_actor = await uow.events.list_all(limit=10, actor_id=alice.id)
        by_type = await uow.events.list_all(limit=10, type=EventType.LOGIN_SUCCEEDED)
        of_bob = await uow.events.list_all(limit=10, user_id=bob.id, actor_id=alice.id)
        older = await uow.events.list_all(limit=10, before=everything[1].id)
        last = await uow.events.last_at(bob.id, EventType.LOGIN_SUCCEEDED)
        never = await uow.events.last_at(alice.id, EventType.LOGIN_SUCCEEDED)

    assert [s.event.type for s in everything] == [
        EventType.LOGIN_SUCCEEDED,
        EventType.ROLE_CREATED,
        EventType.ACCOUNT_DISABLED,
        EventType.LOGIN_SUCCEEDED,
    ]
    assert [s.event.type for s in by_actor] == [EventType.ROLE_CREATED, EventType.ACCOUNT_DISABLED]
    assert by_actor[0].event.user_id is None and by_actor[1].event.actor_id == alice.id
    assert len(by_type) == 2 and [s.event.type for s in of_bob] == [EventType.ACCOUNT_DISABLED]
    assert [s.id for s in older] == [s.id for s in everything[2:]]
    assert (last, never) == (NOW + timedelta(seconds=5), None)


async def test_an_administrators_deletion_mark_keeps_the_actor_and_nothing_of_the_account(uow: UnitOfWork) -> None:
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    await add_users(uow, alice, bob)
    async with uow:
        await uow.users.erase(bob.id)
        await uow.record(
            SecurityEvent(type=EventType.ACCOUNT_DELETED, at=NOW, user_id=bob.id, actor_id=alice.id, ip="192.0.2.1")
        )
        await uow.commit()
    async with uow:
        (mark,) = await uow.events.list_all(limit=10, type=EventType.ACCOUNT_DELETED)

    assert (mark.event.user_id, mark.event.actor_id, mark.event.ip, dict(mark.event.details)) == (
        None,
        alice.id,
        None,
        {},
    )


async def test_the_principal_read_carries_the_permissions_of_the_roles_in_its_one_query(
    uow: UnitOfWork, principals: PrincipalReader
) -> None:
    alice = new_user("alice@example.com")
    session = new_session(alice)
    async with uow:
        await uow.users.add(alice)
        await uow.sessions.add(session)
        await uow.commit()
    at = NOW + timedelta(minutes=1)

    async def permissions() -> frozenset[Permission]:
        found = await principals.get(alice.id, session.id, at)
        assert found is not None
        return found.permissions

    assert await permissions() == frozenset()
    async with uow:
        await uow.roles.add(support())
        await uow.roles.add(
            Role.create(name="auditor", permissions=("events:read", "users:read"), description="", now=NOW)
        )
        await uow.roles.set_roles(alice.id, ["support", "auditor"], NOW)
        await uow.commit()
    assert await permissions() == {Permission.USERS_READ, Permission.EVENTS_READ}
    async with uow:
        await uow.roles.set_roles(alice.id, [ADMIN], NOW)
        await uow.commit()
    assert await permissions() == ALL_PERMISSIONS


async def test_two_transactions_changing_admin_holders_wait_for_each_other(
    uow: UnitOfWork, make_uow: Callable[[], UnitOfWork], backend: str
) -> None:
    """The lock ``ensure_admin_remains`` takes: the second reader of the admin role waits for the first's commit,
    and then counts what it committed."""
    if backend == "memory":
        pytest.skip("the fake has no locks: its commit checks instead")
    alice, bob = new_user("alice@example.com"), new_user("bob@example.com")
    await add_users(uow, alice, bob)
    async with uow:
        await uow.roles.set_roles(alice.id, [ADMIN], NOW)
        await uow.roles.set_roles(bob.id, [ADMIN], NOW)
        await uow.commit()
    first, second = make_uow(), make_uow()
    counted: list[int] = []

    async def the_second() -> None:
        async with second:
            await second.roles.get(ADMIN, for_update=True)
            counted.append(await second.roles.active_holders(ADMIN))

    async with first:
        await first.roles.get(ADMIN, for_update=True)
        await first.roles.set_roles(bob.id, [], NOW)
        waiting = asyncio.create_task(the_second())
        await asyncio.sleep(0.3)
        assert counted == []  # still waiting for the lock
        await first.commit()
    await asyncio.wait_for(waiting, 10)
    assert counted == [1]
