"""`usermgmt create-admin`, `roles grant|revoke`, `users list` and `maintenance --once`: the real commands on SQLite,
as an operator runs them on a fresh install; every failure says why and exits non-zero."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import httpx
import jwt
import pytest

from tests.support.server import BIN, ROOT, migrate, serve, service_env

PASSWORD = "an operator's long passphrase"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "internal_service", ROOT / "docs" / "examples" / "internal_service.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


internal_service = _load_example()


def usermgmt(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "usermgmt", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database migrated once for the module: each test starts from a copy (a process start costs seconds)."""
    data_dir = tmp_path_factory.mktemp("migrated") / "var"
    migrate(service_env(data_dir))
    return data_dir / "usermgmt.db"


@pytest.fixture
def env(tmp_path: Path, migrated: Path) -> dict[str, str]:
    (tmp_path / "var").mkdir()
    shutil.copy(migrated, tmp_path / "var" / "usermgmt.db")
    return service_env(tmp_path / "var", bcrypt_rounds="10")


def accounts(env: dict[str, str]) -> int:
    with sqlite3.connect(Path(env["USERMGMT_DATA_DIR"]) / "usermgmt.db") as connection:
        return int(connection.execute("SELECT count(*) FROM users").fetchone()[0])


def test_create_admin_then_sign_in_and_use_the_admin_api(env: dict[str, str]) -> None:
    created = usermgmt(env, "create-admin", "Root@Example.com", "--password-stdin", stdin=f"{PASSWORD}\n")

    assert created.returncode == 0, created.stderr
    assert "created the account Root@example.com" in created.stdout and "holds the admin role" in created.stdout
    assert PASSWORD not in created.stdout + created.stderr
    with serve(env) as base, httpx.Client(base_url=base) as client:
        login = client.post("/api/v1/auth/login", json={"login": "root@example.com", "password": PASSWORD})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        users = client.get("/api/v1/admin/users", headers=auth)
        assert users.status_code == 200
        [root] = users.json()["items"]
        assert (root["email_verified"], root["roles"]) == (True, ["admin"])
        registered = client.post("/api/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
        assert registered.status_code == 201
        ada = client.post("/api/v1/auth/login", json={"login": "ada@example.com", "password": PASSWORD}).json()

        # docs/examples/internal_service.py, as another service runs it: the JWKS, and the roles claim.
        verifier = internal_service.TokenVerifier(base)
        assert verifier.require_role(login.json()["access_token"], "admin")["roles"] == ["admin"]
        with pytest.raises(internal_service.Forbidden):
            verifier.require_role(ada["access_token"], "admin")
        with pytest.raises(jwt.InvalidTokenError):
            verifier.require_role(ada["refresh_token"], "admin")

    again = usermgmt(env, "create-admin", "ada@example.com")  # an existing account: no password asked
    assert again.returncode == 0, again.stderr
    assert "granted admin to the existing account ada@example.com" in again.stdout
    listed = usermgmt(env, "users", "list", "--query", "ADA")
    assert listed.returncode == 0
    [line] = listed.stdout.splitlines()
    assert "ada@example.com" in line and "active" in line and "admin" in line


def test_roles_grant_and_revoke_and_the_last_admin(env: dict[str, str]) -> None:
    assert usermgmt(env, "create-admin", "root@example.com", "--password-stdin", stdin=PASSWORD).returncode == 0

    last = usermgmt(env, "roles", "revoke", "root@example.com", "admin")
    assert last.returncode == 1
    assert "could not revoke 'admin' (last_admin)" in last.stderr

    unknown = usermgmt(env, "roles", "grant", "root@example.com", "ghost")
    assert unknown.returncode == 1 and "(unknown_role)" in unknown.stderr
    nobody = usermgmt(env, "roles", "grant", "nobody@example.com", "admin")
    assert nobody.returncode == 1 and "(user_not_found)" in nobody.stderr
    assert usermgmt(env, "create-admin", "second@example.com", "--password-stdin", stdin=PASSWORD).returncode == 0
    revoked = usermgmt(env, "roles", "revoke", "root@example.com", "admin")
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == "root@example.com now holds: none"


@pytest.mark.parametrize(
    ("args", "stdin", "said"),
    [
        (["create-admin", "root@example.com", "--password-stdin"], "short\n", "(weak_password)"),
        (["create-admin", "root@example.com", "--password-stdin"], "", "no password given"),
        (["create-admin", "not-an-address", "--password-stdin"], PASSWORD, "(invalid_email)"),
    ],
)
def test_create_admin_failures_say_why_and_exit_1(env: dict[str, str], args: list[str], stdin: str, said: str) -> None:
    done = usermgmt(env, *args, stdin=stdin)

    assert done.returncode == 1
    assert said in done.stderr
    assert accounts(env) == 0  # nothing was created


def test_an_unmigrated_database_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    done = usermgmt(service_env(tmp_path / "var"), "users", "list")

    assert done.returncode == 1
    assert "usermgmt migrate" in done.stderr
    assert "Traceback" not in done.stderr


def test_stats_prints_the_kpis_as_json(env: dict[str, str]) -> None:
    assert usermgmt(env, "create-admin", "root@example.com", "--password-stdin", stdin=PASSWORD).returncode == 0
    now = datetime.now(UTC)

    done = usermgmt(env, "stats")  # the last 30 days ending now

    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert datetime.fromisoformat(figures["to"]) - datetime.fromisoformat(figures["from"]) == timedelta(days=30)
    assert (figures["registrations"], figures["users_total"], figures["users_with_mfa"]) == (1, 1, 0)
    assert (figures["sign_in_attempts"], figures["login_success_rate"]) == (0, None)
    assert len(figures["registrations_by_day"]) == 31
    day = now.date().isoformat()
    chosen = usermgmt(env, "stats", "--from", day, "--to", (now + timedelta(days=1)).date().isoformat())
    assert chosen.returncode == 0, chosen.stderr
    assert json.loads(chosen.stdout)["registrations_by_day"] == [{"day": day, "registrations": 1}]

    backwards = usermgmt(env, "stats", "--from", "2026-03-11", "--to", "2026-03-01")
    assert backwards.returncode == 1
    assert "could not compute the stats (invalid_period)" in backwards.stderr
    malformed = usermgmt(env, "stats", "--from", "yesterday")
    assert malformed.returncode == 2 and "not an ISO 8601 date or time" in malformed.stderr


def test_maintenance_once_reports_what_it_removed(env: dict[str, str]) -> None:
    done = usermgmt(env, "maintenance", "--once")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "maintenance removed 0 sessions, 0 mfa_challenges, 0 email_tokens, 0 erased_accounts, 0 anonymous_events"
    )
