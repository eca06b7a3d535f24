"""The admin API over HTTP on PostgreSQL: an administrator, a support agent with a custom role, and a plain user
(refused everywhere); cursor paging over 250 users; a disabled user's tokens refused at once; the last
administrator kept; roles in tokens and read fresh; the audit trail; the admin rate limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import jwt as pyjwt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import Account, Signup, make_container, make_settings, running, signup_through
from tests.e2e.test_auth_flow import assert_problem
from tests.e2e.test_mfa import code_at, enrol, sent_notices
from usermgmt.application import commands
from usermgmt.config import Settings
from usermgmt.container import Container
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import Email, PasswordHash, UserId

ADMIN = "/api/v1/admin"
SUPPORT_PERMISSIONS = ["events:read", "sessions:revoke", "users:read"]


async def grant(container: Container, email: str, role: str) -> None:
    """What ``usermgmt roles grant`` does."""
    await container.change_role_by_email()(commands.ChangeRoleByEmail(email=email, role=role, grant=True))


@dataclass
class Cast:
    admin: Account
    support: Account
    plain: Account


@pytest.fixture
async def cast(client: httpx.AsyncClient, signup: Signup, container: Container) -> Cast:
    admin = await signup("admin@example.com")
    await grant(container, admin.email, "admin")
    created = await client.post(
        f"{ADMIN}/roles",
        json={"name": "support", "permissions": SUPPORT_PERMISSIONS, "description": "Helpdesk"},
        headers=admin.auth,
    )
    assert created.status_code == 201, created.text
    support = await signup("agent@example.com")
    granted = await client.put(
        f"{ADMIN}/users/{support.user['id']}/roles", json={"roles": ["support"]}, headers=admin.auth
    )
    assert granted.status_code == 200, granted.text
    return Cast(admin=admin, support=support, plain=await signup("plain@example.com"))


def every_route(target: str) -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(method, path, body, the permission it needs) for every admin route, aimed at user ``target``."""
    user = f"{ADMIN}/users/{target}"
    return [
        ("GET", f"{ADMIN}/users", None, "users:read"),
        ("GET", user, None, "users:read"),
        ("PATCH", user, {"full_name": "X"}, "users:write"),
        ("POST", f"{user}/disable", None, "users:disable"),
        ("POST", f"{user}/enable", None, "users:disable"),
        ("DELETE", user, None, "users:delete"),
        ("GET", f"{user}/sessions", None, "users:read"),
        ("DELETE", f"{user}/sessions", None, "sessions:revoke"),
        ("GET", f"{user}/events", None, "events:read"),
        ("PUT", f"{user}/roles", {"roles": []}, "roles:manage"),
        ("POST", f"{user}/mfa/reset", None, "users:write"),
        ("POST", f"{user}/password-reset", None, "users:write"),
        ("GET", f"{ADMIN}/roles", None, "roles:manage"),
        ("POST", f"{ADMIN}/roles", {"name": "other", "permissions": []}, "roles:manage"),
        ("PATCH", f"{ADMIN}/roles/support", {"description": "x"}, "roles:manage"),
        ("DELETE", f"{ADMIN}/roles/support", None, "roles:manage"),
        ("GET", f"{ADMIN}/events", None, "events:read"),
        ("GET", f"{ADMIN}/stats", None, "events:read"),
    ]


async def call(client: httpx.AsyncClient, method: str, path: str, body: Any, account: Account) -> httpx.Response:
    return await client.request(method, path, json=body, headers=account.auth)


async def test_a_plain_user_is_refused_everywhere_naming_the_permission(client: httpx.AsyncClient, cast: Cast) -> None:
    for method, path, body, permission in every_route(cast.support.user["id"]):
        answer = await call(client, method, path, body, cast.plain)

        problem = assert_problem(answer, 403, "insufficient_permission")
        assert problem["permission"] == permission, (method, path)
        assert permission in str(problem["detail"])
    assert (await client.get(f"{ADMIN}/users")).status_code == 401  # and without a token: 401, as everywhere


async def test_the_support_role_may_do_what_it_grants_and_nothing_else(client: httpx.AsyncClient, cast: Cast) -> None:
    granted = {"users:read", "events:read", "sessions:revoke"}
    for method, path, body, permission in every_route(cast.plain.user["id"]):
        answer = await call(client, method, path, body, cast.support)
        if permission in granted:
            assert answer.status_code in {200, 204}, (method, path, answer.text)
        else:
            assert assert_problem(answer, 403, "insufficient_permission")["permission"] == permission


async def test_the_support_agent_sees_users_with_roles_and_the_detail_view(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    listed = await client.get(f"{ADMIN}/users", headers=cast.support.auth)
    assert listed.status_code == 200
    by_email = {item["email"]: item for item in listed.json()["items"]}
    assert [item["email"] for item in listed.json()["items"]] == [
        "plain@example.com",
        "agent@example.com",
        "admin@example.com",
    ]
    assert by_email["admin@example.com"]["roles"] == ["admin"]
    assert by_email["agent@example.com"]["roles"] == ["support"]
    assert listed.json()["next_cursor"] is None

    detail = await client.get(f"{ADMIN}/users/{cast.plain.user['id']}", headers=cast.support.auth)
    assert detail.status_code == 200
    body = detail.json()
    assert body["roles"] == [] and body["last_sign_in_at"] is not None
    assert body["mfa"] == {"totp_enabled": False, "enabled_at": None, "recovery_codes_left": 0}
    assert "password_hash" not in body
    missing = await client.get(f"{ADMIN}/users/{uuid4()}", headers=cast.support.auth)
    assert_problem(missing, 404, "user_not_found")


async def test_cursor_paging_over_250_users(client: httpx.AsyncClient, cast: Cast, container: Container) -> None:
    start = datetime.now(UTC) - timedelta(days=1)
    async with container.uow() as uow:
        for n in range(250):
            await uow.users.add(
                User.register(
                    id=UserId(uuid4()),
                    email=Email(f"bulk{n:03}@example.com"),
                    password_hash=PasswordHash("$2b$04$" + "x" * 53),
                    now=start + timedelta(seconds=n // 3),  # three at a time: the id orders those
                )
            )
        await uow.commit()

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 100, "query": "BULK"}
        if cursor:
            params["cursor"] = cursor
        answer = await client.get(f"{ADMIN}/users", params=params, headers=cast.admin.auth)
        assert answer.status_code == 200, answer.text
        pages += 1
        seen += [item["email"] for item in answer.json()["items"]]
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break

    assert pages == 3 and len(seen) == len(set(seen)) == 250
    instants = [int(email[4:7]) // 3 for email in seen]
    assert instants == sorted(instants, reverse=True)  # newest first (the id orders one instant's three)
    for bad in ({"limit": 0}, {"limit": 101}, {"status": "sleeping"}):
        assert_problem(await client.get(f"{ADMIN}/users", params=bad, headers=cast.admin.auth), 422, "validation_error")
    bad_cursor = await client.get(f"{ADMIN}/users", params={"cursor": "bm9wZQ"}, headers=cast.admin.auth)
    assert_problem(bad_cursor, 422, "invalid_cursor")
    admins = await client.get(f"{ADMIN}/users", params={"role": "admin"}, headers=cast.admin.auth)
    assert [item["email"] for item in admins.json()["items"]] == ["admin@example.com"]


async def test_a_disabled_users_tokens_are_refused_at_once_and_enabling_lets_them_back(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    victim = cast.plain
    assert (await client.get("/api/v1/users/me", headers=victim.auth)).status_code == 200

    disabled = await client.post(f"{ADMIN}/users/{victim.user['id']}/disable", headers=cast.admin.auth)

    assert disabled.status_code == 204
    assert_problem(await client.get("/api/v1/users/me", headers=victim.auth), 401, "invalid_token")
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": victim.tokens["refresh_token"]})
    assert_problem(refreshed, 401, "invalid_refresh_token")
    login = await client.post("/api/v1/auth/login", json={"login": victim.email, "password": victim.password})
    assert_problem(login, 403, "account_disabled")
    listed = await client.get(f"{ADMIN}/users", params={"status": "disabled"}, headers=cast.admin.auth)
    assert [item["email"] for item in listed.json()["items"]] == [victim.email]

    assert (await client.post(f"{ADMIN}/users/{victim.user['id']}/enable", headers=cast.admin.auth)).status_code == 204
    again = await client.post("/api/v1/auth/login", json={"login": victim.email, "password": victim.password})
    assert again.status_code == 200
    history = await client.get(
        "/api/v1/users/me/events", headers={"Authorization": f"Bearer {again.json()['access_token']}"}
    )
    shown = {item["type"]: item["details"] for item in history.json()["items"]}
    assert shown["account_disabled"] == {"sessions_ended": 1, "by": "administrator"}
    assert shown["account_enabled"] == {"by": "administrator"}
    assert all("actor_id" not in item for item in history.json()["items"])  # the owner's view names no administrator


async def test_the_last_admin_is_kept(client: httpx.AsyncClient, cast: Cast, container: Container) -> None:
    me = cast.admin.user["id"]
    for method, path, body in (
        ("PUT", f"{ADMIN}/users/{me}/roles", {"roles": ["support"]}),
        ("POST", f"{ADMIN}/users/{me}/disable", None),
        ("DELETE", f"{ADMIN}/users/{me}", None),
        ("DELETE", "/api/v1/users/me", {"password": cast.admin.password}),
    ):
        assert_problem(await call(client, method, path, body, cast.admin), 409, "last_admin")

    await grant(container, cast.plain.email, "admin")
    handed_over = await client.put(f"{ADMIN}/users/{me}/roles", json={"roles": []}, headers=cast.admin.auth)
    assert handed_over.json() == {"roles": []}
    assert_problem(await client.get(f"{ADMIN}/roles", headers=cast.admin.auth), 403, "insufficient_permission")


async def test_roles_crud_and_its_errors(client: httpx.AsyncClient, cast: Cast) -> None:
    auth = cast.admin.auth
    listed = await client.get(f"{ADMIN}/roles", headers=auth)
    assert [(r["name"], r["builtin"]) for r in listed.json()] == [("admin", True), ("support", False)]
    assert len(listed.json()[0]["permissions"]) == 7

    assert_problem(
        await client.post(f"{ADMIN}/roles", json={"name": "support", "permissions": []}, headers=auth),
        409,
        "role_exists",
    )
    unknown = await client.post(f"{ADMIN}/roles", json={"name": "pilot", "permissions": ["users:fly"]}, headers=auth)
    assert assert_problem(unknown, 422, "unknown_permission")["errors"] == [
        {"loc": ["body", "permissions"], "msg": unknown.json()["detail"]}
    ]
    assert_problem(
        await client.post(f"{ADMIN}/roles", json={"name": "Bad Name", "permissions": []}, headers=auth),
        422,
        "invalid_role_name",
    )
    assert_problem(
        await client.patch(f"{ADMIN}/roles/admin", json={"permissions": []}, headers=auth), 409, "role_protected"
    )
    assert_problem(await client.delete(f"{ADMIN}/roles/admin", headers=auth), 409, "role_protected")
    assert_problem(await client.delete(f"{ADMIN}/roles/nobody", headers=auth), 404, "role_not_found")
    assert_problem(
        await client.patch(f"{ADMIN}/roles/nobody", json={"description": "x"}, headers=auth), 404, "role_not_found"
    )
    unknown_role = await client.put(
        f"{ADMIN}/users/{cast.plain.user['id']}/roles", json={"roles": ["support", "ghost"]}, headers=auth
    )
    assert "ghost" in assert_problem(unknown_role, 422, "unknown_role")["detail"]
    assert_problem(
        await client.put(f"{ADMIN}/users/{uuid4()}/roles", json={"roles": []}, headers=auth), 404, "user_not_found"
    )

    changed = await client.patch(
        f"{ADMIN}/roles/support",
        json={"permissions": ["users:read", "users:disable"], "description": "Tier 2"},
        headers=auth,
    )
    assert changed.status_code == 200
    assert (changed.json()["permissions"], changed.json()["description"]) == (["users:disable", "users:read"], "Tier 2")
    # The agent's very next request sees it, with the same access token.
    disabled = await client.post(f"{ADMIN}/users/{cast.plain.user['id']}/disable", headers=cast.support.auth)
    assert disabled.status_code == 204
    assert (await client.delete(f"{ADMIN}/roles/support", headers=auth)).status_code == 204
    refused = await client.get(f"{ADMIN}/users", headers=cast.support.auth)
    assert_problem(refused, 403, "insufficient_permission")


async def test_access_tokens_carry_the_roles_for_internal_services(client: httpx.AsyncClient, cast: Cast) -> None:
    assert pyjwt.decode(cast.plain.tokens["access_token"], options={"verify_signature": False})["roles"] == []
    await client.put(
        f"{ADMIN}/users/{cast.plain.user['id']}/roles", json={"roles": ["support"]}, headers=cast.admin.auth
    )

    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": cast.plain.tokens["refresh_token"]})

    claims = pyjwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})
    assert claims["roles"] == ["support"]


async def test_an_admin_deletes_an_account_with_the_same_receipt(client: httpx.AsyncClient, cast: Cast) -> None:
    target = cast.support.user["id"]

    deleted = await client.delete(f"{ADMIN}/users/{target}", headers=cast.admin.auth)

    assert deleted.status_code == 200
    receipt = deleted.json()
    assert receipt["user_id"] == target
    assert {e["what"]: e["count"] for e in receipt["erased"]}["user_roles"] == 1
    assert_problem(await client.get(f"{ADMIN}/users/{target}", headers=cast.admin.auth), 404, "user_not_found")
    login = await client.post(
        "/api/v1/auth/login", json={"login": cast.support.email, "password": cast.support.password}
    )
    assert_problem(login, 401, "invalid_credentials")
    trail = await client.get(f"{ADMIN}/events", params={"type": "account_deleted"}, headers=cast.admin.auth)
    (mark,) = trail.json()["items"]
    assert (mark["user_id"], mark["actor_id"], mark["ip"]) == (None, cast.admin.user["id"], None)


async def test_sessions_listed_and_ended_by_an_administrator(client: httpx.AsyncClient, cast: Cast) -> None:
    target = cast.plain.user["id"]
    listed = await client.get(f"{ADMIN}/users/{target}/sessions", headers=cast.support.auth)
    assert len(listed.json()) == 1 and listed.json()[0]["amr"] == ["pwd"]

    assert (await client.delete(f"{ADMIN}/users/{target}/sessions", headers=cast.support.auth)).status_code == 204

    assert_problem(await client.get("/api/v1/users/me", headers=cast.plain.auth), 401, "invalid_token")
    assert (await client.get(f"{ADMIN}/users/{target}/sessions", headers=cast.support.auth)).json() == []
    events = await client.get(f"{ADMIN}/users/{target}/events", headers=cast.support.auth)
    newest = events.json()["items"][0]
    assert (newest["type"], newest["actor_id"], newest["details"]) == (
        "sessions_revoked",
        cast.support.user["id"],
        {"sessions_ended": 1},
    )


async def test_the_audit_trail_filters_by_actor_type_and_user(client: httpx.AsyncClient, cast: Cast) -> None:
    by_admin = await client.get(f"{ADMIN}/events", params={"actor": cast.admin.user["id"]}, headers=cast.support.auth)
    assert [item["type"] for item in by_admin.json()["items"]] == ["roles_changed", "role_created"]
    roles_changed = by_admin.json()["items"][0]
    assert (roles_changed["user_id"], roles_changed["details"]["roles"]) == (cast.support.user["id"], ["support"])

    logins = await client.get(
        f"{ADMIN}/events", params={"type": "login_succeeded", "user": cast.plain.user["id"]}, headers=cast.support.auth
    )
    assert [item["type"] for item in logins.json()["items"]] == ["login_succeeded"]
    page = await client.get(f"{ADMIN}/events", params={"limit": 2}, headers=cast.support.auth)
    older = await client.get(
        f"{ADMIN}/events", params={"limit": 2, "cursor": page.json()["next_cursor"]}, headers=cast.support.auth
    )
    assert {i["id"] for i in page.json()["items"]}.isdisjoint({i["id"] for i in older.json()["items"]})
    assert_problem(
        await client.get(f"{ADMIN}/events", params={"type": "nope"}, headers=cast.support.auth), 422, "validation_error"
    )


async def test_an_admin_sets_an_address_as_verified_and_the_old_one_is_told(
    client: httpx.AsyncClient, cast: Cast, settings: Settings
) -> None:
    target = cast.plain.user["id"]

    changed = await client.patch(
        f"{ADMIN}/users/{target}", json={"email": "renamed@example.com", "username": "renamed"}, headers=cast.admin.auth
    )

    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["email"], body["email_verified"], body["username"]) == ("renamed@example.com", True, "renamed")
    (notice,) = await sent_notices(settings, "email_changed")
    assert "plain@example.com" in notice.read_text()
    taken = await client.patch(f"{ADMIN}/users/{target}", json={"email": cast.admin.email}, headers=cast.admin.auth)
    assert_problem(taken, 409, "email_taken")
    invalid = await client.patch(f"{ADMIN}/users/{target}", json={"email": "nope"}, headers=cast.admin.auth)
    assert assert_problem(invalid, 422, "invalid_email")["errors"][0]["loc"] == ["body", "email"]
    me = await client.get("/api/v1/users/me", headers=cast.plain.auth)
    assert me.json()["email"] == "renamed@example.com"  # the owner's session goes on


async def test_mfa_reset_and_password_reset_on_the_owners_behalf(
    client: httpx.AsyncClient, cast: Cast, settings: Settings
) -> None:
    secret, _ = await enrol(client, cast.plain)
    target = cast.plain.user["id"]
    assert (await client.get(f"{ADMIN}/users/{target}", headers=cast.admin.auth)).json()["mfa"]["totp_enabled"]
    assert code_at(secret)

    assert (await client.post(f"{ADMIN}/users/{target}/mfa/reset", headers=cast.admin.auth)).status_code == 204

    status = await client.get("/api/v1/users/me/mfa", headers=cast.plain.auth)
    assert status.json() == {"totp_enabled": False, "enabled_at": None, "recovery_codes_left": 0}
    login = await client.post("/api/v1/auth/login", json={"login": cast.plain.email, "password": cast.plain.password})
    assert login.status_code == 200  # the password alone again
    await sent_notices(settings, "mfa_disabled")

    sent = await client.post(f"{ADMIN}/users/{target}/password-reset", headers=cast.admin.auth)
    assert sent.status_code == 202
    await sent_notices(settings, "reset_password")


async def test_admin_routes_are_tagged_admin_in_openapi(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    tagged = {
        (method, path): operation["tags"]
        for path, item in schema["paths"].items()
        if path.startswith(ADMIN)
        for method, operation in item.items()
    }
    assert len(tagged) == 18 and all(tags == ["admin"] for tags in tagged.values())


async def test_the_admin_routes_have_a_rate_limit_per_actor(
    database_url: str, tmp_path: Any, keys_dir: Any, clean_database: AsyncEngine
) -> None:
    settings = make_settings(
        database_url, tmp_path, signing_keys_dir=keys_dir, rate_limit_admin_requests_per_actor="3/1m"
    )
    container = make_container(settings)
    async with running(container) as client:
        signup = signup_through(client)
        admin, other = await signup("admin@example.com"), await signup("other@example.com")
        await grant(container, admin.email, "admin")
        await grant(container, other.email, "admin")
        for _ in range(3):
            assert (await client.get(f"{ADMIN}/roles", headers=admin.auth)).status_code == 200

        limited = await client.get(f"{ADMIN}/users", headers=admin.auth)

        assert_problem(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        assert (await client.get(f"{ADMIN}/roles", headers=other.auth)).status_code == 200  # per actor
