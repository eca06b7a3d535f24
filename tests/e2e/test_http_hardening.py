"""Headers on every answer, request ids, CORS allow-list, Host allow-list, and logs that never hold a secret."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, Signup, client_for, make_container, make_settings
from tests.e2e.test_auth_flow import LOGIN, ME, REFRESH, REGISTER, assert_problem
from usermgmt.entrypoints.http.app import create_app
from usermgmt.entrypoints.logging import JsonFormatter

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@pytest.fixture
async def configured_app(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, keys_dir: Path, clean_database: AsyncEngine
) -> AsyncIterator[FastAPI]:
    overrides: dict[str, Any] = request.param
    app = create_app(make_container(make_settings(database_url, tmp_path, signing_keys_dir=keys_dir, **overrides)))
    async with LifespanManager(app):
        yield app


async def test_security_headers_on_every_kind_of_answer(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    responses = [
        await client.get(ME, headers=account.auth),
        await client.get(ME),
        await client.post(REGISTER, content=b"{", headers={"Content-Type": "application/json"}),
        await client.post(REGISTER, content=b"x", headers={"Content-Type": "text/plain"}),
        await client.get("/healthz"),
        await client.get("/.well-known/jwks.json"),
        await client.get("/nowhere"),
    ]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (response.request.url, name)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers  # not configured for HTTPS
        assert response.headers["x-request-id"]
    for response in responses[:4]:
        assert response.headers["cache-control"] == "no-store"


async def test_every_api_answer_is_uncacheable_the_same_way(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    login = await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})
    responses = [
        await client.post(REGISTER, json={"email": "other@example.com", "password": PASSWORD}),
        login,
        await client.post(REFRESH, json={"refresh_token": login.json()["refresh_token"]}),
        await client.get(ME, headers=account.auth),
        await client.get(ME),
        await client.post(REGISTER, json={"email": "x"}),
        await client.post(REGISTER, content=b"x", headers={"Content-Type": "text/plain"}),
    ]
    for response in responses:  # RFC 6749 5.1 asks token answers for both; every /api/ answer gets the same pair
        assert response.headers.get_list("cache-control") == ["no-store"], response.request.url
        assert response.headers.get_list("pragma") == ["no-cache"], response.request.url
    assert "pragma" not in (await client.get("/.well-known/jwks.json")).headers


async def test_request_id_is_echoed_when_sane_and_replaced_when_not(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "trace-123.abc"})
    replaced = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith <script>"})
    fresh = await client.get("/healthz")

    assert echoed.headers["x-request-id"] == "trace-123.abc"
    assert replaced.headers["x-request-id"] not in {"", "bad id\twith <script>"}
    assert fresh.headers["x-request-id"] != replaced.headers["x-request-id"]


@pytest.mark.parametrize("configured_app", [{"hsts_max_age": 31536000}], indirect=True)
async def test_hsts_when_configured_for_https(configured_app: FastAPI) -> None:
    async with client_for(configured_app) as client:
        response = await client.get("/healthz")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_no_cors_by_default(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        LOGIN, headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    )
    simple = await client.get("/healthz", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers


@pytest.mark.parametrize("configured_app", [{"cors_origins": ["https://app.example.com"]}], indirect=True)
async def test_cors_allows_listed_origins_only(configured_app: FastAPI) -> None:
    async with client_for(configured_app) as client:
        allowed = await client.options(
            LOGIN,
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        other = await client.options(
            LOGIN, headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"}
        )
        simple = await client.get("/healthz", headers={"Origin": "https://evil.example.net"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in simple.headers


@pytest.mark.parametrize("configured_app", [{"cors_origins": ["https://app.example.com"]}], indirect=True)
async def test_a_refused_preflight_is_a_problem_like_every_other_error(configured_app: FastAPI) -> None:
    refusals = {
        "origin": {"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"},
        "method": {"Origin": "https://app.example.com", "Access-Control-Request-Method": "TRACE"},
        "headers": {
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-not-allowed",
        },
    }
    async with client_for(configured_app) as client:
        for refused, headers in refusals.items():
            response = await client.options(LOGIN, headers=headers)

            body = assert_problem(response, 400, "cors_preflight_refused")
            assert refused in str(body["detail"])
            assert "Origin" in response.headers["vary"]  # caches keep refusals apart from grants
            assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("configured_app", [{"cors_origins": ["https://app.example.com"]}], indirect=True)
async def test_cors_exposes_the_headers_clients_act_on(configured_app: FastAPI) -> None:
    async with client_for(configured_app) as client:
        response = await client.post(
            REGISTER,
            json={"email": "cors@example.com", "password": PASSWORD},
            headers={"Origin": "https://app.example.com"},
        )
        unauthorized = await client.get(ME, headers={"Origin": "https://app.example.com"})

    assert response.status_code == 201
    for answer in (response, unauthorized):
        exposed = {h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")}
        assert {"location", "www-authenticate", "x-request-id", "retry-after"} <= exposed
        assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= exposed
    assert response.headers["location"] == "/api/v1/users/me"
    assert "www-authenticate" in unauthorized.headers


@pytest.mark.parametrize("configured_app", [{"trusted_hosts": ["auth.example.com", "*.internal"]}], indirect=True)
async def test_trusted_hosts(configured_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=configured_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.example.com") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/healthz", headers={"Host": "api.internal:8000"})).status_code == 200
        refused = await client.get("/healthz", headers={"Host": "evil.example.net"})
    assert_problem(refused, 400, "invalid_host")
    assert refused.headers["x-content-type-options"] == "nosniff"


async def test_logs_of_a_whole_account_life_hold_no_password_token_or_hash(
    client: httpx.AsyncClient, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    new_password = "a different passphrase entirely"
    secrets: list[str] = [PASSWORD, new_password]

    await client.post(REGISTER, json={"email": "logged@example.com", "password": PASSWORD, "username": "logged"})
    await client.post(LOGIN, json={"login": "logged@example.com", "password": "a wrong password"})
    tokens = (await client.post(LOGIN, json={"login": "logged", "password": PASSWORD})).json()
    refreshed = (await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})).json()
    await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})  # reuse
    tokens = (await client.post(LOGIN, json={"login": "logged", "password": PASSWORD})).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    await client.post(f"{ME}/password", headers=auth, json={"current_password": PASSWORD, "new_password": new_password})
    await client.post(REGISTER, json={"email": "x@example.com", "password": "short"})  # a validation failure
    await client.post(REGISTER, json={"email": "y@example.com", "password": "p" * 2000})
    async with engine.connect() as connection:
        stored_hash = (await connection.execute(text("SELECT password_hash FROM users"))).scalar_one()
    await client.request("DELETE", ME, headers=auth, json={"password": new_password})
    secrets += [
        tokens["access_token"],
        tokens["refresh_token"],
        refreshed["access_token"],
        refreshed["refresh_token"],
        stored_hash,
        stored_hash.rsplit("$", 1)[-1],  # the digest part alone
        "a wrong password",
        "p" * 100,
    ]

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    output = "\n".join(lines)
    events = [json.loads(line)["audit"]["event"] for line in lines if '"audit"' in line]
    assert {"registered", "login_failed", "login_succeeded", "token_refreshed", "refresh_reuse_detected"} <= set(events)
    assert {"password_changed", "account_deleted"} <= set(events)
    assert any('"request_id"' in line for line in lines)
    for secret in secrets:
        assert secret not in output


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", f"{LOGIN}/"), ("POST", f"{REGISTER}/"), ("GET", f"{ME}/"), ("GET", "/healthz/"), ("GET", "/readyz/")],
)
async def test_no_redirect_is_ever_built_from_the_host_header(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(
        method,
        path,
        json={"login": "victim@example.com", "password": PASSWORD} if method == "POST" else None,
        headers={"Host": "evil.example"},
    )

    assert_problem(response, 404, "not_found")
    assert "location" not in response.headers
