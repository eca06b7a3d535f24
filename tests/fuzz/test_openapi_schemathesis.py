"""Schemathesis against our own OpenAPI schema, over a real socket to the real service on PostgreSQL.

Every operation gets a bounded number of generated requests (valid and invalid), with a freshly logged-in user
for the protected ones. Checks: no 5xx, every status code and content type documented, every body matching its
documented schema, and schema-invalid requests refused. Not checked: that every schema-valid request is accepted
(``positive_data_acceptance``): the core applies rules a JSON Schema cannot state (common and breached passwords,
passwords built from the email, uniqueness), and answers those with a documented 4xx.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.database import create_database, drop_database
from tests.support.server import BIN, ROOT, serve, service_env
from usermgmt.adapters.sqlalchemy import migrations

PASSWORD = "fuzzing is fun for everyone"
MAX_EXAMPLES = 25
ADMIN_EXAMPLES = 10  # the admin routes mostly meet random ids (404): fewer cases each keep the tier quick


@pytest.fixture(scope="session")
async def fuzz_database_url() -> AsyncIterator[str]:
    """A database of the fuzzed service's own: the service lives for the whole session, and its outbox worker
    must not claim the rows other tests queue in the shared test database."""
    url = await create_database()
    try:
        await asyncio.to_thread(migrations.upgrade, url, configure_logging=False)
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
def service(fuzz_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = service_env(
        tmp_path_factory.mktemp("fuzz"),
        database_url=fuzz_database_url,
        rate_limits_enabled="false",
        bcrypt_rounds="10",
    )
    with serve(env) as base:
        with httpx.Client(base_url=base) as client:
            client.post("/api/v1/auth/register", json={"email": "fuzz@example.com", "password": PASSWORD})
        # An administrator, so that the admin routes are fuzzed past their permission check.
        subprocess.run(
            [BIN / "usermgmt", "create-admin", "fuzz@example.com"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield base


@pytest.fixture(scope="session")
def api_schema(service: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{service}/openapi.json")


OPERATIONS = [
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/password/forgot"),
    ("POST", "/api/v1/auth/password/reset"),
    ("POST", "/api/v1/auth/email/verify"),
    ("POST", "/api/v1/auth/email/confirm"),
    ("POST", "/api/v1/users/me/email"),
    ("POST", "/api/v1/users/me/email/verification"),
    ("GET", "/api/v1/users/me"),
    ("PATCH", "/api/v1/users/me"),
    ("DELETE", "/api/v1/users/me"),
    ("POST", "/api/v1/users/me/password"),
    ("GET", "/api/v1/users/me/sessions"),
    ("DELETE", "/api/v1/users/me/sessions/{session_id}"),
    ("GET", "/api/v1/users/me/events"),
    ("POST", "/api/v1/auth/login/mfa"),
    ("GET", "/api/v1/users/me/mfa"),
    ("POST", "/api/v1/users/me/mfa/totp"),
    ("POST", "/api/v1/users/me/mfa/totp/confirm"),
    ("DELETE", "/api/v1/users/me/mfa/totp"),
    ("POST", "/api/v1/users/me/mfa/recovery-codes"),
    ("POST", "/api/v1/users/me/export"),
    ("POST", "/api/v1/auth/account/restore"),
    ("POST", "/api/v1/oauth/introspect"),
    ("GET", "/api/v1/admin/users"),
    ("GET", "/api/v1/admin/users/{user_id}"),
    ("PATCH", "/api/v1/admin/users/{user_id}"),
    ("DELETE", "/api/v1/admin/users/{user_id}"),
    ("POST", "/api/v1/admin/users/{user_id}/disable"),
    ("POST", "/api/v1/admin/users/{user_id}/enable"),
    ("GET", "/api/v1/admin/users/{user_id}/sessions"),
    ("DELETE", "/api/v1/admin/users/{user_id}/sessions"),
    ("GET", "/api/v1/admin/users/{user_id}/events"),
    ("PUT", "/api/v1/admin/users/{user_id}/roles"),
    ("POST", "/api/v1/admin/users/{user_id}/mfa/reset"),
    ("POST", "/api/v1/admin/users/{user_id}/password-reset"),
    ("GET", "/api/v1/admin/roles"),
    ("POST", "/api/v1/admin/roles"),
    ("PATCH", "/api/v1/admin/roles/{name}"),
    ("DELETE", "/api/v1/admin/roles/{name}"),
    ("GET", "/api/v1/admin/events"),
    ("GET", "/api/v1/admin/stats"),
    ("GET", "/api/v1/users/me/export"),
    ("POST", "/api/v1/users/me/export"),
    ("POST", "/api/v1/auth/account/restore"),
    ("POST", "/api/v1/oauth/introspect"),
    ("GET", "/api/v1/auth/oauth/providers"),
    ("GET", "/api/v1/auth/oauth/{provider}/authorize"),
    ("GET", "/api/v1/auth/oauth/{provider}/callback"),
    ("POST", "/api/v1/auth/oauth/token"),
    ("GET", "/api/v1/users/me/identities"),
    ("POST", "/api/v1/users/me/identities/{provider}"),
    ("DELETE", "/api/v1/users/me/identities/{identity_id}"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]


def fresh_token(base_url: str) -> str:
    """A new session per case: some cases log out, revoke or rotate what they are given."""
    response = httpx.post(f"{base_url}/api/v1/auth/login", json={"login": "fuzz@example.com", "password": PASSWORD})
    response.raise_for_status()
    return str(response.json()["access_token"])


def test_every_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    documented = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert documented == set(OPERATIONS)


# Operations with something to get wrong (a body, a path or query parameter) also get invalid requests.
WITH_INPUT = {
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/password/forgot"),
    ("POST", "/api/v1/auth/password/reset"),
    ("POST", "/api/v1/auth/email/verify"),
    ("POST", "/api/v1/auth/email/confirm"),
    ("POST", "/api/v1/users/me/email"),
    ("PATCH", "/api/v1/users/me"),
    ("DELETE", "/api/v1/users/me"),
    ("POST", "/api/v1/users/me/password"),
    ("DELETE", "/api/v1/users/me/sessions/{session_id}"),
    ("GET", "/api/v1/users/me/events"),
    ("POST", "/api/v1/auth/login/mfa"),
    ("POST", "/api/v1/users/me/mfa/totp"),
    ("POST", "/api/v1/users/me/mfa/totp/confirm"),
    ("DELETE", "/api/v1/users/me/mfa/totp"),
    ("POST", "/api/v1/users/me/mfa/recovery-codes"),
    ("GET", "/api/v1/admin/users"),
    ("GET", "/api/v1/admin/users/{user_id}"),
    ("PATCH", "/api/v1/admin/users/{user_id}"),
    ("DELETE", "/api/v1/admin/users/{user_id}"),
    ("POST", "/api/v1/admin/users/{user_id}/disable"),
    ("POST", "/api/v1/admin/users/{user_id}/enable"),
    ("GET", "/api/v1/admin/users/{user_id}/sessions"),
    ("DELETE", "/api/v1/admin/users/{user_id}/sessions"),
    ("GET", "/api/v1/admin/users/{user_id}/events"),
    ("PUT", "/api/v1/admin/users/{user_id}/roles"),
    ("POST", "/api/v1/admin/users/{user_id}/mfa/reset"),
    ("POST", "/api/v1/admin/users/{user_id}/password-reset"),
    ("POST", "/api/v1/admin/roles"),
    ("PATCH", "/api/v1/admin/roles/{name}"),
    ("DELETE", "/api/v1/admin/roles/{name}"),
    ("GET", "/api/v1/admin/events"),
    ("GET", "/api/v1/admin/stats"),
    ("GET", "/api/v1/auth/oauth/{provider}/authorize"),
    ("GET", "/api/v1/auth/oauth/{provider}/callback"),
    ("POST", "/api/v1/auth/oauth/token"),
    ("POST", "/api/v1/users/me/identities/{provider}"),
    ("DELETE", "/api/v1/users/me/identities/{identity_id}"),
}
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if (m, p) in WITH_INPUT
]


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    CASES,
    ids=[f"{m} {p} {'valid' if g is GenerationMode.POSITIVE else 'invalid'}" for m, p, g in CASES],
)
def test_operation_conforms_to_its_schema(
    api_schema: schemathesis.BaseSchema, service: str, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    protected = path.startswith(("/api/v1/users/me", "/api/v1/admin")) or path == "/api/v1/auth/logout"

    examples = ADMIN_EXAMPLES if path.startswith("/api/v1/admin") else MAX_EXAMPLES

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        headers = {"Authorization": f"Bearer {fresh_token(service)}"} if protected else {}
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    run()
