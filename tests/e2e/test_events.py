"""GET /api/v1/users/me/events: the owner's security history."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import PASSWORD, Signup
from tests.e2e.test_auth_flow import LOGIN, ME, REFRESH, assert_problem

EVENTS = f"{ME}/events"


async def all_events(client: httpx.AsyncClient, auth: dict[str, str], limit: int = 100) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(EVENTS, headers=auth, params=params)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_the_history_tells_where_and_when_newest_first(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup(username="historian")
    await client.post(LOGIN, json={"login": account.email, "password": "not my password"})
    refreshed = (await client.post(REFRESH, json={"refresh_token": account.tokens["refresh_token"]})).json()
    auth = {"Authorization": f"Bearer {refreshed['access_token']}"}
    await client.patch(
        ME,
        headers=auth,
        json={"full_name": "Ada"},
    )
    await client.post(
        f"{ME}/password", headers=auth, json={"current_password": PASSWORD, "new_password": "another fine passphrase"}
    )

    response = await client.get(EVENTS, headers=auth)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    items = response.json()["items"]
    assert [item["type"] for item in items] == [
        "password_changed",
        "profile_updated",
        "token_refreshed",
        "login_failed",
        "login_succeeded",
        "email_verification_sent",
        "registered",
    ]
    for item in items:
        assert set(item) == {"id", "type", "at", "ip", "user_agent", "session_id", "details"}
        assert item["ip"] == "203.0.113.7"
        assert item["user_agent"].startswith("python-httpx")
    by_type = {item["type"]: item for item in items}
    assert by_type["profile_updated"]["details"] == {"fields": ["full_name"]}
    assert by_type["password_changed"]["details"] == {"revoked_sessions": 0}
    assert by_type["login_failed"]["details"] == {}  # the reason is for operators, not shown here
    assert by_type["login_succeeded"]["session_id"] == by_type["token_refreshed"]["session_id"]


async def test_pages_with_a_cursor(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    for _ in range(4):
        await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})

    first = (await client.get(EVENTS, headers=account.auth, params={"limit": 2})).json()
    everything = await all_events(client, account.auth, limit=2)

    assert len(first["items"]) == 2
    assert first["next_cursor"] is not None
    assert [e["type"] for e in everything] == ["login_succeeded"] * 5 + ["email_verification_sent", "registered"]
    ids = [int(str(e["id"])) for e in everything]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == len(ids)


async def test_only_the_owner_sees_their_history(client: httpx.AsyncClient, signup: Signup) -> None:
    alice, bob = await signup(), await signup()
    await client.post(LOGIN, json={"login": bob.email, "password": "wrong wrong wrong"})

    alices = await all_events(client, alice.auth)
    assert [e["type"] for e in alices] == ["login_succeeded", "email_verification_sent", "registered"]
    assert_problem(await client.get(EVENTS), 401, "invalid_token")


async def test_bad_paging_parameters_are_422(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"cursor": "abc"}, {"cursor": "-1"}):
        assert_problem(await client.get(EVENTS, headers=account.auth, params=params), 422, "validation_error")


async def test_session_revocation_and_reuse_detection_are_recorded(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    other = (await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})).json()
    await client.post(REFRESH, json={"refresh_token": other["refresh_token"]})
    await client.post(REFRESH, json={"refresh_token": other["refresh_token"]})  # replay: the session ends
    third = (await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})).json()
    sessions = (await client.get(f"{ME}/sessions", headers=account.auth)).json()
    third_id = next(s["id"] for s in sessions if not s["current"])
    await client.delete(f"{ME}/sessions/{third_id}", headers=account.auth)
    await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {third['access_token']}"})
    await client.post("/api/v1/auth/logout", headers=account.auth)

    relogin = (await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})).json()
    types = [e["type"] for e in await all_events(client, {"Authorization": f"Bearer {relogin['access_token']}"})]
    assert types[:4] == ["login_succeeded", "logged_out", "session_revoked", "login_succeeded"]
    assert "refresh_reuse_detected" in types


async def test_a_wrong_password_when_confirming_is_recorded(client: httpx.AsyncClient, signup: Signup) -> None:
    """A thief holding the owner's token but not the password shows up in the owner's history."""
    account = await signup()
    await client.post(
        f"{ME}/password", headers=account.auth, json={"current_password": "guess one", "new_password": "x" * 12}
    )
    await client.request("DELETE", ME, headers=account.auth, json={"password": "guess two"})

    items = (await client.get(EVENTS, headers=account.auth)).json()["items"]
    sessions = (await client.get(f"{ME}/sessions", headers=account.auth)).json()
    current = next(s["id"] for s in sessions if s["current"])

    failures = [item for item in items if item["type"] == "password_confirmation_failed"]
    assert [item["details"] for item in failures] == [{"purpose": "account_deletion"}, {"purpose": "password_change"}]
    # The session the wrong password came from is named, so the owner knows which device to end.
    assert all(item["session_id"] == current and item["ip"] == "203.0.113.7" for item in failures)
