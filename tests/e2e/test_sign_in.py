"""Sign-in over HTTP: concurrent guesses meet the account limit, IPv6 clients are grouped by network, and tokens
say how their session began (issue 12)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, Signup, make_container, make_settings
from usermgmt.entrypoints.http.app import create_app

LOGIN, REFRESH, REGISTER = "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/register"
WRONG = "definitely not the password"
REDIS_URL = os.environ.get("USERMGMT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def client_at(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture(params=["memory", "redis"])
async def limited_app(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, keys_dir: Path, clean_database: AsyncEngine
) -> AsyncIterator[FastAPI]:
    overrides: dict[str, Any] = {
        "rate_limit_login_failures_per_account_ip": "10/15m",
        "rate_limit_login_per_ip": "1000/1m",
        "rate_limit_registrations_per_ip": "100000/1h",  # Redis keeps earlier runs' counters for an hour
        "signing_keys_dir": keys_dir,
    }
    if request.param == "redis":
        overrides["redis_url"] = REDIS_URL
    app = create_app(make_container(make_settings(database_url, tmp_path, **overrides)))
    async with LifespanManager(app):
        yield app


async def test_parallel_wrong_passwords_meet_the_account_limit(limited_app: FastAPI) -> None:
    """Defect 8 of issue 12: 20-25 parallel guesses against one account from one IP all reached a password check
    (20-25 x 401, no 429) against a 10/15 min limit. The slot is now taken before the hash."""
    async with client_at(limited_app, "198.51.100.20") as client:
        email = f"target-{id(limited_app)}@example.com"
        registered = await client.post(REGISTER, json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201
        answers = await asyncio.gather(
            *(client.post(LOGIN, json={"login": email, "password": WRONG}) for _ in range(25))
        )

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401] * 10 + [429] * 15
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)


async def test_ipv6_clients_of_one_network_share_their_per_ip_budget(
    database_url: str, tmp_path: Path, keys_dir: Path, clean_database: AsyncEngine
) -> None:
    settings = make_settings(database_url, tmp_path, signing_keys_dir=keys_dir, rate_limit_login_per_ip="3/1m")
    app = create_app(make_container(settings))
    async with LifespanManager(app):
        answers = []
        for host in ("1", "2", "3", "4"):  # four addresses of one /64
            async with client_at(app, f"2001:db8:1:2::{host}") as client:
                answers.append(await client.post(LOGIN, json={"login": "nobody@example.com", "password": WRONG}))
        async with client_at(app, "2001:db8:1:3::1") as neighbour:  # the next /64 is another client
            other = await neighbour.post(LOGIN, json={"login": "nobody@example.com", "password": WRONG})

    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert other.status_code == 401


async def test_tokens_carry_the_sessions_amr_and_auth_time_also_when_refreshed(
    client: httpx.AsyncClient, signup: Signup
) -> None:
    account = await signup()
    first = pyjwt.decode(account.tokens["access_token"], options={"verify_signature": False})

    refreshed = await client.post(REFRESH, json={"refresh_token": account.tokens["refresh_token"]})
    assert refreshed.status_code == 200
    second = pyjwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})

    assert first["amr"] == ["pwd"]
    assert isinstance(first["auth_time"], int)
    assert first["auth_time"] <= first["iat"]
    assert (second["amr"], second["auth_time"]) == (first["amr"], first["auth_time"])
    assert pyjwt.get_unverified_header(refreshed.json()["access_token"])["typ"] == "at+jwt"
