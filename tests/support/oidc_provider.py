"""A real OpenID Provider on loopback for the social-login tests: panva's oidc-provider, run by Node.

``openid_provider(clients)`` starts ``tests/support/oidc/provider.mjs`` on a free port of 127.0.0.1 (issuer
``http://127.0.0.1:<port>``), with the given clients, PKCE required, scopes openid, email and profile, and an RS256
key of its own. Accounts are added over a test-only route; ``sign_in`` plays the user at the OP's login and consent
pages over plain HTTP; ``tamper`` makes the token endpoint hand out a forged id_token (see ``TAMPER_MODES``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from tests.support.proxy import free_port

OIDC_DIR = Path(__file__).parent / "oidc"
PROVIDER_SCRIPT = OIDC_DIR / "provider.mjs"
START_TIMEOUT = 20.0  # seconds until discovery must answer
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL

# What ``tamper`` accepts, each applied to the id_token of every token response until ``tamper(None)``:
#   nonce             another nonce, signed with the OP's key;
#   audience          aud "someone-else", signed with the OP's key;
#   expired           iat now-1200, exp now-600, signed with the OP's key;
#   issuer            iss "http://127.0.0.1:1/other", signed with the OP's key;
#   signature         claims unchanged, signed with another RSA key under the same kid (and alg);
#   unverified_email  email_verified false, signed with the OP's key.
TAMPER_MODES = ("nonce", "audience", "expired", "issuer", "signature", "unverified_email")


@dataclass
class OidcClient:
    """A client registered at the OP: grant authorization_code, response type code, and client_secret_basic or
    client_secret_post at the token endpoint (oidc-provider takes either)."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]


class SignInError(RuntimeError):
    """The OP did not send the browser back to the client (an error page, an unknown account, ...)."""


def node_available() -> bool:
    """Whether ``node`` is on PATH (tests skip without it)."""
    return shutil.which("node") is not None


def ensure_node_modules() -> None:
    """Run ``npm ci`` in tests/support/oidc unless node_modules is there and newer than package-lock.json."""
    lock, installed = OIDC_DIR / "package-lock.json", OIDC_DIR / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is needed to install {OIDC_DIR}/node_modules (or run `make oidc-provider`)")
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"npm ci in {OIDC_DIR} failed:\n{result.stdout}\n{result.stderr}")
    installed.touch()


def _text(response: httpx.Response) -> str:
    """A page's text without its markup (the OP's error pages are HTML)."""
    text = re.sub(r"<(style|script)\b.*?</\1>", " ", response.text, flags=re.DOTALL | re.IGNORECASE)
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())[:2000]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


@dataclass
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """The forms of a page: action, method and the named inputs with their values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(_Form(attributes.get("action", ""), attributes.get("method", "get").lower()))
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")


def _forms(html: str) -> list[_Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


class OpenIdProvider:
    """A running OP: its issuer, its accounts, the user at its pages, and the tampering switch."""

    def __init__(self, issuer: str, clients: Sequence[OidcClient], process: subprocess.Popen[bytes], log: Path):
        self.issuer = issuer
        self.clients = list(clients)
        self.metadata: dict[str, Any] = {}  # the discovery document, read once the OP answers
        self.accounts: set[str] = set()
        self._process = process
        self._log = log
        self._final_output: str | None = None

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def output(self) -> str:
        """What node printed so far (stdout and stderr); once stopped, all it printed."""
        if self._final_output is not None:
            return self._final_output
        return self._log.read_text(errors="replace")

    def add_account(self, sub: str, *, email: str | None, email_verified: bool = True, name: str | None = None) -> None:
        """Add (or replace) an account; its claims omit email and email_verified when email is None."""
        body: dict[str, Any] = {"sub": sub, "email_verified": email_verified}
        if email is not None:
            body["email"] = email
        if name is not None:
            body["name"] = name
        self._admin("/__test/accounts", body)
        self.accounts.add(sub)

    def tamper(self, mode: str | None) -> None:
        """Forge the id_token of every token response from now on (one of ``TAMPER_MODES``); None stops it."""
        if mode is not None and mode not in TAMPER_MODES:
            raise ValueError(f"unknown tamper mode {mode!r}, expected one of {TAMPER_MODES}")
        self._admin("/__test/tamper", {"mode": mode})

    @contextmanager
    def tampering(self, mode: str) -> Iterator[None]:
        """``tamper(mode)`` for the block, then ``tamper(None)``."""
        self.tamper(mode)
        try:
            yield
        finally:
            self.tamper(None)

    def sign_in(self, authorization_url: str, sub: str) -> str:
        """Play the user at the OP: open authorization_url (a URL of this OP's authorization endpoint, as the
        service under test built it), log in as `sub`, grant consent, and return the URL the OP finally redirects
        the browser to (the service's callback with ?code=&state=, or with ?error=). Uses its own httpx.Client
        with its own cookie jar per call; follows only redirects that stay on the OP's origin."""
        if sub not in self.accounts:
            raise SignInError(f"no account {sub!r} at the OP (add_account first)")
        return self._browse(authorization_url, sub)

    def deny(self, authorization_url: str) -> str:
        """Play a user who cancels at the OP's login page; return the redirect (the callback with
        ?error=access_denied, or the OP's own error redirect)."""
        return self._browse(authorization_url, None)

    def _browse(self, authorization_url: str, sub: str | None) -> str:
        origin = _origin(self.issuer)
        if _origin(authorization_url) != origin:
            raise SignInError(f"{authorization_url} is not on this OP ({self.issuer})")
        logged_in = False
        with httpx.Client(timeout=10.0, follow_redirects=False) as browser:
            response = browser.get(authorization_url)
            for _ in range(20):
                if response.is_redirect:
                    location = urljoin(str(response.url), response.headers["location"])
                    if _origin(location) != origin:
                        return location
                    response = browser.get(location)
                    continue
                forms = _forms(response.text) if response.status_code == 200 else []
                prompt = forms[0].fields.get("prompt") if forms else None
                if prompt not in ("login", "consent"):
                    raise SignInError(
                        f"unexpected answer from {response.url}: {response.status_code} {_text(response)}"
                    )
                action = urljoin(str(response.url), forms[0].action)  # the interaction: /interaction/<uid>
                if sub is None:
                    response = browser.get(f"{action}/abort")
                    continue
                if prompt == "login":
                    if logged_in:
                        raise SignInError(f"the OP asked for a login again after logging in as {sub!r}")
                    logged_in = True
                    response = browser.post(action, data={**forms[0].fields, "login": sub, "password": "unchecked"})
                else:
                    response = browser.post(action, data=forms[0].fields)
        raise SignInError(f"too many steps at the OP, last at {response.url}")

    def _admin(self, path: str, body: dict[str, Any]) -> None:
        httpx.post(f"{self.issuer}{path}", json=body, timeout=5.0).raise_for_status()

    def _wait_until_ready(self, deadline: float) -> bool:
        """True once discovery answers; False if node exited first (e.g. the port was taken)."""
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                response = httpx.get(self.discovery_url, timeout=1.0)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            if response.status_code == 200:
                self.metadata = response.json()
                return True
            time.sleep(0.05)
        raise RuntimeError(f"the OpenID Provider did not answer {self.discovery_url} in time:\n{self.output()}")

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._final_output = self._log.read_text(errors="replace")


@contextmanager
def openid_provider(clients: Sequence[OidcClient]) -> Iterator[OpenIdProvider]:
    """Start the OP with these clients, wait until discovery answers, and stop it afterwards."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH (check node_available() first)")
    ensure_node_modules()
    with tempfile.TemporaryDirectory(prefix="oidc-provider-") as tmp:
        log = Path(tmp) / "provider.log"
        for _attempt in range(3):  # another process may take the free port before node binds it
            port = free_port()
            config = Path(tmp) / "config.json"
            config.write_text(
                json.dumps(
                    {
                        "port": port,
                        "clients": [
                            {
                                "client_id": client.client_id,
                                "client_secret": client.client_secret,
                                "redirect_uris": client.redirect_uris,
                            }
                            for client in clients
                        ],
                    }
                )
            )
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [node, str(PROVIDER_SCRIPT), str(config)],
                    cwd=OIDC_DIR,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            provider = OpenIdProvider(f"http://127.0.0.1:{port}", clients, process, log)
            try:
                ready = provider._wait_until_ready(time.monotonic() + START_TIMEOUT)
            except BaseException:
                provider._stop()
                raise
            if ready:
                break
            if "EADDRINUSE" not in provider.output():
                raise RuntimeError(f"the OpenID Provider exited with {process.returncode}:\n{provider.output()}")
        else:
            raise RuntimeError(f"the OpenID Provider found no free port:\n{provider.output()}")
        try:
            yield provider
        finally:
            provider._stop()
