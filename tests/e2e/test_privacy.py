"""Privacy and integration over HTTP on PostgreSQL: the data export (checked against its published JSON Schema),
deletion with a grace period (restore, the refused sign-in, erasure once the clock passes it), and token
introspection for internal services (its callers' secrets never logged)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jsonschema
import pytest
from dependency_injector import providers
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, MailSettings, make_mail_container, running, signup_through
from tests.e2e.test_auth_flow import assert_problem
from tests.e2e.test_mfa import enrol
from tests.support.smtp import Mailbox
from usermgmt.adapters.memory import FrozenClock
from usermgmt.application import commands
from usermgmt.container import Container

ROOT = Path(__file__).resolve().parents[2]
EXPORT_SCHEMA = json.loads((ROOT / "docs" / "schemas" / "export-v1.schema.json").read_text())
EXPORT = "/api/v1/users/me/export"
LOGIN = "/api/v1/auth/login"
RESTORE = "/api/v1/auth/account/restore"
INTROSPECT = "/api/v1/oauth/introspect"
CLIENT_SECRET = "the-billing-service-secret-0123456789"
GRACE = timedelta(days=7)


def basic(client_id: str = "billing", secret: str = CLIENT_SECRET) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
def privacy_container(mail_settings: MailSettings, clock: FrozenClock) -> Container:
    container = make_mail_container(
        mail_settings(
            deletion_grace_period=GRACE,
            introspection_clients={"billing": CLIENT_SECRET},
            maintenance_interval=timedelta(days=1),  # runs by hand here
        )
    )
    container.clock.override(providers.Object(clock))
    return container


@pytest.fixture
async def client(privacy_container: Container, clean_database: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with running(privacy_container) as http:
        yield http


# --- the export ----------------------------------------------------------------------------------------------------


async def test_the_export_of_a_user_with_every_kind_of_data_matches_its_json_schema(
    client: httpx.AsyncClient, privacy_container: Container, mailbox: Mailbox
) -> None:
    signup = signup_through(client)
    account = await signup("full@example.com", username="full", full_name="Full Data")
    secret, codes = await enrol(client, account)
    await privacy_container.change_role_by_email()(
        commands.ChangeRoleByEmail(email=account.email, role="admin", grant=True)
    )
    await client.post(
        "/api/v1/users/me/email", json={"new_email": "next@example.com", "password": PASSWORD}, headers=account.auth
    )

    answer = await client.get(EXPORT, headers=account.auth)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-disposition"] == 'attachment; filename="usermgmt-export.json"'
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    jsonschema.validate(body, EXPORT_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert body["profile"]["email"] == "full@example.com" and body["profile"]["pending_email"] == "next@example.com"
    assert body["roles"] == ["admin"]
    assert body["two_factor"]["totp_enabled"] is True and body["two_factor"]["recovery_codes_left"] == 10
    assert len(body["sessions"]) == 1
    types = [event["type"] for event in body["security_events"]]
    assert types[0] == "data_exported" and "mfa_enabled" in types and "registered" in types
    text = answer.text
    for secret_value in (secret, *codes, account.tokens["refresh_token"], account.tokens["access_token"], PASSWORD):
        assert secret_value not in text
    assert "$2b$" not in text and "hash" not in text.lower()


async def test_an_old_sign_in_needs_the_password_variant(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    account = await signup_through(client)("late@example.com")
    clock.advance(timedelta(minutes=11))

    refused = await client.get(EXPORT, headers=account.auth)
    problem = assert_problem(refused, 403, "recent_sign_in_required")
    assert problem["max_age"] == 600

    assert_problem(await client.post(EXPORT, json={"password": "wrong"}, headers=account.auth), 403, "invalid_password")
    given = await client.post(EXPORT, json={"password": PASSWORD}, headers=account.auth)
    assert given.status_code == 200
    assert given.headers["content-disposition"].startswith("attachment")
    jsonschema.validate(given.json(), EXPORT_SCHEMA)


async def test_three_exports_an_hour(client: httpx.AsyncClient) -> None:
    account = await signup_through(client)("often@example.com")
    for _ in range(3):
        assert (await client.get(EXPORT, headers=account.auth)).status_code == 200

    limited = await client.get(EXPORT, headers=account.auth)

    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) > 0


# --- deletion with a grace period ----------------------------------------------------------------------------------


async def test_deletion_waits_can_be_undone_and_happens_once_the_period_is_over(
    client: httpx.AsyncClient, privacy_container: Container, clock: FrozenClock, mailbox: Mailbox
) -> None:
    signup = signup_through(client)
    account = await signup("later@example.com")

    deleted = await client.request("DELETE", "/api/v1/users/me", json={"password": PASSWORD}, headers=account.auth)

    assert deleted.status_code == 202, deleted.text
    erasure_at = datetime.fromisoformat(deleted.json()["erasure_at"])
    assert erasure_at == clock.now() + GRACE
    assert_problem(await client.get("/api/v1/users/me", headers=account.auth), 401, "invalid_token")
    pending = await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})
    assert datetime.fromisoformat(assert_problem(pending, 403, "account_pending_deletion")["erasure_at"]) == erasure_at
    wrong = await client.post(LOGIN, json={"login": account.email, "password": "not it at all"})
    assert_problem(wrong, 401, "invalid_credentials")
    again = await client.post("/api/v1/auth/register", json={"email": account.email, "password": PASSWORD})
    assert_problem(again, 409, "email_taken")  # the address stays taken until the erasure
    mail = await mailbox.wait_for(to=account.email, template="account_deletion_scheduled")
    assert mail.link is not None and mail.link.startswith("http://localhost:3000/restore-account?token=")

    assert_problem(await client.post(RESTORE, json={"token": "nope"}), 400, "invalid_email_token")
    assert (await client.post(RESTORE, json={"token": mail.token})).status_code == 204
    assert_problem(await client.post(RESTORE, json={"token": mail.token}), 400, "invalid_email_token")
    back = await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})
    assert back.status_code == 200
    auth = {"Authorization": f"Bearer {back.json()['access_token']}"}

    assert (
        await client.request("DELETE", "/api/v1/users/me", json={"password": PASSWORD}, headers=auth)
    ).status_code == 202
    await mailbox.wait_for(to=account.email, template="account_deletion_scheduled")
    clock.advance(GRACE - timedelta(minutes=1))
    assert (await privacy_container.maintenance()()).erased_accounts == 0
    clock.advance(timedelta(minutes=1))

    report = await privacy_container.maintenance()()

    assert report.erased_accounts == 1
    gone = await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})
    assert_problem(gone, 401, "invalid_credentials")
    await mailbox.wait_for(to=account.email, template="account_deleted")
    assert (
        await client.post("/api/v1/auth/register", json={"email": account.email, "password": PASSWORD})
    ).status_code == 201


# --- introspection -------------------------------------------------------------------------------------------------


async def form(client: httpx.AsyncClient, token: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post(INTROSPECT, data={"token": token}, headers=headers if headers is not None else basic())


async def test_introspection_describes_a_live_token_and_not_a_revoked_one(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account = await signup_through(client)("svc@example.com", username="svc")

    active = await form(client, account.tokens["access_token"])

    assert active.status_code == 200
    body = active.json()
    assert body["active"] is True and body["token_type"] == "access_token"
    assert (body["sub"], body["username"], body["amr"], body["roles"]) == (account.user["id"], "svc", ["pwd"], [])
    assert {"sid", "exp", "iat", "iss", "aud", "auth_time"} <= set(body)
    assert active.headers["cache-control"] == "no-store"

    await client.post("/api/v1/auth/logout", headers=account.auth)
    assert (await form(client, account.tokens["access_token"])).json() == {"active": False}
    for junk in ("garbage", account.tokens["refresh_token"], "e" * 4096):
        assert (await form(client, junk)).json() == {"active": False}
    assert CLIENT_SECRET not in caplog.text and account.tokens["access_token"] not in caplog.text


async def test_introspection_refuses_callers_without_valid_credentials(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for headers in ({}, basic(secret="wrong-secret-wrong-secret"), basic("nobody"), {"Authorization": "Basic %%%"}):
        refused = await form(client, "anything", headers)

        assert_problem(refused, 401, "invalid_client")
        assert refused.headers["www-authenticate"].startswith("Basic")
    assert CLIENT_SECRET not in caplog.text and "wrong-secret" not in caplog.text

    as_json = await client.post(INTROSPECT, json={"token": "x"}, headers=basic())
    assert_problem(as_json, 422, "validation_error")
    assert_problem(await client.post(INTROSPECT, data={}, headers=basic()), 422, "validation_error")
