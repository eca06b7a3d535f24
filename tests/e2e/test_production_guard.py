"""`usermgmt serve` with USERMGMT_ENVIRONMENT=production refuses development-only settings before it listens,
naming the setting to fix; with them fixed it serves. Each refusal on its own: tests/unit/test_config.py,
tests/unit/adapters/test_keys.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.support.proxy import free_port
from tests.support.server import BIN, ROOT, migrate, serve, service_env
from usermgmt.adapters.keys import SigningKey

READY = {
    "environment": "production",
    "trusted_hosts": "127.0.0.1",
    "hsts_max_age": "31536000",
    "smtp_host": "127.0.0.1",
    "data_encryption_keys": "qD4mB3oGx7T8mQ1a9Zr2n0c6Vw5YpLkEJHsUdF3tCiA",
}


def refusal(env: dict[str, str]) -> str:
    """Run `usermgmt serve`; it must exit with an error. Returns its stderr."""
    done = subprocess.run(
        [BIN / "usermgmt", "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    return done.stderr


def own_key(directory: Path) -> None:
    directory.mkdir(parents=True)
    path = directory / "20270101T000000Z-prod.pem"
    path.write_bytes(SigningKey.generate().private_pem())
    path.chmod(0o600)


def test_production_refuses_wildcard_hosts_no_hsts_and_no_smtp_server(tmp_path: Path) -> None:
    own_key(tmp_path / "var" / "keys")

    errors = refusal(service_env(tmp_path / "var", environment="production"))

    assert "USERMGMT_TRUSTED_HOSTS" in errors
    assert "USERMGMT_HSTS_MAX_AGE" in errors
    assert "USERMGMT_SMTP_HOST" in errors


def test_production_refuses_to_generate_a_key(tmp_path: Path) -> None:
    assert "USERMGMT_SIGNING_KEY_AUTOGENERATE" in refusal(service_env(tmp_path / "var", **READY))
    assert not (tmp_path / "var" / "keys").exists()


def test_production_serves_once_fixed(tmp_path: Path) -> None:
    own_key(tmp_path / "var" / "keys")
    env = service_env(tmp_path / "var", **READY, signing_key_autogenerate="false")
    migrate(env)

    with serve(env) as base:
        response = httpx.get(f"{base}/healthz", timeout=5)

    assert response.status_code == 200
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")
