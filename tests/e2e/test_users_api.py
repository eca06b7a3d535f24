"""Profile, password change, sessions and account deletion over HTTP."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, Signup
from tests.e2e.test_auth_flow import LOGIN, ME, REFRESH, REGISTER, assert_problem

PASSWORD_URL = "/api/v1/users/me/password"
SESSIONS = "/api/v1/users/me/sessions"
NEW_PASSWORD = "a brand new passphrase"


async def test_me_returns_the_caller(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup(username="meuser", full_name="Me User")

    response = await client.get(ME, headers=account.auth)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == account.user


async def test_me_rejects_missing_malformed_and_foreign_tokens(client: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer abc.def.ghi"},
        {"Authorization": "Basic x"},
    ):
        assert_problem(await client.get(ME, headers=headers), 401, "invalid_token")


async def test_patch_updates_profile_fields(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup(username="before")

    response = await client.patch(ME, headers=account.auth, json={"username": "after", "full_name": "  Ada  "})

    assert response.status_code == 200
    body = response.json()
    assert (body["email"], body["username"], body["full_name"]) == (account.email, "after", "Ada")
    assert body["updated_at"] > account.user["updated_at"]
    assert (await client.get(ME, headers=account.auth)).json() == body
    # The new username logs in; the old one no longer does.
    assert (await client.post(LOGIN, json={"login": "after", "password": PASSWORD})).status_code == 200
    old = await client.post(LOGIN, json={"login": "before", "password": PASSWORD})
    assert_problem(old, 401, "invalid_credentials")


async def test_patch_refuses_the_email_address(client: httpx.AsyncClient, signup: Signup) -> None:
    """The address changes only with the password and a link to the new mailbox (POST /users/me/email)."""
    account = await signup()

    body = assert_problem(
        await client.patch(ME, headers=account.auth, json={"email": "thief@example.com", "full_name": "X"}),
        422,
        "validation_error",
    )
    assert body["errors"] == [{"loc": ["body", "email"], "msg": "Extra inputs are not permitted"}]
    assert (await client.get(ME, headers=account.auth)).json() == account.user


async def test_patch_null_removes_optional_fields_but_not_email(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup(username="removable", full_name="Full Name")

    cleared = await client.patch(ME, headers=account.auth, json={"username": None, "full_name": None})
    assert cleared.status_code == 200
    assert (cleared.json()["username"], cleared.json()["full_name"]) == (None, None)

    assert_problem(await client.patch(ME, headers=account.auth, json={"email": None}), 422, "validation_error")


async def test_patch_conflicts_are_409(client: httpx.AsyncClient, signup: Signup) -> None:
    await signup(email="taken@example.com", username="takenname")
    account = await signup()

    assert_problem(await client.patch(ME, headers=account.auth, json={"username": "TakenName"}), 409, "username_taken")
    # Nothing was half-written.
    assert (await client.get(ME, headers=account.auth)).json() == account.user


async def test_patch_refuses_any_other_field(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()

    for field, value in [
        ("id", str(uuid.uuid4())),
        ("password", "sneaky password"),
        ("roles", ["admin"]),
        ("is_active", False),
        ("email_verified", True),
        ("created_at", "2020-01-01T00:00:00Z"),
    ]:
        response = await client.patch(ME, headers=account.auth, json={field: value})
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"][0]["loc"] == ["body", field]
    assert (await client.get(ME, headers=account.auth)).json() == account.user


async def test_patch_validates_values(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()

    assert_problem(await client.patch(ME, headers=account.auth, json={"username": "x"}), 422, "invalid_username")
    assert_problem(
        await client.patch(ME, headers=account.auth, json={"full_name": "a\u200bb"}), 422, "invalid_full_name"
    )


async def test_change_password_revokes_every_other_session(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    other = (await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})).json()

    response = await client.post(
        PASSWORD_URL, headers=account.auth, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )

    assert response.status_code == 204
    assert (await client.get(ME, headers=account.auth)).status_code == 200  # this session stays
    assert_problem(
        await client.get(ME, headers={"Authorization": f"Bearer {other['access_token']}"}), 401, "invalid_token"
    )
    assert_problem(
        await client.post(REFRESH, json={"refresh_token": other["refresh_token"]}), 401, "invalid_refresh_token"
    )
    assert_problem(
        await client.post(LOGIN, json={"login": account.email, "password": PASSWORD}), 401, "invalid_credentials"
    )
    assert (await client.post(LOGIN, json={"login": account.email, "password": NEW_PASSWORD})).status_code == 200


async def test_change_password_with_the_wrong_current_one_is_403(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()

    response = await client.post(
        PASSWORD_URL, headers=account.auth, json={"current_password": "not it at all", "new_password": NEW_PASSWORD}
    )

    assert_problem(response, 403, "invalid_password")
    assert (await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})).status_code == 200


async def test_change_password_applies_the_policy(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()

    for weak in ["short", account.email.upper()]:
        response = await client.post(
            PASSWORD_URL, headers=account.auth, json={"current_password": PASSWORD, "new_password": weak}
        )
        assert_problem(response, 422, "weak_password")
    assert (await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})).status_code == 200


async def test_sessions_list_marks_the_current_one(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    await client.post(LOGIN, json={"login": account.email, "password": PASSWORD}, headers={"User-Agent": "Firefox/130"})

    response = await client.get(SESSIONS, headers=account.auth)

    assert response.status_code == 200
    sessions = response.json()
    assert len(sessions) == 2
    assert [s["current"] for s in sessions].count(True) == 1
    for session in sessions:
        assert set(session) == {
            "id",
            "amr",
            "sign_in_method",
            "authenticated_at",
            "created_at",
            "last_used_at",
            "user_agent",
            "ip",
            "current",
        }
        assert session["amr"] == ["pwd"]
        assert session["ip"] == "203.0.113.7"
    assert "Firefox/130" in {s["user_agent"] for s in sessions}


async def test_revoking_a_session_kills_it(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    other = (await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})).json()
    sessions = (await client.get(SESSIONS, headers=account.auth)).json()
    other_id = next(s["id"] for s in sessions if not s["current"])

    response = await client.delete(f"{SESSIONS}/{other_id}", headers=account.auth)

    assert response.status_code == 204
    assert_problem(
        await client.get(ME, headers={"Authorization": f"Bearer {other['access_token']}"}), 401, "invalid_token"
    )
    assert [s["current"] for s in (await client.get(SESSIONS, headers=account.auth)).json()] == [True]
    assert_problem(await client.delete(f"{SESSIONS}/{other_id}", headers=account.auth), 404, "session_not_found")


async def test_another_users_session_is_not_found(client: httpx.AsyncClient, signup: Signup) -> None:
    alice, bob = await signup(), await signup()
    bobs_session = (await client.get(SESSIONS, headers=bob.auth)).json()[0]["id"]

    assert_problem(await client.delete(f"{SESSIONS}/{bobs_session}", headers=alice.auth), 404, "session_not_found")
    assert (await client.get(ME, headers=bob.auth)).status_code == 200
    assert_problem(await client.delete(f"{SESSIONS}/{uuid.uuid4()}", headers=alice.auth), 404, "session_not_found")
    assert_problem(await client.delete(f"{SESSIONS}/not-a-uuid", headers=alice.auth), 422, "validation_error")


async def test_delete_account_erases_everything_and_frees_the_email(
    client: httpx.AsyncClient, signup: Signup, engine: AsyncEngine
) -> None:
    survivor = await signup()
    account = await signup(username="leaving")
    second = (await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})).json()
    await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})

    response = await client.request("DELETE", ME, headers=account.auth, json={"password": PASSWORD})

    assert response.status_code == 200
    receipt = response.json()
    assert receipt["user_id"] == account.user["id"]
    assert {e["what"]: e["count"] for e in receipt["erased"]} == {
        "user": 1,
        "sessions": 2,
        "retired_refresh_tokens": 1,
        "security_events": 5,  # registered, its verification link sent, two logins, one refresh
        "email_tokens": 1,  # the verification link, never followed
        "email_outbox": 0,  # signed up and logged in from one device: no new-device notice
        "known_devices": 1,
        "totp_credentials": 0,
        "recovery_codes": 0,
        "mfa_challenges": 0,
        "user_roles": 0,
        "identities": 0,
        "oauth_authorizations": 0,
        "login_codes": 0,
    }
    user_id = account.user["id"]
    async with engine.connect() as connection:
        for table, column in [("users", "id"), ("sessions", "user_id"), ("security_events", "user_id")]:
            count = await connection.execute(
                text(f"SELECT count(*) FROM {table} WHERE {column} = :id"), {"id": user_id}
            )
            assert count.scalar_one() == 0
        assert (await connection.execute(text("SELECT count(*) FROM retired_refresh_tokens"))).scalar_one() == 0
        assert (await connection.execute(text("SELECT count(*) FROM users"))).scalar_one() == 1
        # What stays: one anonymous mark per deletion, for counting; no id, address or agent.
        marks = (await connection.execute(text("SELECT * FROM security_events WHERE type = 'account_deleted'"))).all()
        assert len(marks) == 1
        assert (marks[0].user_id, marks[0].session_id, marks[0].ip, marks[0].user_agent) == (None, None, None, None)
    assert_problem(await client.get(ME, headers=account.auth), 401, "invalid_token")
    assert_problem(
        await client.post(REFRESH, json={"refresh_token": second["refresh_token"]}), 401, "invalid_refresh_token"
    )
    assert (await client.get(ME, headers=survivor.auth)).status_code == 200
    again = await client.post(REGISTER, json={"email": account.email, "password": PASSWORD, "username": "leaving"})
    assert again.status_code == 201


async def test_delete_account_needs_the_password(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()

    wrong = await client.request("DELETE", ME, headers=account.auth, json={"password": "not the password"})
    missing = await client.request("DELETE", ME, headers=account.auth, json={})

    assert_problem(wrong, 403, "invalid_password")
    assert_problem(missing, 422, "validation_error")
    assert (await client.get(ME, headers=account.auth)).status_code == 200
