"""Identity providers through Authlib: OpenID Connect (Google, any certified provider) and Facebook (OAuth 2 and the
Graph API). Nothing of OAuth or of ID-token validation is written here: Authlib builds the authorization request
(PKCE S256, state, nonce), exchanges the code, and validates the ID token against the provider's JWKS (signature,
``iss``, ``aud``, ``exp``, ``iat``, ``nonce``, ``at_hash``); discovery and the key set are fetched once and cached,
the keys again when a token names an unknown key id (rotation).

Authlib's framework integrations keep the state in a cookie session; this service keeps it server-side (the
application layer's ``PendingAuthorization``), so the apps here are Authlib's framework-free base classes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import BaseApp, OAuthError
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
from joserfc.errors import JoseError

with warnings.catch_warnings():  # Authlib 1.9.10 prefers httpx2 and warns on import when it finds httpx alone
    warnings.filterwarnings("ignore", "The httpx module is deprecated", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from usermgmt.adapters.tracing import span
from usermgmt.application.ports import ExternalIdentity, IdentityProvider, ProviderError
from usermgmt.domain.errors import InvalidEmail
from usermgmt.domain.value_objects import Email

logger = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0)
# How far the provider's clock may be from ours, in seconds, for exp and iat (Authlib's default is 120).
LEEWAY = 60
# The ID-token algorithms accepted, whatever discovery lists: asymmetric signatures only. Authlib takes the list
# from the provider's metadata, and joserfc would then accept ``none`` (an unsigned token) or an HMAC keyed by the
# client secret if a provider listed them.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class _App(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]
    client_cls = AsyncOAuth2Client


def _email(value: object) -> Email | None:
    if not isinstance(value, str):
        return None
    try:
        return Email(value)
    except InvalidEmail:
        return None


def _name(value: object) -> str | None:
    return value.strip()[:128] or None if isinstance(value, str) else None


class OidcProvider(IdentityProvider):
    """An OpenID Connect provider found by discovery at ``{issuer}/.well-known/openid-configuration``."""

    def __init__(
        self, name: str, *, issuer: str, client_id: str, client_secret: str, scopes: Sequence[str] = ()
    ) -> None:
        self._name, self._issuer = name, issuer.rstrip("/")
        self._app = _App(
            None,
            name=name,
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=f"{self._issuer}/.well-known/openid-configuration",
            client_kwargs={
                "scope": " ".join(scopes or ("openid", "email", "profile")),
                "code_challenge_method": "S256",
                "timeout": TIMEOUT,
            },
        )

    @property
    def name(self) -> str:
        return self._name

    async def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        with span("oauth.authorize", provider=self._name):
            try:
                metadata = await self._app.load_server_metadata()
                if metadata.get("issuer", "").rstrip("/") != self._issuer:  # OpenID Connect Discovery 4.3
                    raise ProviderError("provider_error", f"{self._name}: discovery names another issuer")
                created = await self._app.create_authorization_url(
                    redirect_uri, state=state, nonce=nonce, code_verifier=code_verifier
                )
            except (httpx.HTTPError, ValueError, AuthlibBaseError) as error:
                raise ProviderError("provider_error", f"{self._name}: discovery failed: {error!r}") from None
        return str(created["url"])

    async def identify(self, *, redirect_uri: str, code: str, code_verifier: str, nonce: str) -> ExternalIdentity:
        with span("oauth.identify", provider=self._name):
            token = await _exchange(self._app, self._name, redirect_uri=redirect_uri, code=code, verifier=code_verifier)
            try:
                metadata = await self._app.load_server_metadata()  # cached: parse_id_token reads the same dict
            except (httpx.HTTPError, ValueError) as error:
                raise ProviderError("provider_error", f"{self._name}: discovery failed: {error!r}") from None
            listed = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
            metadata["id_token_signing_alg_values_supported"] = [a for a in listed if a in SIGNING_ALGORITHMS]
            if not metadata["id_token_signing_alg_values_supported"]:
                raise ProviderError("invalid_id_token", f"{self._name}: no asymmetric ID-token algorithm offered")
            try:
                claims = await self._app.parse_id_token(token, nonce=nonce, leeway=LEEWAY)
            except (JoseError, AuthlibBaseError, ValueError, KeyError) as error:
                raise ProviderError("invalid_id_token", f"{self._name}: ID token refused: {error!r}") from None
            except httpx.HTTPError as error:
                raise ProviderError("provider_error", f"{self._name}: key set unavailable: {error!r}") from None
        if claims is None:
            raise ProviderError("invalid_id_token", f"{self._name}: the token response has no ID token")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise ProviderError("invalid_id_token", f"{self._name}: the ID token has no usable sub")
        email = _email(claims.get("email"))
        return ExternalIdentity(
            provider=self._name,
            subject=subject,
            email=email,
            email_verified=email is not None and claims.get("email_verified") is True,
            name=_name(claims.get("name")),
        )


class FacebookProvider(IdentityProvider):
    """Facebook Login: the OAuth 2 dialog, the code exchanged at the Graph API, and ``/me?fields=id,name,email``
    with ``appsecret_proof`` (HMAC-SHA-256 of the access token under the app secret), so a leaked token is useless
    without the secret. Facebook does not say whether an address is verified: it is taken as unverified."""

    NAME = "facebook"

    def __init__(self, *, client_id: str, client_secret: str, dialog_url: str, graph_url: str) -> None:
        self._secret = client_secret.encode()
        graph = graph_url.rstrip("/")
        self._app = _App(
            None,
            name=self.NAME,
            client_id=client_id,
            client_secret=client_secret,
            authorize_url=dialog_url,
            access_token_url=f"{graph}/oauth/access_token",
            api_base_url=f"{graph}/",
            client_kwargs={
                "scope": "email public_profile",
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": "client_secret_post",
                "timeout": TIMEOUT,
            },
        )

    @property
    def name(self) -> str:
        return self.NAME

    async def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        created = await self._app.create_authorization_url(redirect_uri, state=state, code_verifier=code_verifier)
        return str(created["url"])

    async def identify(self, *, redirect_uri: str, code: str, code_verifier: str, nonce: str) -> ExternalIdentity:
        with span("oauth.identify", provider=self.NAME):
            token = await _exchange(self._app, self.NAME, redirect_uri=redirect_uri, code=code, verifier=code_verifier)
            access_token = token.get("access_token")
            if not isinstance(access_token, str) or not access_token:
                raise ProviderError("provider_error", "facebook: the token response has no access token")
            proof = hmac.new(self._secret, access_token.encode(), hashlib.sha256).hexdigest()
            try:
                response = await self._app.get(
                    "me", token=token, params={"fields": "id,name,email", "appsecret_proof": proof}
                )
                response.raise_for_status()
                me: Mapping[str, Any] = response.json()
            except (httpx.HTTPError, ValueError) as error:
                raise ProviderError("provider_error", f"facebook: /me failed: {_graph_error(error)}") from None
        subject = me.get("id")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise ProviderError("provider_error", "facebook: /me has no id")
        return ExternalIdentity(
            provider=self.NAME,
            subject=subject,
            email=_email(me.get("email")),
            email_verified=False,
            name=_name(me.get("name")),
        )


async def _exchange(app: _App, name: str, *, redirect_uri: str, code: str, verifier: str) -> dict[str, Any]:
    try:
        token: dict[str, Any] = await app.fetch_access_token(
            redirect_uri=redirect_uri, code=code, code_verifier=verifier
        )
    except OAuthError as error:  # the provider's own error answer, e.g. invalid_grant
        raise ProviderError("provider_error", f"{name}: code exchange refused: {error.error}") from None
    except (httpx.HTTPError, ValueError, AuthlibBaseError) as error:
        raise ProviderError("provider_error", f"{name}: code exchange failed: {type(error).__name__}") from None
    return token


def _graph_error(error: Exception) -> str:
    """The Graph API's error type and code (never its message, which may echo the request)."""
    if isinstance(error, httpx.HTTPStatusError):
        try:
            body = error.response.json().get("error", {})
            return f"{error.response.status_code} {body.get('type')} {body.get('code')}"
        except ValueError:
            return str(error.response.status_code)
    return type(error).__name__
