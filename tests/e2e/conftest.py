"""The real app, in process, over httpx's ASGI transport, on the run's PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from dependency_injector import providers
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from usermgmt.adapters.hashing import PasslibPasswordHasher
from usermgmt.config import Settings
from usermgmt.container import Container
from usermgmt.entrypoints.http.app import create_app

PASSWORD = "correct horse battery staple"


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        data_dir=data_dir,
        **overrides,
    )


def make_container(settings: Settings, *, fast_hashing: bool = True) -> Container:
    container = Container(settings=settings)
    if fast_hashing:  # bcrypt cost 4 keeps the suite quick; the default cost is tested on its own
        container.hasher.override(providers.Singleton(PasslibPasswordHasher, rounds=4, workers=2))
    return container


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture
def settings(database_url: str, tmp_path: Path, keys_dir: Path) -> Settings:
    return make_settings(database_url, tmp_path, signing_keys_dir=keys_dir)


@pytest.fixture
def container(settings: Settings) -> Container:
    return make_container(settings)


@pytest.fixture
async def app(container: Container, clean_database: AsyncEngine) -> AsyncIterator[FastAPI]:
    application = create_app(container)
    async with LifespanManager(application):
        yield application


def client_for(app: FastAPI, **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("203.0.113.7", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", **kwargs)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as http:
        yield http


@dataclass
class Account:
    email: str
    password: str
    user: dict[str, Any]
    tokens: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


Signup = Callable[..., Awaitable[Account]]


@pytest.fixture
def signup(client: httpx.AsyncClient) -> Signup:
    """Register and log in a user; returns the account with its first token pair."""
    counter = 0

    async def _signup(email: str | None = None, password: str = PASSWORD, **profile: Any) -> Account:
        nonlocal counter
        counter += 1
        email = email or f"user{counter}@example.com"
        registered = await client.post("/api/v1/auth/register", json={"email": email, "password": password, **profile})
        assert registered.status_code == 201, registered.text
        login = await client.post("/api/v1/auth/login", json={"login": email, "password": password})
        assert login.status_code == 200, login.text
        return Account(email=email, password=password, user=registered.json(), tokens=login.json())

    return _signup
