"""An imitation of Facebook Login and the Graph API on loopback, for the social-login tests.

graph.facebook.com and www.facebook.com cannot be reached from the test machines, so ``fake_facebook`` serves the
three endpoints a server-side login uses, with the shapes Facebook documents ("Manually Build a Login Flow",
"Securing Graph API Requests", "Graph API errors"):

- ``GET {dialog_url}`` (www.facebook.com/v21.0/dialog/oauth) with client_id, redirect_uri, state, response_type=code,
  scope, and optionally code_challenge / code_challenge_method: 302 to ``redirect_uri?code=...&state=...``; a user
  who cancels gets ``redirect_uri?error_reason=user_denied&error=access_denied&error_description=Permissions+error.
  &state=...``. There is no login page: ``sign_in`` names the user in a ``fake_user`` query parameter.
- ``GET|POST {graph_url}/oauth/access_token`` with client_id, client_secret (or HTTP Basic), redirect_uri, code, and
  code_verifier when the dialog had a challenge: ``{"access_token", "token_type": "bearer", "expires_in"}``; a code
  is single use.
- ``GET {graph_url}/me?fields=id,name,email&access_token=...&appsecret_proof=...`` (or ``Authorization: Bearer``),
  appsecret_proof being HMAC-SHA256(app secret, access token) in hex: the requested fields, email left out for a
  user without one.

Errors are HTTP 400 ``{"error": {"message", "type", "code", "fbtrace_id"}}`` as Facebook sends them: type
OAuthException for the token exchange (code 100) and for a bad access token (code 190), GraphMethodException
(code 100) for a missing or wrong appsecret_proof.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import httpx

API_VERSION = "v21.0"
DIALOG_PATH = f"/{API_VERSION}/dialog/oauth"
GRAPH_PATH = f"/graph/{API_VERSION}"
TOKEN_LIFETIME = 5183944  # seconds: the ~60 days of a long-lived user token, as Facebook answers
USER_FIELDS = ("id", "name", "email")


@dataclass(frozen=True)
class RecordedRequest:
    """One request a Graph endpoint received."""

    method: str
    path: str  # e.g. "/graph/v21.0/me"
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]  # lower-case names

    @property
    def params(self) -> dict[str, str]:
        """Query and form together (the form wins)."""
        return {**self.query, **self.form}


@dataclass(frozen=True)
class _User:
    id: str
    name: str
    email: str | None


@dataclass(frozen=True)
class _Code:
    user_id: str
    redirect_uri: str
    code_challenge: str | None
    code_challenge_method: str


class FacebookSignInError(RuntimeError):
    """The dialog did not redirect (a wrong client_id or redirect_uri, an unknown user, ...)."""


class FakeFacebook:
    """The imitation's state: users, codes, tokens, and the Graph requests received."""

    def __init__(self, app_id: str, app_secret: str, redirect_uris: Sequence[str] | None = None) -> None:
        self.app_id, self.app_secret = app_id, app_secret
        self.redirect_uris = None if redirect_uris is None else list(redirect_uris)  # None: any http(s) URL
        self.dialog_url = ""  # set once listening: http://127.0.0.1:<port>/v21.0/dialog/oauth
        self.graph_url = ""  # http://127.0.0.1:<port>/graph/v21.0
        self.requests: list[RecordedRequest] = []
        self._users: dict[str, _User] = {}
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, str] = {}  # access token -> user id
        self._lock = threading.Lock()

    def add_user(self, id: str, *, name: str, email: str | None) -> None:
        with self._lock:
            self._users[id] = _User(id, name, email)

    def appsecret_proof(self, access_token: str) -> str:
        return hmac.new(self.app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()

    def sign_in(self, authorization_url: str, user_id: str) -> str:
        """Play the user at the dialog: GET authorization_url as `user_id` and return the redirect Location
        (redirect_uri?code=…&state=…)."""
        return self._dialog(authorization_url, {"fake_user": user_id})

    def deny(self, authorization_url: str) -> str:
        """Play a user who cancels at the dialog; return the redirect (redirect_uri?error=access_denied&…)."""
        return self._dialog(authorization_url, {"fake_deny": "1"})

    def _dialog(self, authorization_url: str, extra: dict[str, str]) -> str:
        if not authorization_url.startswith(f"{self.dialog_url}?"):
            raise FacebookSignInError(f"{authorization_url} is not this dialog ({self.dialog_url})")
        response = httpx.get(f"{authorization_url}&{urlencode(extra)}", timeout=5.0, follow_redirects=False)
        if response.status_code != 302:
            raise FacebookSignInError(f"the dialog answered {response.status_code}: {response.text}")
        return response.headers["location"]

    # The endpoints, called from the server's threads. Each returns (status, JSON body) or a redirect.

    def dialog(self, query: dict[str, str]) -> tuple[int, dict[str, Any]] | str:
        redirect_uri, state = query.get("redirect_uri", ""), query.get("state", "")
        if query.get("client_id") != self.app_id:
            return 400, _error("Invalid App ID: the app ID is not valid", "OAuthException", 101)
        allowed = urlsplit(redirect_uri).scheme in ("http", "https") and (
            self.redirect_uris is None or redirect_uri in self.redirect_uris
        )
        if not allowed:
            message = "URL Blocked: This redirect failed because the redirect URI is not whitelisted in the app's"
            return 400, _error(f"{message} Client OAuth Settings.", "OAuthException", 191)
        if query.get("response_type", "code") != "code":
            return 400, _error("Unsupported response_type", "OAuthException", 100)
        if "fake_deny" in query:
            return _with_query(
                redirect_uri,
                {
                    "error_reason": "user_denied",
                    "error": "access_denied",
                    "error_description": "Permissions error.",
                    "state": state,
                },
            )
        method = query.get("code_challenge_method", "plain")
        if "code_challenge" in query and method not in ("S256", "plain"):
            return 400, _error("Invalid code_challenge_method", "OAuthException", 100)
        with self._lock:
            if query.get("fake_user") not in self._users:
                return 400, _error(f"the imitation has no user {query.get('fake_user')!r}", "OAuthException", 100)
            code = secrets.token_urlsafe(48)
            self._codes[code] = _Code(query["fake_user"], redirect_uri, query.get("code_challenge"), method)
        return _with_query(redirect_uri, {"code": code, "state": state})

    def access_token(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if params.get("client_id") != self.app_id:
            return 400, _error("Error validating application. Invalid application ID.", "OAuthException", 100)
        if not hmac.compare_digest(params.get("client_secret", ""), self.app_secret):
            return 400, _error("Error validating client secret.", "OAuthException", 100)
        with self._lock:
            grant = self._codes.pop(params.get("code", ""), None)  # single use, even when the exchange fails
        if grant is None:
            return 400, _error("This authorization code has been used or is invalid.", "OAuthException", 100, 36009)
        if params.get("redirect_uri") != grant.redirect_uri:
            message = (
                "Error validating verification code. Please make sure your redirect_uri is identical to the one you"
                " used in the OAuth dialog request"
            )
            return 400, _error(message, "OAuthException", 100, 36008)
        if grant.code_challenge is not None and not _pkce_ok(grant, params.get("code_verifier")):
            return 400, _error("Invalid code verifier.", "OAuthException", 100)
        token = "EAA" + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = grant.user_id
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_LIFETIME}

    def me(self, params: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        token = params.get("access_token")
        scheme, _, credentials = authorization.partition(" ")
        if token is None and scheme.lower() in ("bearer", "oauth"):
            token = credentials.strip()
        if not token:
            message = "An active access token must be used to query information about the current user."
            return 400, _error(message, "OAuthException", 2500)
        with self._lock:
            user = self._users.get(self._tokens.get(token, ""))
        if user is None:
            return 400, _error("Invalid OAuth access token - Cannot parse access token", "OAuthException", 190)
        proof = params.get("appsecret_proof")
        if proof is None:
            message = "API calls from the server require an appsecret_proof argument"
            return 400, _error(message, "GraphMethodException", 100)
        if not hmac.compare_digest(proof, self.appsecret_proof(token)):
            return 400, _error("Invalid appsecret_proof provided in the API argument", "GraphMethodException", 100)
        fields = [name.strip() for name in params.get("fields", "id,name").split(",") if name.strip()]
        unknown = [name for name in fields if name not in USER_FIELDS]
        if unknown:
            message = f"(#100) Tried accessing nonexisting field ({unknown[0]}) on node type (User)"
            return 400, _error(message, "OAuthException", 100)
        values = {"id": user.id, "name": user.name, "email": user.email}
        return 200, {name: values[name] for name in fields if values[name] is not None}


def _error(message: str, type_: str, code: int, subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = secrets.token_urlsafe(8)
    return {"error": error}


def _with_query(url: str, params: dict[str, str]) -> str:
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params)}"


def _pkce_ok(grant: _Code, verifier: str | None) -> bool:
    if not verifier:
        return False
    if grant.code_challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode()).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        expected = verifier
    return hmac.compare_digest(expected, grant.code_challenge or "")


def _basic_credentials(authorization: str) -> dict[str, str]:
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return {}
    try:
        client_id, _, client_secret = base64.b64decode(credentials.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return {}
    return {"client_id": unquote_plus(client_id), "client_secret": unquote_plus(client_secret)}


def _handler(facebook: FakeFacebook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            form: dict[str, str] = {}
            if (self.headers.get("content-type") or "").startswith("application/x-www-form-urlencoded"):
                form = dict(parse_qsl(body, keep_blank_values=True))
            authorization = self.headers.get("authorization") or ""
            if parts.path.startswith(f"{GRAPH_PATH}/"):
                headers = {name.lower(): value for name, value in self.headers.items()}
                with facebook._lock:
                    facebook.requests.append(RecordedRequest(self.command, parts.path, query, form, headers))
            answer: tuple[int, dict[str, Any]] | str
            if parts.path == DIALOG_PATH and self.command == "GET":
                answer = facebook.dialog(query)
            elif parts.path == f"{GRAPH_PATH}/oauth/access_token":
                answer = facebook.access_token({**_basic_credentials(authorization), **query, **form})
            elif parts.path == f"{GRAPH_PATH}/me" and self.command == "GET":
                answer = facebook.me(query, authorization)
            else:
                message = f"Unknown path components: {parts.path}"
                answer = 400, _error(message, "OAuthException", 2500)
            if isinstance(answer, str):
                self.send_response(302)
                self.send_header("Location", answer)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, payload = answer
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def fake_facebook(
    app_id: str, app_secret: str, *, redirect_uris: Sequence[str] | None = None
) -> Iterator[FakeFacebook]:
    """Serve the imitation on a free port of 127.0.0.1, in a thread, for the block; ``redirect_uris`` are the app's
    valid OAuth redirect URIs (None: any)."""
    facebook = FakeFacebook(app_id, app_secret, redirect_uris)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(facebook))
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}"
    facebook.dialog_url, facebook.graph_url = f"{base}{DIALOG_PATH}", f"{base}{GRAPH_PATH}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield facebook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
