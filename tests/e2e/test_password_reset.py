"""Forgot password, reset, and the security notices, over HTTP: each flow read from its messages and finished by
following their links."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from dependency_injector import providers
from fastapi import FastAPI
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, Signup, client_for, make_container, make_settings
from tests.e2e.test_auth_flow import LOGIN, ME, REFRESH, REGISTER, assert_problem
from usermgmt.adapters.memory import FrozenClock
from usermgmt.adapters.sqlalchemy.tables import email_outbox, users
from usermgmt.application.email import Template
from usermgmt.config import Settings
from usermgmt.container import Container
from usermgmt.domain.value_objects import Email, EmailTokenPurpose, UserId
from usermgmt.entrypoints.http.app import create_app

FORGOT = "/api/v1/auth/password/forgot"
RESET = "/api/v1/auth/password/reset"
PASSWORD_URL = "/api/v1/users/me/password"
EVENTS = "/api/v1/users/me/events"
FRONTEND_URL = "https://app.example.com"
NEW_PASSWORD = "a brand new passphrase"


# --- reading the messages ---------------------------------------------------------------------------------------
# Until the delivery branch's SMTP ``mailbox`` fixture lands, messages are read where the flows queue them, the
# outbox table, with the same interface (``wait_for``, ``assert_none``, ``.link``, ``.token``).


@dataclass
class QueuedEmail:
    to: str
    template: str
    context: dict[str, Any]

    @property
    def link(self) -> str | None:
        link = self.context.get("link")
        return str(link) if link is not None else None

    @property
    def token(self) -> str | None:
        if self.link is None:
            return None
        return parse_qs(urlsplit(self.link).query).get("token", [None])[0]


@dataclass
class Outbox:
    engine: AsyncEngine
    seen: set[int] = field(default_factory=set)

    async def messages(self) -> list[tuple[int, QueuedEmail]]:
        async with self.engine.connect() as connection:
            rows = (await connection.execute(select(email_outbox).order_by(email_outbox.c.id))).all()
        return [(row.id, QueuedEmail(row.recipient, row.template, dict(row.context))) for row in rows]

    async def wait_for(self, *, to: str, template: str, timeout: float = 10) -> QueuedEmail:  # noqa: ASYNC109
        for row_id, message in await self.messages():
            if row_id not in self.seen and message.to == to and message.template == template:
                self.seen.add(row_id)
                return message
        raise AssertionError(f"no {template} message to {to}")

    async def assert_none(self, *, to: str | None = None, template: str | None = None, within: float = 1.0) -> None:
        unexpected = [
            message
            for row_id, message in await self.messages()
            if row_id not in self.seen
            and (to is None or message.to == to)
            and (template is None or message.template == template)
        ]
        assert unexpected == [], unexpected


@pytest.fixture
def mailbox(clean_database: AsyncEngine) -> Outbox:
    return Outbox(clean_database)


@pytest.fixture
def settings(database_url: str, tmp_path: Any, keys_dir: Any) -> Settings:
    return make_settings(database_url, tmp_path, signing_keys_dir=keys_dir, frontend_url=FRONTEND_URL)


# --- helpers --------------------------------------------------------------------------------------------------------


async def forgot(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post(FORGOT, json={"email": email})


async def reset_link(client: httpx.AsyncClient, mailbox: Outbox, email: str) -> str:
    """Ask for a reset and follow the email: the token of its link, which points at the frontend."""
    response = await forgot(client, email)
    assert response.status_code == 202, response.text
    message = await mailbox.wait_for(to=email, template="reset_password")
    assert message.link is not None and message.link.startswith(f"{FRONTEND_URL}/reset-password?token=")
    assert message.token is not None
    return message.token


async def reset(client: httpx.AsyncClient, token: str, new_password: str = NEW_PASSWORD) -> httpx.Response:
    return await client.post(RESET, json={"token": token, "new_password": new_password})


async def login(client: httpx.AsyncClient, email: str, password: str, **headers: str) -> httpx.Response:
    return await client.post(LOGIN, json={"login": email, "password": password}, headers=headers)


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """A response as a client can tell responses apart: status, headers but the request id and date, body."""
    headers = {k: v for k, v in response.headers.items() if k not in {"x-request-id", "date"}}
    return response.status_code, headers, response.content


# --- forgot and reset -----------------------------------------------------------------------------------------------


async def test_forgot_then_reset_sets_the_password_ends_every_session_and_signs_nobody_in(
    client: httpx.AsyncClient, signup: Signup, mailbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account = await signup()
    other_device = (await login(client, account.email, PASSWORD, **{"user-agent": "phone"})).json()

    token = await reset_link(client, mailbox, account.email)
    response = await reset(client, token)

    assert response.status_code == 204
    assert response.content == b""
    assert "set-cookie" not in response.headers
    for pair in (account.tokens, other_device):
        assert_problem(
            await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}), 401, "invalid_refresh_token"
        )
        assert_problem(
            await client.get(ME, headers={"Authorization": f"Bearer {pair['access_token']}"}), 401, "invalid_token"
        )
    assert_problem(await login(client, account.email, PASSWORD), 401, "invalid_credentials")
    signed_in = await login(client, account.email, NEW_PASSWORD)
    assert signed_in.status_code == 200
    auth = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    assert (await client.get(ME, headers=auth)).json()["email_verified"] is True
    notice = await mailbox.wait_for(to=account.email, template="password_changed")
    assert notice.context["reset"] is True
    assert notice.context["ip"] == "203.0.113.7"
    events = [e["type"] for e in (await client.get(EVENTS, headers=auth)).json()["items"]]
    assert events[:4] == ["login_succeeded", "login_failed", "password_reset", "password_reset_requested"]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (token, NEW_PASSWORD, PASSWORD):
        assert secret not in logged


async def test_a_reset_link_works_once(client: httpx.AsyncClient, signup: Signup, mailbox: Outbox) -> None:
    account = await signup()
    token = await reset_link(client, mailbox, account.email)
    assert (await reset(client, token)).status_code == 204

    assert_problem(await reset(client, token, "the second passphrase"), 400, "invalid_email_token")
    assert (await login(client, account.email, NEW_PASSWORD)).status_code == 200


async def test_a_reset_kills_every_other_reset_link(client: httpx.AsyncClient, signup: Signup, mailbox: Outbox) -> None:
    account = await signup()
    first = await reset_link(client, mailbox, account.email)
    second = await reset_link(client, mailbox, account.email)

    assert (await reset(client, second)).status_code == 204

    assert_problem(await reset(client, first, "the attacker's passphrase"), 400, "invalid_email_token")


async def test_an_expired_link_is_refused(
    settings: Settings, clean_database: AsyncEngine, mailbox: Outbox, signup_clock: FrozenClock
) -> None:
    container = make_container(settings)
    clock = signup_clock
    container.clock.override(providers.Object(clock))
    app = create_app(container)
    async with LifespanManager(app), client_for(app) as client:
        assert (
            await client.post(REGISTER, json={"email": "late@example.com", "password": PASSWORD})
        ).status_code == 201
        token = await reset_link(client, mailbox, "late@example.com")
        clock.advance(timedelta(minutes=30))  # USERMGMT_PASSWORD_RESET_TTL, PT30M by default

        assert_problem(await reset(client, token), 400, "invalid_email_token")
        assert (await login(client, "late@example.com", PASSWORD)).status_code == 200


@pytest.fixture
def signup_clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC))


async def test_a_token_of_another_purpose_is_refused(
    client: httpx.AsyncClient, signup: Signup, container: Container, mailbox: Outbox
) -> None:
    account = await signup()
    postman, uow = container.postman(), container.uow()
    async with uow:  # a verification link, as the verification flow sends it
        await postman.send_link(
            uow,
            user_id=UserId(account.user["id"]),
            to=Email(account.email),
            purpose=EmailTokenPurpose.VERIFY,
            template=Template.VERIFY_EMAIL,
            now=datetime.now(UTC),
        )
        await uow.commit()
    verification = await mailbox.wait_for(to=account.email, template="verify_email")
    assert verification.token is not None

    assert_problem(await reset(client, verification.token), 400, "invalid_email_token")
    assert (await login(client, account.email, PASSWORD)).status_code == 200


@pytest.mark.parametrize("token", ["x", "A" * 43, "not a token at all"])
async def test_unknown_tokens_answer_alike(client: httpx.AsyncClient, token: str) -> None:
    body = assert_problem(await reset(client, token), 400, "invalid_email_token")
    assert "errors" not in body


async def test_a_password_change_kills_the_reset_link(
    client: httpx.AsyncClient, signup: Signup, mailbox: Outbox
) -> None:
    account = await signup()
    token = await reset_link(client, mailbox, account.email)
    changed = await client.post(
        PASSWORD_URL, headers=account.auth, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert changed.status_code == 204, changed.text

    assert_problem(await reset(client, token, "the attacker's passphrase"), 400, "invalid_email_token")
    assert (await login(client, account.email, NEW_PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    ("new_password", "code"),
    [("short", "weak_password"), ("x" * 129, "weak_password"), ("user1@example.com", "weak_password")],
)
async def test_the_password_policy_applies_with_field_errors_and_the_link_survives(
    client: httpx.AsyncClient, signup: Signup, mailbox: Outbox, new_password: str, code: str
) -> None:
    account = await signup()
    token = await reset_link(client, mailbox, account.email)

    body = assert_problem(await reset(client, token, new_password), 422, code)

    assert body["errors"] == [{"loc": ["body", "new_password"], "msg": body["detail"]}]
    assert (await reset(client, token)).status_code == 204


async def test_a_malformed_body_is_422(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(RESET, json={"token": "t"}), 422, "validation_error")
    assert_problem(await client.post(RESET, json={"token": "", "new_password": NEW_PASSWORD}), 422, "validation_error")
    assert_problem(await client.post(FORGOT, json={}), 422, "validation_error")
    assert_problem(await client.post(FORGOT, json={"email": "a@example.com", "x": 1}), 422, "validation_error")


# --- no enumeration and throttling -------------------------------------------------------------------------------


async def test_an_unknown_address_answers_like_a_known_one_and_sends_nothing(
    client: httpx.AsyncClient, signup: Signup, mailbox: Outbox
) -> None:
    account = await signup()

    known = await forgot(client, account.email)
    unknown = await forgot(client, "nobody@example.com")

    assert known.status_code == 202
    assert comparable(known) == comparable(unknown)
    assert known.json() == {
        "detail": "If an account uses this address, a link to reset its password has been sent to it."
    }
    await mailbox.wait_for(to=account.email, template="reset_password")
    await mailbox.assert_none(to="nobody@example.com")


async def test_only_a_malformed_address_is_refused(client: httpx.AsyncClient) -> None:
    body = assert_problem(await forgot(client, "not an address"), 422, "invalid_email")
    assert body["errors"][0]["loc"] == ["body", "email"]


async def test_a_disabled_account_gets_nothing(
    client: httpx.AsyncClient, signup: Signup, mailbox: Outbox, clean_database: AsyncEngine
) -> None:
    account = await signup()
    async with clean_database.begin() as connection:
        await connection.execute(update(users).where(users.c.email == account.email).values(is_active=False))

    response = await forgot(client, account.email)
    unknown = await forgot(client, "nobody@example.com")

    assert comparable(response) == comparable(unknown)
    await mailbox.assert_none(to=account.email, template="reset_password")


async def test_the_fourth_email_in_an_hour_is_silently_not_sent(
    client: httpx.AsyncClient, signup: Signup, mailbox: Outbox
) -> None:
    account = await signup()
    answers = [await forgot(client, spelling) for spelling in (account.email, account.email.upper(), account.email)]
    for _ in range(3):
        await mailbox.wait_for(to=account.email, template="reset_password")

    fourth = await forgot(client, account.email)

    assert comparable(fourth) == comparable(answers[0])
    await mailbox.assert_none(to=account.email, template="reset_password")


async def test_requests_per_client_ip_are_limited(client: httpx.AsyncClient, app: FastAPI) -> None:
    for n in range(10):
        assert (await forgot(client, f"someone{n}@example.com")).status_code == 202

    refused = await forgot(client, "someone@example.com")

    assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) > 0
    transport = httpx.ASGITransport(app=app, client=("198.51.100.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as elsewhere:
        assert (await forgot(elsewhere, "someone@example.com")).status_code == 202


@pytest.fixture
async def unthrottled_client(
    database_url: str, tmp_path: Any, keys_dir: Any, clean_database: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, tmp_path, signing_keys_dir=keys_dir, rate_limits_enabled=False)
    app = create_app(make_container(settings))
    async with LifespanManager(app), client_for(app) as client:
        yield client


async def test_no_limit_applies_when_rate_limits_are_off(
    unthrottled_client: httpx.AsyncClient, mailbox: Outbox
) -> None:
    client = unthrottled_client
    assert (await client.post(REGISTER, json={"email": "many@example.com", "password": PASSWORD})).status_code == 201
    for _ in range(12):
        assert (await forgot(client, "many@example.com")).status_code == 202
    for _ in range(12):
        await mailbox.wait_for(to="many@example.com", template="reset_password")


# --- notices --------------------------------------------------------------------------------------------------------


async def test_a_password_change_sends_its_notice(client: httpx.AsyncClient, signup: Signup, mailbox: Outbox) -> None:
    account = await signup()

    changed = await client.post(
        PASSWORD_URL,
        headers={**account.auth, "user-agent": "laptop"},
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert changed.status_code == 204
    notice = await mailbox.wait_for(to=account.email, template="password_changed")
    assert (notice.context["reset"], notice.context["ip"], notice.context["user_agent"]) == (
        False,
        "203.0.113.7",
        "laptop",
    )


async def test_a_deletion_sends_its_notice_with_the_receipts_time(
    client: httpx.AsyncClient, signup: Signup, mailbox: Outbox, clean_database: AsyncEngine
) -> None:
    account = await signup()
    await login(client, account.email, PASSWORD, **{"user-agent": "phone"})  # a new_device notice, still queued
    await forgot(client, account.email)  # a reset link, still queued

    deleted = await client.request("DELETE", ME, headers=account.auth, json={"password": PASSWORD})

    assert deleted.status_code == 200
    receipt = deleted.json()
    assert {e["what"]: e["count"] for e in receipt["erased"]}["email_outbox"] == 2
    notice = await mailbox.wait_for(to=account.email, template="account_deleted")
    assert datetime.fromisoformat(notice.context["deleted_at"]) == datetime.fromisoformat(receipt["deleted_at"])
    await mailbox.assert_none(to=account.email)  # the account's own queued messages went with it
    async with clean_database.connect() as connection:
        rows = (await connection.execute(text("SELECT user_id FROM email_outbox"))).all()
    assert [row.user_id for row in rows] == [None]


async def test_a_sign_in_from_a_new_device_sends_a_notice_and_a_known_one_none(
    client: httpx.AsyncClient, signup: Signup, mailbox: Outbox
) -> None:
    account = await signup()  # registered and signed in from one browser
    await mailbox.assert_none(to=account.email, template="new_device")

    assert (await login(client, account.email, PASSWORD)).status_code == 200
    await mailbox.assert_none(to=account.email, template="new_device")

    assert (
        await login(client, account.email, PASSWORD, **{"user-agent": "Mozilla/5.0 (new phone)"})
    ).status_code == 200
    notice = await mailbox.wait_for(to=account.email, template="new_device")
    assert (notice.context["ip"], notice.context["user_agent"]) == ("203.0.113.7", "Mozilla/5.0 (new phone)")
    assert (
        await login(client, account.email, PASSWORD, **{"user-agent": "Mozilla/5.0 (new phone)"})
    ).status_code == 200
    await mailbox.assert_none(to=account.email, template="new_device")


async def test_the_known_devices_table_holds_no_address_or_agent(
    client: httpx.AsyncClient, signup: Signup, clean_database: AsyncEngine
) -> None:
    await signup()
    async with clean_database.connect() as connection:
        dump = str((await connection.execute(text("SELECT * FROM known_devices"))).all())
    assert "203.0.113" not in dump
    assert "python-httpx" not in dump
