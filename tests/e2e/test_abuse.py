"""Rate limits over HTTP: 429 problem+json with Retry-After, and an owner who is never locked out everywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, make_container, make_settings
from tests.e2e.test_auth_flow import LOGIN, ME, REFRESH, REGISTER, assert_problem
from usermgmt.entrypoints.http.app import create_app

WRONG = "definitely not the password"

# The limits of ``limited_app``: each assertion of a 429 names the rule it expects to have refused.
LOGIN_FAILURES_PER_ACCOUNT_IP = "3/15m"
LOGIN_FAILURES_PER_ACCOUNT = "6/15m"
LOGIN_PER_IP = "20/1m"
REGISTRATIONS_PER_IP = "4/1h"
REFRESHES_PER_SESSION = "3/1m"
PASSWORD_CHANGES_PER_USER = "2/15m"
DELETIONS_PER_USER = "2/15m"
REFRESH_FAILURES_PER_IP = "3/1m"
PROFILE_UPDATES_PER_USER = "2/15m"
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def client_at(app: FastAPI, ip: str, **headers: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


@pytest.fixture
async def limited_app(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, keys_dir: Path, clean_database: AsyncEngine
) -> AsyncIterator[FastAPI]:
    overrides: dict[str, Any] = {
        "rate_limit_login_failures_per_account_ip": LOGIN_FAILURES_PER_ACCOUNT_IP,
        "rate_limit_login_failures_per_account": LOGIN_FAILURES_PER_ACCOUNT,
        "rate_limit_login_per_ip": LOGIN_PER_IP,
        "rate_limit_registrations_per_ip": REGISTRATIONS_PER_IP,
        "rate_limit_refreshes_per_session": REFRESHES_PER_SESSION,
        "rate_limit_password_changes_per_user": PASSWORD_CHANGES_PER_USER,
        "rate_limit_deletions_per_user": DELETIONS_PER_USER,
        "rate_limit_refresh_failures_per_ip": REFRESH_FAILURES_PER_IP,
        "rate_limit_profile_updates_per_user": PROFILE_UPDATES_PER_USER,
        **getattr(request, "param", {}),
    }
    settings = make_settings(database_url, tmp_path, signing_keys_dir=keys_dir, **overrides)
    app = create_app(make_container(settings))
    async with LifespanManager(app):
        yield app


async def register(app: FastAPI, email: str = "owner@example.com", ip: str = "198.51.100.1") -> None:
    async with client_at(app, ip) as client:
        assert (await client.post(REGISTER, json={"email": email, "password": PASSWORD})).status_code == 201


def assert_rate_limited(response: httpx.Response, rate: str) -> None:
    """429 problem+json from the rule ``rate`` (``"3/15m"``), whose window this test has just filled: the headers
    give that rule's count, and a wait of most of its period (a test takes seconds, not minutes), also in the
    detail. Another rule's refusal would show another count or another period."""
    count, _, period = rate.partition("/")
    window = int(period[:-1]) * SECONDS[period[-1]]
    body = assert_problem(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert window - min(60, window // 2) < retry_after <= window, (retry_after, rate)
    assert response.headers["ratelimit-limit"] == count
    assert response.headers["ratelimit-reset"] == str(retry_after)
    assert response.headers["ratelimit-remaining"] == "0"
    assert f"{retry_after} seconds" in str(body["detail"])


def assert_wrong_password(response: httpx.Response) -> None:
    assert_problem(response, 401, "invalid_credentials")


async def test_failed_logins_throttle_that_account_from_that_ip_only(limited_app: FastAPI) -> None:
    await register(limited_app)
    async with client_at(limited_app, "203.0.113.66") as attacker, client_at(limited_app, "192.0.2.10") as owner:
        for _ in range(3):
            assert_problem(
                await attacker.post(LOGIN, json={"login": "owner@example.com", "password": WRONG}),
                401,
                "invalid_credentials",
            )
        # The fourth try is refused before the password is even checked, right or wrong.
        for password in (WRONG, PASSWORD):
            refused = await attacker.post(LOGIN, json={"login": "owner@example.com", "password": password})
            assert_rate_limited(refused, LOGIN_FAILURES_PER_ACCOUNT_IP)

        # The owner, elsewhere, is not locked out.
        assert (await owner.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})).status_code == 200


async def test_unknown_accounts_are_throttled_the_same_way(limited_app: FastAPI) -> None:
    async with client_at(limited_app, "203.0.113.67") as attacker:
        statuses = [
            (await attacker.post(LOGIN, json={"login": "ghost@example.com", "password": WRONG})).status_code
            for _ in range(4)
        ]
    assert statuses == [401, 401, 401, 429]  # no way to tell which emails exist from the throttling


async def test_distributed_guessing_hits_the_account_ceiling_but_known_ips_still_get_in(limited_app: FastAPI) -> None:
    await register(limited_app)
    async with client_at(limited_app, "192.0.2.20") as owner:  # the owner has a live session from here
        assert (await owner.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})).status_code == 200

    # Every password check takes a slot of the account's ceiling (6), the owner's own successful one above too:
    # five attackers, one failure each and so under the per-IP limit, fill it; the sixth is refused.
    for i in range(5):
        async with client_at(limited_app, f"203.0.113.{100 + i}") as attacker:
            assert_wrong_password(await attacker.post(LOGIN, json={"login": "owner@example.com", "password": WRONG}))
    async with client_at(limited_app, "203.0.113.105") as sixth:
        refused = await sixth.post(LOGIN, json={"login": "owner@example.com", "password": WRONG})
        assert_rate_limited(refused, LOGIN_FAILURES_PER_ACCOUNT)

    async with client_at(limited_app, "203.0.113.200") as stranger:
        refused = await stranger.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})
        assert_rate_limited(refused, LOGIN_FAILURES_PER_ACCOUNT)  # the account's ceiling, not the IP's limit
    async with client_at(limited_app, "192.0.2.20") as owner:
        assert (await owner.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})).status_code == 200


async def test_a_successful_login_clears_the_failures_from_that_ip(limited_app: FastAPI) -> None:
    await register(limited_app)
    async with client_at(limited_app, "192.0.2.30") as owner:
        for _ in range(2):  # one short of the account-and-IP limit
            assert_wrong_password(await owner.post(LOGIN, json={"login": "owner@example.com", "password": WRONG}))
        assert (await owner.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})).status_code == 200
        for _ in range(2):  # a typo or two later does not hit the limit left over from before
            assert_wrong_password(await owner.post(LOGIN, json={"login": "owner@example.com", "password": WRONG}))
        assert (await owner.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})).status_code == 200
        # The count starts again from that success: the whole limit (3) of failures, and then a refusal.
        for _ in range(3):
            assert_wrong_password(await owner.post(LOGIN, json={"login": "owner@example.com", "password": WRONG}))
        refused = await owner.post(LOGIN, json={"login": "owner@example.com", "password": WRONG})
        assert_rate_limited(refused, LOGIN_FAILURES_PER_ACCOUNT_IP)


async def test_spoofed_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_limit(limited_app: FastAPI) -> None:
    await register(limited_app)
    statuses = []
    for i in range(4):
        async with client_at(limited_app, "203.0.113.9", **{"X-Forwarded-For": f"10.9.9.{i}"}) as attacker:
            response = await attacker.post(LOGIN, json={"login": "owner@example.com", "password": WRONG})
            statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429]


@pytest.mark.parametrize("limited_app", [{"trusted_proxies": ["10.0.0.0/8"]}], indirect=True)
async def test_x_forwarded_for_is_believed_from_a_trusted_proxy(limited_app: FastAPI) -> None:
    await register(limited_app)
    statuses = []
    for i in range(4):  # four clients behind our proxy: each is its own IP, so none is throttled
        async with client_at(limited_app, "10.0.0.5", **{"X-Forwarded-For": f"198.51.100.{i}"}) as via_proxy:
            response = await via_proxy.post(LOGIN, json={"login": "owner@example.com", "password": WRONG})
            statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 401]
    async with client_at(limited_app, "10.0.0.5", **{"X-Forwarded-For": "1.2.3.4, 198.51.100.77"}) as via_proxy:
        tokens = (await via_proxy.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})).json()
        sessions = (
            await via_proxy.get(f"{ME}/sessions", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        ).json()
    assert {s["ip"] for s in sessions} == {"198.51.100.77"}  # the hop our proxy saw, not what the client claimed

    # A proxy that adds its own X-Forwarded-For line (instead of appending to the client's) is read the same way.
    async with client_at(limited_app, "10.0.0.5") as via_proxy:
        two_lines = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.88")]
        tokens = (
            await via_proxy.post(
                LOGIN, json={"login": "owner@example.com", "password": PASSWORD}, headers=httpx.Headers(two_lines)
            )
        ).json()
        sessions = (
            await via_proxy.get(f"{ME}/sessions", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        ).json()
    assert "198.51.100.88" in {s["ip"] for s in sessions}
    assert "6.6.6.6" not in {s["ip"] for s in sessions}


async def test_registrations_per_ip(limited_app: FastAPI) -> None:
    async with client_at(limited_app, "203.0.113.50") as client:
        statuses = [
            (await client.post(REGISTER, json={"email": f"bulk{i}@example.com", "password": PASSWORD})).status_code
            for i in range(5)
        ]
        assert statuses == [201, 201, 201, 201, 429]
        refused = await client.post(REGISTER, json={"email": "bulk9@example.com", "password": PASSWORD})
        assert_rate_limited(refused, REGISTRATIONS_PER_IP)
    await register(limited_app, "other@example.com", ip="203.0.113.51")


async def test_refreshes_per_session(limited_app: FastAPI) -> None:
    await register(limited_app)
    async with client_at(limited_app, "192.0.2.40") as client:
        token = (await client.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})).json()[
            "refresh_token"
        ]
        for _ in range(3):
            response = await client.post(REFRESH, json={"refresh_token": token})
            assert response.status_code == 200
            token, access = response.json()["refresh_token"], response.json()["access_token"]
        assert_rate_limited(await client.post(REFRESH, json={"refresh_token": token}), REFRESHES_PER_SESSION)
        # Refused, not revoked: the session lives on.
        assert (await client.get(ME, headers={"Authorization": f"Bearer {access}"})).status_code == 200


async def test_password_changes_and_deletions_per_user(limited_app: FastAPI) -> None:
    await register(limited_app)
    async with client_at(limited_app, "192.0.2.50") as client:
        tokens = (await client.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        body = {"current_password": WRONG, "new_password": "a new passphrase here"}
        for _ in range(2):
            assert (await client.post(f"{ME}/password", headers=auth, json=body)).status_code == 403
        assert_rate_limited(await client.post(f"{ME}/password", headers=auth, json=body), PASSWORD_CHANGES_PER_USER)
        for _ in range(2):
            assert (await client.request("DELETE", ME, headers=auth, json={"password": WRONG})).status_code == 403
        refused = await client.request("DELETE", ME, headers=auth, json={"password": PASSWORD})
        assert_rate_limited(refused, DELETIONS_PER_USER)
        assert (await client.get(ME, headers=auth)).status_code == 200


@pytest.mark.parametrize("limited_app", [{"rate_limits_enabled": False}], indirect=True)
async def test_limits_can_be_switched_off(limited_app: FastAPI) -> None:
    async with client_at(limited_app, "203.0.113.70") as client:
        statuses = {
            (await client.post(LOGIN, json={"login": "ghost@example.com", "password": WRONG})).status_code
            for _ in range(8)
        }
    assert statuses == {401}


async def test_refused_refresh_tokens_throttle_that_ip(limited_app: FastAPI) -> None:
    await register(limited_app)
    async with client_at(limited_app, "192.0.2.60") as owner:
        token = (await owner.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})).json()[
            "refresh_token"
        ]
    async with client_at(limited_app, "203.0.113.61") as guesser:
        for i in range(3):
            assert_problem(
                await guesser.post(REFRESH, json={"refresh_token": f"guess-{i}"}), 401, "invalid_refresh_token"
            )
        assert_rate_limited(await guesser.post(REFRESH, json={"refresh_token": "guess-4"}), REFRESH_FAILURES_PER_IP)
        refused = await guesser.post(REFRESH, json={"refresh_token": token})  # refused before the lookup
        assert_rate_limited(refused, REFRESH_FAILURES_PER_IP)
    async with client_at(limited_app, "192.0.2.60") as owner:  # the owner, elsewhere, is unaffected
        assert (await owner.post(REFRESH, json={"refresh_token": token})).status_code == 200


async def test_profile_updates_per_user(limited_app: FastAPI) -> None:
    await register(limited_app)
    async with client_at(limited_app, "192.0.2.70") as client:
        tokens = (await client.post(LOGIN, json={"login": "owner@example.com", "password": PASSWORD})).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        for name in ("One", "Two"):
            assert (await client.patch(ME, headers=auth, json={"full_name": name})).status_code == 200
        # Each username change is also a probe of whether another account holds it: bounded.
        refused = await client.patch(ME, headers=auth, json={"username": "probe"})
        assert_rate_limited(refused, PROFILE_UPDATES_PER_USER)
        assert (await client.get(ME, headers=auth)).json()["full_name"] == "Two"
