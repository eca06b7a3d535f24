"""`make run`'s path: the real CLI, no configuration, embedded SQLite; another service verifies via the JWKS URL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.proxy import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERMGMT_")}
    env["USERMGMT_DATA_DIR"] = str(tmp_path / "var")
    subprocess.run([BIN / "usermgmt", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    process = subprocess.Popen(
        [BIN / "usermgmt", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"the server did not start:\n{output}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)
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
        assert client.get("/docs").status_code == 200

    # What an internal service does: nothing but the JWKS URL.
    jwks_client = jwt.PyJWKClient(f"{served}/.well-known/jwks.json")
    token = rotated.json()["access_token"]
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["ES256"], audience="usermgmt", issuer="usermgmt")
    assert claims["sub"] == registered.json()["id"]
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, signing_key.key, algorithms=["ES256"], audience="someone-else", issuer="usermgmt")
