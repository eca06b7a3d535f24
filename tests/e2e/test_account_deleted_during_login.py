"""A wrong-password login racing the account's deletion, over HTTP on PostgreSQL, the interleaving forced.

The login reads the user, then verifies the password with no transaction open, then records the failure. A
hasher that erases the account while it verifies puts the deletion exactly in that gap, every time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

import httpx
import pytest
from asgi_lifespan import LifespanManager
from dependency_injector import providers
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, client_for, make_container
from tests.e2e.test_auth_flow import LOGIN, REGISTER, assert_problem
from usermgmt.adapters.hashing import PasslibPasswordHasher
from usermgmt.adapters.sqlalchemy.tables import security_events
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.config import Settings
from usermgmt.domain.value_objects import PasswordHash, PlainPassword, UserId
from usermgmt.entrypoints.http.app import create_app

WRONG = "definitely not the password"


class ErasingHasher(PasslibPasswordHasher):
    """The real hasher, which runs ``during_next_verification`` (once) while it verifies a password."""

    during_next_verification: Callable[[], Awaitable[None]] | None = None

    async def verify_and_update(
        self, password: PlainPassword, password_hash: PasswordHash
    ) -> tuple[bool, PasswordHash | None]:
        outcome = await super().verify_and_update(password, password_hash)
        meanwhile, self.during_next_verification = self.during_next_verification, None
        if meanwhile is not None:
            await meanwhile()
        return outcome


@pytest.fixture
async def app_and_hasher(
    settings: Settings, clean_database: AsyncEngine
) -> AsyncIterator[tuple[httpx.AsyncClient, ErasingHasher]]:
    container = make_container(settings, fast_hashing=False)
    container.hasher.override(providers.Singleton(ErasingHasher, rounds=4, workers=2))
    hasher = container.hasher()
    assert isinstance(hasher, ErasingHasher)
    app = create_app(container)
    async with LifespanManager(app), client_for(app) as client:
        yield client, hasher


async def test_a_wrong_password_for_an_account_deleted_meanwhile_is_401_and_kept_without_the_account(
    app_and_hasher: tuple[httpx.AsyncClient, ErasingHasher], clean_database: AsyncEngine
) -> None:
    client, hasher = app_and_hasher
    registered = await client.post(REGISTER, json={"email": "leaving@example.com", "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    user_id = UserId(UUID(registered.json()["id"]))

    async def delete_the_account() -> None:
        async with SqlAlchemyUnitOfWork(clean_database) as uow:
            await uow.users.erase(user_id)
            await uow.commit()

    hasher.during_next_verification = delete_the_account
    response = await client.post(LOGIN, json={"login": "leaving@example.com", "password": WRONG})

    assert hasher.during_next_verification is None  # the deletion did run, between the lookup and the event
    assert_problem(response, 401, "invalid_credentials")
    async with clean_database.connect() as connection:
        rows = (await connection.execute(select(security_events).order_by(security_events.c.id))).all()
    assert [(row.type, row.user_id, row.details["reason"]) for row in rows] == [
        ("login_failed", None, "wrong_password")  # kept, as for a name that matches no account
    ]
    assert set(rows[0].details) == {"reason", "duration_ms"}  # the time it took (the KPIs), nothing of the account
    assert rows[0].ip == "203.0.113.7"
    again = await client.post(LOGIN, json={"login": "leaving@example.com", "password": PASSWORD})
    assert_problem(again, 401, "invalid_credentials")  # the account is gone for good
