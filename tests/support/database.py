"""A throw-away PostgreSQL database per test run: created, migrated with Alembic, dropped at the end."""

from __future__ import annotations

import os
import secrets

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
ENV_VAR = "USERMGMT_TEST_DATABASE_URL"


def admin_url() -> URL:
    return make_url(os.environ.get(ENV_VAR) or DEFAULT_ADMIN_URL)


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_connection(url: URL) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        pytest.exit(
            f"PostgreSQL is not reachable at {url.render_as_string(hide_password=True)} ({type(exc).__name__}: {exc}).\n"
            f"The integration and e2e tests need one. Start PostgreSQL (e.g. `docker compose up -d postgres`) or set "
            f"{ENV_VAR}=postgresql+asyncpg://USER:PASSWORD@HOST:PORT/postgres to a server where USER may create "
            f"databases. Unit tests alone: `make test-unit`.",
            returncode=3,
        )


async def create_database() -> str:
    """Create an empty database with a unique name; return its SQLAlchemy URL."""
    url = admin_url()
    name = f"usermgmt_test_{os.getpid()}_{secrets.token_hex(4)}"
    connection = await _admin_connection(url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    connection = await _admin_connection(admin_url())
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await connection.close()
