"""The real app, in process, over httpx's ASGI transport, on the run's PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from dependency_injector import providers
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.database import create_database, drop_database
from tests.support.smtp import Mailbox
from usermgmt.adapters.hashing import PasslibPasswordHasher
from usermgmt.config import Settings
from usermgmt.container import Container
from usermgmt.entrypoints.http.app import create_app

PASSWORD = "correct horse battery staple"
MAIL_POLL_INTERVAL = 0.05  # seconds between the outbox worker's polls in the mail fixtures (the default is 1)


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


@pytest.fixture(scope="module")
async def server_database_url() -> AsyncIterator[str]:
    """A fresh database for the module's `usermgmt serve` processes (the session's is cleaned between tests, which
    a server running for the whole module must not see)."""
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


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


def signup_through(client: httpx.AsyncClient) -> Signup:
    """Register and log in a user through ``client``; returns the account with its first token pair."""
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


@pytest.fixture
def signup(client: httpx.AsyncClient) -> Signup:
    """Register and log in a user; returns the account with its first token pair."""
    return signup_through(client)


# --- email: a real SMTP server on loopback, and apps that send through it ----------------------------------------


def make_mail_container(settings: Settings, *, fast_hashing: bool = True) -> Container:
    """``make_container``, with the outbox worker polling every ``MAIL_POLL_INTERVAL`` seconds."""
    container = make_container(settings, fast_hashing=fast_hashing)
    container.outbox_worker.add_kwargs(poll_interval=MAIL_POLL_INTERVAL)
    return container


@asynccontextmanager
async def running(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """The app of ``container``, started (its lifespan runs: the outbox worker delivers), and a client of it."""
    application = create_app(container)
    async with LifespanManager(application), client_for(application) as http:
        yield http


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1, a free port, for this test: ``await mailbox.wait_for(to=...,
    template=...)``, ``mailbox.messages``, ``await mailbox.assert_none(...)``, ``await mailbox.stop()``/``start()``."""
    async with Mailbox() as box:
        yield box


MailSettings = Callable[..., Settings]


@pytest.fixture
def mail_settings(database_url: str, tmp_path: Path, keys_dir: Path, mailbox: Mailbox) -> MailSettings:
    """``mail_settings(**overrides)``: the e2e settings, sending through ``mailbox`` (SMTP, no TLS), plus overrides
    (flat setting names, as for ``Settings``)."""

    def build(**overrides: Any) -> Settings:
        mail = {"smtp_host": mailbox.host, "smtp_port": mailbox.port, "smtp_security": "none"}
        return make_settings(database_url, tmp_path, **{"signing_keys_dir": keys_dir, **mail, **overrides})

    return build


@pytest.fixture
def mail_container(mail_settings: MailSettings) -> Container:
    return make_mail_container(mail_settings())


@pytest.fixture
async def mail_app(mail_container: Container, clean_database: AsyncEngine) -> AsyncIterator[FastAPI]:
    """The app on ``mail_container``, started: its outbox worker delivers to ``mailbox``."""
    application = create_app(mail_container)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def mail_client(mail_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``mail_app``: what it queues arrives in ``mailbox``."""
    async with client_for(mail_app) as http:
        yield http


@pytest.fixture
def mail_signup(mail_client: httpx.AsyncClient) -> Signup:
    """``signup`` through ``mail_client``."""
    return signup_through(mail_client)


MailClientFor = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def mail_client_for(mail_settings: MailSettings, clean_database: AsyncEngine) -> MailClientFor:
    """``async with mail_client_for(**overrides) as client:`` a client of an app on ``mail_settings(**overrides)``,
    started for the block (a variant: ``password_reset_ttl="1"``, ``require_verified_email=True``, ...)."""

    def open_client(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return running(make_mail_container(mail_settings(**overrides)))

    return open_client
