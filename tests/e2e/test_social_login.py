"""Sign-in through identity providers over HTTP on PostgreSQL, against a real OpenID Provider on loopback: panva's
``oidc-provider`` (tests/support/oidc), standing in for Google (``USERMGMT_OAUTH_GOOGLE_ISSUER``) and for a generic
provider ``acme``, its login and consent pages played over HTTP; and Facebook's three endpoints imitated on loopback
(tests/support/facebook.py: graph.facebook.com cannot be reached from here).

The browser is played by the test: the in-process API's answers set its cookie, the OP's pages log it in, and the
callback URL the OP redirects to is opened on the API again. The frontend is played too: its PKCE pair, its
``redirect_uri``, and the exchange of the login code."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, Account, Signup, client_for, make_container, make_settings, running
from tests.e2e.test_auth_flow import LOGIN, ME, assert_problem
from tests.support.facebook import FakeFacebook, fake_facebook
from tests.support.oidc_provider import OidcClient, OpenIdProvider, node_available, openid_provider
from usermgmt.adapters.sqlalchemy.tables import email_outbox, login_codes, security_events, users
from usermgmt.config import Settings
from usermgmt.container import Container

pytestmark = pytest.mark.e2e

PUBLIC_URL = "http://127.0.0.1"  # the service's own base: the callbacks registered at the providers
FRONTEND = "http://localhost:3000/auth/callback"
SETTINGS_PAGE = "http://localhost:3000/settings/identities"
GOOGLE = OidcClient("google-client", "google-secret", [f"{PUBLIC_URL}/api/v1/auth/oauth/google/callback"])
ACME = OidcClient("acme-client", "acme-secret", [f"{PUBLIC_URL}/api/v1/auth/oauth/acme/callback"])
FACEBOOK_APP, FACEBOOK_SECRET = "fb-app", "fb-app-secret"
TOKEN = "/api/v1/auth/oauth/token"
IDENTITIES = "/api/v1/users/me/identities"


@pytest.fixture(scope="module")
def op() -> Iterator[OpenIdProvider]:
    if not node_available():
        pytest.skip("node is not on PATH: the OpenID Provider of these tests runs on Node.js")
    with openid_provider([GOOGLE, ACME]) as provider:
        yield provider


@pytest.fixture(scope="module")
def facebook() -> Iterator[FakeFacebook]:
    with fake_facebook(FACEBOOK_APP, FACEBOOK_SECRET) as fake:
        yield fake


@pytest.fixture
def settings(database_url: str, tmp_path: Path, keys_dir: Path, op: OpenIdProvider, facebook: FakeFacebook) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        signing_keys_dir=keys_dir,
        public_url=PUBLIC_URL,
        oauth_redirect_uris=f"{FRONTEND},{SETTINGS_PAGE}",
        oauth_google_client_id=GOOGLE.client_id,
        oauth_google_client_secret=GOOGLE.client_secret,
        oauth_google_issuer=op.issuer,
        oauth_facebook_client_id=FACEBOOK_APP,
        oauth_facebook_client_secret=FACEBOOK_SECRET,
        oauth_facebook_dialog_url=facebook.dialog_url,
        oauth_facebook_graph_url=facebook.graph_url,
        oidc_providers=f'[{{"name": "acme", "issuer": "{op.issuer}", "client_id": "{ACME.client_id}", '
        f'"client_secret": "{ACME.client_secret}"}}]',
        rate_limit_login_per_ip="1000/1m",
    )


@pytest.fixture
def container(settings: Settings) -> Container:
    return make_container(settings)


@pytest.fixture
def untampered(op: OpenIdProvider) -> Iterator[OpenIdProvider]:
    yield op
    op.tamper(None)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def local(url: str) -> str:
    """The path and query of a URL of the service, to open on the in-process client."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL, url
    return f"{parts.path}?{parts.query}"


@dataclass
class Trip:
    """A frontend's sign-in through a provider, up to the provider's page."""

    provider: str
    authorization_url: str
    verifier: str


async def leave(
    browser: httpx.AsyncClient, provider: str, *, redirect_uri: str = FRONTEND, challenge: str | None = None
) -> Trip:
    verifier, made = pkce()
    answer = await browser.get(
        f"/api/v1/auth/oauth/{provider}/authorize",
        params={"redirect_uri": redirect_uri, "code_challenge": challenge or made, "code_challenge_method": "S256"},
    )
    assert answer.status_code == 302, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return Trip(provider, answer.headers["location"], verifier)


async def at_provider(trip: Trip, who: str, op: OpenIdProvider, facebook: FakeFacebook) -> str:
    """The user signs in at the provider's pages: the callback URL it sends the browser back to."""
    if trip.provider == "facebook":
        return await asyncio.to_thread(facebook.sign_in, trip.authorization_url, who)
    return await asyncio.to_thread(op.sign_in, trip.authorization_url, who)


async def come_back(browser: httpx.AsyncClient, callback_url: str) -> dict[str, str]:
    """Open the callback; return the query the frontend is sent back with."""
    answer = await browser.get(local(callback_url))
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.split("?")[0] in {FRONTEND, SETTINGS_PAGE}, location
    assert "access_token" not in location and "refresh_token" not in location
    return query_of(location)


async def sign_in_through(
    browser: httpx.AsyncClient, provider: str, who: str, op: OpenIdProvider, facebook: FakeFacebook
) -> tuple[dict[str, str], Trip]:
    trip = await leave(browser, provider)
    return await come_back(browser, await at_provider(trip, who, op, facebook)), trip


async def redeem(client: httpx.AsyncClient, returned: dict[str, str], trip: Trip) -> httpx.Response:
    assert "login_code" in returned, returned
    return await client.post(TOKEN, json={"login_code": returned["login_code"], "code_verifier": trip.verifier})


async def provider_account(
    client: httpx.AsyncClient, provider: str, who: str, op: OpenIdProvider, facebook: FakeFacebook
) -> dict[str, Any]:
    """A full sign-in through ``provider``: the token pair."""
    returned, trip = await sign_in_through(client, provider, who, op, facebook)
    tokens = await redeem(client, returned, trip)
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def verify_address(engine: AsyncEngine, email: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(users).where(users.c.email == email).values(email_verified=True))


async def event_types(engine: AsyncEngine, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(security_events.c.type, security_events.c.details)
            .where(security_events.c.user_id == user_id)
            .order_by(security_events.c.id)
        )
        return [(row.type, row.details or {}) for row in rows]


async def queued_templates(engine: AsyncEngine, to: str, data_dir: Path) -> list[str]:
    """The messages to ``to``, queued or already written by the file mailer (the outbox worker runs)."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(email_outbox.c.template).where(email_outbox.c.recipient == to))
        found = [row.template for row in rows]
    for path in sorted((data_dir / "mail").glob("*.eml")):
        if to in message_from_bytes(path.read_bytes())["To"]:
            found.extend(template for template in TEMPLATES if f"-{template}-" in path.name)
    return found


TEMPLATES = ("verify_email", "identity_linked", "identity_unlinked", "new_device")


# --- accounts ------------------------------------------------------------------------------------------------------


async def test_a_new_google_user_gets_an_account_without_a_password_and_signs_in(
    client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook, clean_database: AsyncEngine, tmp_path: Path
) -> None:
    op.add_account("g-new", email="new.user@gmail.example", name="New User")
    tokens = await provider_account(client, "google", "g-new", op, facebook)

    me = (await client.get(ME, headers=bearer(tokens))).json()
    assert me["email"] == "new.user@gmail.example"
    assert me["email_verified"] is True  # Google asserted it
    assert me["has_password"] is False
    assert me["full_name"] == "New User"
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["amr"] == ["fed"]

    sessions = (await client.get("/api/v1/users/me/sessions", headers=bearer(tokens))).json()
    assert [s["sign_in_method"] for s in sessions] == ["google"]
    identities = (await client.get(IDENTITIES, headers=bearer(tokens))).json()
    assert [(i["provider"], i["email"]) for i in identities] == [("google", "new.user@gmail.example")]

    export = (await client.get("/api/v1/users/me/export", headers=bearer(tokens))).json()  # a fresh sign-in
    assert [i["provider"] for i in export["identities"]] == ["google"]
    assert export["profile"]["has_password"] is False
    assert export["sessions"][0]["sign_in_method"] == "google"
    events = await event_types(clean_database, me["id"])
    assert [kind for kind, _ in events] == ["registered", "identity_linked", "login_succeeded", "data_exported"]
    assert events[2][1]["provider"] == "google"
    assert "verify_email" not in await queued_templates(clean_database, me["email"], tmp_path)


async def test_a_returning_user_signs_in_to_the_same_account(
    client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook
) -> None:
    op.add_account("g-returning", email="returning@gmail.example")
    first = await provider_account(client, "google", "g-returning", op, facebook)
    op.add_account("g-returning", email="renamed@gmail.example")  # the address changed at Google: same identity
    second = await provider_account(client, "google", "g-returning", op, facebook)

    me_first = (await client.get(ME, headers=bearer(first))).json()
    me_second = (await client.get(ME, headers=bearer(second))).json()
    assert me_first["id"] == me_second["id"]
    assert me_second["email"] == "returning@gmail.example"  # the account's address is its own
    identities = (await client.get(IDENTITIES, headers=bearer(second))).json()
    assert [i["email"] for i in identities] == ["renamed@gmail.example"]


async def test_a_generic_oidc_provider_signs_in_like_google(
    client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook
) -> None:
    op.add_account("acme-1", email="worker@acme.example")
    tokens = await provider_account(client, "acme", "acme-1", op, facebook)
    sessions = (await client.get("/api/v1/users/me/sessions", headers=bearer(tokens))).json()
    assert sessions[0]["sign_in_method"] == "acme"


async def test_no_address_from_the_provider_makes_no_account(
    client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook
) -> None:
    op.add_account("g-no-email", email=None)
    returned, _ = await sign_in_through(client, "google", "g-no-email", op, facebook)
    assert returned == {"error": "email_required"}


async def test_a_disabled_account_is_refused_at_the_callback(
    client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook, clean_database: AsyncEngine
) -> None:
    op.add_account("g-disabled", email="disabled@gmail.example")
    await provider_account(client, "google", "g-disabled", op, facebook)
    async with clean_database.begin() as connection:
        await connection.execute(update(users).where(users.c.email == "disabled@gmail.example").values(is_active=False))
    returned, _ = await sign_in_through(client, "google", "g-disabled", op, facebook)
    assert returned == {"error": "account_disabled"}


# --- linking by address --------------------------------------------------------------------------------------------


async def test_both_sides_verified_links_the_identity_to_the_existing_account_and_tells_its_owner(
    client: httpx.AsyncClient,
    signup: Signup,
    op: OpenIdProvider,
    facebook: FakeFacebook,
    clean_database: AsyncEngine,
    tmp_path: Path,
) -> None:
    account = await signup("owner@example.com")
    await verify_address(clean_database, account.email)
    op.add_account("g-owner", email="owner@example.com", email_verified=True)

    tokens = await provider_account(client, "google", "g-owner", op, facebook)
    me = (await client.get(ME, headers=bearer(tokens))).json()
    assert me["id"] == account.user["id"]
    assert me["has_password"] is True
    assert "identity_linked" in await queued_templates(clean_database, account.email, tmp_path)
    linked = [details for kind, details in await event_types(clean_database, me["id"]) if kind == "identity_linked"]
    assert linked and linked[0]["automatic"] is True


async def test_an_unverified_account_is_never_joined_the_pre_registration_takeover(
    client: httpx.AsyncClient, signup: Signup, op: OpenIdProvider, facebook: FakeFacebook, clean_database: AsyncEngine
) -> None:
    """An attacker registers the victim's address first (never verifying it); the victim then arrives with Google,
    which asserts the address verified. Joining them would give the attacker's password the victim's account."""
    attacker = await signup("victim@example.com", password="attacker's own password 1")
    op.add_account("g-victim", email="victim@example.com", email_verified=True)

    returned, _ = await sign_in_through(client, "google", "g-victim", op, facebook)
    assert returned == {"error": "account_exists"}
    identities = (await client.get(IDENTITIES, headers=attacker.auth)).json()
    assert identities == []


async def test_an_address_the_provider_does_not_assert_verified_links_nothing(
    client: httpx.AsyncClient, signup: Signup, op: OpenIdProvider, facebook: FakeFacebook, clean_database: AsyncEngine
) -> None:
    account = await signup("careful@example.com")
    await verify_address(clean_database, account.email)
    op.add_account("g-unverified", email="careful@example.com", email_verified=False)
    returned, _ = await sign_in_through(client, "google", "g-unverified", op, facebook)
    assert returned == {"error": "account_exists"}


async def test_facebook_makes_an_unverified_account_and_sends_the_verification_email(
    client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook, clean_database: AsyncEngine, tmp_path: Path
) -> None:
    facebook.add_user("fb-1", name="Face Book", email="face@book.example")
    tokens = await provider_account(client, "facebook", "fb-1", op, facebook)
    me = (await client.get(ME, headers=bearer(tokens))).json()
    assert (me["email"], me["email_verified"], me["has_password"]) == ("face@book.example", False, False)
    assert "verify_email" in await queued_templates(clean_database, "face@book.example", tmp_path)
    me_calls = [r for r in facebook.requests if r.path.endswith("/me")]
    assert me_calls and me_calls[-1].params["appsecret_proof"]  # the imitation refuses a wrong one


async def test_facebook_never_links_to_an_existing_account_even_a_verified_one(
    client: httpx.AsyncClient, signup: Signup, op: OpenIdProvider, facebook: FakeFacebook, clean_database: AsyncEngine
) -> None:
    account = await signup("verified.fb@example.com")
    await verify_address(clean_database, account.email)
    facebook.add_user("fb-2", name="Someone", email="verified.fb@example.com")
    returned, _ = await sign_in_through(client, "facebook", "fb-2", op, facebook)
    assert returned == {"error": "account_exists"}


# --- state, ID token, login code -----------------------------------------------------------------------------------


async def test_a_callback_without_state_or_with_an_unknown_one_goes_back_with_invalid_state(
    client: httpx.AsyncClient,
) -> None:
    for query in ("code=abc", "code=abc&state=never-issued"):
        answer = await client.get(f"/api/v1/auth/oauth/google/callback?{query}")
        assert answer.status_code == 302
        assert answer.headers["location"] == f"{FRONTEND}?error=invalid_state"


async def test_a_state_replayed_is_refused(
    client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook
) -> None:
    op.add_account("g-replay", email="replay@gmail.example")
    trip = await leave(client, "google")
    callback = await at_provider(trip, "g-replay", op, facebook)
    assert "login_code" in await come_back(client, callback)
    assert await come_back(client, callback) == {"error": "invalid_state"}


async def test_a_state_from_another_browser_is_refused_the_login_csrf(
    app: FastAPI, client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook
) -> None:
    """An attacker starts a sign-in in their own browser and makes the victim's browser open the callback: the
    victim's browser lacks the attacker's cookie, so it is not signed in to the attacker's account."""
    op.add_account("g-attacker", email="attacker@gmail.example")
    trip = await leave(client, "google")  # the attacker's browser holds the cookie
    callback = await at_provider(trip, "g-attacker", op, facebook)
    async with client_for(app) as victim:
        assert await come_back(victim, callback) == {"error": "invalid_state"}
    assert await come_back(client, callback) == {"error": "invalid_state"}  # and the state is spent


async def test_the_state_cookie_is_http_only_lax_and_scoped_to_the_callbacks(client: httpx.AsyncClient) -> None:
    _, challenge = pkce()
    answer = await client.get(
        "/api/v1/auth/oauth/google/authorize", params={"redirect_uri": FRONTEND, "code_challenge": challenge}
    )
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/api/v1/auth/oauth/" in cookie
    assert "Max-Age=600" in cookie
    assert "Secure" not in cookie  # http://127.0.0.1 as the public URL; any other is Secure
    location = answer.headers["location"]
    sent = query_of(location)
    assert location.startswith(f"{urlsplit(location).scheme}://{urlsplit(location).netloc}/")
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"] != challenge  # the service's own
    assert sent["nonce"] and sent["state"] and sent["redirect_uri"] == GOOGLE.redirect_uris[0]


async def test_the_user_saying_no_at_the_provider_goes_back_with_access_denied(
    client: httpx.AsyncClient, op: OpenIdProvider
) -> None:
    trip = await leave(client, "google")
    callback = await asyncio.to_thread(op.deny, trip.authorization_url)
    assert await come_back(client, callback) == {"error": "access_denied"}


@pytest.mark.parametrize("mode", ["nonce", "audience", "expired", "issuer", "signature"])
async def test_an_id_token_that_fails_validation_signs_in_nobody(
    mode: str,
    client: httpx.AsyncClient,
    untampered: OpenIdProvider,
    facebook: FakeFacebook,
    clean_database: AsyncEngine,
) -> None:
    untampered.add_account("g-tampered", email="tampered@gmail.example")
    with untampered.tampering(mode):
        returned, _ = await sign_in_through(client, "google", "g-tampered", untampered, facebook)
    assert returned == {"error": "invalid_id_token"}
    async with clean_database.connect() as connection:
        assert (await connection.execute(select(users.c.id))).first() is None


async def test_a_login_code_is_redeemed_once_and_only_with_the_right_verifier(
    client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook
) -> None:
    op.add_account("g-code", email="code@gmail.example")
    returned, trip = await sign_in_through(client, "google", "g-code", op, facebook)
    wrong = await client.post(TOKEN, json={"login_code": returned["login_code"], "code_verifier": pkce()[0]})
    assert_problem(wrong, 400, "invalid_login_code")
    again = await redeem(client, returned, trip)  # a wrong verifier spent it: a thief's guess leaves nothing
    assert_problem(again, 400, "invalid_login_code")

    returned, trip = await sign_in_through(client, "google", "g-code", op, facebook)
    assert (await redeem(client, returned, trip)).status_code == 200
    assert_problem(await redeem(client, returned, trip), 400, "invalid_login_code")
    unknown = await client.post(TOKEN, json={"login_code": "never-issued", "code_verifier": trip.verifier})
    assert_problem(unknown, 400, "invalid_login_code")


async def test_an_expired_login_code_is_refused(
    client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook, clean_database: AsyncEngine
) -> None:
    op.add_account("g-late", email="late@gmail.example")
    returned, trip = await sign_in_through(client, "google", "g-late", op, facebook)
    async with clean_database.begin() as connection:
        await connection.execute(update(login_codes).values(expires_at=login_codes.c.created_at))
    assert_problem(await redeem(client, returned, trip), 400, "invalid_login_code")


async def test_unlisted_redirect_uris_unknown_providers_and_bad_challenges_are_refused(
    client: httpx.AsyncClient,
) -> None:
    _, challenge = pkce()
    good = {"redirect_uri": FRONTEND, "code_challenge": challenge}
    cases = [
        ("google", {**good, "redirect_uri": "https://evil.example/callback"}, 400, "invalid_redirect_uri"),
        ("google", {**good, "redirect_uri": FRONTEND + "/"}, 400, "invalid_redirect_uri"),  # exact match only
        ("google", {"code_challenge": challenge}, 400, "invalid_redirect_uri"),
        ("google", {**good, "code_challenge": "short"}, 400, "invalid_code_challenge"),
        ("google", {**good, "code_challenge_method": "plain"}, 400, "invalid_code_challenge"),
        ("myspace", good, 404, "unknown_provider"),
    ]
    for provider, params, status, code in cases:
        answer = await client.get(f"/api/v1/auth/oauth/{provider}/authorize", params=params)
        assert_problem(answer, status, code)


# --- linking from settings, unlinking, passwordless accounts -------------------------------------------------------


async def link_from_settings(
    client: httpx.AsyncClient, account_auth: dict[str, str], provider: str, who: str, op: OpenIdProvider
) -> dict[str, str]:
    _, challenge = pkce()
    started = await client.post(
        f"{IDENTITIES}/{provider}",
        json={"redirect_uri": SETTINGS_PAGE, "code_challenge": challenge},
        headers=account_auth,
    )
    assert started.status_code == 200, started.text
    callback = await asyncio.to_thread(op.sign_in, started.json()["authorization_url"], who)
    return await come_back(client, callback)


async def test_linking_from_settings_and_unlinking(
    client: httpx.AsyncClient, signup: Signup, op: OpenIdProvider, facebook: FakeFacebook, clean_database: AsyncEngine
) -> None:
    account = await signup("linker@example.com")  # unverified: linking from settings needs no address match
    op.add_account("acme-linker", email="someone.else@acme.example")
    assert await link_from_settings(client, account.auth, "acme", "acme-linker", op) == {"linked": "acme"}

    identities = (await client.get(IDENTITIES, headers=account.auth)).json()
    assert [(i["provider"], i["email"]) for i in identities] == [("acme", "someone.else@acme.example")]
    tokens = await provider_account(client, "acme", "acme-linker", op, facebook)  # now a way in
    assert (await client.get(ME, headers=bearer(tokens))).json()["id"] == account.user["id"]

    removed = await client.delete(f"{IDENTITIES}/{identities[0]['id']}", headers=account.auth)
    assert removed.status_code == 204
    assert (await client.get(IDENTITIES, headers=account.auth)).json() == []
    kinds = [kind for kind, _ in await event_types(clean_database, account.user["id"])]
    assert "identity_linked" in kinds and "identity_unlinked" in kinds
    missing = await client.delete(f"{IDENTITIES}/{identities[0]['id']}", headers=account.auth)
    assert_problem(missing, 404, "identity_not_found")


async def test_an_identity_of_another_account_cannot_be_linked(
    client: httpx.AsyncClient, signup: Signup, op: OpenIdProvider, facebook: FakeFacebook
) -> None:
    op.add_account("g-taken", email="taken@gmail.example")
    await provider_account(client, "google", "g-taken", op, facebook)  # its own account
    other = await signup("other@example.com")
    assert await link_from_settings(client, other.auth, "google", "g-taken", op) == {"error": "identity_in_use"}


async def test_the_only_way_in_cannot_be_unlinked_and_a_password_account_rules(
    client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook
) -> None:
    op.add_account("g-only", email="only@gmail.example")
    tokens = await provider_account(client, "google", "g-only", op, facebook)
    (identity,) = (await client.get(IDENTITIES, headers=bearer(tokens))).json()
    refused = await client.delete(f"{IDENTITIES}/{identity['id']}", headers=bearer(tokens))
    assert_problem(refused, 409, "last_login_method")

    change = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": "anything", "new_password": "a brand new passphrase 7"},
        headers=bearer(tokens),
    )
    assert_problem(change, 409, "no_password")
    password_login = await client.post(LOGIN, json={"login": "only@gmail.example", "password": "anything at all"})
    assert_problem(password_login, 401, "invalid_credentials")


async def test_a_passwordless_account_is_deleted_without_a_password_after_a_fresh_sign_in(
    client: httpx.AsyncClient, op: OpenIdProvider, facebook: FakeFacebook
) -> None:
    op.add_account("g-delete", email="delete@gmail.example")
    tokens = await provider_account(client, "google", "g-delete", op, facebook)
    deleted = await client.request("DELETE", ME, headers=bearer(tokens))
    assert deleted.status_code == 200, deleted.text
    assert "identities" in {entry["what"] for entry in deleted.json()["erased"]}
    assert (await client.get(ME, headers=bearer(tokens))).status_code == 401


async def test_two_factor_is_still_asked_after_a_provider(
    client: httpx.AsyncClient, signup: Signup, op: OpenIdProvider, facebook: FakeFacebook, clean_database: AsyncEngine
) -> None:
    account: Account = await signup("totp.user@example.com")
    await verify_address(clean_database, account.email)
    started = await client.post("/api/v1/users/me/mfa/totp", json={"password": PASSWORD}, headers=account.auth)
    secret = started.json()["secret"]
    confirmed = await client.post(
        "/api/v1/users/me/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=account.auth
    )
    assert confirmed.status_code == 200, confirmed.text
    op.add_account("g-totp", email="totp.user@example.com")

    returned, trip = await sign_in_through(client, "google", "g-totp", op, facebook)
    answer = await redeem(client, returned, trip)
    assert_problem(answer, 403, "mfa_required")
    step = await client.post(
        "/api/v1/auth/login/mfa",
        # the next step's code: the current one was spent by the confirmation, and a step is used once
        json={"mfa_token": answer.json()["mfa_token"], "code": pyotp.TOTP(secret).at(time.time() + 30)},
    )
    assert step.status_code == 200, step.text
    claims = jwt.decode(step.json()["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["fed", "otp"]
    sessions = (await client.get("/api/v1/users/me/sessions", headers=bearer(step.json()))).json()
    assert {s["sign_in_method"] for s in sessions} == {"password", "google"}


async def test_a_passwordless_account_re_authenticates_by_its_recent_sign_in_everywhere_a_password_is_asked(
    client: httpx.AsyncClient, signup: Signup, op: OpenIdProvider, facebook: FakeFacebook
) -> None:
    op.add_account("g-reauth", email="reauth@gmail.example")
    tokens = await provider_account(client, "google", "g-reauth", op, facebook)
    started = await client.post("/api/v1/users/me/mfa/totp", json={}, headers=bearer(tokens))
    assert started.status_code == 200, started.text
    moved = await client.post("/api/v1/users/me/email", json={"new_email": "moved@example.com"}, headers=bearer(tokens))
    assert moved.status_code in {200, 202}, moved.text

    account = await signup("has.password@example.com")  # an account with a password still has to send it
    for path, body in [("/api/v1/users/me/mfa/totp", {}), ("/api/v1/users/me/email", {"new_email": "x@example.com"})]:
        assert_problem(await client.post(path, json=body, headers=account.auth), 422, "validation_error")


async def test_the_configured_providers_are_listed_by_name_for_the_sign_in_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/oauth/providers")
    assert response.status_code == 200
    assert response.json() == {"providers": ["google", "facebook", "acme"]}


async def test_no_provider_configured_lists_none(
    database_url: str, tmp_path: Path, keys_dir: Path, clean_database: AsyncEngine
) -> None:
    plain = make_settings(database_url, tmp_path, signing_keys_dir=keys_dir)
    async with running(make_container(plain)) as http:
        response = await http.get("/api/v1/auth/oauth/providers")
    assert response.status_code == 200
    assert response.json() == {"providers": []}
