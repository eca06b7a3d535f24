"""`make run`'s path: the real CLI, no configuration, embedded SQLite; another service verifies via the JWKS URL."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.server import BIN, ROOT, migrate, serve, service_env


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    env = service_env(tmp_path / "var")
    migrate(env)
    with serve(env) as base:
        yield base
    assert (tmp_path / "var" / "usermgmt.db").is_file()
    assert list((tmp_path / "var" / "keys").glob("*.pem"))


def test_embedded_sqlite_serves_the_whole_flow_and_pyjwt_verifies_via_jwks_url(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        password = "correct horse battery staple"
        registered = client.post("/api/v1/auth/register", json={"email": "smoke@example.com", "password": password})
        assert registered.status_code == 201, registered.text
        duplicate = client.post("/api/v1/auth/register", json={"email": "SMOKE@example.com", "password": password})
        assert duplicate.status_code == 409
        tokens = client.post("/api/v1/auth/login", json={"login": "smoke@example.com", "password": password}).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert client.get("/api/v1/users/me", headers=auth).json()["email"] == "smoke@example.com"
        rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert rotated.status_code == 200
        assert client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
        assert client.get("/api/v1/users/me", headers=auth).status_code == 401  # reuse ended the session
        events = client.get(
            "/api/v1/users/me/events", headers={"Authorization": f"Bearer {rotated.json()['access_token']}"}
        )
        assert events.status_code == 401  # that session is gone too
        assert client.get("/docs").status_code == 200

    # What an internal service does: nothing but the JWKS URL.
    jwks_client = jwt.PyJWKClient(f"{served}/.well-known/jwks.json")
    token = rotated.json()["access_token"]
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["ES256"], audience="usermgmt", issuer="usermgmt")
    assert claims["sub"] == registered.json()["id"]
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, signing_key.key, algorithms=["ES256"], audience="someone-else", issuer="usermgmt")


def test_purge_sessions_command(tmp_path: Path) -> None:
    """The periodic clean-up, as a cron job would run it: `usermgmt purge-sessions`."""
    env = service_env(tmp_path / "var")
    migrate(env)
    done = subprocess.run(
        [BIN / "usermgmt", "purge-sessions"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "purged 0 expired sessions"
