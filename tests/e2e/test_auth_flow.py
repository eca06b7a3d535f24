"""Register, login, refresh, logout over HTTP, with the rules that must hold."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, Signup
from usermgmt.application.errors import ServiceBusy
from usermgmt.container import Container

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert {"type", "title", "detail"} <= body.keys()
    return body


async def test_register_returns_the_user_with_location_and_never_a_hash(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REGISTER, json={"email": "Ada@Example.com", "password": PASSWORD, "username": "ada", "full_name": "Ada L."}
    )

    assert response.status_code == 201
    assert response.headers["location"] == "/api/v1/users/me"
    body = response.json()
    assert set(body) == {
        "id",
        "email",
        "username",
        "full_name",
        "email_verified",
        "is_active",
        "created_at",
        "updated_at",
        "pending_email",
        "has_password",
    }
    assert body["email"] == "Ada@example.com"
    assert (body["username"], body["full_name"], body["email_verified"], body["is_active"]) == (
        "ada",
        "Ada L.",
        False,
        True,
    )
    assert "hash" not in response.text and PASSWORD not in response.text


async def test_email_is_unique_case_insensitively(client: httpx.AsyncClient) -> None:
    assert (await client.post(REGISTER, json={"email": "alice@example.com", "password": PASSWORD})).status_code == 201

    again = await client.post(REGISTER, json={"email": "ALICE@Example.COM", "password": PASSWORD})

    assert_problem(again, 409, "email_taken")


async def test_unicode_lookalike_cannot_share_or_hijack_an_email(client: httpx.AsyncClient) -> None:
    assert (await client.post(REGISTER, json={"email": "mike@example.com", "password": PASSWORD})).status_code == 201
    other = "another password 123"
    lookalike = await client.post(REGISTER, json={"email": "mıke@example.com", "password": other})
    assert lookalike.status_code == 201  # a different address, so a different account

    # Logging in as the look-alike never reaches mike's account, and vice versa.
    as_lookalike = await client.post(LOGIN, json={"login": "mıke@example.com", "password": PASSWORD})
    assert_problem(as_lookalike, 401, "invalid_credentials")
    as_mike = await client.post(LOGIN, json={"login": "MIKE@example.com", "password": PASSWORD})
    assert as_mike.status_code == 200
    me = await client.get(ME, headers={"Authorization": f"Bearer {as_mike.json()['access_token']}"})
    assert me.json()["email"] == "mike@example.com"


async def test_username_is_unique_case_insensitively_and_validated(client: httpx.AsyncClient) -> None:
    first = await client.post(REGISTER, json={"email": "a@example.com", "password": PASSWORD, "username": "Bob.B"})
    assert first.status_code == 201

    taken = await client.post(REGISTER, json={"email": "b@example.com", "password": PASSWORD, "username": "bob.b"})
    assert_problem(taken, 409, "username_taken")
    for bad in ["ab", "x" * 33, "has space", "émile", "semi;colon"]:
        response = await client.post(REGISTER, json={"email": "c@example.com", "password": PASSWORD, "username": bad})
        assert_problem(response, 422, "invalid_username")


async def test_invalid_emails_are_refused(client: httpx.AsyncClient) -> None:
    for bad in ["no-at-sign", "two@@example.com", "a@b", "spaces in@example.com", "x" * 250 + "@example.com"]:
        response = await client.post(REGISTER, json={"email": bad, "password": PASSWORD})
        assert_problem(response, 422, "invalid_email")


async def test_password_policy(client: httpx.AsyncClient) -> None:
    cases = {
        "short": "seven77",
        "too long": "x" * 129,
        "the email": "Policy@Example.com",
        "the username": "policy_user",
        "common": "iloveyou",
        "common with decoration": "Password123!",
        "the username with digits": "policy_user2024",
        "the name": "Ada Lovelace!",
        "the email's local part": "policy1987",
    }
    for password in cases.values():
        response = await client.post(
            REGISTER,
            json={
                "email": "policy@example.com",
                "password": password,
                "username": "policy_user",
                "full_name": "Ada Lovelace",
            },
        )
        body = assert_problem(response, 422, "weak_password")
        assert password not in str(body)
    # No composition rules: eight lowercase letters are fine; length counts characters after NFKC, not bytes.
    ok = await client.post(REGISTER, json={"email": "policy@example.com", "password": "qzmvkpwt"})
    assert ok.status_code == 201
    emoji = await client.post(REGISTER, json={"email": "emoji@example.com", "password": "🔑" * 8})
    assert emoji.status_code == 201


async def test_passwords_differing_after_byte_72_do_not_both_verify(client: httpx.AsyncClient) -> None:
    long_password = "a" * 72 + "the real tail"
    assert (
        await client.post(REGISTER, json={"email": "long@example.com", "password": long_password})
    ).status_code == 201

    wrong_tail = await client.post(LOGIN, json={"login": "long@example.com", "password": "a" * 72 + "another tail"})
    right = await client.post(LOGIN, json={"login": "long@example.com", "password": long_password})

    assert_problem(wrong_tail, 401, "invalid_credentials")
    assert right.status_code == 200


async def test_concurrent_registrations_of_one_email_give_one_201_and_one_409(client: httpx.AsyncClient) -> None:
    async def register(i: int) -> httpx.Response:
        return await client.post(REGISTER, json={"email": "race@example.com", "password": f"{PASSWORD} {i}"})

    responses = await asyncio.gather(*(register(i) for i in range(6)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409, 409, 409]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "email_taken")


async def test_login_by_email_or_username_returns_a_token_pair(client: httpx.AsyncClient, signup: Signup) -> None:
    await signup(email="grace@example.com", username="Grace")

    by_email = await client.post(LOGIN, json={"login": "GRACE@example.com", "password": PASSWORD})
    by_username = await client.post(LOGIN, json={"login": "grace", "password": PASSWORD})

    for response in (by_email, by_username):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        pair = response.json()
        assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in"}
        assert pair["token_type"] == "bearer"
        assert pair["expires_in"] == 900
        assert pair["refresh_expires_in"] == 30 * 24 * 3600


async def test_login_form_for_the_docs_authorize_button(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()

    response = await client.post(LOGIN, data={"username": account.email, "password": PASSWORD})

    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"
    missing = await client.post(LOGIN, data={"username": account.email})
    assert_problem(missing, 422, "validation_error")


async def test_unknown_user_and_wrong_password_fail_identically(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()

    unknown = await client.post(LOGIN, json={"login": "nobody@example.com", "password": PASSWORD})
    wrong = await client.post(LOGIN, json={"login": account.email, "password": "wrong password!"})
    unknown_username = await client.post(LOGIN, json={"login": "nobody", "password": PASSWORD})
    malformed_login = await client.post(LOGIN, json={"login": "x", "password": PASSWORD})

    bodies = [
        assert_problem(r, 401, "invalid_credentials") for r in (unknown, wrong, unknown_username, malformed_login)
    ]
    assert all(body == bodies[0] for body in bodies)


async def test_refresh_rotates_and_the_old_token_is_dead(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    first = account.tokens["refresh_token"]

    rotated = await client.post(REFRESH, json={"refresh_token": first})
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    second = rotated.json()["refresh_token"]
    assert second != first
    assert len(second) >= 43  # 256 bits, base64url

    me = await client.get(ME, headers={"Authorization": f"Bearer {rotated.json()['access_token']}"})
    assert me.status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(
    client: httpx.AsyncClient, signup: Signup
) -> None:
    account = await signup()
    stolen = account.tokens["refresh_token"]
    legit = (await client.post(REFRESH, json={"refresh_token": stolen})).json()

    replay = await client.post(REFRESH, json={"refresh_token": stolen})

    assert_problem(replay, 401, "invalid_refresh_token")
    # The session is gone: the newest refresh token and the access tokens die with it.
    assert_problem(
        await client.post(REFRESH, json={"refresh_token": legit["refresh_token"]}), 401, "invalid_refresh_token"
    )
    me = await client.get(ME, headers={"Authorization": f"Bearer {legit['access_token']}"})
    assert_problem(me, 401, "invalid_token")


async def test_concurrent_refreshes_with_one_token_let_at_most_one_succeed(
    client: httpx.AsyncClient, signup: Signup
) -> None:
    account = await signup()
    token = account.tokens["refresh_token"]

    responses = await asyncio.gather(*(client.post(REFRESH, json={"refresh_token": token}) for _ in range(5)))

    successes = [r for r in responses if r.status_code == 200]
    assert len(successes) <= 1
    for response in responses:
        if response.status_code != 200:
            assert_problem(response, 401, "invalid_refresh_token")


async def test_unknown_refresh_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(REFRESH, json={"refresh_token": "not-a-real-token"})
    assert_problem(response, 401, "invalid_refresh_token")


async def test_refresh_tokens_are_stored_only_as_hashes(
    client: httpx.AsyncClient, signup: Signup, engine: AsyncEngine
) -> None:
    account = await signup()
    rotated = (await client.post(REFRESH, json={"refresh_token": account.tokens["refresh_token"]})).json()

    async with engine.connect() as connection:
        stored = (await connection.execute(text("SELECT refresh_token_hash FROM sessions"))).scalars().all()
        retired = (await connection.execute(text("SELECT token_hash FROM retired_refresh_tokens"))).scalars().all()

    for raw in (account.tokens["refresh_token"], rotated["refresh_token"]):
        assert raw not in stored and raw not in retired
    assert len(stored) == 1 and len(retired) == 1


async def test_logout_kills_this_sessions_refresh_and_access_tokens_only(
    client: httpx.AsyncClient, signup: Signup
) -> None:
    account = await signup()
    other = (await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})).json()

    response = await client.post(LOGOUT, headers=account.auth)

    assert response.status_code == 204
    assert_problem(await client.get(ME, headers=account.auth), 401, "invalid_token")
    assert_problem(
        await client.post(REFRESH, json={"refresh_token": account.tokens["refresh_token"]}),
        401,
        "invalid_refresh_token",
    )
    assert (await client.get(ME, headers={"Authorization": f"Bearer {other['access_token']}"})).status_code == 200


async def test_logout_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post(LOGOUT)
    assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_deactivated_user_can_neither_use_tokens_nor_log_in(
    client: httpx.AsyncClient, signup: Signup, engine: AsyncEngine
) -> None:
    account = await signup()
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE users SET is_active = false"))

    assert_problem(await client.get(ME, headers=account.auth), 401, "invalid_token")
    assert_problem(
        await client.post(REFRESH, json={"refresh_token": account.tokens["refresh_token"]}),
        401,
        "invalid_refresh_token",
    )
    login = await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})
    assert_problem(login, 403, "account_disabled")
    wrong = await client.post(LOGIN, json={"login": account.email, "password": "not the password"})
    assert_problem(wrong, 401, "invalid_credentials")  # no hint that the account exists without the password


async def test_a_login_shed_under_load_is_a_503_with_retry_after_and_spends_nothing(
    client: httpx.AsyncClient, signup: Signup, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = await signup()
    hasher = container.hasher()

    def saturated() -> None:
        raise ServiceBusy(retry_after=1.2)

    monkeypatch.setattr(hasher, "admission", saturated)
    shed = await client.post(LOGIN, json={"login": account.email, "password": account.password})
    body = assert_problem(shed, 503, "service_busy")
    assert shed.headers["retry-after"] == "2"
    assert "2 seconds" in str(body["detail"])

    monkeypatch.undo()
    assert (await client.post(LOGIN, json={"login": account.email, "password": account.password})).status_code == 200
