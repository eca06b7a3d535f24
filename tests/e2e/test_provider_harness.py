"""The social-login harness itself: the OpenID Provider (oidc-provider on Node) and the Facebook imitation."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from tests.support.facebook import FacebookSignInError, FakeFacebook, fake_facebook
from tests.support.oidc_provider import (
    TAMPER_MODES,
    OidcClient,
    OpenIdProvider,
    SignInError,
    node_available,
    openid_provider,
)

pytestmark = pytest.mark.e2e

CALLBACK = "http://127.0.0.1:9/callback"  # only parsed, never requested
CLIENT = OidcClient("usermgmt", "client-secret", [CALLBACK])


@pytest.fixture(scope="module")
def op() -> Iterator[OpenIdProvider]:
    if not node_available():
        pytest.skip("node is not on PATH: the OpenID Provider runs on Node.js")
    with openid_provider([CLIENT]) as provider:
        provider.add_account("alice", email="alice@example.com", name="Alice Liddell")
        provider.add_account("bob", email=None)
        provider.add_account("carol", email="carol@example.com", email_verified=False, name="Carol")
        yield provider


@pytest.fixture
def untampered(op: OpenIdProvider) -> Iterator[OpenIdProvider]:
    yield op
    op.tamper(None)


@dataclass
class Authorization:
    url: str
    state: str
    nonce: str
    verifier: str


def authorization(op: OpenIdProvider, client: OidcClient = CLIENT, **params: str | None) -> Authorization:
    """An authorization request as a relying party builds it (PKCE S256, state, nonce); None drops a parameter."""
    state, nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query: dict[str, str | None] = {
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0],
        "response_type": "code",
        "scope": "openid email profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **params,
    }
    kept = {name: value for name, value in query.items() if value is not None}
    return Authorization(f"{op.metadata['authorization_endpoint']}?{urlencode(kept)}", state, nonce, verifier)


def callback_params(url: str) -> dict[str, str]:
    assert url.startswith(f"{CALLBACK}?"), url
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def exchange(
    op: OpenIdProvider, code: str, verifier: str, client: OidcClient = CLIENT, *, auth: str = "basic"
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier}
    if auth == "basic":
        return httpx.post(op.metadata["token_endpoint"], data=form, auth=(client.client_id, client.client_secret))
    form |= {"client_id": client.client_id, "client_secret": client.client_secret}
    return httpx.post(op.metadata["token_endpoint"], data=form)


def id_token_for(op: OpenIdProvider, sub: str = "alice") -> tuple[str, Authorization]:
    request = authorization(op)
    params = callback_params(op.sign_in(request.url, sub))
    response = exchange(op, params["code"], request.verifier)
    assert response.status_code == 200, response.text
    return str(response.json()["id_token"]), request


def signing_key(op: OpenIdProvider) -> jwt.PyJWK:
    (key,) = httpx.get(op.metadata["jwks_uri"]).json()["keys"]
    return jwt.PyJWK(key)


def verified_claims(op: OpenIdProvider, token: str, **options: Any) -> dict[str, Any]:
    return jwt.decode(
        token, signing_key(op), algorithms=["RS256"], audience=CLIENT.client_id, issuer=op.issuer, **options
    )


def unverified_claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def test_discovery_describes_a_code_flow_op_with_pkce(op: OpenIdProvider) -> None:
    document = httpx.get(op.discovery_url).json()
    assert document["issuer"] == op.issuer
    assert document["authorization_endpoint"].startswith(f"{op.issuer}/")
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert {"openid", "email", "profile"} <= set(document["scopes_supported"])
    assert {"client_secret_basic", "client_secret_post"} <= set(document["token_endpoint_auth_methods_supported"])
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


def test_code_flow_with_pkce_gives_a_signed_id_token_with_the_account_claims(op: OpenIdProvider) -> None:
    request = authorization(op)
    params = callback_params(op.sign_in(request.url, "alice"))
    assert params["state"] == request.state
    assert params["iss"] == op.issuer  # RFC 9207: oidc-provider names itself in the authorization response

    response = exchange(op, params["code"], request.verifier)

    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    claims = verified_claims(op, tokens["id_token"])
    assert claims["sub"] == "alice"
    assert claims["nonce"] == request.nonce
    assert claims["email"] == "alice@example.com"
    assert claims["email_verified"] is True
    assert claims["name"] == "Alice Liddell"
    assert jwt.get_unverified_header(tokens["id_token"])["kid"] == signing_key(op).key_id
    userinfo = httpx.get(
        op.metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.json()["email"] == "alice@example.com"
    assert exchange(op, params["code"], request.verifier).json()["error"] == "invalid_grant"  # single use


def test_client_secret_post_is_accepted_too(op: OpenIdProvider) -> None:
    request = authorization(op)
    code = callback_params(op.sign_in(request.url, "alice"))["code"]

    response = exchange(op, code, request.verifier, auth="post")

    assert response.status_code == 200, response.text
    assert verified_claims(op, response.json()["id_token"])["sub"] == "alice"


def test_wrong_client_secret_is_refused(op: OpenIdProvider) -> None:
    request = authorization(op)
    code = callback_params(op.sign_in(request.url, "alice"))["code"]

    response = exchange(op, code, request.verifier, OidcClient(CLIENT.client_id, "wrong", [CALLBACK]))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_pkce_is_required(op: OpenIdProvider) -> None:
    request = authorization(op, code_challenge=None, code_challenge_method=None)

    params = callback_params(op.sign_in(request.url, "alice"))

    assert params["error"] == "invalid_request"
    assert "PKCE" in params["error_description"]
    assert params["state"] == request.state


def test_a_wrong_code_verifier_is_refused(op: OpenIdProvider) -> None:
    request = authorization(op)
    code = callback_params(op.sign_in(request.url, "alice"))["code"]

    response = exchange(op, code, secrets.token_urlsafe(48))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_claims_follow_the_account(op: OpenIdProvider) -> None:
    bob = verified_claims(op, id_token_for(op, "bob")[0])
    carol = verified_claims(op, id_token_for(op, "carol")[0])

    assert "email" not in bob
    assert "email_verified" not in bob
    assert "name" not in bob
    assert carol["email"] == "carol@example.com"
    assert carol["email_verified"] is False


def test_sign_in_refuses_an_unknown_account_and_foreign_urls(op: OpenIdProvider) -> None:
    with pytest.raises(SignInError, match="no account"):
        op.sign_in(authorization(op).url, "mallory")
    with pytest.raises(SignInError, match="not on this OP"):
        op.sign_in("http://127.0.0.1:9/authorize?client_id=usermgmt", "alice")


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(op: OpenIdProvider) -> None:
    request = authorization(op, redirect_uri="http://127.0.0.1:9/elsewhere")

    with pytest.raises(SignInError, match="redirect_uri"):
        op.sign_in(request.url, "alice")


def test_a_user_who_cancels_is_sent_back_with_access_denied(op: OpenIdProvider) -> None:
    request = authorization(op)

    params = callback_params(op.deny(request.url))

    assert params["error"] == "access_denied"
    assert params["state"] == request.state


@pytest.mark.parametrize("mode", TAMPER_MODES)
def test_each_tamper_mode_forges_what_it_says(untampered: OpenIdProvider, mode: str) -> None:
    op = untampered
    honest, _ = id_token_for(op)
    op.tamper(mode)

    forged, request = id_token_for(op)

    assert jwt.get_unverified_header(forged) == jwt.get_unverified_header(honest)  # same alg, same kid
    claims = unverified_claims(forged)
    expected = {**unverified_claims(honest), "nonce": request.nonce}
    changed = {name for name in expected.keys() | claims.keys() if expected.get(name) != claims.get(name)}
    if mode == "nonce":
        assert changed <= {"nonce", "iat", "exp"}
        assert "nonce" in changed
        verified_claims(op, forged)  # the OP's own signature
    elif mode == "audience":
        assert claims["aud"] == "someone-else"
        with pytest.raises(jwt.InvalidAudienceError):
            verified_claims(op, forged)
    elif mode == "expired":
        assert claims["exp"] < time.time() - 500
        with pytest.raises(jwt.ExpiredSignatureError):
            verified_claims(op, forged)
        verified_claims(op, forged, options={"verify_exp": False})
    elif mode == "issuer":
        assert claims["iss"] == "http://127.0.0.1:1/other"
        with pytest.raises(jwt.InvalidIssuerError):
            verified_claims(op, forged)
    elif mode == "signature":
        assert changed <= {"iat", "exp"}
        with pytest.raises(jwt.InvalidSignatureError):
            verified_claims(op, forged)
    elif mode == "unverified_email":
        assert claims["email_verified"] is False
        assert verified_claims(op, forged)["email"] == "alice@example.com"
    else:
        pytest.fail(f"no check for {mode}")

    op.tamper(None)
    token, request = id_token_for(op)
    assert verified_claims(op, token)["nonce"] == request.nonce


def test_an_unknown_tamper_mode_is_refused(op: OpenIdProvider) -> None:
    with pytest.raises(ValueError, match="unknown tamper mode"):
        op.tamper("everything")


# The Facebook imitation.

APP_ID, APP_SECRET = "1234567890", "facebook-app-secret"


@pytest.fixture
def facebook() -> Iterator[FakeFacebook]:
    with fake_facebook(APP_ID, APP_SECRET, redirect_uris=[CALLBACK]) as fake:
        fake.add_user("10001", name="Alice Liddell", email="alice@example.com")
        fake.add_user("10002", name="Bob", email=None)
        yield fake


def dialog_url(facebook: FakeFacebook, **params: str) -> str:
    query = {"client_id": APP_ID, "redirect_uri": CALLBACK, "state": "st4te", "response_type": "code"}
    return f"{facebook.dialog_url}?{urlencode({**query, 'scope': 'email public_profile', **params})}"


def fb_token(facebook: FakeFacebook, code: str, **params: str) -> httpx.Response:
    form = {"client_id": APP_ID, "client_secret": APP_SECRET, "redirect_uri": CALLBACK, "code": code, **params}
    return httpx.post(f"{facebook.graph_url}/oauth/access_token", data=form)


def fb_me(
    facebook: FakeFacebook, token: str, proof: str | None = None, fields: str = "id,name,email"
) -> httpx.Response:
    params = {"fields": fields, "access_token": token, "appsecret_proof": proof or facebook.appsecret_proof(token)}
    return httpx.get(f"{facebook.graph_url}/me", params=params)


def fb_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["fbtrace_id"]
    return error


def test_facebook_login_with_pkce_then_me(facebook: FakeFacebook) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = dialog_url(facebook, code_challenge=challenge, code_challenge_method="S256")

    params = callback_params(facebook.sign_in(url, "10001"))
    assert params["state"] == "st4te"
    token = httpx.get(
        f"{facebook.graph_url}/oauth/access_token",
        params={"redirect_uri": CALLBACK, "code": params["code"], "code_verifier": verifier},
        auth=(APP_ID, APP_SECRET),
    )
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "bearer"
    assert token.json()["expires_in"] > 0
    access_token = token.json()["access_token"]

    me = fb_me(facebook, access_token)

    assert me.json() == {"id": "10001", "name": "Alice Liddell", "email": "alice@example.com"}
    recorded = facebook.requests[-1]
    assert recorded.path.endswith("/me")
    assert recorded.params["appsecret_proof"] == facebook.appsecret_proof(access_token)
    bearer = httpx.get(
        f"{facebook.graph_url}/me",
        params={"fields": "id", "appsecret_proof": facebook.appsecret_proof(access_token)},
        headers={"Authorization": f"Bearer {access_token}"},
    )
    assert bearer.json() == {"id": "10001"}


def test_facebook_user_without_email(facebook: FakeFacebook) -> None:
    code = callback_params(facebook.sign_in(dialog_url(facebook), "10002"))["code"]
    token = fb_token(facebook, code).json()["access_token"]

    assert fb_me(facebook, token).json() == {"id": "10002", "name": "Bob"}


def test_facebook_dialog_errors(facebook: FakeFacebook) -> None:
    with pytest.raises(FacebookSignInError, match="Invalid App ID"):
        facebook.sign_in(dialog_url(facebook, client_id="999"), "10001")
    with pytest.raises(FacebookSignInError, match="URL Blocked"):
        facebook.sign_in(dialog_url(facebook, redirect_uri="http://127.0.0.1:9/elsewhere"), "10001")
    with pytest.raises(FacebookSignInError, match="no user"):
        facebook.sign_in(dialog_url(facebook), "404")
    denied = callback_params(facebook.deny(dialog_url(facebook)))
    assert denied == {
        "error_reason": "user_denied",
        "error": "access_denied",
        "error_description": "Permissions error.",
        "state": "st4te",
    }


def test_facebook_token_exchange_errors(facebook: FakeFacebook) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()

    def new_code() -> str:
        url = dialog_url(facebook, code_challenge=challenge, code_challenge_method="S256")
        return callback_params(facebook.sign_in(url, "10001"))["code"]

    assert fb_error(fb_token(facebook, new_code(), code_verifier=verifier, client_secret="wrong"))["type"] == (
        "OAuthException"
    )
    redirect = fb_error(fb_token(facebook, new_code(), code_verifier=verifier, redirect_uri=f"{CALLBACK}/x"))
    assert redirect["code"] == 100
    assert "redirect_uri" in redirect["message"]
    assert fb_error(fb_token(facebook, new_code(), code_verifier="not-the-verifier"))["code"] == 100
    assert fb_error(fb_token(facebook, new_code()))["code"] == 100  # the challenge needs a verifier
    code = new_code()
    assert fb_token(facebook, code, code_verifier=verifier).status_code == 200
    reused = fb_error(fb_token(facebook, code, code_verifier=verifier))
    assert (reused["type"], reused["code"]) == ("OAuthException", 100)


def test_facebook_me_errors(facebook: FakeFacebook) -> None:
    code = callback_params(facebook.sign_in(dialog_url(facebook), "10001"))["code"]
    token = fb_token(facebook, code).json()["access_token"]

    bad_proof = fb_error(fb_me(facebook, token, proof="0" * 64))
    assert bad_proof == {
        "message": "Invalid appsecret_proof provided in the API argument",
        "type": "GraphMethodException",
        "code": 100,
        "fbtrace_id": bad_proof["fbtrace_id"],
    }
    missing = fb_error(httpx.get(f"{facebook.graph_url}/me", params={"fields": "id", "access_token": token}))
    assert (missing["type"], missing["code"]) == ("GraphMethodException", 100)
    unknown = fb_error(fb_me(facebook, "EAAnot-a-token"))
    assert (unknown["type"], unknown["code"]) == ("OAuthException", 190)
    assert fb_error(fb_me(facebook, token, fields="id,birthday"))["code"] == 100
